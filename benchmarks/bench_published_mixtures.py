"""``scaling fit``'s mixture law on a published mixture study: fitted on one set of mixtures, how well
it ranks mixtures it never saw, at the same size and at larger ones.

    python benchmarks/bench_published_mixtures.py REGMIX_DATA_DIR

``REGMIX_DATA_DIR`` holds the ``data/`` files of RegMix (Liu et al. 2024, the sail-sg/regmix
repository): ``train_mixture_1m.csv`` and ``train_pile_loss_1m.csv`` (512 mixtures of 17 Pile domains,
one 1M-parameter model each, 13 validation losses), and the held-out sets ``test_mixture_60m.csv`` with
``test_pile_loss_1m.csv`` / ``test_pile_loss_60m.csv`` (256 other mixtures trained at 1M and at 60M)
and ``test_mixture_1B.csv`` with ``test_pile_loss_1B.csv`` (64 mixtures at 1B, 7 losses). Rows join on
their ``index`` column. The training runs go through :func:`scaling.fit.fit_runs` as a user's CSV would
(``w_<domain>`` and ``loss_<evalset>`` columns, the held-out mixtures as ``predict_mixtures``), and the
table prints, per held-out set, the Spearman rank correlation of predicted and measured loss.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit import FitOptions, fit_runs  # noqa: E402

DOMAIN_PREFIX, LOSS_PREFIX, LOSS_SUFFIX = "train_the_pile_", "metric/the_pile_", "_val_loss"
HELD_OUT = [  # (name, mixtures file, losses file)
    ("256 mixtures at 1M", "test_mixture_60m.csv", "test_pile_loss_1m.csv"),
    ("the same at 60M", "test_mixture_60m.csv", "test_pile_loss_60m.csv"),
    ("64 mixtures at 1B", "test_mixture_1B.csv", "test_pile_loss_1B.csv"),
]
TARGET = "pile_cc"  # the set RegMix optimises for


def _rows(path: Path) -> dict[str, dict]:
    with path.open(newline="") as f:
        return {row["index"]: row for row in csv.DictReader(f)}


def _weights(row: dict) -> dict:
    return {f"w_{k[len(DOMAIN_PREFIX):]}": v for k, v in row.items() if k.startswith(DOMAIN_PREFIX)}


def _losses(row: dict) -> dict:
    return {f"loss_{k[len(LOSS_PREFIX):-len(LOSS_SUFFIX)]}": v
            for k, v in row.items() if k.startswith(LOSS_PREFIX)}


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    return path


def rank_correlations(candidates: list[dict], measured: list[dict]) -> dict[str, float]:
    """Per evaluation set both sides have, Spearman's ρ of the predicted and the measured losses."""
    out = {}
    for key in measured[0]:
        name = key[len("loss_"):]
        if key.startswith("loss_") and name in candidates[0]["predicted"]:
            predicted = [c["predicted"][name] for c in candidates]
            out[name] = float(stats.spearmanr(predicted, [float(m[key]) for m in measured])[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with RegMix's data/ CSV files")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits of the weights")
    args = parser.parse_args()
    mixtures, losses = _rows(args.data / "train_mixture_1m.csv"), _rows(args.data / "train_pile_loss_1m.csv")
    print(f"training: {len(mixtures)} mixtures at 1M; mixture target {TARGET}\n")
    print(f"| held-out set | mixtures | ρ on {TARGET} | median ρ over sets (sets) | lowest ρ |")
    print("|---|---|---|---|---|")
    held = {f: _rows(args.data / f) for f in dict.fromkeys(mixture_file for _, mixture_file, _ in HELD_OUT)}
    offsets, candidates = {}, []  # every held-out mixture is predicted by one fit, each file a slice
    for mixture_file, rows in held.items():
        offsets[mixture_file] = len(candidates)
        candidates += [_weights(row) for row in rows.values()]
    with tempfile.TemporaryDirectory() as tmp:
        train = _write(Path(tmp) / "train.csv",
                       [{**_weights(mixtures[i]), **_losses(losses[i])} for i in mixtures])
        predict = _write(Path(tmp) / "held.csv", candidates)
        options = FitOptions(mixture_target=TARGET, predict_mixtures=str(predict), n_boot=args.bootstrap,
                             plots=False, wandb="disabled")
        start = time.perf_counter()
        mixture = fit_runs([train], Path(tmp) / "fit", options)["mixture"]
        seconds = time.perf_counter() - start
    for name, mixture_file, loss_file in HELD_OUT:
        rows, first = held[mixture_file], offsets[mixture_file]
        measured = _rows(args.data / loss_file)
        predicted = mixture["candidates"][first:first + len(rows)]
        rho = rank_correlations(predicted, [_losses(measured[i]) for i in rows])
        print(f"| {name} | {len(rows)} | {rho[TARGET]:.3f} | {np.median(list(rho.values())):.3f} "
              f"({len(rho)}) | {min(rho.values()):.3f} ({min(rho, key=rho.get)}) |")
    forms = ", ".join(f"{form} {v['rank_corr']:.3f}" for form, v in mixture["forms"].items())
    weights = {d: w["value"] for d, w in mixture["weights"].items() if w["value"] >= 0.005}
    print(f"\nlaw chosen: {mixture['law']} (held-out ρ by form over the training mixtures: {forms})")
    print(f"recommended weights for {TARGET} (>= 0.005): {weights}")
    print(f"fitted in {seconds:.0f} s")


if __name__ == "__main__":
    main()
