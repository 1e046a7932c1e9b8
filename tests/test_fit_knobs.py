"""Seeds and knobs (Welch's t-test against seed noise) and hyperparameter laws."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.fit.data import Points
from scaling.fit.hparams import fit_hparam_laws
from scaling.fit.knobs import analyze_knobs, compare


def _points(params, tokens, loss, lr=None, **knobs) -> Points:
    n = len(loss)
    nan = np.full(n, np.nan)
    lr_col = np.asarray(lr, dtype=float) if lr is not None else nan
    pts = Points(np.asarray(params, float), np.asarray(tokens, float), np.asarray(loss, float),
                 6.0 * np.asarray(params, float) * np.asarray(tokens, float), lr_col, nan.copy(), nan.copy(),
                 [f"r{i}" for i in range(n)], [f"r{i}" for i in range(n)])
    pts.knobs = {k: list(v) for k, v in knobs.items()}
    if lr is not None:
        pts.knobs["lr"] = list(lr_col)
    return pts


def _knob_study(effect: float, seeds: int = 5, noise: float = 0.01, seed: int = 0) -> Points:
    """Two sizes × knob {off, on} × seeds; 'on' changes the loss by ``effect`` and adds 1% parameters
    (as qk_norm does): runs within 2% of each other's size still compare as the same size."""
    rng = np.random.default_rng(seed)
    rows = [
        (
            n * (1.01 if level == "on" else 1.0),
            level,
            3.0 - 0.2 * i + (effect if level == "on" else 0.0) + rng.normal(0, noise),
        )
        for i, n in enumerate((1e6, 4e6))
        for level in ("off", "on")
        for _ in range(seeds)
    ]
    params, levels, loss = zip(*rows, strict=True)
    return _points(params, [1e8] * len(rows), loss, qk_norm=levels)


def test_a_real_knob_effect_is_called_real():
    out = analyze_knobs(_knob_study(effect=-0.05))
    knob = out["knobs"]["qk_norm"]
    assert knob["verdict"] == "real"
    assert knob["n_comparisons"] == 2  # one per size, not split by the knob's parameter count
    assert all(c["best"] == "on" and c["test"] == "pooled seed noise" for c in knob["comparisons"])
    assert out["seed_std"] == pytest.approx(0.01, rel=0.5)


def test_a_knob_with_no_effect_is_called_seed_noise():
    knob = analyze_knobs(_knob_study(effect=0.0))["knobs"]["qk_norm"]
    assert knob["verdict"] == "within seed noise"
    assert knob["n_real"] == 0


def test_welch_matches_a_hand_computation():
    a, b = [3.00, 3.02, 2.98, 3.01], [3.10, 3.05, 3.12]
    out = compare(a, b, None, 0)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    assert out["t"] == pytest.approx((np.mean(b) - np.mean(a)) / np.sqrt(va + vb))
    assert out["dof"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2))


def test_single_seed_levels_use_the_pooled_seed_noise():
    out = compare([3.0], [3.2], pooled_std=0.01, pooled_dof=10)
    assert out["test"] == "pooled seed noise" and out["p"] < 1e-6
    assert compare([3.0], [3.2], None, 0)["p"] is None


def test_lr_law_recovers_the_exponent_of_the_optimal_learning_rate():
    rows = []
    for n in (1e6, 3e6, 1e7, 3e7):
        best = 0.02 * n ** -0.3
        for f in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8):
            rows.append((n, best * f, 3.0 + 0.3 * np.log10(f) ** 2))
    params, lr, loss = zip(*rows, strict=True)
    out = fit_hparam_laws(_points(params, [1e8] * len(rows), loss, lr=lr), target_params=1e9, n_boot=50)["lr"]
    assert out["law"]["exponent"] == pytest.approx(-0.3, abs=0.01)
    assert out["prediction"] == pytest.approx(0.02 * 1e9 ** -0.3, rel=0.05)
    assert out["lo"] <= out["prediction"] <= out["hi"]


def test_lr_optimum_at_the_edge_of_the_sweep_is_not_extrapolated():
    lr = [1e-4, 3e-4, 1e-3]
    out = fit_hparam_laws(_points([1e6] * 3, [1e8] * 3, [3.3, 3.2, 3.1], lr=lr), n_boot=0)["lr"]
    assert out["cells"][0]["at_edge"]
    assert out["prediction"] is None and "widen" in out["note"]


def _lr_study(rng, factors, seeds: int, noise: float, exponent: float = -0.3) -> Points:
    """Four sizes; at each, lr = best·f for f in ``factors``; loss a parabola in log10(lr) plus noise."""
    rows = []
    for n in (1e6, 3e6, 1e7, 3e7):
        best = 0.02 * n ** exponent
        for f in factors:
            for _ in range(seeds):
                rows.append((n, best * f, 3.0 + 0.3 * np.log10(f) ** 2 + rng.normal(0, noise)))
    params, lr, loss = zip(*rows, strict=True)
    return _points(params, [1e8] * len(rows), loss, lr=lr)


