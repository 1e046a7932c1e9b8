"""``scaling export RUN_DIR --out DIR``: a run's model as a Hugging Face transformers folder."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR``, ``--out DIR``, ``--checkpoint FILE`` and ``--tokenizer FILE``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run dir to export")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="new folder for the model (must not exist)"
    )
    parser.add_argument(
        "--checkpoint", metavar="FILE", help="checkpoint to export (default checkpoints/last.ckpt)"
    )
    parser.add_argument("--tokenizer", metavar="FILE",
                        help="tokenizer.json to ship (default: the one of the run's data folder)")


def run(args: argparse.Namespace) -> int:
    from scaling.export import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint, tokenizer=args.tokenizer)
    print(f"exported {args.run_dir} to {out} (load it with AutoModelForCausalLM.from_pretrained)")
    return 0
