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
    parser.add_argument("--out", required=True, help="output folder for fit.json, report.md, plots, large_run.yaml")
    parser.add_argument("--target-flops", type=_positive_float, metavar="C",
                        help="compute budget of the large run (alone: the compute-optimal run)")
    parser.add_argument("--target-params", type=_positive_float, metavar="N",
                        help="size of the large run (with --target-tokens: exactly that run)")
    parser.add_argument("--target-tokens", type=_positive_float, metavar="D",
                        help="token budget of the large run (with --target-params: exactly that run)")
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
    parser.add_argument("--isoflop-window", type=float, default=0.75, metavar="DEX",
                        help="IsoFLOP parabola half-width in decades of N around each minimum (default 0.75)")
    parser.add_argument("--metric", choices=["auto", "loss", "bpb"], default="auto",
                        help="fit the final val loss in nats/token (loss) or bits per byte (bpb); auto (default) "
                             "takes bpb when the runs differ in tokenization, as nats/token do not compare then")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--wandb", choices=["disabled", "offline", "online"], default="offline",
                        help="mirror the fit to W&B (default offline)")
    parser.add_argument("--project", default="scaling", help="W&B project")
    parser.add_argument("--group", default=None, help="W&B group (default: the runs' sweep group)")


def _hparam_lines(result: dict) -> list[str]:
    """Each hyperparameter law with its exponents' intervals, the backtest penalty, a fixed run's gap."""
    lines = []
    for name, h in result["hparams"].items():
        law = h.get("law") if name != "backtest" else None
        if law:
            ci = law.get("exponent_ci") or {}
            exps = ", ".join(f"{k}^{v:.3g}" + (f" [{ci[k][0]:.3g}, {ci[k][1]:.3g}]" if ci.get(k) else "")
                             for k, v in law["exponents"].items())
            lines.append(f"{name} law: {law['coef']:.3g}·{exps} ({h['form_reason']})")
    bt = result["hparams"].get("backtest") or {}
    if bt.get("mean_penalty") is not None:
        lines.append(f"hparam backtest: held-out cells lose {100 * bt['mean_penalty']:.3f}% on average "
                     f"(max {100 * bt['max_penalty']:.3f}%) at the laws' settings")
    opt = result["recommendation"].get("compute_optimal")
    if opt:
        lines.append(f"compute-optimal at this compute: {opt['params']:.4g} params on {opt['tokens']:.4g} "
                     f"tokens, "
                     f"loss {opt['loss']:.4f} ({100 * opt['loss_gap_rel']:+.2f}% for the chosen shape)")
    return lines


def summary_lines(result: dict) -> list[str]:
    """The recommendation in a few lines for the terminal (``scaling fit``'s output)."""
    r = result["recommendation"]
    lr_ci = f" [{r['lr_ci'][0]:.3g}, {r['lr_ci'][1]:.3g}]" if r.get("lr_ci") else ""
    batch_ci = f" [{r['batch_ci'][0]:.4g}, {r['batch_ci'][1]:.4g}]" if r.get("batch_ci") else ""
    lines = [
        f"model:  {r['params']:.4g} params ({r['params_kind']}), n_layer={r['n_layer']} d_model={r['d_model']}",
        f"tokens: {r['tokens']:.4g} ({r['tokens_per_param']:.3g} per param), {r['flops']:.3g} FLOPs"
        + (f", {r['gpu_hours']:.3g} GPU-hours" if r.get("gpu_hours") else ""),
        f"loss:   {r['loss']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]"
        + (" bits/byte" if result["inputs"].get("metric") == "bpb" else " nats/token"),
        f"lr:     {r['lr']:.3g}{lr_ci} ({r['lr_source']}); batch {r['batch_tokens']:.4g} tokens{batch_ci} "
        f"({r['batch_source']})",
        *_hparam_lines(result),
        f"report: {result['outputs']['report']}",
        f"config: {result['outputs']['large_run']}",
    ]
    lines += [f"plot:   {p}" for p in result["outputs"].get("plots", {}).values()]
    lines += [f"warning: {w}" for w in result["warnings"]]
    return lines


def options_from_args(args: argparse.Namespace) -> FitOptions:
    """The :class:`scaling.fit.options.FitOptions` of a parsed ``scaling fit`` command line."""
    from scaling.fit.options import FitOptions

    return FitOptions(target_flops=args.target_flops, target_params=args.target_params,
                      target_tokens=args.target_tokens, predict=tuple(args.predict), params=args.params,
                      n_boot=args.bootstrap, exclude_diverged=args.exclude_diverged, ci=args.ci,
                      gpu_throughput=args.gpu_throughput, isoflop_window_dex=args.isoflop_window,
                      seed=args.seed, plots=not args.no_plots, wandb=args.wandb, wandb_project=args.project,
                      wandb_group=args.group, metric=args.metric)


def run(args: argparse.Namespace) -> int:
    from scaling.fit.pipeline import fit_runs

    result = fit_runs(args.inputs, args.out, options_from_args(args))
    print("\n".join(summary_lines(result)))
    return 0
