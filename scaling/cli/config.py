"""``scaling config show|presets``: print the resolved config and derived numbers, or the presets."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE`` and ``OVERRIDES...`` arguments shared by every command that builds a run
    config."""
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
    from scaling.config_loading import data_vocab_sizes, resolve_vocab_size, run_id
    from scaling.counting import ASSUMED_VOCAB_SIZE, count_params, flops_per_token, global_batch_tokens

    counts = count_params(cfg.model)
    fpt = flops_per_token(cfg.model, cfg.train.seq_len)
    lines = [
        f"run id:               {run_id(cfg)}",
        f"parameters:           {counts.total:,} total, {counts.non_embedding:,} non-embedding",
        f"FLOPs per token:      {fpt:.4g} (train, fwd+bwd, seq_len {cfg.train.seq_len})",
        f"batch per device:     {global_batch_tokens(cfg):,} tokens (x world size)",
        f"training FLOPs:       {fpt * cfg.train.tokens:.4g} for {cfg.train.tokens:.4g} tokens",
        f"tokens per parameter: {cfg.train.tokens / counts.total:.3g}",
    ]
    if cfg.model.vocab_size == "auto":
        unprepared = ", ".join(path for path, size in data_vocab_sizes(cfg).items() if size is None)
        lines.append(f"vocabulary:           auto, from the data once prepared ({unprepared} is not); "
                     f"the counts above assume {ASSUMED_VOCAB_SIZE}")
    note = resolve_vocab_size(cfg)
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _short(n: int) -> str:
    """``106816`` → ``107k``, ``1_590_000`` → ``1.59M``: three significant digits and a unit."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def presets_table() -> str:
    """Every preset by group; model presets with their size (parameters, d_model, layers)."""
    from scaling.config_loading import GROUPS, list_presets, load_config
    from scaling.counting import ASSUMED_VOCAB_SIZE, count_params

    lines = []
    for group in GROUPS:
        names = list_presets(group)
        if not names:
            continue
        if group != "model":
            lines.append(f"{group}: {', '.join(names)}")
            continue
        lines.append(f"model (parameters non-embedding / total; vocab auto counts as {ASSUMED_VOCAB_SIZE} "
                     "until the data is prepared):")
        for name in names:
            m = load_config(overrides=[f"model={name}"]).model
            counts = count_params(m)
            lines.append(f"  {name:<12} {_short(counts.non_embedding):>6} / {_short(counts.total):>6}  "
                         f"d_model {m.d_model:>4}  layers {m.n_layer:>2}  vocab {m.vocab_size}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from scaling.config_loading import load_config, to_yaml

    if args.action == "docs":
        from scaling.cli.config_docs import config_reference

        print(config_reference(), end="")
        return 0
    if args.action == "presets":
        print(presets_table())
        return 0
    cfg = load_config(args.config, args.overrides)
    print(to_yaml(cfg).rstrip())
    print("# derived")
    print("\n".join(f"# {line}" for line in describe(cfg).splitlines()))
    return 0
