"""LR schedules (warmup end, stable value, final value) and AdamW weight-decay groups."""

import math

import pytest

from scaling.config import ModelConfig, OptimConfig
from scaling.model import build_model
from scaling.training.optim import build_optimizer, param_groups
from scaling.training.schedules import DecaySchedule, Schedule

T = 100


def curve(schedule) -> list[float]:
    return [schedule(s) for s in range(schedule.total_steps)]


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant", "wsd"])
def test_every_schedule_warms_up_linearly_to_the_peak(kind):
    lr = curve(Schedule(kind, T, warmup_fraction=0.1, final_lr_fraction=0.1, decay_fraction=0.2))
    assert lr[0] == pytest.approx(0.1)  # first of 10 warmup steps
    assert lr[4] == pytest.approx(0.5)
    assert lr[9] == pytest.approx(1.0)  # warmup ends exactly at the peak


@pytest.mark.parametrize("kind,final", [("cosine", 0.1), ("linear", 0.1), ("wsd", 0.1), ("constant", 1.0)])
def test_every_schedule_ends_at_its_final_fraction(kind, final):
    assert curve(Schedule(kind, T, warmup_fraction=0.1, final_lr_fraction=0.1))[-1] == pytest.approx(final)


def test_cosine_is_halfway_down_at_mid_decay_and_linear_falls_evenly():
    cos = Schedule("cosine", 101, warmup_fraction=0.0, final_lr_fraction=0.0)
    lin = Schedule("linear", 101, warmup_fraction=0.0, final_lr_fraction=0.0)
    assert cos(50) == pytest.approx(0.5)
    assert cos(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lin(25) == pytest.approx(0.75)


def test_wsd_holds_the_peak_until_the_decay_window():
    s = Schedule("wsd", T, warmup_fraction=0.1, final_lr_fraction=0.0, decay_fraction=0.2)
    lr = curve(s)
    assert all(v == 1.0 for v in lr[10:80])  # stable phase
    assert lr[80] < 1.0
    assert lr[-1] == pytest.approx(0.0)
    assert all(a > b for a, b in zip(lr[80:], lr[81:], strict=False))  # strictly decaying


@pytest.mark.parametrize("shape,mid", [("linear", 0.5), ("sqrt", 1 - math.sqrt(0.5)), ("cosine", 0.5)])
def test_wsd_decay_shapes_at_half_way(shape, mid):
    s = Schedule("wsd", T, warmup_fraction=0.0, final_lr_fraction=0.0, decay_fraction=0.2, decay_shape=shape)
    assert s(89) == pytest.approx(1 - mid)  # step 89 is 10 of 20 decay steps done


def test_cooldown_branch_reproduces_the_trunks_own_wsd_decay():
    trunk = Schedule(
        "wsd", T, warmup_fraction=0.05, final_lr_fraction=0.1, decay_fraction=0.3, decay_shape="sqrt"
    )
    branch = DecaySchedule(
        start_step=70, total_steps=T, start_factor=1.0, final_lr_fraction=0.1, decay_shape="sqrt"
    )
    assert [branch(s) for s in range(70, T)] == pytest.approx([trunk(s) for s in range(70, T)])


def test_cooldown_branch_decays_from_the_trunks_lr_to_the_final_fraction():
    branch = DecaySchedule(start_step=40, total_steps=50, start_factor=0.6, final_lr_fraction=0.1)
    assert branch(39) == 0.6
    assert branch(44) == pytest.approx(0.6 - 0.5 * 0.5)
    assert branch(49) == pytest.approx(0.1)


def test_weight_decay_skips_norms_biases_and_embeddings():
    cfg = ModelConfig(n_layer=2, d_model=64, n_head=2, vocab_size=512, bias=True, norm="layernorm")
    model = build_model(cfg)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert "embed.weight" not in names  # also the tied output head
    assert not any(n.endswith(".bias") or "norm" in n for n in names)
    assert "blocks.0.attn.qkv.weight" in names and "blocks.1.mlp.down.weight" in names
    total = len({id(p) for p in model.parameters()})
    assert len(decay["params"]) + len(no_decay["params"]) == total
    assert no_decay["weight_decay"] == 0.0


def test_decay_embeddings_and_untied_heads_follow_the_config():
    model = build_model(ModelConfig(n_layer=1, d_model=64, n_head=2, vocab_size=512, tie_embeddings=False))
    decay, _ = param_groups(model, 0.1)
    assert id(model.lm_head.weight) in {id(p) for p in decay["params"]}  # a matrix, not an embedding
    assert id(model.embed.weight) not in {id(p) for p in decay["params"]}
    decay, _ = param_groups(model, 0.1, decay_embeddings=True)
    assert id(model.embed.weight) in {id(p) for p in decay["params"]}


def test_adamw_is_built_from_the_optim_config():
    model = build_model(ModelConfig(n_layer=1, d_model=64, n_head=2, vocab_size=512))
    opt = build_optimizer(model, OptimConfig(lr=1e-3, beta1=0.8, beta2=0.99, weight_decay=0.05), "cpu")
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert not opt.defaults.get("fused")  # fused only on CUDA by default
