"""``fit_runs``: inputs in, fit.json + report.md + plots + large_run.yaml out. Glue only; each step
is a function of its own module."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from data_pipelines.atomic import atomic_write_json
from scaling.errors import ScalingError
from scaling.fit.bootstrap import backtest, bootstrap, percentile_interval, prediction_interval
from scaling.fit.data import Points, load_points
from scaling.fit.envelope import fit_envelope
from scaling.fit.hparams import fit_hparam_laws
from scaling.fit.isoflop import fit_isoflop_points
from scaling.fit.knobs import analyze_knobs
from scaling.fit.parametric import N_PARAMETERS, ParametricFit, fit_parametric
from scaling.fit.recommend import (
    FAR_AXIS,
    FAR_EXTRAPOLATION,
    Ladder,
    best_on_ladder,
    build_ladder,
    choose,
    large_run_config,
    write_large_run_yaml,
)
from scaling.wandb_online import require_wandb_login

DEFAULT_TARGET_FACTOR = 10.0  # with no target given, recommend for 10× the largest run's compute
FRONTIER_POINTS = 24
PLAUSIBLE_A = (0.3, 0.7)  # N_opt ∝ C^a: published LLM fits fall in this range; outside it, say why


def _span(values) -> str:
    return f"{float(np.min(values)):.3g}–{float(np.max(values)):.3g}"


def best_settings(points: Points) -> tuple[Points, int]:
    """Per (size, tokens), keep only the runs of the best setting (lowest seed-mean loss).

    The scaling law is a law of *tuned* runs: an LR sweep's bad learning rates would bend it.
    Returns the kept rows and how many were dropped.
    """
    knobs = sorted(points.knobs)
    cells: dict[tuple, dict[tuple, list[int]]] = {}
    for i, cell in enumerate(points.cells()):
        setting = tuple(repr(points.knobs[k][i]) for k in knobs)
        cells.setdefault(cell, {}).setdefault(setting, []).append(i)
    keep = []
    for settings in cells.values():
        keep.extend(min(settings.values(), key=lambda idx: float(np.mean(points.loss[idx]))))
    keep.sort()
    return points.subset(keep), len(points) - len(keep)


def _base_config(points: Points) -> dict:
    """The config the recommendation starts from: the largest run's (the defaults for CSV input)."""
    if points.configs:
        return points.configs[int(np.argmax(points.params))]
    from scaling.config_loading import load_config, to_dict

    return to_dict(load_config([]))


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


def _source(hparams: dict, name: str) -> str:
    """Where the recommended value of a hyperparameter comes from, in words."""
    entry = hparams.get(name)
    if entry is None:
        return "base config (not swept)"
    if entry.get("prediction") is None:
        return f"base config ({entry['note']})"
    return "power law in N" if entry.get("law") else "measured optimum at one size"


def _parse_predict(items) -> list[tuple[float, float]]:
    out = []
    for item in items or ():
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


def _degenerate_input_warnings(tuned: Points) -> list[str]:
    """Inputs the law cannot describe honestly: too few points, or a loss that does not fall with compute."""
    out = []
    if len(tuned) <= N_PARAMETERS:
        out.append(f"only {len(tuned)} tuned runs for a {N_PARAMETERS}-parameter law: it passes through them "
                   f"exactly, so its intervals have no width to show, not certainty; add runs")
    rho = stats.spearmanr(tuned.flops, tuned.loss).statistic if np.ptp(tuned.loss) > 0 else 0.0
    if not rho < -0.3:
        out.append(f"the final loss hardly falls with compute across these runs (Spearman rho = {rho:.2f}): check "
                   f"that they are comparable (same data, tokenizer and validation set); the law describes them "
                   f"poorly")
    return out


def _far_from_data(n: float, d: float, fitted: Points, max_flops: float) -> str:
    """Why a prediction at (N, D) lies far outside the fitted runs ('' when it does not)."""
    reasons = []
    factor = 6.0 * n * d / max_flops
    if factor >= FAR_EXTRAPOLATION:
        reasons.append(f"{factor:.3g}x the largest fitted compute")
    for name, value, seen in (("N", n, fitted.params), ("D", d, fitted.tokens)):
        if value > FAR_AXIS * seen.max() or value < seen.min() / FAR_AXIS:
            reasons.append(f"{name} {value:.3g} against fitted {_span(seen)}")
    return ", ".join(reasons)


