"""Knob verdicts on synthetic ladders with a known truth: how often a knob with no effect is called
`carry` or `reverses` (the false-positive rate, nominally <= 5-10% at a 95% interval), how often a
real 1.5x-compute effect is found, and what one knob judgement costs.

    .venv/bin/python benchmarks/bench_knobs.py [--draws 100] [--boot 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# the synthetic ladders are test helpers; run from a checkout, the repository root makes them importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit.knob_effects import knob_effects  # noqa: E402
from tests.helpers.knob_ladders import TARGET, ladder, law, worth  # noqa: E402


def rate(truth: dict, draws: int, boot: int, seed0: int) -> tuple[dict[str, int], float]:
    """Verdict counts over ``draws`` noisy ladders of ``truth`` and the mean CPU seconds per draw."""
    counts: dict[str, int] = {}
    start = time.process_time()
    for draw in range(draws):
        pts = ladder(truth, np.random.default_rng(seed0 + draw), seeds=1)
        verdict = knob_effects(pts, TARGET, n_boot=boot, seed=draw)[0]["model.activation"]["verdict"]
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts, (time.process_time() - start) / draws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--boot", type=int, default=60)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    null, cpu_null = rate({"a": law(), "b": law()}, args.draws, args.boot, 1000)
    wrong = sum(v for k, v in null.items() if k != "undecided")
    print(f"null knob: {null}; false positives {wrong}/{args.draws} = {wrong / args.draws:.1%} "
          f"({cpu_null:.2f} s CPU per draw)")
    real, cpu_real = rate({"gelu": law(), "swiglu": worth(1.5)}, max(20, args.draws // 5), args.boot, 5000)
    found = real.get("carry", 0)
    print(f"1.5x-compute knob: {real}; carried {found}/{sum(real.values())} ({cpu_real:.2f} s CPU per draw)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
