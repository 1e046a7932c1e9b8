"""Scaling-law fitting and extrapolation: from many small runs to the settings of one large run.

Public API:

- :func:`fit_runs` — everything: inputs (run dirs, sweep dirs, CSV) → fit.json, report.md, plots,
  large_run.yaml, a W&B fit run; returns the fit.json dict. :class:`FitOptions` holds its settings.
- :class:`FitContext` — what the steps of a fit found; :data:`WARNING_RULES` — the checks run on it.
- :func:`load_points` / :class:`Points` — the one loader of fit inputs.
- :func:`fit_parametric` / :class:`ParametricFit` / :data:`CHINCHILLA` — approach 3.
- :func:`fit_isoflop` / :func:`fit_isoflop_methods` — approach 2 (polynomial, interpolated or parabola
  profiles);
  :func:`fit_envelope` — approach 1.
- :func:`fit_hparam_laws` — LR and batch-size laws; :func:`analyze_knobs` — seeds and Welch's t-tests.
- :func:`bootstrap`, :func:`backtest`, :func:`prediction_interval` — uncertainty.
- :func:`build_ladder`, :func:`choose` — turning a budget into a concrete shape.
- :func:`summary_lines` — the recommendation as the few lines ``scaling fit`` prints.
- :func:`load_mixture` / :class:`MixtureData` — weights and per-evaluation-set losses of mixture runs;
  :func:`choose_law` / :func:`fit_mixture_law` — laws of loss against weights; :func:`analyse_mixture` —
  the recommended mixture with intervals under minimum-weight and epoch constraints.

Submodules import numpy/scipy on first use of a name here, so ``scaling --help`` stays fast.
"""

from __future__ import annotations

from data_pipelines.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "fit_runs": "scaling.fit.pipeline",
    "FitOptions": "scaling.fit.options",
    "FitContext": "scaling.fit.steps",
    "WARNING_RULES": "scaling.fit.checks",
    "best_settings": "scaling.fit.steps",
    "load_points": "scaling.fit.data",
    "Points": "scaling.fit.data",
    "Curve": "scaling.fit.data",
    "fit_parametric": "scaling.fit.parametric",
    "ParametricFit": "scaling.fit.parametric",
    "CHINCHILLA": "scaling.fit.parametric",
    "fit_isoflop": "scaling.fit.isoflop",
    "IsoFlopFit": "scaling.fit.isoflop",
    "fit_isoflop_methods": "scaling.fit.isoflop",
    "fit_envelope": "scaling.fit.envelope",
    "EnvelopeFit": "scaling.fit.envelope",
    "fit_power_law": "scaling.fit.basics",
    "windowed_minimum": "scaling.fit.basics",
    "fit_hparam_laws": "scaling.fit.hparams",
    "analyze_knobs": "scaling.fit.knobs",
    "bootstrap": "scaling.fit.bootstrap",
    "backtest": "scaling.fit.bootstrap",
    "prediction_interval": "scaling.fit.bootstrap",
    "percentile_interval": "scaling.fit.bootstrap",
    "build_ladder": "scaling.fit.recommend",
    "choose": "scaling.fit.recommend",
    "render_report": "scaling.fit.report",
    "summary_lines": "scaling.cli.fit",
    "load_mixture": "scaling.fit.mixture_data",
    "MixtureData": "scaling.fit.mixture_data",
    "choose_law": "scaling.fit.mixture_law",
    "fit_mixture_law": "scaling.fit.mixture_law",
    "MixtureLaw": "scaling.fit.mixture_law",
    "analyse_mixture": "scaling.fit.mixture",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
