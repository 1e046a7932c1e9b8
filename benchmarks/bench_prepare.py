"""Prepare throughput against plain ``Tokenizer.encode_batch``, and peak memory against corpus size.

    python benchmarks/bench_prepare.py [--max-bytes N] [--repeat 2]

1. Throughput: the same texts (the stdlib corpus) are encoded by ``encode_batch`` in one call and
   prepared by ``data_pipelines.prepare`` with the same tokenizer (reading, hashing, splitting,
   encoding, writing and hashing shards), with 1 and 2 workers, in this process, alternating.
   Each is run ``--repeat`` times and the best time is kept. Ratio = prepare MB/s / encode_batch MB/s.
2. Memory: ``prepare`` runs in a child process on the corpus and on the corpus repeated 4x, and
   the peak RSS of its whole process tree (workers included) is sampled every 20 ms.
Other busy processes distort both; the machine's load is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from data_pipelines import prepare, stdlib_sources
from data_pipelines.tokenizer import load_tokenizer, prepare_for_encoding


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _peak_rss_mb(argv: list[str]) -> tuple[float, float, float, float]:
    """Run ``argv``; return peak RSS in MB of (its process tree, the main process, the largest
    worker), and seconds."""
    proc = psutil.Popen(argv)
    tree_peak, peaks = 0, {}
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            rss = {p.pid: p.memory_info().rss for p in [proc] + proc.children(recursive=True)}
        except psutil.Error:
            continue
        tree_peak = max(tree_peak, sum(rss.values()))
        for pid, r in rss.items():
            peaks[pid] = max(peaks.get(pid, 0), r)
        time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {argv}")
    worker = max((r for pid, r in peaks.items() if pid != proc.pid), default=0)
    return tree_peak / 1e6, peaks.get(proc.pid, 0) / 1e6, worker / 1e6, time.perf_counter() - start


def _others_busy() -> float:
    """CPU percent used by processes that are not this one or its children, over one second."""
    me = {os.getpid()}
    procs = [p for p in psutil.process_iter() if p.pid not in me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    total = 0.0
    for p in procs:
        try:
            total += p.cpu_percent(None)
        except psutil.Error:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-bytes", type=int, default=None, help="use only this much of the stdlib corpus")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=8192)
    args = ap.parse_args()

    files = stdlib_sources(max_bytes=args.max_bytes)
    work = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}; "
              f"other processes busy: {_others_busy():.0f}% CPU")
        sources = [str(p) for p in files]
        t = time.perf_counter()
        m = prepare(sources, work / "trained", vocab_size=args.vocab_size, progress=False)
        full = time.perf_counter() - t
        nbytes = m["splits"]["train"]["bytes"] + m["splits"]["val"]["bytes"]
        ntok = m["splits"]["train"]["tokens"] + m["splits"]["val"]["tokens"]
        print(f"corpus: {len(files)} files, {nbytes / 1e6:.1f} MB, {ntok / 1e6:.2f}M tokens "
              f"({nbytes / ntok:.2f} bytes/token incl. EOS); full prepare incl. tokenizer training "
              f"({args.vocab_size}): {full:.1f} s")
        tok_file = work / "trained" / "tokenizer.json"

        tok = load_tokenizer(tok_file)
        prepare_for_encoding(tok)
        texts = [t for p in files if (t := p.read_bytes().decode("utf-8", "replace"))]
        n = [0]

        def run_prepare(workers: int):
            n[0] += 1
            out = work / f"p{n[0]}"
            prepare(sources, out, tokenizer=tok_file, workers=workers, progress=False)
            shutil.rmtree(out)

        results = {"encode_batch": [], "prepare w=1": [], "prepare w=2": []}
        for _ in range(args.repeat):  # alternate, so a burst of contention hits all of them
            results["encode_batch"].append(_best(lambda: tok.encode_batch(texts), 1))
            results["prepare w=1"].append(_best(lambda: run_prepare(1), 1))
            results["prepare w=2"].append(_best(lambda: run_prepare(2), 1))
        base = nbytes / 1e6 / min(results["encode_batch"])
        print(f"\n{'':<14}{'best s':>8}{'MB/s':>8}{'ratio':>8}")
        for name, times in results.items():
            rate = nbytes / 1e6 / min(times)
            print(f"{name:<14}{min(times):>8.2f}{rate:>8.2f}{rate / base:>8.2f}")

        four = work / "x4"
        for i in range(4):
            for j, p in enumerate(files):
                d = four / f"copy{i}"
                d.mkdir(parents=True, exist_ok=True)
                os.symlink(p, d / f"{j:04d}_{p.name}")
        print("\npeak RSS of the prepare process tree (given tokenizer, 2 workers, "
              "shard_tokens default):")
        for label, src in (("corpus x1", sources), ("corpus x4", [str(four)])):
            code = ("import sys; from data_pipelines import prepare; "
                    f"prepare(sys.argv[2:], sys.argv[1], tokenizer={str(tok_file)!r}, workers=2, "
                    "progress=False)")
            out = work / label.replace(" ", "_")
            tree, main_rss, worker, secs = _peak_rss_mb([sys.executable, "-c", code, str(out), *src])
            print(f"  {label}: tree {tree:.0f} MB (main {main_rss:.0f} MB, largest worker {worker:.0f} MB) "
                  f"in {secs:.1f} s")
        print(f"\nafter: load average {os.getloadavg()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
