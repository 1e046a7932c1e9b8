"""Parameter and FLOP counting from the config, and MFU against the device table."""

from __future__ import annotations

import re

import pytest

from scaling.config_loading import list_presets, load_config
from scaling.counting import (
    ASSUMED_VOCAB_SIZE,
    count_params,
    flops_per_token,
    global_batch_tokens,
    mfu,
    peak_flops,
)
from scaling.errors import ConfigError
from scaling.ladder import ASPECT_RATIO, ladder_names
from scaling.model import build_model

SMALL = ["model.n_layer=2", "model.d_model=48", "model.n_head=6", "model.vocab_size=300",
         "model.max_seq_len=64", "train.seq_len=64"]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.tie_embeddings=false"],
        ["model.n_kv_head=2"],
        ["model.n_kv_head=1", "model.tie_embeddings=false", "model.qk_norm=true"],
        ["model.bias=true", "model.norm=layernorm", "model.positions=learned", "model.activation=gelu"],
        ["model.parallel_residual=true", "model.activation=relu2", "model.ffn_hidden=100"],
        ["model.norm=layernorm", "model.bias=false", "model.qk_norm=true", "model.n_kv_head=3"],
    ],
)
def test_formula_equals_the_instantiated_model(overrides):
    cfg = load_config(overrides=[*SMALL, *overrides]).model
    model = build_model(cfg)
    counts = count_params(cfg)
    assert counts.total == sum(p.numel() for p in model.parameters())
    positions = model.pos_embed.weight.numel() if model.pos_embed is not None else 0
    embeddings = model.embed.weight.numel() + positions
    assert counts.non_embedding == counts.total - embeddings


def _ladder_size(name: str) -> float:
    """The size a ladder-style name says: ``s1.5m`` (a ladder rung) or ``demo-12k`` (the demo's models)."""
    number, unit = re.fullmatch(r"(?:s|demo-)([\d.]+)([kmb])", name).groups()
    return float(number) * {"k": 1e3, "m": 1e6, "b": 1e9}[unit]


@pytest.mark.parametrize("name", ladder_names())
def test_each_ladder_preset_has_the_size_its_name_says(name):
    cfg = load_config(overrides=[f"model={name}"]).model
    assert cfg.d_model == ASPECT_RATIO * cfg.n_layer
    non_embedding = count_params(cfg).non_embedding
    assert abs(non_embedding / _ladder_size(name) - 1) < 0.1


def test_ladder_spans_a_tenth_of_a_million_to_a_billion():
    sizes = [count_params(load_config(overrides=[f"model={n}"]).model).non_embedding for n in ladder_names()]
    assert sizes == sorted(sizes)
    assert sizes[0] < 0.15e6 and sizes[-1] > 0.9e9


@pytest.mark.parametrize(
    "preset, total",
    [
        ("gpt2-small", 124_475_904),  # GPT-2 124M with vocab padded to 50304 (nanoGPT)
        ("gpt2-medium", 354_871_296),  # GPT-2 medium's 354,823,168 plus 47 padded vocab rows of 1024
        ("llama-1b", 1_100_048_384),  # TinyLlama-1.1B's published count
    ],
)
def test_named_preset_parameter_counts(preset, total):
    assert count_params(load_config(overrides=[f"model={preset}"]).model).total == total


@pytest.mark.parametrize("preset, millions", [("llama-60m", 60), ("llama-125m", 125), ("llama-350m", 350)])
def test_llama_family_sizes_match_their_names(preset, millions):
    total = count_params(load_config(overrides=[f"model={preset}"]).model).total
    assert abs(total / (millions * 1e6) - 1) < 0.1


# sizes of the named presets whose names do not say them (total parameters, published)
_NAMED_SIZES = {"gpt2-small": 124e6, "gpt2-medium": 355e6, "llama-60m": 60e6, "llama-125m": 125e6,
                "llama-350m": 350e6, "llama-1b": 1.1e9}


@pytest.mark.parametrize("name", list_presets("model"))
def test_every_model_preset_has_a_consistent_shape_and_the_size_its_name_says(name):
    cfg = load_config(overrides=[f"model={name}"]).model
    assert cfg.name == name
    assert cfg.d_model % cfg.n_head == 0 and cfg.n_head % (cfg.n_kv_head or cfg.n_head) == 0
    if cfg.positions == "rope":
        assert (cfg.d_model // cfg.n_head) % 2 == 0
    counts = count_params(cfg)
    if name in ladder_names() or name.startswith("demo-"):  # named after the non-embedding count
        assert abs(counts.non_embedding / _ladder_size(name) - 1) < 0.15
    else:
        assert abs(counts.total / _NAMED_SIZES[name] - 1) < 0.1
        assert isinstance(cfg.vocab_size, int)  # a published architecture keeps its own vocabulary


def test_an_auto_vocab_counts_as_the_assumed_size_and_cannot_build_a_model():
    auto = load_config(overrides=["model=s330k", "data.path=/nonexistent"]).model
    assert auto.vocab_size == "auto"
    explicit = load_config(overrides=["model=s330k", f"model.vocab_size={ASSUMED_VOCAB_SIZE}"]).model
    assert count_params(auto) == count_params(explicit)
    with pytest.raises(ConfigError, match="model.vocab_size=auto is not resolved"):
        build_model(auto)


def test_global_batch_tokens_multiplies_micro_batch_sequence_accumulation_and_ranks():
    cfg = load_config(overrides=["train.micro_batch_size=3", "train.seq_len=128", "train.grad_accum=5"])
    assert global_batch_tokens(cfg) == 3 * 128 * 5
    assert global_batch_tokens(cfg, world_size=4) == 3 * 128 * 5 * 4
    assert global_batch_tokens(cfg, world_size=2, grad_accum=1) == 3 * 128 * 2


def test_gpt2_small_flops_match_nanogpt_and_reproduce_its_mfu():
    cfg = load_config(overrides=["model=gpt2-small"]).model
    # nanoGPT: N = 123.69M parameters excluding positions; 6N + 12*L*d*T per token.
    assert count_params(cfg).matmul == 123_689_472
    fpt = flops_per_token(cfg, 1024)
    assert fpt == 6 * 123_689_472 + 12 * 12 * 768 * 1024
    # nanoGPT's GPT-2 small on one H200: 497k tokens/s, which is 43% MFU against 989 TFLOP/s dense bf16.
    assert mfu(497e3, fpt, "NVIDIA H200") == pytest.approx(0.43, abs=0.005)


def test_peak_table_matches_specific_names_first_and_unknown_is_none():
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("cpu") is None and mfu(1e4, 1e7, None) is None
    assert mfu(1000.0, 1e9, "NVIDIA A100-SXM4-40GB", n_devices=2) == pytest.approx(1e12 / (2 * 312e12))
