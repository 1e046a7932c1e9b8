"""The divergence check reads each step's loss without waiting for the device, yet a bad loss still
stops the run within one step (at once on logging steps), as ``diverged`` with the last good loss."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch


class PoisonAt(pl.Callback):
    """Turns the weights to NaN before step ``step`` (1-based), so that step's loss is NaN; records
    every step's loss."""

    def __init__(self, step: int):
        self.step, self.losses = step, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step - 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(math.nan)

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.losses[trainer.global_step] = float(pl_module.last_loss)


@pytest.mark.parametrize(("bad_step", "stopped_at"), [(3, 4), (10, 10)])
def test_a_nan_stops_the_run_within_one_step_and_at_once_on_a_logging_step(tiny_cfg, bad_step, stopped_at):
    from scaling import train

    poison = PoisonAt(bad_step)
    result = train(tiny_cfg("train.log_every_steps=10"), callbacks=[poison])
    assert result.status == "diverged" and result.diverged_at_step == bad_step
    assert result.steps == stopped_at <= bad_step + 1  # step 3 is read when step 4 ends; step 10 logs
    assert result.last_good_loss == pytest.approx(poison.losses[bad_step - 1])


class _Trainer:
    """The little of a Trainer that the monitor touches."""

    def __init__(self):
        self.global_step, self.max_steps, self.should_stop, self.limit_val_batches = 0, 100, False, 1.0


class _Module:
    last_loss: torch.Tensor


def test_the_check_of_a_non_logging_step_is_read_when_the_next_step_ends():
    from scaling.training.divergence import DivergenceMonitor

    monitor, trainer, module = DivergenceMonitor(max_loss=10.0, check_every_steps=5), _Trainer(), _Module()
    for step, loss in [(1, 3.0), (2, 11.0), (3, 2.0)]:
        trainer.global_step, module.last_loss = step, torch.tensor(loss)
        monitor.on_step_end(trainer, module)
        if step == 2:  # not yet read: no host read of this step's loss when it ends
            assert not monitor.diverged and not trainer.should_stop and monitor.last_good_loss == 3.0
    assert monitor.diverged_at_step == 2 and trainer.should_stop and trainer.limit_val_batches == 0
    assert monitor.last_good_loss == 3.0


def test_asking_before_a_checkpoint_reads_the_pending_check_at_once():
    from scaling.training.divergence import DivergenceMonitor

    monitor, trainer, module = DivergenceMonitor(max_loss=10.0, check_every_steps=5), _Trainer(), _Module()
    trainer.global_step, module.last_loss = 1, torch.tensor(math.inf)
    monitor.on_step_end(trainer, module)
    assert not monitor.diverged
    assert monitor.diverged_now(trainer) and monitor.diverged_at_step == 1