def _quantities(ladder: Ladder, target_flops: float, predictions: list[tuple[float, float]],
                frontier_c: np.ndarray):
    """What each bootstrap refit contributes: constants, allocations, predicted losses, frontier."""

    def q(fit: ParametricFit) -> dict[str, float]:
        i = best_on_ladder(fit, target_flops, ladder)
        out = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b,
               "n_opt": float(ladder.params[i]), "d_opt": float(target_flops / ladder.flops_per_token[i]),
               "n_opt_closed_form": float(fit.n_opt(target_flops)), "d_opt_closed_form": float(fit.d_opt(target_flops))}
        for j, (n, d) in enumerate(predictions):
            out[f"pred_{j}"] = float(fit.predict(n, d))
        losses = fit.predict(ladder.params[None, :], frontier_c[:, None] / ladder.flops_per_token[None, :])
        for j, v in enumerate(losses.min(axis=1)):
            out[f"frontier_{j}"] = float(v)
        return out

    return q


def fit_runs(inputs, out_dir, *, target_flops: float | None = None, target_params: float | None = None,
             target_tokens: float | None = None, predict=(), params: str = "non-embedding", n_boot: int = 200,
             exclude_diverged: bool = True, ci: float = 0.95, gpu_throughput: float | None = None,
             isoflop_window_dex: float | None = 0.75, seed: int = 0, plots: bool = True, wandb: str = "offline",
             wandb_project: str = "scaling", wandb_group: str | None = None, metric: str = "auto",
             isoflop_method: str = "interpolate") -> dict:
    """Fit scaling laws to runs (or a CSV) and write fit.json, report.md, plots and large_run.yaml.

    ``inputs``: run dirs, sweep dirs, CSV paths, or a ready :class:`Points`. ``gpu_throughput``:
    achieved training FLOP/s per GPU, for the GPU-hours estimate. ``metric``: auto | loss | bpb, the
    validation metric fitted (auto: bits per byte when the runs differ in tokenization).
    ``isoflop_method``: interpolate | parabola, the approach-2 method whose a is reported (both are
    computed, under ``isoflop.methods``). Returns the fit.json content.
    """
    if not 0 < ci < 1:
        raise ScalingError(f"ci must be between 0 and 1, got {ci}")
    if n_boot < 0:
        raise ScalingError(f"--bootstrap must be >= 0, got {n_boot}")
    require_wandb_login(wandb, "--wandb")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ScalingError(f"--out {out} is a file; give a folder for the fit's outputs")
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    points = inputs if isinstance(inputs, Points) else load_points(list(inputs), params=params,
                                                                    exclude_diverged=exclude_diverged,
                                                                    metric=metric)
    warnings = list(points.notes)
    extra = _parse_predict(predict)
    tuned, dropped = best_settings(points)
    if dropped:
        warnings.append(f"approach 3 uses the best setting per (size, tokens): {dropped} run(s) of worse "
                        f"settings left out of the law (they feed the knob and hyperparameter analyses)")
    par = fit_parametric(tuned.params, tuned.tokens, tuned.loss)
    sizes = len({n for n, _ in tuned.cells()})
    if not par.converged:
        warnings.append(f"approach 3 optimiser did not report convergence: {par.message}")
    if sizes < 4:
        warnings.append(f"only {sizes} model sizes: alpha, beta and a are poorly determined; trust the intervals")
    if min(par.alpha, par.beta) < 0.01 or max(par.alpha, par.beta) > 2.9:
        warnings.append(f"an exponent sits at its bound (alpha={par.alpha:.3g}, beta={par.beta:.3g}): "
                        f"the data do not pin the law down")
    warnings += _degenerate_input_warnings(tuned)

    base = _base_config(tuned)  # the best setting of the largest size: its knobs go into large_run.yaml
    ladder = build_ladder(base.get("model", {}), int(base.get("train", {}).get("seq_len", 256)), params)
    max_c = float(points.flops.max())
    if target_flops is None and target_params is None and target_tokens is None:
        target_flops = DEFAULT_TARGET_FACTOR * max_c
        warnings.append(f"no target given: recommending for {DEFAULT_TARGET_FACTOR:g}x the largest run's compute "
                        f"({target_flops:.3g} FLOPs); use --target-flops")
    choice = choose(par, ladder, flops=target_flops, params=target_params, tokens=target_tokens)
    factor = choice["flops"] / max_c
    if choice["index"] == 0:
        warnings.append(f"the best shape for the target is the smallest of the ladder ({choice['params']:.3g} params): "
                        f"the law puts the optimum at or below it, which usually means it is poorly determined")
    if factor >= FAR_EXTRAPOLATION:
        warnings.append(f"the target is {factor:.3g}x the largest fitted compute ({math.log10(factor):.1f} orders "
                        f"of magnitude): an extrapolation this far is a guess with error bars; "
                        f"validate with a run in between")
    ratio, fitted = choice["tokens"] / choice["params"], tuned.tokens / tuned.params
    if not fitted.min() / 2 <= ratio <= 2 * fitted.max():
        warnings.append(f"the recommended run has {ratio:.3g} tokens per parameter, outside the fitted "
                        f"{fitted.min():.3g}-{fitted.max():.3g}: the law is extrapolated along that axis too")
    for n, d in extra:
        far = _far_from_data(n, d, tuned, max_c)
        if far:
            warnings.append(f"--predict {n:.3g}:{d:.3g} is {far}: an extrapolation this far is a guess with error "
                            f"bars wider than shown")
    preds = extra + [(choice["params"], choice["tokens"])]
    frontier_c = np.logspace(np.log10(points.flops.min()), np.log10(max(choice["flops"], max_c)), FRONTIER_POINTS)
    q = _quantities(ladder, choice["flops"], preds, frontier_c)
    samples, boot_info = bootstrap(tuned, par, q, n_boot=n_boot, seed=seed) if n_boot else ({}, {"n_boot": 0})
    if n_boot and boot_info["n_ok"] < n_boot / 2:
        warnings.append(f"only {boot_info['n_ok']} of {n_boot} bootstrap resamples could be fitted: intervals are rough")
    point_q = q(par)
    cis = {k: percentile_interval(samples[k], ci) for k in samples if not k.startswith(("pred_", "frontier_"))}
    if not PLAUSIBLE_A[0] <= par.a <= PLAUSIBLE_A[1]:
        a_ci = cis.get("a")
        span = f" (interval {a_ci[0]:.2f}–{a_ci[1]:.2f})" if a_ci and None not in a_ci else ""
        warnings.append(
            f"a = {par.a:.3f}{span} lies outside {PLAUSIBLE_A[0]}–{PLAUSIBLE_A[1]}, the range of published LLM fits "
            f"(Chinchilla ~0.5): runs this small or short ({_span(tuned.params)} params, {_span(tuned.tokens)} "
            f"tokens) sit in the early, fast-falling part of training where L(N, D) is not yet a clean power law; "
            f"add larger sizes or longer runs before trusting N_opt"
        )

    predictions = []
    for j, (n, d) in enumerate(preds):
        key = f"pred_{j}"
        lo, hi = prediction_interval(samples.get(key), point_q[key], par.residuals, ci, n_params=N_PARAMETERS,
                                     seed=seed + j)
        predictions.append({"params": n, "tokens": d, "loss": point_q[key], "lo": lo, "hi": hi,
                            "mean_ci": percentile_interval(samples[key], ci) if key in samples else None,
                            "recommended": j == len(preds) - 1})

    parametric = {**par.to_dict(), "ci": cis, "ci_level": ci, "bootstrap": boot_info,
                  "n_opt_closed_form": point_q["n_opt_closed_form"], "d_opt_closed_form": point_q["d_opt_closed_form"],
                  "flops_per_param_token": 6.0}
    # tuned runs only: an LR sweep's worse settings would pull each IsoFLOP profile up and aside
    iso = fit_isoflop_points(tuned, points, method=isoflop_method, window_dex=isoflop_window_dex, ci=ci,
                             seed=seed)
    env = fit_envelope(points.curves)
    hp = fit_hparam_laws(points, choice["params"], n_boot=min(n_boot, 200), ci=ci, seed=seed)
    knobs = analyze_knobs(points)
    bt = backtest(tuned, ci, n_boot=min(n_boot, 100), seed=seed)
    if "mean_abs_rel_error" in bt and bt["mean_abs_rel_error"] > 0.05:
        warnings.append(f"backtest: predicting the largest size from the others is off by "
                        f"{100 * bt['mean_abs_rel_error']:.1f}% on average; extrapolations are unreliable")
    for name, other in (("approach 2 (IsoFLOP)", iso.a), ("approach 1 (envelope)", env.a)):
        if other is not None and abs(other - par.a) > 0.1:
            warnings.append(f"{name} gives a={other:.3f}, approach 3 a={par.a:.3f}: the approaches disagree")
    if iso.skipped:
        warnings.append(f"IsoFLOP: {len(iso.skipped)} budget(s) skipped (see isoflop.skipped)")


    lr = hp.get("lr", {}).get("prediction")
    batch = hp.get("batch_size", {}).get("prediction")
    base_train = base.get("train", {})
    base_batch = float(base_train.get("micro_batch_size", 16) * base_train.get("grad_accum", 1) *
                       base_train.get("seq_len", ladder.seq_len))
    batch_source = _source(hp, "batch_size")
    measured = np.unique(points.batch_size[np.isfinite(points.batch_size)])
    if batch is None and not points.configs and measured.size == 1:  # a CSV whose runs share one batch size
        batch, batch_source = float(measured[0]), "the runs' batch size (not swept)"
    tree = large_run_config(base, ladder, choice, lr=lr, batch_tokens=batch, group=wandb_group or points.group)
    write_large_run_yaml(out / "large_run.yaml", tree)  # validated first: a bad tree leaves no out dir
    out.mkdir(parents=True, exist_ok=True)
    rec_interval = next(p for p in predictions if p["recommended"])
    recommendation = {
        **{k: v for k, v in choice.items() if k != "index"},
        "d_model": tree["model"]["d_model"], "n_head": tree["model"]["n_head"], "params_kind": params,
        "tokens_per_param": choice["tokens"] / choice["params"],
        "loss": rec_interval["loss"], "lo": rec_interval["lo"], "hi": rec_interval["hi"],
        "n_opt_ci": cis.get("n_opt"), "d_opt_ci": cis.get("d_opt"),
        "lr": lr, "lr_ci": [hp["lr"]["lo"], hp["lr"]["hi"]] if "lo" in hp.get("lr", {}) else None,
        "lr_source": _source(hp, "lr"),
        "batch_tokens": batch if batch is not None else base_batch,
        "batch_source": batch_source,
        "extrapolation_factor": factor, "gpu_hours": choice["flops"] / gpu_throughput / 3600 if gpu_throughput else None,
        "gpu_throughput": gpu_throughput, "a": {"approach3": par.a, "approach2": iso.a, "approach1": env.a},
        "config": str(out / "large_run.yaml"),
    }
    if lr is None:
        recommendation["lr"] = tree["optim"].get("lr")
    result = _clean({
        "inputs": {"n_rows": len(points), "n_fitted": len(tuned), "params_kind": params,
                   "exclude_diverged": exclude_diverged, "group": points.group, "metric": points.metric},
        "parametric": parametric, "isoflop": iso.to_dict(), "envelope": env.to_dict(), "hparams": hp,
        "knobs": knobs, "predictions": predictions, "backtest": bt, "recommendation": recommendation,
        "frontier": {"flops": frontier_c, "loss": [point_q[f"frontier_{j}"] for j in range(FRONTIER_POINTS)],
                     "ci": [percentile_interval(samples[f"frontier_{j}"], ci) if samples else None
                            for j in range(FRONTIER_POINTS)]},
        "warnings": warnings, "outputs": {},
    })
    if plots:
        from scaling.fit.plots import write_plots

        result["outputs"]["plots"] = write_plots(result, points, tuned, par, out)
    from scaling.fit.report import write_report

    result["outputs"].update(report=str(out / "report.md"), fit_json=str(out / "fit.json"),
                             large_run=str(out / "large_run.yaml"))
    write_report(result, out / "report.md")
    atomic_write_json(out / "fit.json", result)  # the source of truth exists before W&B is tried
    if wandb != "disabled":
        from scaling.fit.wandb_log import log_fit

        try:
            result["outputs"]["wandb"] = log_fit(result, points, out, mode=wandb, project=wandb_project,
                                                 group=wandb_group or points.group)
        except Exception as e:  # W&B mirrors the files and is never required: report, keep the fit
            reason = (str(e).splitlines() or [type(e).__name__])[0]
            result["outputs"]["wandb"] = {"mode": wandb, "error": reason}
            print(f"warning: the fit was written to {out}, but logging it to W&B failed: {reason}", file=sys.stderr)
        atomic_write_json(out / "fit.json", result)
    return json.loads(json.dumps(result))
