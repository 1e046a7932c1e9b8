"""``scaling fit INPUT... --out DIR``: fit scaling laws and recommend the large run.

Only the standard library is imported at the top; numpy/scipy/matplotlib/wandb load inside ``run``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaling.fit.options import FitOptions


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="sweep dirs, run dirs or CSV files (params,tokens,loss,...)")
    parser.add_argument("--out", required=True,
                        help="output folder for fit.json, report.md, plots, large_run.yaml: new, empty, or a "
                             "previous fit's")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that holds other files, replacing only the files a fit "
                             "writes")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-flops", type=_positive_float, metavar="C", help="compute budget of the large run")
    target.add_argument("--target-params", type=_positive_float, metavar="N", help="size of the large run")
    target.add_argument("--target-tokens", type=_positive_float, metavar="D", help="token budget of the large run")
    parser.add_argument("--predict", action="append", default=[], metavar="N:D",
                        help="also predict the loss at N params and D tokens (repeatable)")
    parser.add_argument("--params", choices=["total", "non-embedding"], default="non-embedding",
                        help="parameter count of run dirs used as N (default non-embedding)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="K", help="bootstrap refits (0 = none; default 200)")
    parser.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--exclude-diverged", action=argparse.BooleanOptionalAction, default=True,
                        help="leave diverged runs out (default on; the count is reported)")
    parser.add_argument("--gpu-throughput", type=_positive_float, metavar="FLOP/S",
                        help="achieved training FLOP/s per GPU, for a GPU-hours estimate")
    parser.add_argument("--isoflop-method", choices=["interpolate", "parabola"], default="interpolate",
                        help="approach 2's minimum per budget: an interpolant of the profile (default, as "
                             "published IsoFLOP studies compute it) or a parabola near the best size; both "
                             "are in fit.json")
    parser.add_argument("--isoflop-window", type=float, default=0.75, metavar="DEX",
                        help="IsoFLOP parabola half-width in decades of N around each minimum (default 0.75)")
    parser.add_argument("--metric", choices=["auto", "loss", "bpb"], default="auto",
                        help="fit the final val loss in nats/token (loss) or bits per byte (bpb); auto (default) "
                             "takes bpb when the runs differ in tokenization, as nats/token do not compare then")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--wandb", choices=["disabled", "offline", "online"], default="offline",
                        help="mirror the fit to W&B (default offline)")
    parser.add_argument("--project", default=None,
                        help="W&B project of the fit run (default: the runs' logging.project, else scaling)")
    parser.add_argument("--group", default=None,
                        help="W&B group of the fit run (default: the runs' sweep group)")


def summary_lines(result: dict) -> list[str]:
    """The warnings, then the recommendation in a few lines, for the terminal (``scaling fit``'s output)."""
    from scaling.fit.recommend import train_command

    r, config = result["recommendation"], result["outputs"]["large_run"]
    lr_ci = f" [{r['lr_ci'][0]:.3g}, {r['lr_ci'][1]:.3g}]" if r.get("lr_ci") else ""
    lines = [f"warning: {w}" for w in result["warnings"]]
    lines += [
        f"model:  {r['params']:.4g} params ({r['params_kind']}), n_layer={r['n_layer']} d_model={r['d_model']}",
        f"tokens: {r['tokens']:.4g} ({r['tokens_per_param']:.3g} per param), {r['flops']:.3g} FLOPs"
        + (f", {r['gpu_hours']:.3g} GPU-hours" if r.get("gpu_hours") else ""),
        f"loss:   {r['loss']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]"
        + (" bits/byte" if result["inputs"].get("metric") == "bpb" else " nats/token"),
        f"lr:     {r['lr']:.3g}{lr_ci} ({r['lr_source']}); batch {r['batch_tokens']:.4g} tokens ({r['batch_source']})",
        f"report: {result['outputs']['report']}",
        f"config: {config} (train it: {train_command(config)})",
    ]
    for knob, e in (result.get("knob_effects") or {}).items():
        runner = e["multiplier"][e["runner_up"]]
        ci = f" [{runner['lo']:.3g}, {runner['hi']:.3g}]" if runner["lo"] is not None else ""
        cross = e["crossover_flops"].get(e["runner_up"])
        lines.append(f"knob:   {knob}: {e['verdict']}, large run takes {r['knobs'][knob]['level']}; "
                     f"{e['runner_up']} needs {runner['value']:.3g}x{ci} the compute of {e['best']}"
                     + (f", crossing over at {cross:.3g} FLOPs" if cross else ""))
    lines += [f"plot:   {p}" for p in result["outputs"].get("plots", {}).values()]
    return lines


def options_from_args(args: argparse.Namespace) -> FitOptions:
    """The :class:`scaling.fit.options.FitOptions` of a parsed ``scaling fit`` command line."""
    from scaling.fit.options import FitOptions

    return FitOptions(target_flops=args.target_flops, target_params=args.target_params,
                      target_tokens=args.target_tokens, predict=tuple(args.predict), params=args.params,
                      n_boot=args.bootstrap, exclude_diverged=args.exclude_diverged, ci=args.ci,
                      gpu_throughput=args.gpu_throughput, isoflop_window_dex=args.isoflop_window,
                      isoflop_method=args.isoflop_method, seed=args.seed, plots=not args.no_plots,
                      wandb=args.wandb, wandb_project=args.project, wandb_group=args.group, metric=args.metric,
                      overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    from scaling.fit.pipeline import fit_runs

    result = fit_runs(args.inputs, args.out, options_from_args(args))
    print("\n".join(summary_lines(result)))
    return 0
