"""Export to transformers: the exported model computes our logits, tokenizes like us and generates like us."""

from __future__ import annotations

import json

import pytest
import torch

from scaling.config_loading import load_config
from scaling.errors import ScalingError
from scaling.export import choose_architecture, export_run, write_model_folder
from scaling.model import build_model
from scaling.trained import TrainedModel, load_trained
from tests.helpers.runs import run_cli

transformers = pytest.importorskip("transformers")

SHAPE = ["model.n_layer=2", "model.d_model=64", "model.n_head=4", "model.vocab_size=512",
         "model.max_seq_len=128", "train.seq_len=128"]
LLAMA = ["model.positions=rope", "model.norm=rmsnorm", "model.activation=swiglu"]
GPT2 = ["model.positions=learned", "model.norm=layernorm", "model.activation=gelu"]

FAMILIES = {  # name -> (overrides, the architecture transformers loads)
    "llama-tied-mha": (LLAMA, "LlamaForCausalLM"),
    "llama-untied-gqa-bias": ([*LLAMA, "model.n_kv_head=2", "model.tie_embeddings=false", "model.bias=true"],
                              "LlamaForCausalLM"),
    "llama-mqa-qknorm": ([*LLAMA, "model.n_kv_head=1", "model.qk_norm=true"], "Qwen3ForCausalLM"),
    "gpt2-tied": ([*GPT2, "model.bias=true"], "GPT2LMHeadModel"),
    "gpt2-untied-gqa-nobias": ([*GPT2, "model.n_kv_head=2", "model.tie_embeddings=false", "model.bias=false"],
                               "GPT2LMHeadModel"),
}


def _real_text() -> str:
    import sysconfig
    from pathlib import Path

    return (Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py").read_text()[2000:4000]


def _trained_like(overrides, tiny_corpus) -> TrainedModel:
    """A model of the given shape with weights far from init (norm gains and biases matter)."""
    from data_pipelines.tokenizer import eos_id, load_tokenizer

    cfg = load_config(overrides=[*SHAPE, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    tok = load_tokenizer(tiny_corpus / "tokenizer.json")
    name, eos = eos_id(tok)
    return TrainedModel(
        cfg=cfg, model=model, tokenizer=tok, eos_token=name, eos_id=eos, checkpoint=tiny_corpus
    )


def _greedy(model, ids: list[int], n: int, eos: int) -> list[int]:
    out = list(ids)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([out]))[0][0, -1].argmax())
            out.append(nxt)
            if nxt == eos:
                break
    return out[len(ids):]


def _check_parity(trained: TrainedModel, folder, architecture: str) -> None:
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(hf).__name__ == architecture
    assert tok.eos_token == trained.eos_token and tok.eos_token_id == trained.eos_id

    text = _real_text()
    ours_ids = trained.tokenizer.encode(text).ids
    assert tok(text)["input_ids"] == ours_ids
    assert tok.decode(ours_ids) == text

    n = trained.cfg.model.max_seq_len
    ids = torch.tensor([ours_ids[:n]])
    with torch.no_grad():
        ours_logits = trained.model(ids)[0]
        hf_logits = hf(ids).logits
    assert hf_logits.shape == ours_logits.shape
    assert (hf_logits - ours_logits).abs().max().item() <= 1e-4

    prompt = ours_ids[:n - 32]
    expected = _greedy(trained.model, prompt, 32, trained.eos_id)
    generated = hf.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=32,
        do_sample=False,
    )[0, len(prompt) :].tolist()
    assert generated == expected
    assert len(expected) == 32 or expected[-1] == trained.eos_id


@pytest.mark.parametrize("family", list(FAMILIES))
def test_exported_model_matches_ours_in_logits_tokens_and_greedy_generation(family, tiny_corpus, tmp_path):
    overrides, architecture = FAMILIES[family]
    trained = _trained_like(overrides, tiny_corpus)
    folder = write_model_folder(trained, tmp_path / "hf")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    _check_parity(trained, folder, architecture)


def test_a_trained_run_exports_from_its_checkpoint_through_the_cli(tiny_cfg, tmp_path):
    from scaling.training.train import train

    result = train(tiny_cfg("train.tokens=2048", run_dir=tmp_path / "run"))
    assert result.status == "done"
    proc = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path / "hf") in proc.stdout
    trained = load_trained(tmp_path / "run")
    _check_parity(trained, tmp_path / "hf", "LlamaForCausalLM")
    generation = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == trained.eos_id


@pytest.mark.parametrize("overrides, key", [
    (["model.parallel_residual=true"], "model.parallel_residual"),
    (["model.activation=relu2"], "model.activation"),
    (["model.positions=none"], "model.positions"),
    ([*LLAMA, "model.norm=layernorm"], "model.norm"),
    ([*LLAMA, "model.activation=gelu"], "model.activation"),
    ([*LLAMA, "model.qk_norm=true", "model.bias=true"], "model.bias"),
    ([*GPT2, "model.norm=rmsnorm"], "model.norm"),
    ([*GPT2, "model.qk_norm=true"], "model.qk_norm"),
])
def test_a_config_no_architecture_expresses_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ScalingError, match=rf"^cannot export {key}=") as err:
        choose_architecture(load_config(overrides=[*SHAPE, *overrides]).model)
    assert "\n" not in str(err.value)


def test_refusal_and_missing_run_exit_2_in_one_line_and_write_nothing(tiny_cfg, tmp_path):
    from scaling.training.run_files import write_config

    cfg = tiny_cfg("model.parallel_residual=true", run_dir=tmp_path / "run")
    from scaling.config_loading import to_yaml

    write_config(tmp_path / "run", to_yaml(cfg))
    (tmp_path / "run" / "checkpoints").mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in build_model(cfg.model).state_dict().items()}},
               tmp_path / "run" / "checkpoints" / "last.ckpt")
    proc = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "hf"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: cannot export model.parallel_residual=true")
    assert not (tmp_path / "hf").exists()
    proc = run_cli("export", str(tmp_path / "nothing"), "--out", str(tmp_path / "hf"))
    assert proc.returncode == 2 and "is not a run dir" in proc.stderr


class Payload:
    """An arbitrary class: unpickling it would run code of the file's choosing."""


def test_a_checkpoint_that_needs_full_unpickling_is_refused(tmp_path):
    from scaling.trained import load_model_weights

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(ScalingError, match="cannot be read as a weights-only checkpoint"):
        load_model_weights(path)
    with pytest.raises(ScalingError, match="not found"):
        load_model_weights(tmp_path / "missing.ckpt")
    with pytest.raises(ScalingError, match="is not a run dir"):
        export_run(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_model_preset_maps_onto_its_architecture_with_matching_weight_shapes():
    from scaling.config_loading import list_presets
    from scaling.export.architectures import hf_config, hf_weights
    from scaling.export.writer import check_layout, expected_weight_shapes

    seen = set()
    for preset in list_presets("model"):
        m = load_config(overrides=[f"model={preset}"]).model
        if m.vocab_size == "auto":  # a ladder rung takes its vocabulary from the data: give it one
            m = load_config(overrides=[f"model={preset}", "model.vocab_size=8192"]).model
        arch = choose_architecture(m)
        seen.add(arch)
        with torch.device("meta"):  # shapes only: the large presets are never allocated
            state = build_model(m).state_dict()
        config = hf_config(arch, m, eos_id=0, pad_id=1)
        check_layout(hf_weights(arch, state, m), expected_weight_shapes(config), bool(m.tie_embeddings), arch)
    assert seen == {"llama", "gpt2"}
