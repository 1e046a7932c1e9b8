"""``scaling eval RUN_DIR... --tasks FILE_OR_NAME...``: multiple-choice scores of trained runs."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR...``, ``--tasks``, ``--checkpoint``, ``--limit``, ``--json``."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run dirs to evaluate")
    parser.add_argument("--tasks", nargs="+", required=True, metavar="FILE_OR_NAME",
                        help="task JSONL files ({context, choices, label} per line) or shipped task names "
                             "(stdlib-nextline)")
    parser.add_argument("--checkpoint", metavar="FILE", help="checkpoint to score (one run dir only; "
                        "default checkpoints/last.ckpt)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N items of each task")
    parser.add_argument("--json", metavar="FILE", help="also write {run_dir: {metric: value}} to FILE")


def run(args: argparse.Namespace) -> int:

    from scaling.errors import ScalingError
    from scaling.evaluation.tasks import load_task

    if args.checkpoint and len(args.run_dirs) > 1:
        raise ScalingError("--checkpoint names one checkpoint; pass a single RUN_DIR with it")
    if args.limit is not None and args.limit < 1:
        raise ScalingError(f"--limit={args.limit} must be at least 1")
    tasks = [load_task(t, limit=args.limit) for t in args.tasks]  # task errors before loading any model
    import torch

    from scaling.evaluation.scoring import evaluate, metric_row
    from scaling.trained import load_trained

    torch.set_grad_enabled(False)
    results = {}
    print(f"{'run':40} {'task':24} {'items':>6} {'acc':>7} {'acc_norm':>9} {'bpb':>8}")
    for run_dir in args.run_dirs:
        scores = evaluate(load_trained(run_dir, args.checkpoint), tasks)
        results[run_dir] = metric_row(scores)
        for name, s in scores.items():
            print(f"{run_dir[-40:]:40} {name[:24]:24} {s['items']:>6} {s['acc']:>7.4f} {s['acc_norm']:>9.4f} "
                  f"{s['bpb']:>8.4f}")
    if args.json:
        from data_pipelines.atomic import atomic_write_json

        atomic_write_json(args.json, results)
    return 0
