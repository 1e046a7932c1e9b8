"""The decoder-only model: causality, every knob trains, attention matches a plain reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from scaling.config_loading import load_config
from scaling.model import build_model, padded_vocab_size

torch.set_num_threads(1)

TINY = [
    "model.n_layer=2",
    "model.d_model=32",
    "model.n_head=4",
    "model.vocab_size=100",
    "model.max_seq_len=32",
    "train.seq_len=32",
]


def tiny(*overrides: str):
    return load_config(overrides=[*TINY, *overrides]).model


@pytest.mark.parametrize("positions", ["rope", "learned", "none"])
@pytest.mark.parametrize("parallel", [False, True])
def test_changing_a_later_token_leaves_earlier_logits_unchanged(positions, parallel):
    torch.manual_seed(0)
    model = build_model(tiny(f"model.positions={positions}", f"model.parallel_residual={parallel}",
                             "model.n_kv_head=2")).eval()
    idx = torch.randint(0, 100, (2, 16))
    changed = idx.clone()
    t = 9
    changed[:, t + 1] = (changed[:, t + 1] + 1) % 100
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1], b[:, t + 1])


KNOBS = {
    "activation": ["swiglu", "gelu", "relu2"],
    "norm": ["rmsnorm", "layernorm"],
    "positions": ["rope", "learned", "none"],
    "n_kv_head": [4, 2, 1],
    "tie_embeddings": [True, False],
    "parallel_residual": [False, True],
    "bias": [False, True],
    "qk_norm": [False, True],
}


def _knob_combinations():
    # Every value of every knob appears with every value of the first three knobs.
    first = list(itertools.product(*list(KNOBS.values())[:3]))
    rest = list(KNOBS)[3:]
    for i, (act, norm, pos) in enumerate(first):
        extra = {k: KNOBS[k][(i + j) % len(KNOBS[k])] for j, k in enumerate(rest)}
        yield {"activation": act, "norm": norm, "positions": pos, **extra}


@pytest.mark.parametrize(
    "knobs", list(_knob_combinations()), ids=lambda k: "-".join(str(v) for v in k.values())
)
def test_forward_backward_on_cpu_across_knobs(knobs):
    torch.manual_seed(0)
    overrides = [f"model.{k}={v}" for k, v in knobs.items()] + ["model.dropout=0.1", "model.z_loss=1e-4"]
    model = build_model(tiny(*overrides))
    idx = torch.randint(0, 100, (2, 12))
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    assert logits.shape == (2, 11, padded_vocab_size(model.cfg))
    assert math.isfinite(loss.item()) and abs(loss.item() - math.log(100)) < 1.0  # small init: ~uniform
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_sdpa_attention_matches_a_plain_reference_with_gqa():
    torch.manual_seed(0)
    model = build_model(tiny("model.positions=none", "model.n_kv_head=2")).eval()
    attn = model.blocks[0].attn
    x = torch.randn(2, 10, 32)
    q, k, v = attn.qkv(x).split([32, 16, 16], dim=-1)
    q = q.view(2, 10, 4, 8).transpose(1, 2)
    k = k.view(2, 10, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)
    v = v.view(2, 10, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)
    scores = scores.masked_fill(torch.triu(torch.ones(10, 10, dtype=torch.bool), 1), float("-inf"))
    expected = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 10, 32))
    with torch.no_grad():
        assert torch.allclose(attn(x), expected, atol=1e-5)


def test_tied_embeddings_share_one_matrix_and_untied_do_not():
    tied = build_model(tiny("model.tie_embeddings=true"))
    untied = build_model(tiny("model.tie_embeddings=false"))
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.lm_head.weight is not untied.embed.weight


def test_vocab_is_padded_to_the_multiple():
    assert padded_vocab_size(load_config(overrides=["model=gpt2-small"]).model) == 50304
    assert padded_vocab_size(tiny("model.pad_vocab_to=128")) == 128


def test_residual_projections_get_the_scaled_init():
    torch.manual_seed(0)
    model = build_model(tiny("model.n_layer=8", "model.init_std=0.02", "model.d_model=256", "model.n_head=4"))
    assert abs(model.blocks[0].attn.qkv.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].attn.proj.weight.std().item() - 0.02 / math.sqrt(16)) < 0.0005


def test_z_loss_adds_the_squared_log_partition():
    torch.manual_seed(0)
    base = build_model(tiny())
    with_z = build_model(tiny("model.z_loss=0.5"))
    with_z.load_state_dict(base.state_dict())
    idx = torch.randint(0, 100, (2, 8))
    _, plain = base(idx, idx)
    logits, z = with_z(idx, idx)
    expected = plain + 0.5 * torch.logsumexp(logits.float(), -1).square().mean()
    assert torch.allclose(z, expected, atol=1e-5)
