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


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="sweep dirs, run dirs or CSV files (params,tokens,loss,...)",
    )
    parser.add_argument("--out", required=True,
                        help="output folder for fit.json, report.md, plots, large_run.yaml: new, empty, or a "
                             "previous fit's")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that holds other files, replacing only the files a fit "
                             "writes")
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
    parser.add_argument(
        "--bootstrap", type=int, default=200, metavar="K", help="bootstrap refits (0 = none; default 200)"
    )
    parser.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--exclude-diverged", action=argparse.BooleanOptionalAction, default=True,
                        help="leave diverged runs out (default on; the count is reported)")
    parser.add_argument("--gpu-throughput", type=_positive_float, metavar="FLOP/S",
                        help="achieved training FLOP/s per GPU, for a GPU-hours estimate")
    from scaling.fit.options import ISOFLOP_METHODS

    parser.add_argument("--isoflop-method", choices=ISOFLOP_METHODS, default=ISOFLOP_METHODS[0],
                        help="approach 2's minimum per budget: a weighted parabola near the best size, or a "
                             "cubic where the profile's asymmetry shows beyond the noise (default); an "
                             "interpolant through every size; or an unweighted parabola; all are in fit.json")
    parser.add_argument("--isoflop-window", type=float, default=0.75, metavar="DEX",
                        help="half-width in decades of N of the sizes around each budget's best that the "
                             "polynomial and the parabola are fitted to (default 0.75)")
    parser.add_argument(
        "--metric",
        default="auto",
        metavar="METRIC",
        help="fit the final val loss in nats/token (loss) or bits per byte (bpb); auto (default) "
        "takes bpb when the runs differ in tokenization, as nats/token do not compare then; "
        "eval/<task>/bpb fits a downstream task's bits per byte; eval/<task>/acc (or acc_norm) "
        "predicts its accuracy in two steps: task bpb from N and D, accuracy from task bpb",
    )
    parser.add_argument(
        "--chance",
        type=float,
        metavar="P",
        help="accuracy of guessing, the floor of the accuracy sigmoid (default: from the task file "
        "the runs' eval.tasks name, else 0.25)",
    )
    mix = parser.add_argument_group("data mixture (fitted when the runs' mixture weights vary)")
    mix.add_argument(
        "--mixture", action="store_true", help="fit the mixture law (an error says why when it cannot)"
    )
    mix.add_argument(
        "--mixture-target",
        metavar="NAME[=W,...]",
        help="evaluation set to optimise the mixture for, or a weighted sum (default: all, equally)",
    )
    mix.add_argument("--mixture-min-weight", type=_number_or_text, default=0.0, metavar="W|NAME=W,...",
                     help="smallest weight each domain keeps (default 0)")
    mix.add_argument("--max-epochs", type=_positive_float, default=4.0, metavar="E",
                     help="most repetitions of a domain's tokens in the large run (default 4)")
    mix.add_argument(
        "--domain-tokens",
        action="append",
        default=[],
        metavar="NAME=COUNT",
        help="training tokens of a domain (repeatable; read from the datasets' manifests otherwise)",
    )
    mix.add_argument("--predict-mixtures", metavar="CSV",
                     help="CSV of candidate mixtures (w_<domain> columns) to predict the losses of")
    parser.add_argument("--base-config", metavar="YAML",
                        help="run config the large run starts from (default: the largest run's; a CSV has "
                             "none, so large_run.yaml then takes the framework's defaults)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--wandb", choices=["disabled", "offline", "online"], default="offline",
                        help="mirror the fit to W&B (default offline)")
    parser.add_argument("--project", default=None,
                        help="W&B project of the fit run (default: the runs' logging.project, else scaling)")
    parser.add_argument("--group", default=None,
                        help="W&B group of the fit run (default: the runs' sweep group)")


def _mixture_lines(m: dict | None) -> list[str]:
    if not m:
        return []
    ws = ", ".join(
        f"{d} {w['value']:.3f}" + (f" [{w['lo']:.3f}, {w['hi']:.3f}]" if w["lo"] is not None else "")
        for d, w in m["weights"].items()
    )
    corr = m["heldout"]["rank_corr"]
    return [f"mixture: {ws} ({m['law']} law, held-out Spearman {'n/a' if corr is None else f'{corr:.2f}'}, "
            f"MAE {m['heldout']['mae']:.3g})"]


