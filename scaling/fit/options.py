"""``FitOptions``: every setting of one fit, shared by ``scaling fit`` and :func:`scaling.fit.fit_runs`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import ScalingError


@dataclass(frozen=True)
class FitOptions:
    """How to fit the runs and what to recommend; the defaults are those of ``scaling fit``."""

    target_flops: float | None = None
    """Training compute of the large run. With no target at all: 10x the largest run's compute."""
    target_params: float | None = None
    """Size of the large run (its tokens then follow the law); at most one target is given."""
    target_tokens: float | None = None
    """Token budget of the large run (its size then follows the law); at most one target is given."""
    predict: tuple = ()
    """Extra points to predict the loss at: ``"N:D"`` strings (as ``--predict``) or ``(N, D)`` pairs."""
    params: str = "non-embedding"
    """Which parameter count of run dirs is N: ``non-embedding`` or ``total``."""
    n_boot: int = 200
    """Bootstrap refits for the intervals (0 = none)."""
    exclude_diverged: bool = True
    """Leave diverged runs out (the count is reported)."""
    ci: float = 0.95
    """Level of every interval, between 0 and 1."""
    gpu_throughput: float | None = None
    """Achieved training FLOP/s per GPU, for the GPU-hours estimate (none: no estimate)."""
    isoflop_window_dex: float | None = 0.75
    """IsoFLOP parabola half-width in decades of N around each budget's minimum."""
    isoflop_method: str = "interpolate"
    """Approach 2's minimum per budget: ``interpolate`` (an Akima interpolant of the profile, as published
    IsoFLOP studies compute it) or ``parabola`` (near the best size); fit.json holds both."""
    seed: int = 0
    """Seed of the bootstrap resamples."""
    plots: bool = True
    """Write the PNG plots."""
    wandb: str = "offline"
    """Mirror the fit to W&B: ``disabled``, ``offline`` or ``online``."""
    wandb_project: str | None = None
    """W&B project of the fit run (default: the runs' ``logging.project`` when they agree, else
    ``scaling``)."""
    wandb_group: str | None = None
    """W&B group of the fit run (default: the runs' sweep group). The large run's config gets a group of
    its own, ``large-run``."""
    overwrite: bool = False
    """Write into an ``out`` folder that holds other files, replacing only the files a fit writes (without
    it, ``out`` must be new, empty, or a previous fit's)."""
    metric: str = "auto"
    """Validation metric fitted: ``loss`` (nats/token), ``bpb`` (bits per byte), or ``auto`` (bits per
    byte when the runs differ in tokenization)."""

    def validate(self) -> None:
        """Raise :class:`ScalingError` on an option no fit can use."""
        if not 0 < self.ci < 1:
            raise ScalingError(f"ci must be between 0 and 1, got {self.ci}")
        if self.n_boot < 0:
            raise ScalingError(f"--bootstrap must be >= 0, got {self.n_boot}")
        if self.isoflop_method not in ("interpolate", "parabola"):
            raise ScalingError(f"--isoflop-method must be interpolate or parabola, not {self.isoflop_method!r}")
        self.predictions()

    @property
    def has_target(self) -> bool:
        """Whether any target of the large run was given."""
        return any(t is not None for t in (self.target_flops, self.target_params, self.target_tokens))

    def predictions(self) -> list[tuple[float, float]]:
        """``predict`` as (N, D) pairs of positive numbers."""
        out = []
        for item in self.predict or ():
            if isinstance(item, str):
                try:
                    n, d = (float(x) for x in item.split(":"))
                except ValueError:
                    raise ScalingError(f"--predict {item!r}: expected PARAMS:TOKENS, e.g. 1e9:2e10") from None
            else:
                n, d = (float(x) for x in item)
            if not (n > 0 and d > 0 and math.isfinite(n) and math.isfinite(d)):
                raise ScalingError(f"--predict {item!r}: params and tokens must be positive")
            out.append((n, d))
        return out
