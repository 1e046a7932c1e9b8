"""``scaling mup-check --out DIR``: the µP coordinate check (activation sizes across widths) and its plot.

Only the standard library is imported at the top; torch and matplotlib load inside ``run``.
"""

from __future__ import annotations

import argparse


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths like 64,128,256") from None
    if len(widths) < 2 or any(w < 64 or w % 64 for w in widths):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two or more widths, multiples of 64 (64-wide heads)"
        )
    return widths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder for coord_check.json and coord_check.png")
    parser.add_argument(
        "--widths", type=_widths, default=[64, 128, 256, 512], help="d_model values (default 64,128,256,512)"
    )
    parser.add_argument("--steps", type=int, default=5, help="AdamW steps per model (default 5)")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 1e-2)")
    parser.add_argument("--n-layer", type=int, default=2, help="depth of every model (default 2)")
    parser.add_argument("--base-d-model", type=int, default=64, help="µP base width (model.mup_base_d_model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init and the batch")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from data_pipelines.atomic import atomic_write_json
    from scaling.errors import ScalingError
    from scaling.mup_check import coordinate_check, plot_coordinate_check

    if args.steps < 1 or not args.lr > 0:
        raise ScalingError("--steps must be >= 1 and --lr positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = coordinate_check(
        args.widths,
        steps=args.steps,
        lr=args.lr,
        n_layer=args.n_layer,
        base_d_model=args.base_d_model,
        seed=args.seed,
    )
    atomic_write_json(out / "coord_check.json", result)
    plot = plot_coordinate_check(result, out / "coord_check.png")
    for kind, slope in result["slope"].items():
        print(f"{kind}: mean |logits| after step {args.steps} grows {2**slope:.2f}x per doubling of width")
    print(f"plot: {plot}\njson: {out / 'coord_check.json'}")
    return 0