def _hparam_lines(result: dict) -> list[str]:
    """Each hyperparameter law with its exponents' intervals, the backtest penalty, a fixed run's gap."""
    lines = []
    for name, h in result["hparams"].items():
        law = h.get("law") if name != "backtest" else None
        if law:
            ci = law.get("exponent_ci") or {}
            exps = ", ".join(f"{k}^{v:.3g}" + (f" [{ci[k][0]:.3g}, {ci[k][1]:.3g}]" if ci.get(k) else "")
                             for k, v in law["exponents"].items())
            coef = f"{law['coef']:.3g}" if law["coef"] is not None else f"exp({law['log_coef']:.4g})"
            lines.append(f"{name} law: {coef}·{exps} ({h['form_reason']})")
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
    """The warnings, then the recommendation in a few lines, for the terminal (``scaling fit``'s output)."""
    from scaling.fit.knob_effects import multiplier_phrase
    from scaling.fit.recommend import train_command

    warnings = [f"warning: {w}" for w in result["warnings"]]
    if "recommendation" not in result:  # a mixture-only fit
        return [*warnings, *_mixture_lines(result["mixture"]), f"report: {result['outputs']['report']}",
                f"config: {result['outputs']['large_run']}"]
    r, config = result["recommendation"], result["outputs"]["large_run"]
    lr_ci = f" [{r['lr_ci'][0]:.3g}, {r['lr_ci'][1]:.3g}]" if r.get("lr_ci") else ""
    batch_ci = f" [{r['batch_ci'][0]:.4g}, {r['batch_ci'][1]:.4g}]" if r.get("batch_ci") else ""
    lines = list(warnings)
    lines += [
        f"model:  {r['params']:.4g} params ({r['params_kind']}), "
        f"n_layer={r['n_layer']} d_model={r['d_model']}",
        f"tokens: {r['tokens']:.4g} ({r['tokens_per_param']:.3g} per param), {r['flops']:.3g} FLOPs"
        + (f", {r['gpu_hours']:.3g} GPU-hours" if r.get("gpu_hours") else ""),
        f"loss:   {r['loss']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]"
        + (" bits/byte" if result["inputs"].get("metric", "").endswith("bpb") else " nats/token")
        + (
            f" ({result['inputs']['metric']})"
            if result["inputs"].get("metric", "").startswith("eval/")
            else ""
        ),
        *(
            [
                f"acc:    {r['acc']:.4f}"
                + (f" [{r['acc_lo']:.4f}, {r['acc_hi']:.4f}]" if r["acc_lo"] is not None else "")
                + f" {r['acc_metric']} (two steps: task bpb, then accuracy)"
            ]
            if r.get("acc_metric")
            else []
        ),
        f"lr:     {r['lr']:.3g}{lr_ci} ({r['lr_source']}); batch {r['batch_tokens']:.4g} tokens{batch_ci} "
        f"({r['batch_source']})",
        *_hparam_lines(result),
        f"report: {result['outputs']['report']}",
        f"config: {config} (train it: {train_command(config)})",
    ]
    for knob, e in (result.get("knob_effects") or {}).items():
        cross = e["crossover_flops"].get(e["runner_up"])
        lines.append(f"knob:   {knob}: {e['verdict']}, large run takes {r['knobs'][knob]['level']}; "
                     + multiplier_phrase(e["runner_up"], e["best"], e["multiplier"][e["runner_up"]])
                     + (f", crossing over at {cross:.3g} FLOPs" if cross else ""))
    lines += _mixture_lines(result.get("mixture"))
    lines += [f"plot:   {p}" for p in result["outputs"].get("plots", {}).values()]
    logged = result["outputs"].get("wandb") or {}
    if logged.get("mode") == "offline" and logged.get("dir"):
        lines.append(f"wandb: offline fit run in {logged['dir']}; sync with: wandb sync {logged['dir']}")
    return lines


def options_from_args(args: argparse.Namespace) -> FitOptions:
    """The :class:`scaling.fit.options.FitOptions` of a parsed ``scaling fit`` command line."""
    from scaling.fit.options import FitOptions

    return FitOptions(
        target_flops=args.target_flops,
        target_params=args.target_params,
        target_tokens=args.target_tokens,
        predict=tuple(args.predict),
        params=args.params,
        n_boot=args.bootstrap,
        exclude_diverged=args.exclude_diverged,
        ci=args.ci,
        gpu_throughput=args.gpu_throughput,
        isoflop_window_dex=args.isoflop_window,
        isoflop_method=args.isoflop_method,
        seed=args.seed,
        plots=not args.no_plots,
        wandb=args.wandb,
        wandb_project=args.project,
        wandb_group=args.group,
        metric=args.metric,
        chance=args.chance,
        mixture=args.mixture,
        mixture_target=args.mixture_target,
        mixture_min_weight=args.mixture_min_weight,
        max_epochs=args.max_epochs,
        domain_tokens=tuple(args.domain_tokens),
        predict_mixtures=args.predict_mixtures,
        overwrite=args.overwrite,
        base_config=args.base_config,
    )


def run(args: argparse.Namespace) -> int:
    from scaling.fit.pipeline import fit_runs

    result = fit_runs(args.inputs, args.out, options_from_args(args))
    print("\n".join(summary_lines(result)))
    return 0
