"""``MetricsLogger``: train and val metrics under the project's metric names (``train/loss``, ``val/loss``,
``perf/tokens_per_sec``, ...; listed in the README), to metrics.jsonl and every logger.

Each logged step gives one row: ``step``, ``train/loss`` (mean over the step's micro-batches and
ranks), ``train/lr`` (the LR that step used), ``train/tokens`` (global tokens after it),
``train/grad_norm`` (before clipping), ``perf/step_time`` (seconds per optimiser step over the
logging interval, validation and checkpoints excluded), ``perf/tokens_per_sec`` (all devices) and
``perf/mfu`` (None on devices without a known peak). Each validation gives a row with ``step``,
``train/tokens``, ``val/loss`` and ``val/bpb``. The same rows go to the Trainer's loggers (W&B),
so the run dir and the dashboard agree.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from scaling.counting import flops_per_token, mfu
from scaling.training.callbacks_common import StepEndCallback, batch_tokens, device_name, synchronize
from scaling.training.lightning_module import val_bpb
from scaling.training.run_files import MetricsWriter


def throughput(batch_tokens: int, steps: int, seconds: float, flops_per_tok: float,
               device: str | None, n_devices: int) -> tuple[float | None, float | None]:
    """Tokens per second of ``steps`` steps of ``batch_tokens`` in ``seconds`` (all devices), and the
    MFU that is against ``n_devices`` peaks of ``device`` (None for devices without a known peak)."""
    if steps <= 0 or seconds <= 0:
        return None, None
    tokens_per_sec = batch_tokens * steps / seconds
    return tokens_per_sec, mfu(tokens_per_sec, flops_per_tok, device, n_devices)


class MetricsLogger(StepEndCallback):
    """Writes metric rows every ``log_every_steps`` steps (and on the last step) and after validation.

    ``run_dir`` None: rows go only to the Trainer's loggers. Summary numbers for ``result.json``
    (best and final val loss, throughput, MFU) are kept on the callback and in checkpoints.
    """

    def __init__(self, run_dir: str | Path | None = None, log_every_steps: int = 10):
        super().__init__()
        self.run_dir, self.log_every_steps = run_dir, log_every_steps
        self._writer: MetricsWriter | None = None
        self.final_val_loss: float | None = None
        self.best_val_loss: float | None = None
        self.final_val_bpb: float | None = None
        self.final_named: dict[
            str, float | None
        ] = {}  # val/<name>/loss and /bpb of each named evaluation set
        self.final_train_loss: float | None = None
        self.last_val_step: int | None = None
        # throughput of the run: step time summed over intervals after the first (compile, warm-up)
        self._timed_steps, self._timed_seconds = 0, 0.0
        self._interval_steps, self._interval_seconds, self._intervals = 0, 0.0, 0
        self._step_start: float | None = None
        self._started = time.perf_counter()
        self._wall_before = 0.0
        self._loss_sum: torch.Tensor | None = None

    # --- timing ------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._step_start is None:  # the first micro-batch of a step
            self._step_start = time.perf_counter()

    def on_step_end(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self._interval_seconds += time.perf_counter() - self._step_start
        self._interval_steps += 1
        self._step_start = None
        step = trainer.global_step
        last = step >= trainer.max_steps > 0
        if step % self.log_every_steps == 0 or last:
            self._log_train(trainer, pl_module, step)
        if last and not trainer.should_stop and self.last_val_step != step:
            # Validate at the end too: Lightning runs its validation loop when a stop is requested.
            trainer.should_stop = True

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._started = time.perf_counter()

    def wall_time(self) -> float:
        """Seconds of training of this run, earlier attempts (before a resume) included."""
        return self._wall_before + time.perf_counter() - self._started

    def _log_train(self, trainer, pl_module, step: int) -> None:
        tokens = batch_tokens(trainer, pl_module)
        step_time = self._interval_seconds / self._interval_steps
        tokens_per_sec, step_mfu = self._throughput(
            trainer, pl_module, self._interval_steps, self._interval_seconds
        )
        if self._intervals > 0 or self._interval_steps > 1:
            # the very first step (compilation, allocator warm-up) is left out of the run's average
            first = self._interval_seconds / self._interval_steps if self._intervals == 0 else 0.0
            self._timed_steps += self._interval_steps - (1 if self._intervals == 0 else 0)
            self._timed_seconds += self._interval_seconds - first
        self._intervals += 1
        self._interval_steps, self._interval_seconds = 0, 0.0
        loss = float(trainer.strategy.reduce(pl_module.last_loss.float(), reduce_op="mean"))
        self.final_train_loss = loss
        grad_norm = pl_module.last_grad_norm
        row = {
            "step": step,
            "train/loss": loss,
            "train/lr": pl_module.last_lr,
            "train/tokens": step * tokens,
            "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
            "perf/tokens_per_sec": tokens_per_sec,
            "perf/mfu": step_mfu,
            "perf/step_time": step_time,
        }
        self._emit(trainer, row)
        pl_module.log("loss", loss, prog_bar=True, logger=False, rank_zero_only=True)
        if tokens_per_sec:
            pl_module.log("tok/s", tokens_per_sec, prog_bar=True, logger=False, rank_zero_only=True)

    @staticmethod
    def _throughput(trainer, pl_module, steps: int, seconds: float) -> tuple[float | None, float | None]:
        fpt = flops_per_token(pl_module.cfg.model, pl_module.cfg.train.seq_len)
        return throughput(
            batch_tokens(trainer, pl_module),
            steps,
            seconds,
            fpt,
            device_name(pl_module.device),
            trainer.world_size,
        )

    def run_throughput(self, trainer, pl_module) -> tuple[float | None, float | None]:
        """Average tokens/s (all devices) and MFU of the run so far, its first (warm-up) step excluded."""
        steps, seconds = self._timed_steps, self._timed_seconds
        if steps == 0:  # a run too short to leave out its first step
            steps, seconds = self._interval_steps, self._interval_seconds
        return self._throughput(trainer, pl_module, steps, seconds)

    # --- validation ----------------------------------------------------------------------------
    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or getattr(pl_module, "val_loss", None) is None:
            return
        step = trainer.global_step
        loss = pl_module.val_loss
        bpb = val_bpb(loss, getattr(trainer.datamodule, "val_tokens_per_byte", None))
        self.final_val_loss, self.final_val_bpb, self.last_val_step = loss, bpb, step
        if math.isfinite(loss) and (self.best_val_loss is None or loss < self.best_val_loss):
            self.best_val_loss = loss
        per_byte = getattr(trainer.datamodule, "eval_tokens_per_byte", None) or {}
        self.final_named = {}
        for name, value in (getattr(pl_module, "val_losses", None) or {}).items():
            self.final_named[f"val/{name}/loss"] = value
            self.final_named[f"val/{name}/bpb"] = val_bpb(value, per_byte.get(name))
        self._emit(trainer, {"step": step, "train/tokens": step * batch_tokens(trainer, pl_module),
                             "val/loss": loss, "val/bpb": bpb, **self.final_named})

    # --- output ------------------------------------------------------------------------------
    def _emit(self, trainer, row: dict[str, Any]) -> None:
        if not trainer.is_global_zero:
            return
        if self.run_dir is not None:
            if self._writer is None:
                self._writer = MetricsWriter(self.run_dir)
            self._writer.write(row)
        values = {k: v for k, v in row.items() if k != "step" and v is not None}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=row["step"])

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # --- checkpointed summary ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"final_val_loss": self.final_val_loss, "best_val_loss": self.best_val_loss,
                "final_val_bpb": self.final_val_bpb, "final_named": self.final_named,
                "final_train_loss": self.final_train_loss,
                "last_val_step": self.last_val_step, "timed_steps": self._timed_steps,
                "timed_seconds": self._timed_seconds, "wall_time_s": self.wall_time()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.final_val_loss = state.get("final_val_loss")
        self.best_val_loss = state.get("best_val_loss")
        self.final_val_bpb = state.get("final_val_bpb")
        self.final_named = state.get("final_named") or {}
        self.final_train_loss = state.get("final_train_loss")
        self.last_val_step = state.get("last_val_step")
        self._timed_steps = state.get("timed_steps", 0)
        self._timed_seconds = state.get("timed_seconds", 0.0)
        self._wall_before = state.get("wall_time_s", 0.0)
