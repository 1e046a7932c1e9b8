"""``scaling bench [OVERRIDES...]``: tokens/s and MFU of the trainer against a plain PyTorch loop."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="config overrides on top of the defaults (gpt2-small bf16 on a GPU, s1.5m on CPU)",
    )
    parser.add_argument("--steps", type=int, default=50, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, allocator)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds; the best of each side counts"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from scaling.training.benchmark import default_overrides, run_benchmark

    run_benchmark(
        default_overrides(torch.cuda.is_available()) + args.overrides, args.warmup, args.steps, args.rounds
    )
    return 0
