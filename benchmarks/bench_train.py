"""Trainer throughput against a plain PyTorch loop (see scaling/training/benchmark.py).

    python benchmarks/bench_train.py                      # gpt2-small bf16 compiled on a GPU, s1.5m on CPU
    python benchmarks/bench_train.py model=s6m train.threads=2 --steps 30
"""

import argparse

import torch

from scaling.training.benchmark import default_overrides, run_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides on top of the defaults")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    run_benchmark(default_overrides(torch.cuda.is_available()) + args.overrides, args.warmup, args.steps, args.rounds)
