"""µP (``model.parametrization=mup``): the same model as standard at the base width, width-scaled init,
LR and logits above it, a coordinate check that stays flat, and an LR optimum that transfers across width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scaling.config import ModelConfig, OptimConfig
from scaling.model import build_model
from scaling.training.optim import build_optimizer


def _model(width: int, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(
        ModelConfig(
            n_layer=2,
            d_model=width,
            n_head=width // 64,
            vocab_size=512,
            max_seq_len=64,
            parametrization=kind,
            mup_base_d_model=64,
        )
    )


def test_at_the_base_width_mup_is_the_standard_model_with_the_same_learning_rates():
    idx = torch.randint(0, 512, (2, 16))
    std, mup = _model(64, "standard"), _model(64, "mup")
    assert torch.equal(std(idx)[0], mup(idx)[0])
    groups = build_optimizer(mup, OptimConfig(lr=1e-2)).param_groups
    assert {g["lr"] for g in groups} == {1e-2}


def test_four_times_wider_mup_scales_hidden_init_and_lr_by_width_but_not_the_embedding():
    model = _model(256, "mup")
    groups = {g["name"]: g for g in build_optimizer(model, OptimConfig(lr=1e-2)).param_groups}
    assert groups["hidden"]["lr"] == pytest.approx(1e-2 / 4) and groups["decay"]["lr"] == pytest.approx(1e-2)
    hidden_ids = {id(p) for p in groups["hidden"]["params"]}
    assert id(model.blocks[0].attn.qkv.weight) in hidden_ids and id(model.embed.weight) not in hidden_ids
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(
        0.02 / 2, rel=0.05
    )  # init_std/sqrt(4)
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert groups["hidden"]["weight_decay"] == groups["decay"]["weight_decay"] == 0.1


def test_coordinate_check_is_flat_under_mup_and_grows_with_width_under_standard():
    from scaling.mup_check import coordinate_check

    result = coordinate_check((64, 128, 256), steps=3, lr=1e-2)
    assert result["slope"]["mup"] < 0.3 < result["slope"]["standard"]  # log2 growth per doubling of width


def _train_loss(corpus, width: int, kind: str, lr: float, steps: int) -> float:
    """Final validation loss of a 2-layer model of ``width`` after ``steps`` AdamW steps on the corpus."""
    from data_pipelines.dataset import PreparedDataset
    from data_pipelines.sampler import WindowSampler, validation_windows

    ds = PreparedDataset.open(corpus)
    sampler = WindowSampler([(ds, 1.0)], seq_len=64, batch_size=8, seed=0)
    model = _model(width, kind)
    opt = build_optimizer(model, OptimConfig(lr=lr))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * (1 - s / steps))
    for _ in range(steps):
        batch = torch.from_numpy(sampler.next_batch())
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    val = torch.from_numpy(validation_windows(ds, 64, 8192))
    with torch.no_grad():
        _, loss = model(val[:, :-1], val[:, 1:])
    return float(loss)


def _lr_optimum(losses: dict[float, float]) -> float:
    """log2 of the LR at the vertex of a parabola through the best LR and its neighbours."""
    lrs = sorted(losses)
    best = int(np.argmin([losses[x] for x in lrs]))
    lo, hi = max(0, best - 1), min(len(lrs), best + 2)
    u = np.log2(lrs[lo:hi])
    if u.size < 3:
        return float(np.log2(lrs[best]))
    c2, c1, _ = np.polyfit(u, [losses[x] for x in lrs[lo:hi]], 2)
    return float(np.clip(-c1 / (2 * c2), u.min(), u.max())) if c2 > 0 else float(np.log2(lrs[best]))


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_lr_optimum_moves_less_across_4x_width_under_mup(tiny_corpus):
    # ~10 minutes on one CPU thread: 4 learning rates at width 64 (where µP is the standard model, so
    # one sweep serves both) and at width 256 under each parametrization, 80 steps of 512 tokens each
    lrs = [1e-3, 2e-3, 4e-3, 8e-3]
    narrow = _lr_optimum({lr: _train_loss(tiny_corpus, 64, "standard", lr, steps=80) for lr in lrs})
    shift = {
        kind: abs(_lr_optimum({lr: _train_loss(tiny_corpus, 256, kind, lr, steps=80) for lr in lrs}) - narrow)
        for kind in ("standard", "mup")
    }  # in doublings of the LR
    assert shift["mup"] < 0.5 < 1.0 < shift["standard"]


def test_a_mup_run_trains_with_its_hidden_lr_group_through_the_schedule(tiny_cfg, tmp_path):
    from lightning.pytorch import Callback

    from scaling.training.run_files import read_metrics
    from scaling.training.train import train

    class GroupLRs(Callback):
        def on_train_end(self, trainer, pl_module):
            self.lrs = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}

    seen = GroupLRs()
    cfg = tiny_cfg(
        "model.parametrization=mup",
        "model.d_model=128",
        "model.n_head=2",
        "schedule.kind=constant",
        run_dir=tmp_path / "mup",
    )
    assert train(cfg, callbacks=[seen]).status == "done"
    rows = [r for r in read_metrics(tmp_path / "mup") if "train/lr" in r]
    assert rows[-1]["train/lr"] == pytest.approx(cfg.optim.lr)  # train/lr is the base LR (group 0)
    assert seen.lrs["hidden"] == pytest.approx(seen.lrs["decay"] / 2)  # d_model 128 = 2x the base width