@pytest.mark.parametrize(("factors", "seeds", "source"), [
    ((1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8), 1, "parabola residuals"),  # one seed, many values
    ((1 / 4, 1, 4), 2, "spread of rows sharing a setting"),  # few values, each twice (no seed column)
])
def test_lr_law_interval_covers_the_true_optimum_at_about_its_nominal_rate(factors, seeds, source):
    rng = np.random.default_rng(0)
    truth = 0.02 * 1e9 ** -0.3
    covered, noises = 0, []
    for _ in range(20):
        out = fit_hparam_laws(
            _lr_study(rng, factors, seeds, noise=0.02),
            target_params=1e9,
            n_boot=100,
            ci=0.9,
            seed=int(rng.integers(1 << 30)),
        )["lr"]
        assert out["noise_source"].startswith(source)
        noises.append(out["noise"])
        covered += out["lo"] <= truth <= out["hi"]
    assert np.median(noises) == pytest.approx(0.02, rel=0.35)  # the noise it resampled is the real one
    assert covered >= 14  # nominal 90 % of 20 = 18; a binomial 5 % lower bound is about 15


def test_lr_law_without_any_noise_estimate_gives_no_interval_and_says_why():
    out = fit_hparam_laws(_lr_study(np.random.default_rng(1), (1 / 4, 1, 4), seeds=1, noise=0.02),
                          target_params=1e9, n_boot=50)["lr"]
    assert out["prediction"] is not None and out["noise"] is None
    assert "lo" not in out and "repeat some settings with another seed" in out["note"]


def _many_cells(effect: float, cells: int, seeds: int, noise: float, seed: int = 0) -> Points:
    """``cells`` (size, tokens) cells × knob {off, on} × seeds; 'on' shifts the loss by ``effect``."""
    rng = np.random.default_rng(seed)
    rows = [
        (1e6 * 1.5**i, level, 3.0 - 0.01 * i + (effect if level == "on" else 0.0) + rng.normal(0, noise))
        for i in range(cells)
        for level in ("off", "on")
        for _ in range(seeds)
    ]
    params, levels, loss = zip(*rows, strict=True)
    return _points(params, [1e8] * len(rows), loss, qk_norm=levels)


def test_two_seeds_per_level_are_judged_against_the_pooled_seed_noise():
    knob = analyze_knobs(_many_cells(effect=-0.03, cells=10, seeds=2, noise=0.01))["knobs"]["qk_norm"]
    assert knob["verdict"] == "real"  # Welch on 2 vs 2 seeds (~1 degree of freedom) would call it noise
    assert {c["test"] for c in knob["comparisons"]} == {"pooled seed noise"}


def test_a_small_effect_in_the_same_direction_in_every_cell_is_real():
    knob = analyze_knobs(_many_cells(effect=-0.004, cells=40, seeds=2, noise=0.01))["knobs"]["qk_norm"]
    assert knob["n_real"] == 0  # no single cell can show it
    across = knob["across_cells"]
    assert across["levels"] == ["off", "on"] and across["n_cells"] == 40 and across["mean_diff"] < 0
    assert across["p"] < 0.05 and knob["verdict"] == "real"
    null = analyze_knobs(_many_cells(effect=0.0, cells=40, seeds=2, noise=0.01, seed=3))["knobs"]["qk_norm"]
    assert null["across_cells"]["p"] > 0.05 and null["verdict"] == "within seed noise"


def test_a_noise_law_in_steps_recovers_how_fast_the_seed_noise_falls():
    from scaling.fit.knobs import seed_noise_by_steps

    rng = np.random.default_rng(3)
    steps = [100, 200, 400, 800]
    settings = [{"n": 40, "steps": s, "losses": 3.5 + 0.04 * (s / 100) ** -0.5 * rng.standard_normal(40)}
                for s in steps]
    law = seed_noise_by_steps(settings)
    assert law.exponent == pytest.approx(-0.5, abs=0.15) and law.dof == 4 * 39
    assert law(100) == pytest.approx(0.04, rel=0.2) and law(800) == pytest.approx(0.04 / 8 ** 0.5, rel=0.2)
    assert law(10) == law(100) and law(5000) == law(800)  # clamped to the lengths measured
    # noise that seems to grow with steps is read as constant, not extrapolated upwards
    growing = [{"n": 40, "steps": s, "losses": 3.5 + 0.01 * (s / 100) * rng.standard_normal(40)}
               for s in steps]
    assert seed_noise_by_steps(growing).exponent == 0.0
    # repeated settings less than 2x apart in steps, or without a batch size, give no law
    assert seed_noise_by_steps([settings[1], {**settings[2], "steps": 300}]) is None
    assert seed_noise_by_steps([{**s, "steps": None} for s in settings]) is None


def test_each_setting_knows_its_optimizer_steps_where_the_batch_is_known():
    from scaling.fit.knobs import seed_settings

    pts = _points([1e6, 1e6, 2e6], [1e8, 1e8, 1e8], [3.0, 3.1, 2.9])
    pts.batch_size = np.array([1e5, 1e5, np.nan])
    small, large = sorted(seed_settings(pts), key=lambda s: s["params"])
    assert small["steps"] == 1000 and small["n"] == 2
    assert large["steps"] is None
