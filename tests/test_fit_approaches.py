"""Approaches 2 (IsoFLOP, both methods) and 1 (envelope), and the shared windowed parabola."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.fit.basics import fit_power_law, parabola_vertices, windowed_minimum
from scaling.fit.data import Curve, Points
from scaling.fit.envelope import average_curves, fit_envelope, one_curve_per_cell
from scaling.fit.isoflop import fit_isoflop, group_budgets
from scaling.fit.parametric import CHINCHILLA, ParametricFit

LAW = ParametricFit.from_constants(**CHINCHILLA)


def _isoflop_grid(noise: float = 0.0, seed: int = 0):
    """One fixed ladder of sizes for every budget (as a real study does): the optimum moves across it."""
    budgets = np.logspace(18, 21, 4)
    sizes = np.logspace(6.5, 10, 15)
    n = np.tile(sizes, budgets.size)
    c = np.repeat(budgets, sizes.size)
    d = c / (6 * n)
    loss = LAW.predict(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return n, d, loss, c


def test_isoflop_window_recovers_the_exponent_where_a_global_parabola_does_not():
    n, d, loss, c = _isoflop_grid()
    windowed = fit_isoflop(n, d, loss, c, method="parabola", window_dex=0.75)
    global_ = fit_isoflop(n, d, loss, c, method="parabola", window_dex=None)
    assert len(windowed.budgets) == 4
    assert windowed.a == pytest.approx(LAW.a, abs=0.01)
    assert abs(global_.a - LAW.a) > 0.03  # the asymmetric profile drags a wide parabola's vertex
    for b in windowed.budgets:  # per-budget optima sit where the closed form says
        assert b["n_opt"] == pytest.approx(LAW.n_opt(b["flops"]), rel=0.1)


@pytest.mark.parametrize("method", ["polynomial", "parabola", "interpolate"])
def test_isoflop_stays_close_with_noise(method):
    n, d, loss, c = _isoflop_grid(noise=0.003, seed=4)
    assert fit_isoflop(n, d, loss, c, method=method, noise=0.003 * 3).a == pytest.approx(LAW.a, abs=0.03)


@pytest.mark.parametrize("method", ["polynomial", "parabola", "interpolate"])
def test_isoflop_skips_a_budget_whose_minimum_is_at_the_edge_of_the_sizes(method):
    n, d, loss, c = _isoflop_grid()
    keep = ~((c == 1e18) & (n < 1e8))  # the smallest budget keeps only sizes above its optimum
    fit = fit_isoflop(n[keep], d[keep], loss[keep], c[keep], method=method)
    assert [s["flops"] for s in fit.skipped] == [pytest.approx(1e18)]
    assert "smallest size" in fit.skipped[0]["reason"]
    assert len(fit.budgets) == 3


def test_budgets_group_by_compute_within_tolerance_only():
    groups = group_budgets([1e18, 1.05e18, 1.1e18, 3e18, 3.1e18, 1e19])
    assert [sorted(g.tolist()) for g in groups] == [[0, 1, 2], [3, 4], [5]]


def test_windowed_minimum_averages_seeds_and_flags_edges():
    u = np.array([0, 0, 1, 1, 2, 2, 3, 3.0])
    v = (u - 1.5) ** 2 + np.array([0.1, -0.1] * 4)
    best = windowed_minimum(u, v, window=None)
    assert best.u == pytest.approx(1.5)
    assert not best.at_edge
    assert windowed_minimum(u, u, window=None).at_edge  # monotone: best is the first point


def test_parabola_vertices_of_many_columns_match_one_windowed_minimum_each():
    u = np.array([0.0, 0.4, 0.7, 1.5, 2.0, 2.2, 3.0])
    rng = np.random.default_rng(0)
    columns = (u[:, None] - rng.uniform(0, 3, 40)) ** 2 + rng.normal(0, 0.3, (u.size, 40))
    vertex, value, at_edge = parabola_vertices(u, columns, window=0.8)
    for j in range(columns.shape[1]):
        one = windowed_minimum(u, columns[:, j], window=0.8)
        if one is None:
            assert np.isnan(vertex[j])
        else:
            assert (vertex[j], value[j], at_edge[j]) == (
                pytest.approx(one.u),
                pytest.approx(one.value),
                one.at_edge,
            )


def test_power_law_fit_recovers_exponent_and_coefficient():
    x = np.logspace(6, 9, 5)
    law = fit_power_law(x, 0.02 * x ** -0.3)
    assert law.exponent == pytest.approx(-0.3)
    assert law.coef == pytest.approx(0.02)


def _curves(sizes, law=LAW, points=40):
    curves = []
    for n in sizes:
        tokens = np.logspace(7, 12, points)
        curves.append(Curve(f"n{n:.0e}", float(n), 6.0 * n, tokens, law.predict(n, tokens)))
    return curves


def test_envelope_of_training_curves_recovers_the_allocation_exponent():
    fit = fit_envelope(_curves(np.logspace(7, 10, 16)), n_bins=40)
    assert len(fit.points) >= 10
    assert fit.a == pytest.approx(LAW.a, abs=0.05)


def test_envelope_needs_three_sizes():
    fit = fit_envelope(_curves([1e7, 1e8]))
    assert fit.a is None and "3 model sizes" in fit.note


def test_the_envelope_interval_holds_the_true_exponent_and_widens_with_the_run_to_run_noise():
    curves = _curves(np.logspace(7, 10, 16))
    quiet = fit_envelope(curves, n_bins=40, noise=0.005)
    noisy = fit_envelope(curves, n_bins=40, noise=0.05)
    for fit in (quiet, noisy):
        assert fit.a_ci[0] <= fit.a <= fit.a_ci[1] and fit.n_draws > 0
        assert fit.to_dict()["a_ci"] == fit.a_ci and fit.to_dict()["b_ci"] == fit.b_ci
    assert noisy.a_ci[0] <= LAW.a <= noisy.a_ci[1]
    assert np.ptp(noisy.a_ci) > np.ptp(quiet.a_ci)
    assert fit_envelope(curves, n_bins=40, n_draws=0).a_ci is None  # no copies, no interval
    # per-size quirks beyond the noise widen it as that much more noise would
    quirky = fit_envelope(curves, n_bins=40, noise=0.005, excess_scatter=0.05)
    assert quirky.to_dict()["excess_scatter"] == 0.05 and np.ptp(quirky.a_ci) > np.ptp(quiet.a_ci)
    assert np.ptp(quirky.a_ci) == pytest.approx(np.ptp(noisy.a_ci), rel=0.1)


def test_average_curves_means_the_seeds_at_the_tokens_they_share():
    a = Curve("a", 1e6, 6e6, np.array([1.0, 2.0, 3.0]), np.array([4.0, 3.0, 2.0]), np.array([2.0, 1.5, 1.0]))
    b = Curve("b", 1e6, 6e6, np.array([3.0, 2.0, 5.0]), np.array([3.0, 4.0, 1.0]), np.array([1.5, 2.0, 0.5]))
    mean = average_curves([a, b])
    assert mean.tokens.tolist() == [2.0, 3.0] and mean.n_runs == 2 and mean.run == "a"
    assert mean.loss.tolist() == [3.5, 2.5] and mean.bpb.tolist() == [1.75, 1.25]
    assert average_curves([a]) is a
    lone = Curve("c", 1e6, 6e6, np.array([3.0, 9.0]), np.array([2.0, 1.0]))
    assert average_curves([a, lone]) is a  # one token count in common: no curve to average
    assert average_curves([a, Curve("d", 1e6, 6e6, a.tokens, a.loss)]).bpb is None


def _ladder_with_seeds() -> tuple[Points, Curve]:
    """Tuned runs of 16 sizes, one of them (returned) as five seeds 2σ apart (σ = 3%)."""
    curves = _curves(np.logspace(7, 10, 16))
    lucky_size = curves[7]
    seeds = [Curve(f"seed{z}", lucky_size.params, lucky_size.flops_per_token, lucky_size.tokens,
                   lucky_size.loss * np.exp(0.03 * z)) for z in (-2, -1, 0, 1, 2)]
    curves = curves[:7] + seeds + curves[8:]
    n = np.array([c.params for c in curves])
    tokens = np.array([c.tokens.max() for c in curves])
    nan = np.full(n.size, np.nan)
    runs = [c.run for c in curves]
    tuned = Points(n, tokens, np.array([c.loss[-1] for c in curves]), 6 * n * tokens, nan, nan.copy(),
                   nan.copy(), runs, list(runs), curves=curves)
    return tuned, lucky_size


def test_the_envelope_reads_one_curve_per_setting_so_the_luckiest_seed_does_not_win_it():
    """Five seeds of one size each compete for the envelope when read apart, and the luckiest (2σ below
    its setting's mean) wins compute that belongs to other sizes; averaged, they take only their own."""
    tuned, lucky_size = _ladder_with_seeds()
    apart = fit_envelope(tuned.curves, n_bins=40, n_draws=0)
    merged_curves = one_curve_per_cell(tuned)
    assert len(merged_curves) == 16 and max(c.n_runs for c in merged_curves) == 5
    merged = fit_envelope(merged_curves, n_bins=40, n_draws=0)
    assert merged.n_runs == 20
    won_apart = sum(p["params"] == lucky_size.params for p in apart.points)
    won_merged = sum(p["params"] == lucky_size.params for p in merged.points)
    assert won_apart > won_merged + 3
    assert abs(merged.a - LAW.a) < abs(apart.a - LAW.a)


def test_the_envelope_shifts_a_mean_of_n_seeds_by_its_own_noise_over_root_n():
    merged = one_curve_per_cell(_ladder_with_seeds()[0])
    noise = np.linspace(0.01, 0.03, len(merged))  # one σ per curve, in their order
    as_means = fit_envelope(merged, n_bins=40, noise=noise, n_draws=300)
    singles = [Curve(c.run, c.params, c.flops_per_token, c.tokens, c.loss) for c in merged]
    roots = np.sqrt([c.n_runs for c in merged])
    assert as_means.a_ci == fit_envelope(singles, n_bins=40, noise=noise / roots, n_draws=300).a_ci
    assert as_means.a_ci != fit_envelope(singles, n_bins=40, noise=noise, n_draws=300).a_ci
    # a curve too short to read is dropped with its σ, not shifting the others' onto the wrong curves
    short = Curve("short", 5e7, 3e8, np.array([1e9]), np.array([3.0]))
    with_short = fit_envelope([short, *merged], n_bins=40, noise=np.r_[9.0, noise], n_draws=300)
    assert with_short.a_ci == as_means.a_ci


def test_approach_1_takes_each_runs_noise_from_approach_2(monkeypatch):
    """The envelope step hands each curve the σ approach 2 gave its run (the noise law at its steps)."""
    import scaling.fit.steps as steps
    from scaling.fit.isoflop import IsoFlopFit
    from scaling.fit.options import FitOptions

    tuned, _ = _ladder_with_seeds()
    run_noise = {run: 0.01 + 0.001 * i for i, run in enumerate(tuned.run)}
    seen = {}
    monkeypatch.setattr(steps, "fit_envelope", lambda curves, **kw: seen.update(curves=curves, **kw))
    steps.envelope_step(tuned, IsoFlopFit(noise=0.02, run_noise=run_noise), FitOptions())
    assert list(seen["noise"]) == [run_noise[c.run] for c in seen["curves"]]
    steps.envelope_step(tuned, IsoFlopFit(), FitOptions())  # no seeds repeated: the envelope's default
    assert seen["noise"] is None
