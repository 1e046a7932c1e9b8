"""``scaling eval RUN_DIR... --tasks FILE_OR_NAME... [--harness TASK...]``: multiple-choice scores
of trained runs.

``--tasks`` scores JSONL tasks with this framework's scorer; ``--harness`` runs lm-evaluation-harness
tasks on the exported model, from local task files only (``--include-path``).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR...``, ``--tasks``, ``--harness``, ``--include-path``, ``--checkpoint``, ``--limit``,
    ``--json``."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run dirs to evaluate")
    parser.add_argument("--tasks", nargs="+", default=[], metavar="FILE_OR_NAME",
                        help="task JSONL files ({context, choices, label} per line) or shipped task names "
                             "(stdlib-nextline)")
    parser.add_argument(
        "--harness",
        nargs="+",
        default=[],
        metavar="TASK",
        help="lm-evaluation-harness tasks to run on the exported model (needs the 'eval' extra); "
        "offline: their data must be local files (see --include-path) or already cached",
    )
    parser.add_argument("--include-path", action="append", default=[], metavar="DIR",
                        help="folder of lm-evaluation-harness task YAMLs for --harness (repeatable)")
    parser.add_argument("--checkpoint", metavar="FILE", help="checkpoint to score (one run dir only; "
                        "default checkpoints/last.ckpt)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N items of each task")
    parser.add_argument("--json", metavar="FILE", help="also write {run_dir: {metric: value}} to FILE")


def _check(args: argparse.Namespace) -> None:
    from scaling.errors import ScalingError

    if not args.tasks and not args.harness:
        raise ScalingError("nothing to score: give --tasks FILE_OR_NAME... and/or --harness TASK...")
    if args.include_path and not args.harness:
        raise ScalingError("--include-path is for --harness tasks; add --harness TASK")
    if args.checkpoint and len(args.run_dirs) > 1:
        raise ScalingError("--checkpoint names one checkpoint; pass a single RUN_DIR with it")
    if args.limit is not None and args.limit < 1:
        raise ScalingError(f"--limit={args.limit} must be at least 1")


def run(args: argparse.Namespace) -> int:
    from scaling.evaluation.tasks import load_task

    _check(args)
    tasks = [load_task(t, limit=args.limit) for t in args.tasks]  # task errors before loading any model
    import torch

    from scaling.evaluation.scoring import evaluate, metric_row
    from scaling.trained import load_trained

    torch.set_grad_enabled(False)
    results: dict[str, dict[str, float]] = {}
    print(f"{'run':40} {'task':24} {'items':>6} {'acc':>7} {'acc_norm':>9} {'bpb':>8}")
    for run_dir in args.run_dirs:
        results[run_dir] = {}
        if tasks:
            scores = evaluate(load_trained(run_dir, args.checkpoint), tasks)
            results[run_dir].update(metric_row(scores))
            for name, s in scores.items():
                print(
                    f"{run_dir[-40:]:40} {name[:24]:24} {s['items']:>6} {s['acc']:>7.4f} "
                    f"{s['acc_norm']:>9.4f} "
                    f"{s['bpb']:>8.4f}"
                )
        if args.harness:
            results[run_dir].update(_run_harness(run_dir, args))
    if args.json:
        from data_pipelines.atomic import atomic_write_json

        atomic_write_json(args.json, results)
    return 0


def _run_harness(run_dir: str, args: argparse.Namespace) -> dict[str, float]:
    """The harness's scores of one run, printed in the table's columns (bpb: n/a)."""
    from scaling.evaluation.harness import harness_metric_row, run_harness

    out = run_harness(run_dir, args.harness, include_path=args.include_path, checkpoint=args.checkpoint,
                      limit=args.limit)
    for task, scores in out["results"].items():
        items = scores.get("sample_len", "")
        print(f"{run_dir[-40:]:40} {('harness:' + task)[:24]:24} {items:>6} {_col(scores, 'acc', 7)} "
              f"{_col(scores, 'acc_norm', 9)} {'n/a':>8}")
    return harness_metric_row(out)


def _col(scores: dict, name: str, width: int) -> str:
    value = scores.get(f"{name},none")
    return f"{value:>{width}.4f}" if isinstance(value, (int, float)) else f"{'n/a':>{width}}"
