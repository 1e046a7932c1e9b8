"""``DivergenceMonitor``: stop a run whose loss turns NaN/Inf or exceeds a bound.

A diverged run is a *result* of a sweep (this learning rate is too high), not a crash: the monitor
stops training cleanly, and :func:`scaling.train` writes status ``diverged`` with the step and the
last good loss, and the CLI exits with code 3. Every rank takes the same decision.
"""

from __future__ import annotations

import math

from scaling.training.callbacks_common import StepEndCallback


class DivergenceMonitor(StepEndCallback):
    """Checks every optimiser step's loss; on NaN, Inf or a loss above ``max_loss`` stops the Trainer."""

    def __init__(self, max_loss: float = 100.0):
        super().__init__()
        self.max_loss = max_loss
        self.diverged_at_step: int | None = None  # the step whose loss was bad (1-based)
        self.last_good_loss: float | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at_step is not None

    def on_step_end(self, trainer, pl_module) -> None:
        loss = float(pl_module.last_loss)  # one host sync per step: cheap next to a step
        bad = not math.isfinite(loss) or loss > self.max_loss
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)  # any rank diverged → all stop
        if bad:
            self.diverged_at_step = trainer.global_step
            trainer.should_stop = True
            trainer.limit_val_batches = 0  # no validation of a diverged model on the way out
        else:
            self.last_good_loss = loss

    def state_dict(self) -> dict:
        return {"last_good_loss": self.last_good_loss}

    def load_state_dict(self, state: dict) -> None:
        self.last_good_loss = state.get("last_good_loss")
