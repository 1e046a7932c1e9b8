"""LR and batch-size laws in N and D on synthetic landscapes whose optimum law is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling.fit.hparam_laws import choose_form, fit_optimum_law
from scaling.fit.hparam_surface import fit_surface, lacks_fit
from scaling.fit.hparams import fit_hparam_laws, with_hparams
from tests.helpers.hparam_landscape import (
    TRUTH,
    as_points,
    batch_star,
    landscape,
    lr_star,
    published_landscape,
    published_optimum,
)

# A published-style sweep: one grid of 8 learning rates x 8 batch sizes (2x apart) for every cell,
# sizes 60M-1B at 10 and 160 tokens per parameter, Step Law's optimum law as the truth.
FIXED_GRID = {
    "law": "step_law",
    "cells": [(n, n * r) for n in np.geomspace(6e7, 1e9, 4) for r in (10, 160)],
    "lr_values": 2.4e-4 * 2.0 ** np.arange(8),
    "batch_values": 16384 * 2.0 ** np.arange(8),
}


def _cell_optima_over_truth(out: dict, column: str) -> np.ndarray:
    return np.array(
        [
            c["opt"] / published_optimum("step_law", column, c["params"], c["tokens"])
            for c in out[column]["cells"]
            if not c["at_edge"]
        ]
    )


@pytest.fixture(scope="module")
def fitted():
    return fit_hparam_laws(as_points(landscape(seed=3)), 1e9, 2e10, predict=[(1e9, 1e11)], n_boot=100, seed=1)


def test_laws_in_n_and_d_recover_both_exponents_within_their_intervals(fitted):
    for column, truth in TRUTH.items():
        law = fitted[column]["law"]
        assert law["form"] == "N,D" and fitted[column]["form"] == "N,D"
        for axis, exponent in truth.items():
            lo, hi = law["exponent_ci"][axis]
            assert lo <= exponent <= hi, (column, axis, lo, hi)
            assert hi - lo < 0.15  # an interval that says something
    assert fitted["lr"]["lo"] <= lr_star(1e9, 2e10) <= fitted["lr"]["hi"]
    assert fitted["batch_size"]["lo"] <= batch_star(1e9, 2e10) <= fitted["batch_size"]["hi"]


def test_the_law_in_n_and_d_beats_n_alone_on_held_out_sizes(fitted):
    errors = fitted["lr"]["form_errors"]
    assert errors["N,D"] < 0.5 * errors["N"]  # the optimum moves with D: N alone cannot follow it


def test_backtest_penalty_of_held_out_cells_is_small(fitted):
    bt = fitted["backtest"]
    kinds = {c["held_out"] for c in bt["cells"]}
    assert kinds == {"size", "largest budget"}  # 3 budgets: both kinds of fold
    assert bt["n_cells"] == 12 + 4
    assert bt["mean_penalty"] <= 0.0015 and bt["max_penalty"] < 0.005
    assert all(c["penalty"] >= 0 and set(c["predicted"]) == {"lr", "batch_size"} for c in bt["cells"])


def test_every_prediction_carries_lr_and_batch_with_intervals(fitted):
    preds = with_hparams([{"params": 1e9, "tokens": 1e11}, {"params": 1e9, "tokens": 2e10}], fitted)
    for p in preds:
        assert p["lr"] == pytest.approx(lr_star(p["params"], p["tokens"]), rel=0.15)
        assert p["batch_tokens"] == pytest.approx(batch_star(p["params"], p["tokens"]), rel=0.3)
        assert (
            p["lr_ci"][0] < p["lr"] < p["lr_ci"][1]
            and p["batch_ci"][0] < p["batch_tokens"] < p["batch_ci"][1]
        )
    assert preds[0]["lr"] > preds[1]["lr"]  # five times the tokens: a larger LR (D exponent > 0)


def test_joint_surface_reads_the_optimum_at_the_other_hyperparameters_optimum():
    # a tilted valley: on the batch row tried, the LR optimum is off; the joint vertex is not
    cols = landscape(
        seed=0,
        noise=0.0,
        sizes=(1e8,),
        tokens_per_param=(20,),
        curvature=(0.01, 0.005, 0.008),
        batch_factors=(1 / 4, 1 / 2, 1, 2),
    )
    values = np.column_stack([cols["lr"], cols["batch_size"]])
    s = fit_surface(values, cols["loss"], ("lr", "batch_size"))
    assert s.method == "quadratic with cross term"
    n, d = 1e8, 2e9
    assert s.optimum["lr"] == pytest.approx(lr_star(n, d), rel=0.01)
    assert s.optimum["batch_size"] == pytest.approx(batch_star(n, d), rel=0.01)


def test_a_diverged_corner_does_not_move_the_optimum():
    clean = fit_hparam_laws(as_points(landscape(seed=2)), 1e9, 2e10, n_boot=0)
    broken = fit_hparam_laws(as_points(landscape(seed=2, diverged_corner=True)), 1e9, 2e10, n_boot=0)
    for column in ("lr", "batch_size"):
        assert broken[column]["prediction"] == pytest.approx(clean[column]["prediction"], rel=0.05)


def test_an_optimum_beyond_the_grid_is_a_bound_left_out_of_the_law():
    near = landscape(seed=0, sizes=(3e7, 1e8, 3e8))
    far = landscape(
        seed=1, sizes=(1e7,), lr_factors=(1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4)
    )  # stops below the optimum
    cols = {k: np.concatenate([far[k], near[k]]) for k in near}
    out = fit_hparam_laws(as_points(cols), 1e9, 2e10, n_boot=0)
    bounds = [c for c in out["lr"]["cells"] if c["at_edge"]]
    assert bounds and all(c["params"] == pytest.approx(1e7) and c["bound"] == "above" for c in bounds)
    assert "bound" in out["lr"]["note"]
    assert out["lr"]["law"]["n_points"] == 12 - len(bounds)
    assert out["lr"]["law"]["exponents"]["N"] == pytest.approx(TRUTH["lr"]["N"], abs=0.05)


def test_one_budget_gives_a_law_in_n_and_one_ratio_a_law_in_compute():
    n = np.array([1e7, 3e7, 1e8, 3e8])
    opt = 0.02 * n**-0.3
    form, errors, why = choose_form(n, np.full(4, 1e9), opt)
    assert form == "N" and "N,D" not in errors and "budget does not vary" in why
    noisy = opt * np.exp(np.random.default_rng(0).normal(0, 0.1, 4))
    form, errors, why = choose_form(n, 20 * n, noisy)  # tokens per parameter fixed: N and D move together
    assert form == "C" and "N,D" not in errors and "one tokens-per-parameter ratio" in why
    law = fit_optimum_law("C", n, 20 * n, opt)
    assert law.exponents["C"] == pytest.approx(-0.15)  # C ∝ N², so N^-0.3 = C^-0.15


def test_one_isoflop_budget_gives_no_law_in_compute():
    # One IsoFLOP budget: 6·N·D varies by a few percent (tokens follow the model's real FLOPs per token),
    # which a law in C would read as a steep trend; the demo's LR grid once got an exponent of -9.9.
    n = np.array([5.1e3, 7.9e3, 1.16e4, 1.23e4, 1.57e4])
    d = 9.4e9 / (6 * n) * np.array([1.0, 0.97, 1.04, 0.98, 1.03])
    opt = 0.05 * (n / 1e4) ** -0.5 * np.array([1.3, 0.8, 1.1, 0.9, 1.2])
    form, errors, why = choose_form(n, d, opt)
    assert form == "N" and set(errors) == {"N"} and "budget does not vary" in why


def test_an_unswept_batch_is_null_with_a_reason_in_every_prediction():
    cols = landscape(seed=0, batch_factors=(1,))
    del cols["batch_size"]
    out = fit_hparam_laws(as_points(cols), 1e9, 2e10, n_boot=0)
    (p,) = with_hparams([{"params": 1e9, "tokens": 2e10}], out)
    assert p["batch_tokens"] is None and p["batch_ci"] is None and p["batch_tokens_note"] == "not swept"
    assert p["lr"] == pytest.approx(lr_star(1e9, 2e10), rel=0.15)
    assert all(c["method"] == "parabola" for c in out["lr"]["cells"])


def test_a_law_whose_coefficient_overflows_a_float_still_round_trips_through_strict_json():
    import json

    from scaling.fit.hparam_laws import OptimumLaw

    steep = OptimumLaw("C", 800.0, {"C": -30.0}, 0.1, 5)  # coef = e^800 at C = 1; finite at real budgets
    entry = json.loads(json.dumps(steep.to_dict(), allow_nan=False))
    assert entry["coef"] is None and entry["log_coef"] == 800.0
    back = OptimumLaw.from_dict(entry)
    assert back(1e6, 1e7) == pytest.approx(steep(1e6, 1e7)) and np.isfinite(back(1e6, 1e7))
    plain = OptimumLaw("N", np.log(0.02), {"N": -0.3}, 0.1, 5)
    assert OptimumLaw.from_dict({k: v for k, v in plain.to_dict().items() if k != "log_coef"})(1e6, 1e7) == \
        pytest.approx(plain(1e6, 1e7))  # a fit.json written before log_coef existed


def test_lack_of_fit_tells_a_lopsided_bowl_from_a_quadratic_one():
    x, y = (g.ravel() for g in np.meshgrid(np.linspace(-1, 1, 6), np.linspace(-1, 1, 5)))
    z = np.column_stack([x, y])
    rng = np.random.default_rng(0)
    quadratic = 3 + 0.02 * x**2 + 0.01 * y**2 + rng.normal(0, 1e-4, x.size)
    lopsided = 3 + 0.02 * (np.exp(2 * x) - 1 - 2 * x) + 0.01 * y**2 + rng.normal(0, 1e-4, x.size)
    assert lacks_fit(z, lopsided) and not lacks_fit(z, quadratic)
    assert not lacks_fit(z[:7], lopsided[:7])  # too few settings to tell: the quadratic stands


def test_a_lopsided_bowl_on_a_fixed_grid_gives_each_cells_optimum_not_the_gentle_sides():
    # a learning rate too high costs more than one as much too low: a quadratic over the whole grid
    # puts the vertex about half the true optimum; the surface near the optimum does not
    cols = published_landscape(**FIXED_GRID, seed=0, noise=0.001)
    out = fit_hparam_laws(as_points(cols), 7e9, 1.4e12, n_boot=0)
    ratio = _cell_optima_over_truth(out, "lr")
    assert ratio.size >= 6 and 0.8 < np.exp(np.log(ratio).mean()) < 1.2, ratio
    assert all(c["method"].startswith("quadratic") for c in out["lr"]["cells"])
    narrowed = [c for c in out["lr"]["cells"] if c["window"].startswith("within")]
    assert len(narrowed) >= len(out["lr"]["cells"]) // 2  # fit.json and the report say which
    assert out["lr"]["law"]["exponents"]["N"] == pytest.approx(-0.713, abs=0.08)
    assert out["lr"]["prediction"] == pytest.approx(published_optimum("step_law", "lr", 7e9, 1.4e12), rel=0.3)


def test_a_symmetric_bowl_keeps_the_quadratic_over_all_plausible_settings():
    cols = published_landscape(**FIXED_GRID, seed=0, noise=0.001, skew=(0.0, 0.0))
    values = np.column_stack([cols["lr"], cols["batch_size"]])
    n, d = FIXED_GRID["cells"][3]
    cell = (cols["params"] == n) & (cols["tokens"] == d)
    s = fit_surface(values[cell], cols["loss"][cell], ("lr", "batch_size"))
    assert s.window == "all plausible settings" and s.n_used > 9
    assert s.optimum["lr"] == pytest.approx(published_optimum("step_law", "lr", n, d), rel=0.05)


def test_optima_beyond_the_grid_on_one_side_in_many_cells_are_a_warning(tmp_path):
    from scaling.fit.options import FitOptions
    from scaling.fit.pipeline import fit_runs

    near = landscape(seed=0, sizes=(1e8, 3e8))
    below = landscape(seed=1, sizes=(1e7, 3e7), lr_factors=(1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4))
    cols = {k: np.concatenate([below[k], near[k]]) for k in near}
    options = FitOptions(n_boot=0, plots=False, wandb="disabled")
    warnings = fit_runs(as_points(cols), tmp_path / "fit", options)["warnings"]
    above = "lr: in 6 of 12 cells the best value lies above the largest tried"
    assert any(w.startswith(above) and "extend the sweep up" in w for w in warnings)
    assert not any(w.startswith("batch_size: in") for w in warnings)
    warnings = fit_runs(as_points(near), tmp_path / "fit2", options)["warnings"]
    assert not any(w.startswith("lr: in") for w in warnings)


def test_a_run_that_diverged_above_the_best_brackets_the_optimum(tmp_path):
    # an LR sweep whose largest learning rate blew up (its loss written "nan"): the best finished one is
    # the top of the finished grid, but not a bound, since the optimum lies below the diverged rate
    from scaling.fit import load_points
    from tests.helpers.synthetic import write_csv

    cols = landscape(seed=0, sizes=(1e7, 3e7, 1e8), tokens_per_param=(20,), lr_factors=(1 / 4, 1 / 2, 1, 2),
                     batch_factors=(1,), offset=(1.0, 1.0))
    top = cols["lr"] == np.array([cols["lr"][(cols["params"] == n)].max() for n in cols["params"]])
    cols["loss"] = np.where(top, np.nan, cols["loss"])
    path = write_csv(tmp_path / "sweep.csv", cols["params"], cols["tokens"], cols["loss"], lr=cols["lr"])
    points = load_points([path])
    assert len(points) == 9 and len(points.diverged) == 3
    out = fit_hparam_laws(points, 1e9, 2e10, n_boot=0)
    assert not any(c["at_edge"] for c in out["lr"]["cells"])
    assert all(c["method"] == "best setting tried, below a run that diverged" for c in out["lr"]["cells"])
    assert out["lr"]["prediction"] == pytest.approx(lr_star(1e9, 2e10), rel=0.1)
    finished = load_points([path], exclude_diverged=False)  # kept as rows: NaN losses, dropped, no bracket
    out = fit_hparam_laws(finished, 1e9, 2e10, n_boot=0)
    assert all(c["bound"] == "above" for c in out["lr"]["cells"])


def test_the_report_says_which_cells_were_fitted_near_their_optimum(tmp_path):
    from scaling.fit.options import FitOptions
    from scaling.fit.pipeline import fit_runs

    cols = published_landscape(**FIXED_GRID, seed=0, noise=0.001)
    fit_runs(as_points(cols), tmp_path / "fit", FitOptions(n_boot=0, plots=False, wandb="disabled"))
    report = (tmp_path / "fit" / "report.md").read_text()
    assert "of the optimum (lopsided: one quadratic does not fit all settings)" in report


def test_a_diverged_setting_is_never_the_measured_loss_nearest_a_prediction():
    values = np.array([[1e-3], [2e-3], [4e-3], [8e-3]])
    losses = np.array([3.2, 3.1, 3.15, math.inf])  # the largest rate diverged
    s = fit_surface(values, losses, ("lr",))
    assert s.measured_near({"lr": 9e-3}) == 3.15 and s.bound["lr"] is None
