"""Uncertainty: bootstrap coverage, resampling units, prediction intervals, the backtest."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.fit.bootstrap import (
    backtest,
    bootstrap,
    percentile_interval,
    prediction_interval,
    resampling_units,
)
from scaling.fit.data import Points
from scaling.fit.parametric import ParametricFit, fit_parametric
from tests.helpers.synthetic import ladder_grid

TRUE = ParametricFit.from_constants(E=1.8, A=900.0, B=2000.0, alpha=0.40, beta=0.33)


def _points(n, d, loss, trunk=None) -> Points:
    nan = np.full(n.size, np.nan)
    runs = [f"r{i}" for i in range(n.size)]
    return Points(n, d, loss, 6 * n * d, nan, nan, nan.copy(), runs, trunk or list(runs))


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_true_values_near_nominal_rate():
    hits_a, hits_pred, widths, estimates = [], [], [], []
    for s in range(20):
        n, d, loss = ladder_grid(
            TRUE, np.logspace(7, 9, 6), np.logspace(8.5, 10.5, 5), noise=0.01, seed=100 + s
        )
        fit = fit_parametric(n, d, loss)
        samples, info = bootstrap(
            _points(n, d, loss), fit, lambda f: {"a": f.a, "p": float(f.predict(3e8, 3e9))}, n_boot=60, seed=s
        )
        assert info["n_ok"] == 60 and info["unit"] == "runs"
        lo, hi = percentile_interval(samples["a"])
        hits_a.append(lo <= TRUE.a <= hi)
        widths.append(hi - lo)
        estimates.append(fit.a)
        lo, hi = percentile_interval(samples["p"])
        hits_pred.append(lo <= TRUE.predict(3e8, 3e9) <= hi)
    assert np.mean(hits_a) >= 0.8 and np.mean(hits_pred) >= 0.8  # nominal 0.95; 20 trials
    # calibrated width: a 95% interval spans ~4 standard deviations of the estimate across datasets
    assert 0.5 < np.mean(widths) / (4 * np.std(estimates)) < 2.0


def test_runs_sharing_a_trunk_are_resampled_by_model_size():
    n = np.array([1e6, 1e6, 1e6, 4e6, 4e6, 4e6])
    d = np.array([1e8, 2e8, 4e8] * 2)
    pts = _points(n, d, TRUE.predict(n, d), trunk=["t1"] * 3 + ["t2"] * 3)
    units, name = resampling_units(pts)
    assert "model sizes" in name
    assert sorted(map(list, units)) == [[0, 1, 2], [3, 4, 5]]
    assert len(resampling_units(_points(n, d, TRUE.predict(n, d)))[0]) == 6


def test_prediction_interval_covers_new_noisy_runs():
    rng = np.random.default_rng(0)
    residuals = rng.normal(0, 0.02, 2000)
    lo, hi = prediction_interval(None, 3.0, residuals, 0.9)
    fresh = 3.0 * np.exp(rng.normal(0, 0.02, 4000))
    assert np.mean((fresh >= lo) & (fresh <= hi)) == pytest.approx(0.9, abs=0.03)


def test_backtest_predicts_the_held_out_largest_size():
    n, d, loss = ladder_grid(TRUE, np.logspace(7, 9, 6), np.logspace(8.5, 10.5, 5), noise=0.005, seed=2)
    out = backtest(_points(n, d, loss))
    assert out["held_out_params"] == pytest.approx(1e9)
    assert out["n_held_out"] == 5 and out["n_fitted"] == 25
    assert out["mean_abs_rel_error"] < 0.02
    biased = loss * np.where(n == n.max(), 1.10, 1.0)  # the largest size 10% worse than the law says
    assert backtest(_points(n, d, biased))["mean_rel_error"] < -0.05


def test_backtest_skips_with_two_sizes():
    n, d, loss = ladder_grid(TRUE, [1e7, 1e8], np.logspace(8.5, 10.5, 5))
    assert "3 model sizes" in backtest(_points(n, d, loss))["skipped"]


def test_backtest_intervals_with_bootstrap_include_the_law_s_own_uncertainty():
    n, d, loss = ladder_grid(TRUE, np.logspace(7, 9, 5), np.logspace(8.5, 10.5, 4), noise=0.02, seed=3)
    plain = backtest(_points(n, d, loss))
    boot = backtest(_points(n, d, loss), n_boot=60, seed=1)
    assert boot["interval_bootstrap"] == 60 and plain["interval_bootstrap"] == 0
    width = [p["hi"] - p["lo"] for p in plain["points"]]
    boot_width = [p["hi"] - p["lo"] for p in boot["points"]]
    assert np.mean(boot_width) > 1.1 * np.mean(width)  # extrapolating a refitted law adds spread
    assert [p["predicted"] for p in boot["points"]] == [p["predicted"] for p in plain["points"]]
