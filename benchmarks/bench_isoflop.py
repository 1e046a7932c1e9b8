"""Approach 2 on Chinchilla-like IsoFLOP grids: how far each method's exponent lands from the truth.

    python benchmarks/bench_isoflop.py [--grids 50] [--noise 0 0.005 0.01]

Each grid: the Chinchilla law (E=1.69, A=406.4, B=410.7, α=0.34, β=0.28; true a = β/(α+β) = 0.4516),
9 budgets from 6e18 to 3e21 FLOPs, 5-9 unevenly spaced sizes per budget spanning 1.4 decades around a
centre that misses the optimum by up to 0.25 decades, losses times (1 + N(0, noise)). The three methods
run on the same grids and the same noisy copies; the noise they perturb with is the true one (as a
measured seed spread would give). Printed per method and noise level: mean error of a (bias), mean
and largest |error|, how often the interval holds the true a, and its mean width. "parabola,
unweighted" is the parabola's optima through an unweighted regression, as approach 2 was computed
before the interpolating method.

    python benchmarks/bench_isoflop.py --shapes [--grids 40]

The three methods on other ladders and laws: clean profiles (the 0.5% default noise stated) on a wide
ladder (7-12 sizes over 2.4 decades, so gaps of up to half a decade next to the optimum), on laws
whose profiles are far more asymmetric (α=0.2, β=0.5 and α=0.5, β=0.2, centres up to 0.4 decades
off), and dense studies like the demo's (3 budgets of 10-11 sizes over 1 decade) with 1% and 2% noise.

    python benchmarks/bench_isoflop.py --few-budgets [--grids 100]

A study of 3 budgets (every fourth of the nine, 21x apart) with 8-10 sizes each, whose losses scatter by
1%, 1.4% or 2% while 1% is stated (the seed noise, with per-size quirks on top that a seed does not
move). Side by side on the same grids: the default, whose copies carry the quirks the profiles measure
(``fit_isoflop(profile_scatter=True)``), and the copies with the stated noise alone, widened to the
regression's t-interval at 1 degree of freedom where the optima scatter beyond it
(``profile_scatter=False``, approach 2 before). Printed: how often the interval holds the true a, its
median width, and how many intervals are wider than 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# the synthetic grids are test helpers; run from a checkout, the repository root makes them importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit.basics import fit_power_law  # noqa: E402
from scaling.fit.isoflop import fit_isoflop, fit_isoflop_methods  # noqa: E402
from scaling.fit.parametric import CHINCHILLA, ParametricFit  # noqa: E402
from tests.helpers.synthetic import isoflop_grid  # noqa: E402

LAW = ParametricFit.from_constants(**CHINCHILLA)
BUDGETS = np.geomspace(6e18, 3e21, 9)


def _row(name: str, noise: float, errors: list[float], covered: list[bool], widths: list[float]) -> str:
    e = np.asarray(errors)
    cover = f"{100 * np.mean(covered):.0f}%" if covered else "n/a"
    width = f"{np.mean(widths):.3f}" if widths else "n/a"
    return (f"| {name} | {100 * noise:g}% | {e.mean():+.4f} | {np.abs(e).mean():.4f} | "
            f"{np.abs(e).max():.4f} | {cover} | {width} |")


def _tally(stats: dict, fit, true_a: float, intervals: bool = True) -> None:
    """Add each method of ``fit`` (``fit_isoflop_methods``) to ``stats``: its error of a and, with
    ``intervals``, whether its interval holds ``true_a`` and how wide it is."""
    for method, s in fit.methods.items():
        errors, covered, widths = stats.setdefault(method, ([], [], []))
        if s["a"] is not None:
            errors.append(s["a"] - true_a)
        if intervals and s["a_ci"]:
            covered.append(s["a_ci"][0] <= true_a <= s["a_ci"][1])
            widths.append(s["a_ci"][1] - s["a_ci"][0])


FEW_BUDGETS = BUDGETS[::4]
STATED_NOISE = 0.01  # what the few-budget study states (a seed spread)


def few_budgets(grids: int) -> None:
    """The --few-budgets table: both interval rules on the same 3-budget grids with quirks."""
    print(f"true a = {LAW.a:.4f}; {grids} grids of 3 budgets per scatter level; "
          f"{100 * STATED_NOISE:g}% stated")
    print("| interval of a | losses scatter | interval holds a | median width | wider than 1 |")
    print("|---|---|---|---|---|")
    start = time.perf_counter()
    rules = {"copies carry the profiles' quirks (default)": True,
             "stated noise, else t at 1 dof (before)": False}
    for scatter in (0.01, 0.014, 0.02):
        rows: dict[str, tuple[list, list]] = {name: ([], []) for name in rules}
        for seed in range(grids):
            n, d, loss, c = isoflop_grid(LAW, FEW_BUDGETS, sizes=(8, 10), noise=scatter, seed=1000 + seed)
            for name, measured in rules.items():
                fit = fit_isoflop(n, d, loss, c, noise=STATED_NOISE * float(np.median(loss)), seed=seed,
                                  n_draws=300, profile_scatter=measured)
                if fit.a_ci:
                    rows[name][0].append(fit.a_ci[0] <= LAW.a <= fit.a_ci[1])
                    rows[name][1].append(fit.a_ci[1] - fit.a_ci[0])
        for name, (covered, widths) in rows.items():
            w = np.asarray(widths)
            print(f"| {name} | {100 * scatter:g}% | {100 * np.mean(covered):.0f}% of {len(covered)} | "
                  f"{np.median(w):.3f} | {int((w > 1).sum())} (widest {w.max():.2f}) |", flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


# name: (α, β, sizes per budget, half-width and centre offset in decades, budgets, noise levels)
SHAPES = {
    "wide ladder, clean": (0.34, 0.28, (7, 12), 1.2, 0.3, BUDGETS, (0.0,)),
    "α 0.2, β 0.5, clean": (0.2, 0.5, (5, 9), 0.7, 0.4, BUDGETS, (0.0,)),
    "α 0.5, β 0.2, clean": (0.5, 0.2, (5, 9), 0.7, 0.4, BUDGETS, (0.0,)),
    "dense, 3 budgets": (0.34, 0.28, (10, 11), 0.5, 0.2, FEW_BUDGETS, (0.01, 0.02)),
}


def shapes(grids: int) -> None:
    """The --shapes table: each method's error of a on other ladders and laws."""
    print("| grids | noise | method | mean error of a | mean abs error | max abs error | interval holds a | "
          "median width |")
    print("|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for name, (alpha, beta, sizes, half_width, offset, budgets, noises) in SHAPES.items():
        law = ParametricFit.from_constants(**{**CHINCHILLA, "alpha": alpha, "beta": beta})
        for noise in noises:
            stats: dict[str, tuple[list, list, list]] = {}
            for seed in range(grids):
                n, d, loss, c = isoflop_grid(law, budgets, sizes=sizes, half_width_dex=half_width,
                                             offset_dex=offset, noise=noise, seed=seed)
                sigma = noise * float(np.median(loss)) if noise else None
                fit = fit_isoflop_methods(n, d, loss, c, noise=sigma, seed=seed, n_draws=300 if noise else 0)
                _tally(stats, fit, law.a)
            for method, (errors, covered, widths) in stats.items():
                e = np.asarray(errors)
                held = f"{100 * np.mean(covered):.0f}% of {len(covered)}" if covered else "n/a"
                width = f"{np.median(widths):.3f}" if widths else "n/a"
                print(f"| {name} (a={law.a:.3f}) | {100 * noise:g}% | {method} | {e.mean():+.4f} | "
                      f"{np.abs(e).mean():.4f} | {np.abs(e).max():.4f} | {held} | {width} |", flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=50)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.005, 0.01])
    parser.add_argument("--few-budgets", action="store_true",
                        help="compare a's interval rules on 3-budget studies with per-size quirks")
    parser.add_argument("--shapes", action="store_true",
                        help="the methods on a wide ladder, strongly asymmetric laws and dense 3-budget "
                             "studies")
    args = parser.parse_args()
    if args.few_budgets:
        few_budgets(args.grids)
        return
    if args.shapes:
        shapes(args.grids)
        return
    print(f"true a = {LAW.a:.4f}; {args.grids} grids per noise level")
    print("| method | noise | mean error | mean abs error | max abs error | interval holds a | mean width |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for noise in args.noise:
        stats: dict[str, tuple[list, list, list]] = {}
        for seed in range(args.grids):
            n, d, loss, c = isoflop_grid(LAW, BUDGETS, noise=noise, seed=seed)
            sigma = noise * float(np.median(loss)) if noise else None  # None: the default 0.5%
            fit = fit_isoflop_methods(n, d, loss, c, noise=sigma, seed=seed)
            _tally(stats, fit, LAW.a, intervals=bool(noise))
            parabola = fit_isoflop(n, d, loss, c, method="parabola", n_draws=0)
            optima = [(b["flops"], b["n_opt"]) for b in parabola.budgets]
            law = fit_power_law(*zip(*optima, strict=True))
            stats.setdefault("parabola, unweighted", ([], [], []))[0].append(law.exponent - LAW.a)
        for method, (errors, covered, widths) in stats.items():
            print(_row(method, noise, errors, covered, widths), flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
