"""Trainer throughput against a plain PyTorch loop: ``scaling bench`` as a script (see
scaling/training/benchmark.py).

    python benchmarks/bench_train.py                      # gpt2-small bf16 compiled on a GPU, s1.5m on CPU
    python benchmarks/bench_train.py model=s6m train.threads=2 --steps 30
"""

import argparse
import sys

from scaling.cli import bench as bench_cli

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_cli.add_arguments(parser)
    sys.exit(bench_cli.run(parser.parse_args()))
