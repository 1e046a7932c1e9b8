"""``DivergenceMonitor``: stop a run whose loss turns NaN/Inf or exceeds a bound.

A diverged run is a *result* of a sweep (this learning rate is too high), not a crash: the monitor
stops training cleanly, and :func:`scaling.train` writes status ``diverged`` with the step and the
last good loss, and the CLI exits with code 3. Every rank takes the same decision.

Reading a GPU loss on the host waits for the GPU, so the monitor does not read each step's loss
when the step ends: it starts a copy to the host (and, with several ranks, a reduction of the
"bad" flag) without waiting, and reads it when the next step ends, by which time it has arrived.
On every ``check_every_steps``-th step, on the last one and before a checkpoint is written
(:meth:`diverged_now`) it reads at once. A bad step therefore stops the run at most one step later,
and at once on the steps that log metrics (which read the loss anyway).
"""

from __future__ import annotations

import torch

from scaling.training.callbacks_common import StepEndCallback


class _PendingCheck:
    """One step's loss and bad flag on their way to the host."""

    def __init__(self, step: int, loss: torch.Tensor, max_loss: float):
        loss = loss.detach().float().reshape(())
        bad = (~torch.isfinite(loss)) | (loss > max_loss)
        values = torch.stack([loss, bad.float()])
        self.step = step
        self._work = None
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            flag = values[1:].clone()  # any rank diverged -> every rank stops
            self._work = torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, async_op=True)
            self._flag = flag
        self._values = values
        self._event = None
        if values.device.type == "cuda":
            self._host = torch.empty(2, dtype=torch.float32, pin_memory=True)
            self._host.copy_(values, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()

    def read(self) -> tuple[float, bool]:
        """``(loss, bad)`` of the step; waits only for this step's copy and reduction."""
        if self._event is not None:
            self._event.synchronize()
            loss, bad = (float(v) for v in self._host)
        else:
            loss, bad = (float(v) for v in self._values)
        if self._work is not None:
            self._work.wait()
            bad = float(self._flag.item())
        return loss, bad > 0


class DivergenceMonitor(StepEndCallback):
    """Checks every optimiser step's loss; on NaN, Inf or a loss above ``max_loss`` stops the Trainer.

    ``check_every_steps``: steps whose loss is read at once (e.g. the metrics logging interval);
    on the others it is read one step later, without waiting for the device.
    """

    def __init__(self, max_loss: float = 100.0, check_every_steps: int = 1):
        super().__init__()
        self.max_loss = max_loss
        self.check_every_steps = max(1, int(check_every_steps))
        self.diverged_at_step: int | None = None  # the step whose loss was bad (1-based)
        self.last_good_loss: float | None = None
        self._pending: list[_PendingCheck] = []

    @property
    def diverged(self) -> bool:
        """Whether a bad loss has been seen (so far as the checks have been read)."""
        return self.diverged_at_step is not None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._pending.clear()

    def on_step_end(self, trainer, pl_module) -> None:
        if self.diverged:
            return
        step = trainer.global_step
        self._pending.append(_PendingCheck(step, pl_module.last_loss, self.max_loss))
        last = trainer.max_steps > 0 and step >= trainer.max_steps
        if step % self.check_every_steps == 0 or last:
            self._settle(trainer, len(self._pending))
        else:
            self._settle(trainer, len(self._pending) - 1)  # the earlier steps' copies have arrived

    def diverged_now(self, trainer) -> bool:
        """Read every check still on its way (waits for the device) and say whether the run diverged."""
        self._settle(trainer, len(self._pending))
        return self.diverged

    def _settle(self, trainer, count: int) -> None:
        ready, self._pending = self._pending[:count], self._pending[count:]
        for check in ready:
            if self.diverged:
                break
            loss, bad = check.read()
            if bad:
                self.diverged_at_step = check.step
                trainer.should_stop = True
                trainer.limit_val_batches = 0  # no validation of a diverged model on the way out
            else:
                self.last_good_loss = loss
        if self.diverged:
            self._pending.clear()

    def on_train_end(self, trainer, pl_module) -> None:
        self.diverged_now(trainer)

    def state_dict(self) -> dict:
        return {"last_good_loss": self.last_good_loss}

    def load_state_dict(self, state: dict) -> None:
        self.last_good_loss = state.get("last_good_loss")
