"""Cooldown branches: start at the trunk's weights at a kept token count, decay to the final LR."""

import lightning.pytorch as pl
import pytest
import torch

from scaling.errors import ScalingError
from scaling.training.run_files import read_metrics, train_rows


class FirstWeights(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


@pytest.fixture(scope="module")
def trunk(tiny_corpus, tmp_path_factory):
    """A WSD trunk of 20 steps keeping a checkpoint at 5120 tokens (step 10)."""
    from scaling import load_config, train
    from tests.helpers.runs import tiny_overrides

    run_dir = tmp_path_factory.mktemp("trunk") / "run"
    train(
        load_config(
            [], tiny_overrides(tiny_corpus, run_dir, "schedule.kind=wsd", "train.checkpoint_at_tokens=[5120]")
        )
    )
    return run_dir


def test_branch_starts_at_the_trunks_weights_and_ends_at_the_final_lr(trunk, tiny_cfg):
    from scaling import train

    first = FirstWeights()
    cfg = tiny_cfg(
        "schedule.kind=wsd", f"run.branch_from={trunk}", "run.branch_at_tokens=5120", "train.tokens=7680"
    )
    result = train(cfg, callbacks=[first])
    saved = torch.load(trunk / "checkpoints" / "tokens-5120.ckpt", weights_only=True)
    assert saved["global_step"] == 10
    for key, tensor in saved["state_dict"].items():
        assert torch.equal(first.state[key], tensor), key
    rows = train_rows(read_metrics(result.run_dir))
    assert [r["step"] for r in rows] == [11, 12, 13, 14, 15]  # decay phase only: 5 new steps
    lrs = [r["train/lr"] for r in rows]
    assert lrs[-1] == pytest.approx(cfg.schedule.final_lr_fraction * cfg.optim.lr)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[0] < cfg.optim.lr
    assert result.tokens == 7680 and result.steps == 15
    assert result.parent == {"run_dir": str(trunk), "tokens": 5120}


def test_branch_at_a_token_count_without_a_checkpoint_lists_the_available_ones(trunk, tiny_cfg):
    from scaling import train

    cfg = tiny_cfg(f"run.branch_from={trunk}", "run.branch_at_tokens=4096", "train.tokens=7680")
    with pytest.raises(ScalingError, match=r"no checkpoint at 4096 tokens \(available: 5120\)"):
        train(cfg)
