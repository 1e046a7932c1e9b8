"""The ``scaling`` command: a thin shell over the library's functions.

Each subcommand lives in its own module that exposes ``add_arguments(parser)`` and
``run(args) -> int``; those modules import only the standard library at the top, so that
``scaling --help`` and argument errors stay fast (``import lightning`` alone costs ~4 s).
A :class:`~scaling.errors.ScalingError` is printed as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scaling.errors import EXIT_USER_ERROR, ScalingError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("scaling.cli.config", "show the resolved config of a run and its derived numbers"),
    "prepare": ("data_pipelines.cli", "turn your text into a tokenizer and verified token shards"),
    "train": ("scaling.cli.train", "train one model (a run dir with config, metrics and result)"),
    "bench": ("scaling.cli.bench", "throughput and MFU of the trainer against a plain PyTorch loop"),
    "sweep": ("sweeps.cli", "plan, run, follow (status, wait) sweeps of many runs (local or SLURM)"),
    "fit": ("scaling.cli.fit", "fit scaling laws to runs and recommend the large run"),
    "export": ("scaling.cli.export", "write a run's model as a Hugging Face transformers folder"),
    "eval": ("scaling.cli.eval", "score a run on multiple-choice tasks (accuracy, bits per byte)"),
    "mup-check": ("scaling.cli.mup_check", "µP coordinate check: activation sizes across widths, as a plot"),
    "demo": ("sweeps.demo", "the whole study on the built-in corpus: prepare, sweep, fit"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="scaling", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not module_name.startswith(e.name):
                raise
            continue  # subcommand not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scaling`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ScalingError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
