"""``scaling train [--config FILE] [OVERRIDES...]``: train one model into a run dir.

Exit codes: 0 done, 3 diverged (a result, not a crash), 2 user error (one line), 1 crash.
"""

from __future__ import annotations

import argparse

from scaling.cli.config import add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``OVERRIDES`` (e.g. ``model=s1.5m data.path=data/stdlib train.tokens=2e6``),
    ``--overwrite`` and ``--progress-every SECONDS``."""
    add_config_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the trainer's files (config, metrics, result, checkpoints, W&B runs) "
                             "from run.dir first and train from the start; other files stay")
    parser.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                        help="when stderr is not a terminal (SLURM, CI), print a progress line this often "
                             "(0: never; default 30)")


def run(args: argparse.Namespace) -> int:
    from scaling.config_loading import load_config

    cfg = load_config(args.config, args.overrides)  # config errors before the heavy imports
    from scaling.training.train import train

    result = train(cfg, overwrite=args.overwrite, progress_every_s=args.progress_every)
    summary = (f"{result.status}: run {result.run_id} in {result.run_dir}, {result.steps} steps, "
               f"{result.tokens:,} tokens")
    if result.final_val_loss is not None:
        summary += f", val loss {result.final_val_loss:.4f}"
    if result.val_bpb is not None:
        summary += f" ({result.val_bpb:.4f} bits/byte)"
    if result.diverged_at_step is not None:
        summary += f", diverged at step {result.diverged_at_step} (last good loss {result.last_good_loss})"
    print(summary)
    return result.exit_code
