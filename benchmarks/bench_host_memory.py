"""CPU training steps with glibc's default allocator against the trainer's setting (freed blocks kept for
reuse, ``scaling.training.host_memory``), side by side.

    python benchmarks/bench_host_memory.py                    # the demo's sizes, seq 128, batch 8, vocab 512
    python benchmarks/bench_host_memory.py --models demo-22k --rounds 5

The setting is process-wide and lasting, so each side runs in its own process: alternating rounds of
the plain training loop of ``scaling bench`` (forward, backward, clip, AdamW, ``loss.item()``), one thread,
the same model and batches. Prints each side's median step time and page faults per step, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

DEMO_SHAPE = ["model.vocab_size=512", "model.max_seq_len=128", "train.seq_len=128",
              "train.micro_batch_size=8", "model.parallel_residual=true"]


def _child(model: str, reuse: bool, steps: int) -> None:
    import resource

    import torch

    from scaling.config_loading import load_config
    from scaling.training.benchmark import _batches, plain_loop
    from scaling.training.host_memory import reuse_freed_memory

    torch.set_num_threads(1)
    applied = reuse_freed_memory() if reuse else False
    cfg = load_config((), [f"model={model}", *DEMO_SHAPE])
    batches = _batches(cfg, 8, "cpu")
    plain_loop(cfg, batches, 5, 5, "cpu", "32-true", False)  # warm-up: the allocator's steady state
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tokens_per_s = plain_loop(cfg, batches, 0, steps, "cpu", "32-true", False)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps
    step_ms = 1e3 * cfg.train.seq_len * cfg.train.micro_batch_size / tokens_per_s
    print(json.dumps({"step_ms": step_ms, "faults": faults, "applied": applied}))


def _side(model: str, reuse: bool, steps: int) -> dict:
    args = [sys.executable, __file__, "--child", model, "--steps", str(steps)]
    args += ["--reuse"] if reuse else []
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["demo-3k", "demo-22k", "demo-111k"])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per round (default 150)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.reuse, args.steps)
        return 0
    print(f"{'model':10s} {'default ms/step':>16s} {'reuse ms/step':>14s} {'faults/step':>16s} {'ratio':>6s}")
    for model in args.models:
        sides = {False: [], True: []}
        for _ in range(args.rounds):
            for reuse in (False, True):
                sides[reuse].append(_side(model, reuse, args.steps))
        if not all(r["applied"] for r in sides[True]):
            print(f"{model}: the setting is not available here (needs glibc's mallopt)")
            return 1
        ms = {k: statistics.median(r["step_ms"] for r in v) for k, v in sides.items()}
        faults = {k: statistics.median(r["faults"] for r in v) for k, v in sides.items()}
        print(f"{model:10s} {ms[False]:16.2f} {ms[True]:14.2f} {faults[False]:7.0f} -> {faults[True]:5.0f} "
              f"{ms[True] / ms[False]:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
