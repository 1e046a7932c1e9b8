"""``scaling config show|presets``: print the resolved config and derived numbers, or the presets."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE`` and ``OVERRIDES...`` arguments shared by every command that builds a run config."""
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML config file (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="presets (model=s6m, data=stdlib) and dotlist overrides (optim.lr=3e-4)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``show`` and ``presets``."""
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="print the resolved config and its parameters and FLOPs per token")
    add_config_arguments(show)
    sub.add_parser("presets", help="list the presets of every config group")
    sub.add_parser("docs", help="print the config reference (every key, type, default, meaning) as Markdown")


def describe(cfg) -> str:
    """The derived numbers of a config: parameters, FLOPs per token, batch and steps, run id."""
    from scaling.config_loading import run_id
    from scaling.counting import count_params, flops_per_token

    counts = count_params(cfg.model)
    fpt = flops_per_token(cfg.model, cfg.train.seq_len)
    batch_tokens = cfg.train.micro_batch_size * cfg.train.seq_len * cfg.train.grad_accum
    lines = [
        f"run id:               {run_id(cfg)}",
        f"parameters:           {counts.total:,} total, {counts.non_embedding:,} non-embedding",
        f"FLOPs per token:      {fpt:.4g} (train, fwd+bwd, seq_len {cfg.train.seq_len})",
        f"batch per device:     {batch_tokens:,} tokens (x world size)",
        f"training FLOPs:       {fpt * cfg.train.tokens:.4g} for {cfg.train.tokens:.4g} tokens",
        f"tokens per parameter: {cfg.train.tokens / counts.total:.3g}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from scaling.config_loading import GROUPS, list_presets, load_config, to_yaml

    if args.action == "docs":
        from scaling.cli.config_docs import config_reference

        print(config_reference(), end="")
        return 0
    if args.action == "presets":
        for group in GROUPS:
            names = list_presets(group)
            if names:
                print(f"{group}: {', '.join(names)}")
        return 0
    cfg = load_config(args.config, args.overrides)
    print(to_yaml(cfg).rstrip())
    print("# derived")
    print("\n".join(f"# {line}" for line in describe(cfg).splitlines()))
    return 0
