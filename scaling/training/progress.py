"""``ProgressLine``: a one-line progress update every few seconds, for logs that are not terminals.

Lightning's progress bar redraws one terminal line; in a SLURM log or a CI log it is switched off,
and this callback prints instead, on global rank 0, to stderr::

    step 120/586, 61,440/300,032 tokens (20%), loss 4.1230, 12,345 tok/s, ETA 19s
"""

from __future__ import annotations

import sys
import time

from scaling.training.callbacks_common import StepEndCallback, batch_tokens


def format_eta(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(step: int, total_steps: int, per_step: int, loss: float | None,
                  tokens_per_sec: float | None) -> str:
    """The update for ``step`` of ``total_steps`` steps of ``per_step`` tokens each."""
    tokens, total = step * per_step, total_steps * per_step
    parts = [f"step {step}/{total_steps}", f"{tokens:,}/{total:,} tokens ({tokens / total:.0%})"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if tokens_per_sec:
        parts.append(f"{tokens_per_sec:,.0f} tok/s")
        parts.append(f"ETA {format_eta((total - tokens) / tokens_per_sec)}")
    return ", ".join(parts)


class ProgressLine(StepEndCallback):
    """Prints :func:`progress_line` to ``stream`` (stderr) at most every ``every_s`` seconds, and at the end.

    Tokens per second are measured over the interval since the previous line. Reading the loss
    waits for the device, but only once per line.
    """

    def __init__(self, every_s: float = 30.0, stream=None):
        super().__init__()
        self.every_s = every_s
        self.stream = stream
        self._last_time = self._last_step = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_time, self._last_step = time.perf_counter(), trainer.global_step

    def on_step_end(self, trainer, pl_module) -> None:
        now, step = time.perf_counter(), trainer.global_step
        last = trainer.max_steps > 0 and step >= trainer.max_steps
        if not trainer.is_global_zero or (now - self._last_time < self.every_s and not last):
            return
        per_step = batch_tokens(trainer, pl_module)
        seconds = now - self._last_time
        done = step - self._last_step
        rate = done * per_step / seconds if seconds > 0 and done > 0 else None
        loss = float(pl_module.last_loss) if pl_module.last_loss is not None else None
        print(progress_line(step, trainer.max_steps, per_step, loss, rate), file=self.stream or sys.stderr,
              flush=True)
        self._last_time, self._last_step = now, step
