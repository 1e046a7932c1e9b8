"""``scaling fit`` on published IsoFLOP studies: the exponent a of N* ∝ C^a by approaches 2 and 3,
beside what the studies themselves report.

    python benchmarks/bench_published_isoflops.py isoflops.csv [--bootstrap 100]

The input is a long-format CSV with one row per run: ``experiment,params,tokens,budget,loss`` (other
columns are ignored), such as the compilation of published IsoFLOP curves in the
Open-Athena/scaling-law-analysis repository (``data/isoflops/isoflops.csv``: Chinchilla as extracted
by Epoch AI and by Apple's ml-scalefit, Llama 3, Marin's three datasets, and a FineWeb/C4 ladder).
Nothing here is fitted to those numbers: each experiment goes through :func:`scaling.fit.fit_runs`
as a user's CSV would (the study's ``budget`` column, read as the FLOPs; N as the study counts it), and the
table prints what the report says next to the published value where the study gives one.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit import FitOptions, fit_runs  # noqa: E402
from scaling.fit.isoflop_profile import METHODS  # noqa: E402  (the reported method first)

# Published exponents, matched to an experiment by a substring of its name: (approach, a, interval, source)
PUBLISHED = {
    "chinchilla": [
        ("2", 0.49, (0.462, 0.534), "Hoffmann et al. 2022, Table 2 (approach 2)"),
        ("3", 0.513, None, "Besiroglu et al. 2024, replication of approach 3 (α 0.348, β 0.366)"),
    ],
    "llama_3": [("2", 0.47, None, "Llama 3 report 2024: D* ∝ C^0.53, so N* ∝ C^0.47")],
}


def read_experiments(path: Path) -> dict[str, list[dict]]:
    """The CSV's rows grouped by their ``experiment`` column."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"experiment", "params", "tokens", "budget", "loss"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"error: {path} lacks column(s) {', '.join(sorted(missing))}")
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["experiment"]].append(row)
    return groups


def fit_experiment(rows: list[dict], folder: Path, n_boot: int) -> dict:
    """fit.json of one experiment's runs, written as a fit CSV (params, tokens, loss, and the study's
    budget, which the fit reads as the FLOPs)."""
    folder.mkdir(parents=True)
    runs = folder / "runs.csv"
    with runs.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["params", "tokens", "loss", "budget"])
        out.writerows([r["params"], r["tokens"], r["loss"], r["budget"]] for r in rows)
    options = FitOptions(n_boot=n_boot, plots=False, wandb="disabled")
    return fit_runs([runs], folder / "fit", options)


def _a(value, interval) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.3f}"


def summary_row(name: str, fit: dict) -> str:
    """One table row: runs, budgets, a by each approach with its interval, who sets the size, the
    recommendation's tokens per parameter and the backtest error."""
    iso, law, rec = fit["isoflop"], fit["parametric"], fit["recommendation"]
    approach_2 = " | ".join(_a(iso["methods"][m]["a"], iso["methods"][m]["a_ci"]) for m in METHODS)
    a3_ci = (law.get("ci") or {}).get("a")
    backtest = fit["backtest"] or {}
    error = backtest.get("mean_abs_rel_error")
    return (f"| {name} | {fit['inputs']['n_fitted']} | {iso['n_budgets']} (+{iso['n_skipped']} skipped) | "
            f"{approach_2} | {_a(law['a'], a3_ci)} | "
            f"{rec['allocation']['approach']} | {rec['tokens_per_param']:.1f} | "
            f"{'n/a' if error is None else f'{100 * error:.2f}%'} |")


def published_lines(name: str, fit: dict) -> list[str]:
    """The published exponents for ``name``, and whether the fit's interval of that approach holds them."""
    approaches = {"2": (fit["isoflop"]["a"], fit["isoflop"]["a_ci"]),
                  "3": (fit["parametric"]["a"], (fit["parametric"].get("ci") or {}).get("a"))}
    lines = []
    for key, refs in PUBLISHED.items():
        if key not in name:
            continue
        for approach, value, interval, source in refs:
            ours, ci = approaches[approach]
            held = "n/a" if not ci else ("yes" if ci[0] <= value <= ci[1] else "no")
            lines.append(f"| {name} | {approach} | {_a(value, interval)} ({source}) | {_a(ours, ci)} | "
                         f"{held} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="long-format CSV: experiment,params,tokens,budget,loss")
    parser.add_argument("--bootstrap", type=int, default=100,
                        help="approach 3's bootstrap refits (default 100)")
    args = parser.parse_args()
    experiments = read_experiments(args.csv)
    fits, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, rows) in enumerate(sorted(experiments.items())):
            start = time.perf_counter()
            fits[name] = fit_experiment(rows, Path(tmp) / str(i), args.bootstrap)
            seconds[name] = time.perf_counter() - start
    methods = " | ".join(f"a, approach 2 ({m}{', reported' if m == METHODS[0] else ''})" for m in METHODS)
    print(f"| experiment | runs | budgets | {methods} | a, approach 3 | size set by | tokens/param at 10x | "
          f"backtest |")
    print("|---|---|---|" + "---|" * len(METHODS) + "---|---|---|---|")
    for name, fit in fits.items():
        print(summary_row(name, fit))
    print("\n| experiment | approach | published a | ours | our interval holds it |")
    print("|---|---|---|---|---|")
    for name, fit in fits.items():
        print("\n".join(published_lines(name, fit)) or f"| {name} | | (none published) | | |")
    print(f"\n{len(fits)} experiments fitted in {sum(seconds.values()):.0f} s "
          f"({args.bootstrap} bootstrap refits each)")


if __name__ == "__main__":
    main()
