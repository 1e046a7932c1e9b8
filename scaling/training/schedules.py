"""Learning-rate schedules as plain functions of the optimiser step.

Every schedule is linear warmup from 0 over ``warmup_fraction`` of the steps, then a shape that
ends at ``final_lr_fraction`` of the peak on the last step:

- ``cosine``: half a cosine from the peak down to the final fraction;
- ``linear``: a straight line down to the final fraction;
- ``constant``: the peak until the end (``final_lr_fraction`` does not apply);
- ``wsd``: warmup–stable–decay: the peak until the last ``decay_fraction`` of the steps, then a
  ``linear``, ``sqrt`` (1−√p) or ``cosine`` decay to the final fraction.

A cooldown branch (:class:`DecaySchedule`) continues a trunk's run from one of its checkpoints and
applies only a WSD decay, from the trunk's learning rate at that step down to the final fraction.
Step ``s`` is 0-based: ``factor(s)`` multiplies the peak LR used by the ``s``-th update, so the last
update (``s = total_steps - 1``) runs at exactly the final fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DECAY_SHAPES = ("linear", "sqrt", "cosine")


def decay_progress(shape: str, p: float) -> float:
    """How far a decay has gone at progress ``p`` in [0, 1]: 0 at the start, 1 at the end."""
    p = min(max(p, 0.0), 1.0)
    if shape == "linear":
        return p
    if shape == "sqrt":  # 1 - sqrt(1 - p) of the way down: the "1-sqrt" cooldown of Hägele et al.
        return 1.0 - math.sqrt(1.0 - p)
    if shape == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * p))
    raise ValueError(f"unknown decay shape {shape!r}; use one of {', '.join(DECAY_SHAPES)}")


@dataclass(frozen=True)
class Schedule:
    """The LR factor (of the peak) at each step of a run of ``total_steps`` optimiser steps."""

    kind: str
    total_steps: int
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.1
    decay_fraction: float = 0.2
    decay_shape: str = "linear"

    @classmethod
    def from_config(cls, schedule_cfg, total_steps: int) -> Schedule:
        """Build from a :class:`scaling.config.ScheduleConfig`."""
        return cls(kind=schedule_cfg.kind, total_steps=total_steps,
                   warmup_fraction=schedule_cfg.warmup_fraction,
                   final_lr_fraction=schedule_cfg.final_lr_fraction,
                   decay_fraction=schedule_cfg.decay_fraction, decay_shape=schedule_cfg.decay_shape)

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_fraction * self.total_steps))

    @property
    def decay_steps(self) -> int:
        """Steps of the final WSD decay (wsd only); at least one so that the run ends decayed."""
        return max(1, int(round(self.decay_fraction * self.total_steps)))

    def __call__(self, step: int) -> float:
        warmup, total, final = self.warmup_steps, self.total_steps, self.final_lr_fraction
        if step < warmup:
            return (step + 1) / warmup
        if self.kind == "constant":
            return 1.0
        if self.kind == "wsd":
            decay_start = total - self.decay_steps
            if step < decay_start:
                return 1.0
            done = decay_progress(self.decay_shape, (step - decay_start + 1) / self.decay_steps)
            return 1.0 - (1.0 - final) * done
        # cosine / linear: from the peak right after warmup to the final fraction on the last step
        span = total - 1 - warmup
        p = (step - warmup) / span if span > 0 else 1.0
        shape = "cosine" if self.kind == "cosine" else "linear"
        return 1.0 - (1.0 - final) * decay_progress(shape, p)


@dataclass(frozen=True)
class DecaySchedule:
    """A cooldown branch: from ``start_factor`` at ``start_step`` down to ``final_lr_fraction`` at
    ``total_steps - 1`` with a WSD decay shape. Steps before ``start_step`` belong to the trunk."""

    start_step: int
    total_steps: int
    start_factor: float
    final_lr_fraction: float
    decay_shape: str = "linear"

    def __call__(self, step: int) -> float:
        n = self.total_steps - self.start_step
        if step < self.start_step or n <= 0:
            return self.start_factor
        done = decay_progress(self.decay_shape, (step - self.start_step + 1) / n)
        return self.start_factor + (self.final_lr_fraction - self.start_factor) * done
