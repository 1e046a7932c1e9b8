"""Launcher overhead of the local sweep launcher: a sweep's wall time minus its runs' own time.

Two sweeps of N runs in one process, side by side, sequential (one worker):
  1. a no-op trainer (a python process that writes result.json): what the launcher itself costs per
     run (planning, locks, heartbeat, attempt records, process start of a bare interpreter);
  2. the real trainer on tiny runs of a small prepared corpus: wall time split into the launcher's
     bookkeeping, the trainer process's start-up (imports, data open: attempt time minus the
     trainer's own wall_time_s) and training proper.

    python benchmarks/bench_sweep.py [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from sweeps.launch import run_sweep
from sweeps.store import SweepStore

NOOP = ("import json, os, sys; d = [a for a in sys.argv if a.startswith('run.dir=')][0][8:]; "
        "os.makedirs(d, exist_ok=True); json.dump({'status': 'done', 'wall_time_s': 0.0}, "
        "open(os.path.join(d, 'result.json'), 'w'))")


def _sweep(spec: Path, sweep_dir: Path, train_cmd=None) -> dict:
    started = time.perf_counter()
    root, outcomes = run_sweep(spec, sweep_dir, train_cmd=train_cmd, threads=1, echo=lambda *_: None)
    wall = time.perf_counter() - started
    assert set(outcomes.values()) == {"done"}, outcomes
    store = SweepStore(root)
    attempts = sum(e["elapsed_s"] for rid in outcomes for e in store.attempts(rid) if e["event"] == "end")
    own = sum(store.result(rid).get("wall_time_s") or 0.0 for rid in outcomes)
    return {"runs": len(outcomes), "wall": wall, "attempts": attempts, "own": own}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    from data_pipelines import prepare, stdlib_sources

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    corpus = work / "corpus"
    prepare(
        stdlib_sources(max_bytes=600_000), corpus, vocab_size=512, workers=1, progress=False, val_fraction=0.1
    )
    lrs = ", ".join(f"{1e-3 * (i + 1):.1e}" for i in range(args.runs))
    spec = work / "spec.yaml"
    spec.write_text(
        "overrides: [model.n_layer=2, model.d_model=64, model.n_head=2, model.vocab_size=512, "
        "model.max_seq_len=64, "
        f"data.path={corpus}, train.seq_len=64, train.micro_batch_size=8, train.tokens=10240, "
        "train.val_every_tokens=5120, data.val_tokens=4096, train.accelerator=cpu, logging.wandb=disabled]\n"
        f"grid: {{optim.lr: [{lrs}]}}\n"
    )
    noop = _sweep(spec, work / "noop", [sys.executable, "-c", NOOP])
    real = _sweep(spec, work / "real")
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.1f} "
        "(other work on the machine inflates every number)"
    )
    print(
        f"{'sweep':<12}{'runs':>5}{'wall s':>9}{'launcher/run s':>16}"
        f"{'start-up/run s':>16}{'train/run s':>13}"
    )
    for name, r in (("no-op", noop), ("real tiny", real)):
        n = r["runs"]
        print(f"{name:<12}{n:>5}{r['wall']:>9.2f}{(r['wall'] - r['attempts']) / n:>16.3f}"
              f"{(r['attempts'] - r['own']) / n:>16.3f}{r['own'] / n:>13.3f}")
    overhead = real["wall"] - real["own"]
    print(f"real sweep: launcher + process start-up = {overhead / real['runs']:.2f} s per run, "
          f"{overhead / real['wall']:.0%} of the sweep's wall time; launcher bookkeeping alone "
          f"{(real['wall'] - real['attempts']) / real['wall']:.1%}")


if __name__ == "__main__":
    main()
