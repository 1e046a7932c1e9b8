"""``fit_runs``: inputs in, fit.json + report.md + plots + large_run.yaml out, as a pipeline of named steps.

options (:func:`check_options`) -> load, best settings, each approach and analysis (:func:`fit_context`,
steps in :mod:`scaling.fit.steps`) -> warnings (:func:`scaling.fit.checks.run_checks`) -> recommendation
(:func:`scaling.fit.recommend.recommend`) -> fit.json (:func:`fit_json`) -> files (:func:`write_outputs`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from data_pipelines.atomic import atomic_write_json, atomic_write_text
from scaling.errors import ScalingError
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.checks import run_checks
from scaling.fit.data import Points
from scaling.fit.hparams import with_hparams
from scaling.fit.options import FitOptions
from scaling.fit.out_dir import check_out_dir, clear_fit_files, write_errors
from scaling.fit.recommend import large_run_yaml, recommend
from scaling.fit.steps import (
    FRONTIER_POINTS,
    FitContext,
    backtest_step,
    base_config,
    best_settings,
    choose_target,
    downstream_step,
    envelope_step,
    estimate_uncertainty,
    fit_law,
    hparams_step,
    isoflop_step,
    knob_effects_step,
    knobs_step,
    law_refits,
    load,
    mixture_step,
)
from scaling.wandb_online import require_wandb_login

DEFAULT_WANDB_PROJECT = "scaling"  # the fit run's project when the runs name none (a CSV) or several


def fit_runs(inputs, out_dir, options: FitOptions | None = None, **changes) -> dict:
    """Fit scaling laws to runs (or a CSV) and write fit.json, report.md, plots and large_run.yaml.

    ``inputs``: run dirs, sweep dirs, CSV paths, or a ready :class:`scaling.fit.data.Points`;
    ``options``: how to fit and what to recommend (default :class:`FitOptions`); ``changes``: fields
    of :class:`FitOptions` to replace in it (``fit_runs(csv, out, n_boot=0)``). Returns the fit.json
    content.
    """
    options = dataclasses.replace(options or FitOptions(), **changes)
    out = check_options(options, out_dir)
    points = None if mixture_only(inputs) else load(inputs, options)  # read once, for both questions
    reason = scaling_law_skipped(inputs, options, points)
    if reason:
        return fit_mixture_only(inputs, out, options, reason)
    ctx = fit_context(inputs, options, points)
    warnings = run_checks(ctx)
    tree, recommendation = recommend(ctx, out)
    result = fit_json(ctx, recommendation, warnings)
    write_outputs(result, ctx, tree, out)
    return json.loads(json.dumps(result))


def check_options(options: FitOptions, out_dir) -> Path:
    """Refuse what no fit can use before any work (an ``out`` the fit may not write into included);
    returns the output folder."""
    options.validate()
    require_wandb_login(options.wandb, "--wandb")
    out = Path(out_dir)
    check_out_dir(out, options.overwrite)
    return out


def fit_context(inputs, options: FitOptions, points: Points | None = None) -> FitContext:
    """Every computing step, in order, on ``inputs``: what the checks, the recommendation and fit.json read.

    ``points``: ``inputs`` already loaded (read again when None). A new step is a function of
    :mod:`scaling.fit.steps` called here, its result a new field of :class:`FitContext`.
    """
    points = load(inputs, options) if points is None else points
    tuned, dropped = best_settings(points)
    law = fit_law(tuned, points)
    isoflop = isoflop_step(tuned, points, options)
    refits, boot_info = law_refits(tuned, law, options)
    target = choose_target(points, tuned, law, isoflop, refits, options)
    extra = options.predictions()
    ctx = FitContext(
        options=options,
        points=points,
        tuned=tuned,
        dropped=dropped,
        law=law,
        target=target,
        extra=extra,
        uncertainty=estimate_uncertainty(points, law, target, extra, options, refits, boot_info),
        isoflop=isoflop,
        envelope=envelope_step(tuned, isoflop, options),
        hparams=hparams_step(points, target, options, extra),
        knobs=knobs_step(points),
        knob_effects=knob_effects_step(points, target, extra, options),
        backtest=backtest_step(tuned, law, options),
        mixture=mixture_step(inputs, options, target.choice["tokens"], points.notes),
    )
    ctx.downstream = downstream_step(points, tuned, ctx.uncertainty, options)
    return ctx


def mixture_only(inputs) -> bool:
    """Whether ``inputs`` are CSVs of mixture runs without the params,tokens,loss a scaling law needs."""
    from scaling.fit.mixture_data import is_mixture_only_csv

    if isinstance(inputs, Points):
        return False
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    kinds = [is_mixture_only_csv(i) for i in items]
    if any(kinds) and not all(kinds):
        raise ScalingError("a CSV without params,tokens,loss columns fits only a mixture law: give it alone, "
                           "or add those columns")
    return bool(items) and all(kinds)


SCALING_SKIPPED = (
    "only the mixture law is fitted; the scaling-law steps (size, tokens, learning rate, knobs) are "
    "skipped and large_run.yaml is the default config with the recommended data.mixture"
)


def scaling_law_skipped(inputs, options: FitOptions, points: Points | None = None) -> str | None:
    """Why only the mixture law can be fitted to ``inputs`` (None when the scaling law can be too).

    A CSV without params,tokens,loss; or a mixture study whose runs give the scaling law too little to
    fit (one size, one token count) -- a mixture study at one size is a study in its own right.
    """
    if mixture_only(inputs):
        return f"the inputs have no params,tokens,loss columns: {SCALING_SKIPPED}"
    if isinstance(inputs, Points):
        return None
    from scaling.fit.mixture_data import load_mixture
    from scaling.fit.parametric import check_points

    tuned, _ = best_settings(load(inputs, options) if points is None else points)
    try:
        check_points(tuned.params, tuned.tokens, tuned.loss)
    except ScalingError as e:
        mixture = load_mixture(inputs, exclude_diverged=options.exclude_diverged)
        if mixture is not None and mixture.varies():
            return f"the runs do not support a scaling law ({e}): {SCALING_SKIPPED}"
    return None


def fit_mixture_only(inputs, out: Path, options: FitOptions, reason: str = SCALING_SKIPPED) -> dict:
    """A fit of the mixture law alone: fit.json (``inputs``, ``mixture``, ``warnings``, ``outputs``),
    report.md, the mixture plot, and large_run.yaml (``--base-config``, else the default config, with the
    recommended ``data.mixture``)."""
    from scaling.fit.mixture import mixture_config

    if options.target_flops or options.target_params:
        raise ScalingError("without a scaling law only --target-tokens applies (the large run's D, for the "
                           "repetition limits)")
    mixture = mixture_step(inputs, dataclasses.replace(options, mixture=True), options.target_tokens)
    tree = base_config(None, options)[0]
    tree["data"]["mixture"] = mixture_config(mixture)
    result = _clean({"inputs": {"n_rows": mixture["n_runs"], "scaling_law": "skipped"}, "mixture": mixture,
                     "warnings": [reason, *mixture["warnings"]], "outputs": {}})
    text = large_run_yaml(tree, out / "large_run.yaml")
    with write_errors(out):
        clear_fit_files(out)
        atomic_write_text(out / "large_run.yaml", text)
        if options.plots:
            from scaling.fit.plots import plot_mixture

            result["outputs"]["plots"] = {"mixture": plot_mixture(result["mixture"], out / "mixture.png")}
        from scaling.fit.report import write_report

        result["outputs"].update(report=str(out / "report.md"), fit_json=str(out / "fit.json"),
                                 large_run=str(out / "large_run.yaml"))
        if options.wandb != "disabled":  # the W&B fit run mirrors the scaling law's tables and summary
            result["outputs"]["wandb"] = {"mode": options.wandb,
                                          "skipped": "a mixture-only fit is not mirrored to W&B"}
        write_report(result, out / "report.md")
        atomic_write_json(out / "fit.json", result)
    return json.loads(json.dumps(result))


def _clean(obj):
    """JSON-native copy: numpy scalars to Python, NaN/Inf to None (fit.json stays strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fit_json(ctx: FitContext, recommendation: dict, warnings: list[str]) -> dict:
    """fit.json's content (strict JSON): one section per step, then the warnings."""
    unc, options, points = ctx.uncertainty, ctx.options, ctx.points
    parametric = {**ctx.law.to_dict(), "ci": unc.cis, "ci_level": options.ci, "bootstrap": unc.info,
                  "n_opt_closed_form": unc.point["n_opt_closed_form"],
                  "d_opt_closed_form": unc.point["d_opt_closed_form"], "flops_per_param_token": 6.0}
    keys = [f"frontier_{j}" for j in range(FRONTIER_POINTS)]
    frontier = {"flops": unc.frontier_flops, "loss": [unc.point[k] for k in keys],
                "ci": [percentile_interval(unc.samples[k], options.ci) if unc.samples else None
                       for k in keys]}
    if ctx.downstream:  # an accuracy metric: the recommendation also predicts the accuracy
        rec = ctx.downstream["predictions"][-1]
        recommendation = {**recommendation, "acc_metric": ctx.downstream["metric"], "acc": rec["acc"],
                          "acc_lo": rec["lo"], "acc_hi": rec["hi"]}
    predictions = [{**p, "by_knob": by} for p, by in zip(with_hparams(unc.predictions, ctx.hparams),
                                                          ctx.knob_effects.by_point, strict=True)]
    return _clean({
        "inputs": {"n_rows": len(points), "n_fitted": len(ctx.tuned), "params_kind": options.params,
                   "exclude_diverged": options.exclude_diverged, "group": points.group,
                   "metric": points.metric, "accuracy_metric": points.accuracy_metric},
        "parametric": parametric, "isoflop": ctx.isoflop.to_dict(), "envelope": ctx.envelope.to_dict(),
        "hparams": ctx.hparams, "knobs": ctx.knobs, "knob_effects": ctx.knob_effects.effects,
        "knob_notes": ctx.knob_effects.notes, "predictions": predictions, "backtest": ctx.backtest,
        "recommendation": recommendation, "frontier": frontier, "mixture": ctx.mixture,
        "downstream": ctx.downstream, "warnings": warnings, "outputs": {},
    })


def write_outputs(result: dict, ctx: FitContext, tree: dict, out: Path) -> None:
    """large_run.yaml (validated first: a bad tree leaves no out dir and a previous fit's files in place),
    plots, report.md, fit.json, W&B. A previous fit's files in ``out`` are removed first.

    Fills ``result["outputs"]`` with the paths written.
    """
    config = out / "large_run.yaml"
    text = large_run_yaml(tree, config)
    with write_errors(out):
        clear_fit_files(out)
        atomic_write_text(config, text)
        if ctx.options.plots:
            from scaling.fit.plots import plots_not_made, write_plots

            result["outputs"]["plots"] = write_plots(result, ctx.points, ctx.tuned, ctx.law, out)
            result["outputs"]["plots_not_made"] = plots_not_made(result["outputs"]["plots"])
        from scaling.fit.report import write_report

        result["outputs"].update(report=str(out / "report.md"), fit_json=str(out / "fit.json"),
                                 large_run=str(config))
        write_report(result, out / "report.md")
        atomic_write_json(out / "fit.json", result)  # the source of truth exists before W&B is tried
    if ctx.options.wandb != "disabled":
        _log_to_wandb(result, ctx, out)
        atomic_write_json(out / "fit.json", result)


def _log_to_wandb(result: dict, ctx: FitContext, out: Path) -> None:
    """Mirror the fit to a W&B run; a failure is reported on stderr and in ``result``, never raised."""
    from scaling.fit.wandb_log import log_fit

    mode = ctx.options.wandb
    project = ctx.options.wandb_project or ctx.points.project or DEFAULT_WANDB_PROJECT
    group = ctx.options.wandb_group or ctx.points.group
    try:
        result["outputs"]["wandb"] = log_fit(result, ctx.points, out, mode=mode, project=project, group=group)
    except Exception as e:  # W&B mirrors the files and is never required: report, keep the fit
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        result["outputs"]["wandb"] = {"mode": mode, "error": reason}
        print(f"warning: the fit was written to {out}, but logging it to W&B failed: {reason}",
              file=sys.stderr)
