"""Uncertainty of approach 3: bootstrap over runs, prediction intervals, and the leave-largest-out backtest.

The bootstrap resamples runs with replacement, or whole model sizes when runs share a trunk
(cooldown branches of one run are not independent draws), refits the law from the full fit's optimum
and the best grid starts, and reports percentile intervals of anything computed from each refit.
A prediction interval adds the fit's residual noise (resampled log-residuals) to the refits' curves,
so it covers a new run's loss, not only the mean law.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.basics import representative, single_threaded_blas
from scaling.fit.data import CELL_TOLERANCE_DEX, Points
from scaling.fit.parametric import HUBER_DELTA, N_PARAMETERS, ParametricFit, check_points, fit_parametric


def resampling_units(points: Points) -> tuple[list[np.ndarray], str]:
    """Index groups the bootstrap draws: single runs, or model sizes when any runs share a trunk."""
    trunks = {}
    for t in points.trunk:
        trunks[t] = trunks.get(t, 0) + 1
    if any(count > 1 for count in trunks.values()):
        sizes = representative(points.params, CELL_TOLERANCE_DEX)
        return [np.flatnonzero(sizes == n) for n in np.unique(sizes)], "model sizes (runs share trunks)"
    return [np.array([i]) for i in range(len(points))], "runs"


def bootstrap_refits(points: Points, fit: ParametricFit, *, n_boot: int = 200,
                     seed: int = 0) -> tuple[list[ParametricFit | None], dict]:
    """Approach 3 refitted on ``n_boot`` resamples (None where a resample cannot be fitted), and run info."""
    units, unit_name = resampling_units(points)
    rng = np.random.default_rng(seed)
    # one start, the full fit's optimum: a resample's optimum lies near it, and each extra start
    # (a grid point) costs 1.5-2x the evaluations for the same optimum on our data (BENCHMARKS.md)
    starts = [fit.theta]
    with single_threaded_blas():
        draws = [
            np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))]) for _ in range(n_boot)
        ]
        refits = [_refit(points, idx, starts, fit.delta) for idx in draws]
    failed = sum(refit is None for refit in refits)  # a resample with one size or too few points
    return refits, {"n_boot": n_boot, "n_ok": n_boot - failed, "unit": unit_name, "n_units": len(units)}


def samples_of(refits: list[ParametricFit | None],
               quantities: Callable[[ParametricFit], dict[str, float]]) -> dict[str, np.ndarray]:
    """``quantities`` of every refit that succeeded, as arrays by name."""
    samples: dict[str, list[float]] = {}
    for refit in refits:
        if refit is not None:
            for key, value in quantities(refit).items():
                samples.setdefault(key, []).append(float(value))
    return {k: np.asarray(v) for k, v in samples.items()}


def bootstrap(points: Points, fit: ParametricFit, quantities: Callable[[ParametricFit], dict[str, float]],
              *, n_boot: int = 200, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Refit approach 3 on ``n_boot`` resamples; returns samples of ``quantities(refit)`` and run info."""
    refits, info = bootstrap_refits(points, fit, n_boot=n_boot, seed=seed)
    return samples_of(refits, quantities), info


def _refit(points: Points, idx: np.ndarray, starts: list, delta: float) -> ParametricFit | None:
    try:
        check_points(points.params[idx], points.tokens[idx], points.loss[idx])
    except ScalingError:
        return None
    return fit_parametric(points.params[idx], points.tokens[idx], points.loss[idx], init=starts, grid=False,
                          delta=delta)


def percentile_interval(samples: np.ndarray, ci: float = 0.95) -> list[float] | None:
    """[lo, hi] percentile interval of finite ``samples``; None with fewer than 10 of them."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 10:
        return None
    lo, hi = np.quantile(s, [(1 - ci) / 2, (1 + ci) / 2])
    return [float(lo), float(hi)]


def prediction_interval(
    curve_samples: np.ndarray | None,
    point: float,
    residuals: np.ndarray,
    ci: float = 0.95,
    *,
    n_params: int = 0,
    total_draws: int = 4000,
    seed: int = 0,
) -> list[float]:
    """Interval for a new run's loss: bootstrap curves (or the point estimate) × exp(resampled residual).

    In-sample residuals of a fit with ``n_params`` parameters understate the noise; they are scaled by
    sqrt(n / (n − n_params)) first.
    """
    rng = np.random.default_rng(seed)
    res = np.asarray(residuals, dtype=float)
    res = res - res.mean() if res.size else np.zeros(1)
    if res.size > n_params > 0:
        res = res * np.sqrt(res.size / (res.size - n_params))
    base = (
        np.asarray(curve_samples, dtype=float)
        if curve_samples is not None and len(curve_samples)
        else np.array([point])
    )
    base = base[np.isfinite(base)]
    per = max(1, -(-total_draws // base.size))
    noisy = np.repeat(base, per) * np.exp(rng.choice(res, base.size * per, replace=True))
    lo, hi = np.quantile(noisy, [(1 - ci) / 2, (1 + ci) / 2])
    return [float(lo), float(hi)]


def backtest(points: Points, ci: float = 0.95, *, n_boot: int = 0, seed: int = 0,
             delta: float = HUBER_DELTA) -> dict:
    """Fit without the largest model size, predict its runs, and report the error.

    ``delta``: the Huber δ of the full fit, so that the backtest scores the same estimator.
    With ``n_boot`` > 0 the intervals come from bootstrap refits of the smaller sizes plus residual
    noise, as for any prediction (residual noise alone understates how far a law can miss).
    """
    size_of = representative(points.params, CELL_TOLERANCE_DEX)
    sizes = np.unique(size_of)
    if sizes.size < 3:
        return {"skipped": f"needs at least 3 model sizes; got {sizes.size}"}
    held = size_of == sizes[-1]
    try:
        fit = fit_parametric(points.params[~held], points.tokens[~held], points.loss[~held], delta=delta)
    except ScalingError as e:
        return {"skipped": f"fit without the largest size impossible: {e}"}
    pred = fit.predict(points.params[held], points.tokens[held])
    actual = points.loss[held]
    rel = (pred - actual) / actual
    samples: dict[str, np.ndarray] = {}
    if n_boot:
        def held_losses(refit: ParametricFit) -> dict[str, float]:
            return {
                f"held_{i}": v for i, v in enumerate(refit.predict(points.params[held], points.tokens[held]))
            }

        samples, _ = bootstrap(
            points.subset(np.flatnonzero(~held)), fit, held_losses, n_boot=n_boot, seed=seed
        )
    bands = [
        prediction_interval(
            samples.get(f"held_{i}"), p, fit.residuals, ci, n_params=N_PARAMETERS, seed=seed + i
        )
        for i, p in enumerate(pred)
    ]
    inside = [lo <= y <= hi for (lo, hi), y in zip(bands, actual, strict=True)]
    return {
        "held_out_params": float(sizes[-1]),
        "n_held_out": int(held.sum()),
        "n_fitted": int((~held).sum()),
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
        "mean_rel_error": float(np.mean(rel)),
        "within_interval": int(sum(inside)),
        "interval_bootstrap": n_boot,
        "points": [
            {
                "params": float(n),
                "tokens": float(d),
                "loss": float(y),
                "predicted": float(p),
                "lo": b[0],
                "hi": b[1],
            }
            for n, d, y, p, b in zip(
                points.params[held], points.tokens[held], actual, pred, bands, strict=True
            )
        ],
        "fit_without_largest": {"E": fit.E, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a},
    }
