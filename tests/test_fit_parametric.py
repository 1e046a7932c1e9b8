"""Approach 3: the parametric law, its optimiser, and the allocation it implies — on published constants."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.knobs import pooled_log_seed_noise, seed_settings
from scaling.fit.parametric import (
    CHINCHILLA,
    HUBER_DELTA,
    HUBER_DELTA_FLOOR,
    ParametricFit,
    fit_parametric,
    huber_delta,
)
from scaling.fit.steps import best_settings, fit_law
from tests.helpers.hparam_landscape import as_points
from tests.helpers.knob_ladders import ladder, law
from tests.helpers.synthetic import ladder_grid

# a realistic ladder: 8 sizes over 2.5 decades, 6 token counts per size
SIZES = np.logspace(7, 9.5, 8)
TOKENS = np.logspace(8.5, 11, 6)
TRUE = ParametricFit.from_constants(E=1.8, A=900.0, B=2000.0, alpha=0.40, beta=0.33)


def test_chinchilla_closed_form_allocation_gives_32b_params_at_gopher_compute():
    law = ParametricFit.from_constants(**CHINCHILLA)
    assert law.a == pytest.approx(0.452, abs=0.001)
    assert law.b == pytest.approx(0.548, abs=0.001)
    n_opt = law.n_opt(5.76e23)
    assert 31e9 < n_opt < 33.5e9  # Hoffmann et al. Table 3 / Besiroglu et al.: ~32B from approach 3's fit
    assert 6 * n_opt * law.d_opt(5.76e23) == pytest.approx(5.76e23, rel=1e-9)


def test_recovers_allocation_exponent_from_noisy_synthetic_ladder():
    n, d, loss = ladder_grid(TRUE, SIZES, TOKENS, noise=0.01, seed=3)
    fit = fit_parametric(n, d, loss)
    assert fit.a == pytest.approx(TRUE.a, abs=0.03)
    assert fit.E == pytest.approx(TRUE.E, rel=0.05)
    assert fit.residual_std == pytest.approx(0.01, rel=0.3)  # the noise we put in, not an over-fit


def test_start_at_chinchilla_constants_reaches_the_true_optimum_of_other_data():
    n, d, loss = ladder_grid(TRUE, SIZES, TOKENS, noise=0.0)
    fit = fit_parametric(n, d, loss, init=CHINCHILLA, grid=False)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, name) == pytest.approx(getattr(TRUE, name), rel=2e-3), name
    assert fit.grad_norm < 1e-6
    assert fit.objective < 1e-9


def test_start_at_chinchilla_matches_grid_search_optimum_on_noisy_data():
    n, d, loss = ladder_grid(TRUE, SIZES, TOKENS, noise=0.01, seed=1)
    from_chinchilla = fit_parametric(n, d, loss, init=CHINCHILLA, grid=False)
    from_grid = fit_parametric(n, d, loss)
    assert from_chinchilla.objective == pytest.approx(from_grid.objective, rel=1e-6)
    assert from_chinchilla.a == pytest.approx(from_grid.a, abs=1e-4)


def test_scaled_objective_ends_with_a_smaller_gradient_than_the_unscaled_one():
    n, d, loss = ladder_grid(TRUE, SIZES, TOKENS, noise=0.01, seed=1)
    scaled = fit_parametric(n, d, loss, init=CHINCHILLA, grid=False)
    unscaled = fit_parametric(n, d, loss, init=CHINCHILLA, grid=False, scale_objective=False)
    assert scaled.objective <= unscaled.objective
    assert scaled.grad_norm < unscaled.grad_norm


def test_predict_matches_the_formula():
    law = ParametricFit.from_constants(**CHINCHILLA)
    assert law.predict(70e9, 1.4e12) == pytest.approx(1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)


@pytest.mark.parametrize(
    "params, tokens, loss, message",
    [
        ([1e6, 2e6, 3e6, 4e6], [1e8, 2e8, 3e8, 4e8], [3, 2.9, 2.8, 2.7], "at least 5 points"),
        ([1e6] * 6, [1e8, 2e8, 3e8, 4e8, 5e8, 6e8], [3, 2.9, 2.8, 2.7, 2.6, 2.5], "at least 2 model sizes"),
        ([1e6, 2e6, 3e6, 4e6, 5e6, 6e6], [1e8] * 6, [3, 2.9, 2.8, 2.7, 2.6, 2.5], "at least 2 token counts"),
        (
            [1e6, 2e6, -3e6, 4e6, 5e6, 6e6],
            [1e8, 2e8, 3e8, 4e8, 5e8, 6e8],
            [3, 2.9, 2.8, 2.7, 2.6, 2.5],
            "positive",
        ),
    ],
)
def test_unfittable_inputs_raise_one_line_errors(params, tokens, loss, message):
    with pytest.raises(ScalingError, match=message) as info:
        fit_parametric(params, tokens, loss)
    assert "\n" not in str(info.value)


def test_huber_delta_is_a_multiple_of_the_measured_noise_else_hoffmanns():
    assert huber_delta(None) == HUBER_DELTA == 1e-3
    assert huber_delta(0.004) == pytest.approx(1.345 * 0.004)
    assert huber_delta(0.0) == HUBER_DELTA_FLOOR  # seeds that agree exactly leave a usable δ


def test_at_the_noise_scale_delta_an_outlier_is_still_capped():
    n, d, loss = ladder_grid(TRUE, SIZES, TOKENS, noise=0.005, seed=4)
    loss[5] *= 1.15  # one run far off (a bad node, a half-diverged run), at the smallest size's longest run

    def law_error(delta: float) -> float:  # RMS of log(fitted law / true law) over the grid
        fit = fit_parametric(n, d, loss, delta=delta)
        return float(np.sqrt(np.mean(np.log(fit.predict(n, d) / TRUE.predict(n, d)) ** 2)))

    at_noise, hoffmann, squares = law_error(huber_delta(0.005)), law_error(HUBER_DELTA), law_error(1.0)
    assert at_noise < 0.004 and at_noise < squares / 2  # δ = 1.0 holds every residual: least squares
    assert at_noise <= hoffmann * 1.05  # no less robust than least absolute deviations, and closer


def test_the_law_of_runs_with_repeated_seeds_takes_delta_from_their_spread():
    pts = ladder({"gelu": law(), "swiglu": law()}, np.random.default_rng(5), seeds=2, noise=0.006)
    tuned, _ = best_settings(pts)
    spread = pooled_log_seed_noise(seed_settings(pts))
    assert spread == pytest.approx(0.006, rel=0.25)
    assert fit_law(tuned, pts).delta == pytest.approx(1.345 * spread)
    one_seed = pts.subset(np.flatnonzero(pts.seed == 0))
    assert fit_law(one_seed).delta == HUBER_DELTA  # nothing measures the noise: Hoffmann et al.'s δ
    assert "huber_delta" in fit_law(tuned, pts).to_dict()


def _searched_study(small_budget_losses: dict[float, float], seeds: bool = True,
                    search_everywhere: bool = False):
    """Three sizes at two budgets, each at its rule's learning rate 0.01·(N/1e7)^-0.5; the 2e7 model at the
    small budget also at 0.5x and 2x the rule (``small_budget_losses``: factor -> loss), or every cell at
    all three with ``search_everywhere``; three seeds of one cell measure a noise of about 0.01."""
    rows = []  # (params, tokens, loss, lr)
    for n, base in ((1e7, 3.30), (2e7, 3.20), (4e7, 3.15)):
        rule = 0.01 * (n / 1e7) ** -0.5
        for tokens, loss in ((1e9, base), (4e9, base - 0.3)):
            grid = small_budget_losses if (n == 2e7 and tokens == 1e9) else {1.0: loss}
            if search_everywhere:
                grid = {0.5: loss - 0.004, 1.0: loss, 2.0: loss + 0.006}
            rows += [(n, tokens, value, rule * factor) for factor, value in grid.items()]
    if seeds:
        rows += [(4e7, 4e9, 2.85 + dv, 0.01 * 4 ** -0.5) for dv in (0.012, -0.008)]
    return as_points(dict(zip(("params", "tokens", "loss", "lr"), np.array(rows).T, strict=True)))


def test_a_searched_cells_luck_does_not_displace_the_setting_the_other_cells_ran():
    """The best of three noisy runs is lower than any one by chance. An LR grid at one budget, the rule
    elsewhere: the searched cell keeps the rule's run unless another beats it beyond the seed noise."""
    def kept_lr(pts) -> float:
        tuned, _ = best_settings(pts)
        (i,) = np.flatnonzero((tuned.params == 2e7) & (tuned.tokens == 1e9))
        return float(tuned.lr[i]) / (0.01 * 2 ** -0.5)

    luck = {0.5: 3.195, 1.0: 3.20, 2.0: 3.21}  # 0.005 better: well within 1.96 x 0.01 x sqrt(2)
    assert kept_lr(_searched_study(luck)) == pytest.approx(1.0)
    assert kept_lr(_searched_study({0.5: 3.25, 1.0: 3.20, 2.0: 3.14})) == pytest.approx(2.0)  # beyond it
    assert kept_lr(_searched_study(luck, seeds=False)) == pytest.approx(0.5)  # no noise measured: the best
    everywhere = _searched_study(luck, search_everywhere=True)  # no cell ran one setting: each its best
    tuned, _ = best_settings(everywhere)
    assert np.allclose(tuned.lr, 0.5 * 0.01 * (tuned.params / 1e7) ** -0.5)


def test_a_failed_line_search_with_no_slope_left_is_the_optimum():
    """L-BFGS-B can end with ABNORMAL_TERMINATION_IN_LNSRCH at the optimum (no descent left to find at
    machine precision): that is no warning; a stop with the gradient still large is."""
    from scaling.fit.parametric import STATIONARY_GRADIENT, reached_optimum

    assert reached_optimum(True, 1.0)
    assert reached_optimum(False, STATIONARY_GRADIENT / 100)
    assert not reached_optimum(False, STATIONARY_GRADIENT * 100)
