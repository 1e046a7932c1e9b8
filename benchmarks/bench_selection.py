"""Which run of a searched cell the law of tuned runs takes: each cell's best setting, against the gate
(:func:`scaling.fit.knobs.one_setting_per_cell`: the setting the unsearched cells ran, unless another beats
it beyond the seed noise).

    python benchmarks/bench_selection.py [--draws 30]

Synthetic demo-like studies with a known truth: three IsoFLOP budgets 16x apart (5-6 sizes each, the law
fitted to the demo's own runs as the truth), every run at its size's rule learning rate, the smallest
budget also at 0.5x and 2x the rule (an LR grid there only), five seeds of one cell. A learning rate
f times the optimum costs ``0.05 * log10(f)^2`` nats; the rule is the optimum, or 2x / 4x it. Per
design it prints, over the draws, the bias and RMS error of approach 3's a and of its predicted loss at
100x the largest budget, for both choices side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit import load_points  # noqa: E402
from scaling.fit.parametric import ParametricFit  # noqa: E402
from scaling.fit.steps import best_settings, fit_law  # noqa: E402
from tests.helpers.synthetic import isoflop_grid, write_csv  # noqa: E402

TRUTH = ParametricFit.from_constants(E=0.965, A=6.94, alpha=0.146, B=14.7, beta=0.195)  # the demo's runs
BUDGETS = np.geomspace(3.75e10, 6e11, 3)
PENALTY_WIDTH = 0.05  # nats per decade² of learning rate off the optimum
SEED_CELL = 2  # which run of the larger budgets also runs four more seeds


def study(draw: int, noise: float, rule_off: float, folder: Path):
    """One study's points: the LR grid at the smallest budget, the rule (``rule_off`` x the optimum)
    elsewhere, log-normal noise ``noise``."""
    rng = np.random.default_rng(draw)
    n, d, loss, c = isoflop_grid(TRUTH, BUDGETS, sizes=(5, 6), noise=0.0, seed=draw)
    smallest, rows = c == c.min(), []
    for i in range(n.size):
        for factor in (0.5, 1.0, 2.0) if smallest[i] else (1.0,):
            penalty = PENALTY_WIDTH * np.log10(factor * rule_off) ** 2
            repeated = not smallest[i] and i == np.flatnonzero(~smallest)[SEED_CELL] and factor == 1
            seeds = 5 if repeated else 1
            for seed in range(seeds):
                rows.append((n[i], d[i], (loss[i] + penalty) * np.exp(rng.normal(0, noise)), c[i],
                             0.02 * n[i] ** -0.3 * factor, seed))
    r = np.array(rows)
    path = write_csv(folder / f"study{draw}.csv", r[:, 0], r[:, 1], r[:, 2], flops=r[:, 3], lr=r[:, 4],
                     seed=r[:, 5].astype(int))
    return load_points([path])


def each_cells_best(points):
    """The runs of each (size, tokens) cell's lowest-mean setting: the choice before the gate."""
    cells: dict = {}
    for i, cell in enumerate(points.cells()):
        cells.setdefault(cell, {}).setdefault(repr(points.lr[i]), []).append(i)
    keep = sorted(i for s in cells.values() for i in min(s.values(), key=lambda idx: points.loss[idx].mean()))
    return points.subset(keep)


def _rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)))


def _pair(best: np.ndarray, gate: np.ndarray, stat, scale: float = 1.0) -> str:
    return f"{stat(best) * scale:+.4f}/{stat(gate) * scale:+.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30)
    args = parser.parse_args()
    target = 100 * BUDGETS.max()
    n_opt, d_opt = TRUTH.n_opt(target), TRUTH.d_opt(target)
    true_loss = TRUTH.predict(n_opt, d_opt)
    print(f"{'noise':>6} {'rule':>5} | {'a bias':>15} {'a rmse':>15} | {'loss@100x bias %':>17} "
          f"{'loss@100x rmse %':>17} | rmse ratio (gate / best)")
    for noise, rule_off in ((0.004, 1.0), (0.01, 1.0), (0.004, 2.0), (0.004, 4.0)):
        errors = {"best": [], "gate": []}
        with tempfile.TemporaryDirectory() as tmp:
            for draw in range(args.draws):
                points = study(draw, noise, rule_off, Path(tmp))
                for name, tuned in (("best", each_cells_best(points)), ("gate", best_settings(points)[0])):
                    fit = fit_law(tuned, points)
                    errors[name].append((fit.a - TRUTH.a, fit.predict(n_opt, d_opt) / true_loss - 1))
        best, gate = np.array(errors["best"]), np.array(errors["gate"])
        a, loss = (best[:, 0], gate[:, 0]), (best[:, 1], gate[:, 1])
        print(f"{noise:>6} {rule_off:>4}x | {_pair(*a, np.mean):>15} {_pair(*a, _rmse):>15} | "
              f"{_pair(*loss, np.mean, 100):>17} {_pair(*loss, _rmse, 100):>17} | "
              f"a {_rmse(a[1]) / _rmse(a[0]):.2f}, loss {_rmse(loss[1]) / _rmse(loss[0]):.2f}")
    print("(each pair: every cell's best / the gate)")


if __name__ == "__main__":
    main()
