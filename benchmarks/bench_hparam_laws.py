"""The learning-rate and batch laws on LR x batch sweeps shaped like published ones, with a known truth.

    python benchmarks/bench_hparam_laws.py [--draws 20] [--boot 100]

The truth is a published optimum law (Step Law's lr* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571; DeepSeek
LLM's lr* = 0.3118·C^-0.125, B* = 0.292·C^0.3271) on a lopsided loss bowl
(:func:`tests.helpers.hparam_landscape.published_landscape`: a learning rate too high costs more than one
as much too low, 8x too high diverges, a batch too large costs more than one too small, and a larger
batch wants a larger learning rate). Three designs:

- ``step_law grid``: one fixed grid for every cell, as published sweeps run (8 learning rates and 8
  batch sizes 2x apart), 5 sizes from 60M to 1B at 10, 40 and 160 tokens per parameter, one seed;
- ``deepseek grid``: the same kind of fixed grid at 6 budgets from 1e17 to 3e19 FLOPs, 20 tokens per
  parameter (N and D move together: only a law in compute can be fitted);
- ``planned sweep``: what an ``hparams:`` sweep plans by default, 5 learning rates x 4 batch sizes 2x
  apart around a prior guess (here 1.5x the true learning rate and 0.7x the true batch), 3 sizes x 2
  budgets, two seeds.

Per design and over the draws it prints the form each law took, the fitted exponents (mean ± sd against
the truth, and how often the 95% interval held the truth), the predicted optimum at a target 7-30x
beyond the largest cell against the truth, and what the predicted settings cost there on the true bowl,
beside the same laws with every cell's surface the quadratic over all its plausible settings (no
lack-of-fit test), and beside carrying the largest cell's best setting tried unchanged. ``--skew 0 0``
makes the bowl symmetric, ``--noise`` sets a run's noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scaling.fit.hparam_surface as hparam_surface  # noqa: E402
from scaling.fit.hparams import fit_hparam_laws  # noqa: E402
from tests.helpers.hparam_landscape import (  # noqa: E402
    PUBLISHED_LAWS,
    as_points,
    landscape_penalty,
    published_landscape,
    published_optimum,
)

COLUMNS = ("lr", "batch_size")


def _step_law_cells():
    return [(n, n * r) for n in np.geomspace(6e7, 1e9, 5) for r in (10, 40, 160)]


def _deepseek_cells():
    return [(np.sqrt(c / 120), 20 * np.sqrt(c / 120)) for c in np.geomspace(1e17, 3e19, 6)]


def _planned_cells():
    return [(n, n * r) for n in (2e7, 6e7, 2e8) for r in (10, 40)]


DESIGNS = {
    "step_law grid": dict(
        law="step_law",
        cells=_step_law_cells(),
        lr_values=2.4e-4 * 2.0 ** np.arange(8),
        batch_values=16384 * 2.0 ** np.arange(8),
        seeds=1,
        target=(7e9, 1.4e12),
    ),
    "deepseek grid": dict(
        law="deepseek",
        cells=_deepseek_cells(),
        lr_values=1.25e-4 * 2.0 ** np.arange(8),
        batch_values=32768 * 2.0 ** np.arange(7),
        seeds=1,
        target=(np.sqrt(1e21 / 120), 20 * np.sqrt(1e21 / 120)),
    ),
    "planned sweep": dict(
        law="step_law",
        cells=_planned_cells(),
        lr_values=lambda lr: 1.5 * lr * 2.0 ** np.arange(-2, 3),
        batch_values=lambda b: 0.7 * b * 2.0 ** np.arange(-1, 3),
        seeds=2,
        target=(2e9, 8e10),
    ),
}


def _truth_exponents(law: str, column: str, form: str | None) -> dict[str, float] | None:
    """The true exponents in the fitted form (None where the form cannot express the truth)."""
    _, exps = PUBLISHED_LAWS[law][column]
    if form == "N,D" and "C" not in exps:
        return dict(exps)
    if form == "C" and "C" in exps:
        return dict(exps)
    return None


def _largest_cell_best(cols: dict) -> tuple[float, float]:
    """The best (lr, batch) tried in the cell of most compute: what one carries without a law."""
    flops = cols["params"] * cols["tokens"]
    idx = np.flatnonzero(np.isclose(flops, flops.max()))
    best = idx[np.argmin(cols["loss"][idx])]
    return float(cols["lr"][best]), float(cols["batch_size"][best])


def _wide_quadratic_predictions(cols: dict, target: tuple[float, float]) -> dict:
    """The laws' predictions at ``target`` with every surface the quadratic over all plausible settings
    (the lack-of-fit test switched off): the estimator before the test, side by side."""
    kept = hparam_surface.LACK_OF_FIT_P
    hparam_surface.LACK_OF_FIT_P = 0.0
    try:
        out = fit_hparam_laws(as_points(cols), *target, n_boot=0)
    finally:
        hparam_surface.LACK_OF_FIT_P = kept
    return {c: out[c]["prediction"] for c in COLUMNS}


def run_design(name: str, spec: dict, draws: int, n_boot: int, bowl: dict) -> None:
    law, (tn, td) = spec["law"], spec["target"]
    truth = {c: float(published_optimum(law, c, tn, td)) for c in COLUMNS}
    forms: dict[str, list] = {c: [] for c in COLUMNS}
    exps: dict[str, list] = {c: [] for c in COLUMNS}
    held: dict[str, list] = {c: [] for c in COLUMNS}
    ratio: dict[str, list] = {c: [] for c in COLUMNS}
    ci_held: dict[str, list] = {c: [] for c in COLUMNS}
    penalty_law, penalty_wide, penalty_carry, bounds, missing = [], [], [], [], 0
    for draw in range(draws):
        cols = published_landscape(
            law, spec["cells"], spec["lr_values"], spec["batch_values"], seed=draw, seeds=spec["seeds"],
            noise=bowl["noise"], skew=bowl["skew"],
        )
        out = fit_hparam_laws(as_points(cols), tn, td, n_boot=n_boot, seed=draw)
        pred = {}
        for c in COLUMNS:
            entry = out[c]
            forms[c].append(entry.get("form"))
            pred[c] = entry["prediction"]
            if pred[c] is None:
                continue
            ratio[c].append(pred[c] / truth[c])
            if entry.get("lo") is not None:
                ci_held[c].append(entry["lo"] <= truth[c] <= entry["hi"])
            bounds.append(sum(x["at_edge"] for x in entry["cells"]))
            true_exps = _truth_exponents(law, c, entry.get("form"))
            if entry.get("law") and true_exps:
                exps[c].append({k: entry["law"]["exponents"][k] for k in true_exps})
                cis = entry["law"].get("exponent_ci") or {}
                held[c].append(all(cis.get(k) and cis[k][0] <= v <= cis[k][1] for k, v in true_exps.items()))
        if any(v is None for v in pred.values()):
            missing += 1
            continue
        def cost(lr, batch):
            return landscape_penalty(law, tn, td, lr, batch, skew=bowl["skew"])

        penalty_law.append(cost(pred["lr"], pred["batch_size"]))
        penalty_carry.append(cost(*_largest_cell_best(cols)))
        wide = _wide_quadratic_predictions(cols, (tn, td))
        if all(v is not None for v in wide.values()):
            penalty_wide.append(cost(wide["lr"], wide["batch_size"]))
    print(f"\n## {name} ({len(spec['cells'])} cells, {draws} draws, truth: {law})")
    print(f"cells with an optimum at the grid's edge, per law and draw: {np.mean(bounds):.1f}")
    for c in COLUMNS:
        chosen = {f: forms[c].count(f) for f in sorted(set(map(str, forms[c])))}
        print(f"{c}: form chosen {chosen}")
        true_exps = _truth_exponents(law, c, max(set(forms[c]), key=forms[c].count))
        if exps[c] and true_exps:
            for k, v in true_exps.items():
                fitted = np.array([e[k] for e in exps[c]])
                print(f"  exponent of {k}: true {v:+.3f}, fitted {fitted.mean():+.3f} ± {fitted.std():.3f}")
            print(f"  95% intervals of the exponents held the truth in {sum(held[c])} of {len(held[c])}")
        r = np.array(ratio[c])
        if not r.size:
            print("  no prediction in any draw")
            continue
        print(
            f"  at the target: predicted / true optimum, geometric mean {np.exp(np.log(r).mean()):.2f}, "
            f"range {r.min():.2f}-{r.max():.2f}; "
            f"interval held the truth in {sum(ci_held[c])} of {len(ci_held[c])}"
        )
    pl, pw, pc = (100 * np.array(p) for p in (penalty_law, penalty_wide, penalty_carry))
    if missing:
        print(f"draws where a law predicted nothing: {missing}")
    if not pl.size:
        return
    print(
        f"loss the settings cost at the target: laws {pl.mean():.3f}% (max {pl.max():.3f}%); "
        f"with the quadratic over all settings everywhere {pw.mean():.3f}% (max {pw.max():.3f}%); "
        f"largest cell's best carried {pc.mean():.3f}% (max {pc.max():.3f}%)"
    )


def measured(path: str) -> None:
    """Per cell of a real LR x batch sweep (run dirs or a CSV): how lopsided its bowl is along the
    learning rate (the loss 4x below and 4x above the best one, at the best batch) and which window its
    surface took."""
    from scaling.fit import load_points
    from scaling.fit.hparam_surface import fit_surface, setting_losses

    points = load_points([path])
    cells: dict[tuple, list[int]] = {}
    for i, key in enumerate(points.cells()):
        cells.setdefault(key, []).append(i)
    print(f"\n## measured: {path} ({len(points)} runs, {len(cells)} cells)")
    print("| N | D | best lr | best batch | loss 4x lr below / above the best (rise) | surface window |")
    print("|---|---|---|---|---|---|")
    for (n, d), idx in sorted(cells.items()):
        values, losses = setting_losses(points, np.array(idx), COLUMNS)
        best = int(np.argmin(losses))
        row = np.isclose(values[:, 1], values[best, 1])
        rise = []
        for factor in (0.25, 4.0):
            at = row & np.isclose(values[:, 0], values[best, 0] * factor)
            rise.append(f"+{losses[at][0] - losses[best]:.3f}" if at.any() else "-")
        surface = fit_surface(values, losses, COLUMNS)
        print(f"| {n:.3g} | {d:.3g} | {values[best, 0]:.3g} | {values[best, 1]:.0f} | {' / '.join(rise)} | "
              f"{surface.window if surface else '-'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--boot", type=int, default=100)
    parser.add_argument("--design", choices=sorted(DESIGNS), action="append")
    parser.add_argument("--noise", type=float, default=0.002, help="a run's relative loss noise (one seed)")
    parser.add_argument("--skew", type=float, nargs=2, default=(1.5, 1.0), metavar=("LR", "BATCH"),
                        help="how lopsided the bowl is along lr and batch (0 0: a symmetric quadratic)")
    parser.add_argument("--measured", metavar="SWEEP_OR_CSV",
                        help="instead, how lopsided a real LR x batch sweep's bowls are, cell by cell")
    args = parser.parse_args()
    if args.measured:
        measured(args.measured)
        return
    bowl = {"noise": args.noise, "skew": tuple(args.skew)}
    print(f"bowl: noise {args.noise:g} per run, skew {args.skew[0]:g} (lr) {args.skew[1]:g} (batch)")
    for name in args.design or DESIGNS:
        run_design(name, DESIGNS[name], args.draws, args.boot, bowl)


if __name__ == "__main__":
    main()
