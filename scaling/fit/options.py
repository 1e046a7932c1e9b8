"""``FitOptions``: every setting of one fit, shared by ``scaling fit`` and :func:`scaling.fit.fit_runs`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import ScalingError

# approach 2's ways to read a budget's minimum (scaling.fit.isoflop_profile), the default first
ISOFLOP_METHODS = ("polynomial", "interpolate", "parabola")


@dataclass(frozen=True)
class FitOptions:
    """How to fit the runs and what to recommend; the defaults are those of ``scaling fit``."""

    target_flops: float | None = None
    """Training compute of the large run. With no target at all: 10x the largest run's compute."""
    target_params: float | None = None
    """Size of the large run: alone, its tokens follow the law; with ``target_tokens``, exactly that run."""
    target_tokens: float | None = None
    """Token budget of the large run: alone, its size follows the law; with ``target_params``, that run."""
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
    """Half-width in decades of N of the sizes around each budget's best that the polynomial and the
    parabola are fitted to."""
    isoflop_method: str = ISOFLOP_METHODS[0]
    """Approach 2's minimum per budget: ``polynomial`` (a weighted parabola near the best size, or a cubic
    where the profile's asymmetry shows beyond the noise), ``interpolate`` (an Akima interpolant through
    every size) or ``parabola`` (unweighted, near the best size); fit.json holds all three."""
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
    """Metric fitted: ``loss`` (nats/token), ``bpb`` (bits per byte), ``auto`` (bits per byte when the runs
    differ in tokenization), a task's ``eval/<task>/bpb`` (fitted like the loss), or ``eval/<task>/acc`` /
    ``acc_norm`` (the laws fit the task's bpb; accuracy is predicted from it by a sigmoid)."""
    chance: float | None = None
    """Accuracy of guessing, the floor of the accuracy sigmoid (default: from the task file the runs'
    ``eval.tasks`` name, else 0.25)."""
    mixture: bool = False
    """Fit the data-mixture law even when the runs' weights do not vary (an error then says why it cannot);
    without it the law is fitted whenever they vary."""
    mixture_target: str | None = None
    """Evaluation set the mixture is optimised for (``NAME``), or a weighted sum (``NAME=w,NAME=w``);
    default: every evaluation set, equally weighted."""
    mixture_min_weight: str | float = 0.0
    """Smallest weight each domain keeps: one number, or ``name=value,...`` per domain."""
    max_epochs: float = 4.0
    """Most times the large run may repeat a domain's tokens; caps that domain's weight."""
    domain_tokens: tuple = ()
    """Training tokens per domain as ``name=count`` strings (needed for CSV input; overrides manifests)."""
    predict_mixtures: str | None = None
    """CSV of candidate mixtures (``w_<domain>`` columns) whose losses the mixture law predicts."""
    base_config: str | None = None
    """Run config YAML the large run starts from: large_run.yaml is it with the fit's shape, tokens and
    fitted hyperparameters. Default: the largest run's config; a CSV has none, so without this the large
    run gets the framework's defaults (data path, sequence length, batch, learning rate)."""

    def validate(self) -> None:
        """Raise :class:`ScalingError` on an option no fit can use."""
        if not 0 < self.ci < 1:
            raise ScalingError(f"ci must be between 0 and 1, got {self.ci}")
        sized = self.target_params is not None or self.target_tokens is not None
        if self.target_flops is not None and sized:
            raise ScalingError("give --target-flops alone, or --target-params and/or --target-tokens")
        if self.n_boot < 0:
            raise ScalingError(f"--bootstrap must be >= 0, got {self.n_boot}")
        if self.isoflop_method not in ISOFLOP_METHODS:
            raise ScalingError(f"--isoflop-method must be one of {', '.join(ISOFLOP_METHODS)}, "
                               f"not {self.isoflop_method!r}")
        self.predictions()
        if not self.max_epochs > 0:
            raise ScalingError(f"--max-epochs must be positive, got {self.max_epochs}")
        from scaling.fit.data import eval_metric

        downstream = eval_metric(self.metric)
        if self.chance is not None and (downstream is None or downstream[1] == "bpb"):
            raise ScalingError(
                "--chance is the floor of an accuracy metric; use it with --metric eval/<task>/acc"
            )
        if self.chance is not None and not 0 <= self.chance < 1:
            raise ScalingError(f"--chance must be in [0, 1), got {self.chance}")
        self.load_base_config()

    def load_base_config(self) -> dict | None:
        """``base_config`` read and validated as a run config (None without one)."""
        if self.base_config is None:
            return None
        from pathlib import Path

        from scaling.config_loading import load_config, to_dict

        if not Path(self.base_config).is_file():
            raise ScalingError(f"--base-config {self.base_config!r} not found; pass the run config YAML the "
                               f"large run should start from")
        return to_dict(load_config([self.base_config]))

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
