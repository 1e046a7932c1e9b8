"""Typed run configuration: one dataclass per group, each field documented where it is declared.

A run's configuration is the tree ``model / data / optim / schedule / train / run / logging``.
It is loaded by :func:`scaling.config_loading.load_config` as
schema ← YAML file(s) ← presets (``model=gpt2-small``) ← dotlist overrides (``optim.lr=3e-4``),
then checked by :func:`validate` before any compute. Token counts are floats so that ``2e6`` works
on the command line; they are rounded where they become step counts.

Each field carries its own rules: the comment after it is its documentation, and
:func:`choice` / :func:`checked` declare its allowed values in the field's metadata. :func:`validate`,
the config reference (``scaling config docs``) and the comments of the preset YAML files are all
derived from these declarations. Every float must be finite.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import ConfigError

POSITIVE = "positive"
NON_NEGATIVE = "at least 0"
FRACTION = "in [0, 1)"
FRACTION_OR_ONE = "in [0, 1]"
_RULES = {
    POSITIVE: lambda v: v > 0,
    NON_NEGATIVE: lambda v: v >= 0,
    FRACTION: lambda v: 0 <= v < 1,
    FRACTION_OR_ONE: lambda v: 0 <= v <= 1,
}


def choice(*choices: str) -> Any:
    """A text field that must be one of ``choices`` (case-insensitive); the first is the default."""
    return field(default=choices[0], metadata={"choices": choices})


def checked(default: Any, rule: str, *choices: str) -> Any:
    """A number field that must be ``rule`` (:data:`POSITIVE`, :data:`NON_NEGATIVE`, :data:`FRACTION`,
    :data:`FRACTION_OR_ONE`) when set; ``choices`` are words it may hold instead (``auto``)."""
    return field(default=default, metadata={"rule": rule, "choices": choices})


def field_choices(f: dataclasses.Field) -> tuple[str, ...]:
    """The words a field may hold, as declared on it (empty: any value of its type)."""
    return tuple(f.metadata.get("choices", ()))


def field_rule(f: dataclasses.Field) -> str | None:
    """The sign or range rule of a number field, as declared on it (None: any finite value)."""
    return f.metadata.get("rule")


@dataclass
class ModelConfig:
    """Architecture of the decoder-only transformer (see :mod:`scaling.model`)."""

    name: str = "custom"  # preset this came from (informational; `model=<preset>` sets it)
    n_layer: int = checked(2, POSITIVE)  # number of transformer blocks
    d_model: int = checked(64, POSITIVE)  # residual stream width
    n_head: int = checked(2, POSITIVE)  # attention (query) heads; d_model must be divisible by it
    # key/value heads: None = n_head (MHA), 1 = MQA, between = GQA
    n_kv_head: int | None = checked(None, POSITIVE)
    # MLP hidden size; None = 4*d_model (gelu/relu2) or 8/3*d_model rounded up to 32 (swiglu)
    ffn_hidden: int | None = checked(None, POSITIVE)
    activation: str = choice("swiglu", "gelu", "relu2")  # MLP activation
    norm: str = choice("rmsnorm", "layernorm")  # normalisation layer
    norm_eps: float = checked(1e-5, POSITIVE)  # epsilon inside the norm
    # position information: rotary, learned embeddings, or none
    positions: str = choice("rope", "learned", "none")
    rope_theta: float = checked(10000.0, POSITIVE)  # RoPE base frequency
    # longest sequence the model accepts (size of learned positions; RoPE cache)
    max_seq_len: int = checked(1024, POSITIVE)
    qk_norm: bool = False  # normalise queries and keys per head before attention
    tie_embeddings: bool = True  # share the input embedding and the output projection
    # attention and MLP read the same input and add side by side (GPT-J style)
    parallel_residual: bool = False
    bias: bool = False  # biases in linear layers and LayerNorm
    dropout: float = checked(0.0, FRACTION)  # dropout on attention weights and residual branches
    init_std: float = checked(0.02, POSITIVE)  # std of the normal init of weights and embeddings
    scaled_residual_init: bool = True  # divide the init std of residual output projections by sqrt(2*n_layer)
    # weight of the z-loss (mean squared log-partition of the logits); 0 = off
    z_loss: float = checked(0.0, NON_NEGATIVE)
    # tokenizer size the embedding covers; auto = the data's (data.path or data.mixture), filled in when the
    # config is loaded with its data prepared; a number smaller than the data's tokenizer is refused
    vocab_size: int | str = checked("auto", POSITIVE, "auto")
    # round the embedding table up to a multiple of this (64 or 128 help matmul speed)
    pad_vocab_to: int = checked(64, POSITIVE)
    # standard | mup: µP scales hidden init and LR, the logits and attention by width (see scaling.model)
    parametrization: str = choice("standard", "mup")
    # µP's base width: at this d_model µP and standard are the same model
    mup_base_d_model: int = checked(64, POSITIVE)


@dataclass
class MixtureSource:
    """One prepared dataset in a weighted mixture."""

    path: str = "???"  # prepared dataset directory (output of `scaling prepare`)
    weight: float = checked(1.0, POSITIVE)  # relative sampling weight (normalised over the mixture)


@dataclass
class EvalSet:
    """A named evaluation set: a fixed subset of a prepared dataset's validation split."""

    name: str = "???"  # logged as val/<name>/loss and val/<name>/bpb
    path: str = "???"  # prepared dataset directory with the run's tokenizer
    tokens: float | None = checked(
        None, POSITIVE
    )  # size of the fixed subset in tokens (None: data.val_tokens)


@dataclass
class DataConfig:
    """Where the prepared token shards are and how they are read."""

    path: str = "data/stdlib"  # prepared dataset directory (output of `scaling prepare`)
    # weighted datasets; when set, replaces `path` for training
    mixture: list[MixtureSource] = field(default_factory=list)
    # expected tokenizer hash; a dataset with another tokenizer is refused
    tokenizer_sha256: str | None = None
    # check when opening: fast = sizes + manifest, full = also sha256 of every shard
    verify: str = choice("fast", "full")
    val_tokens: float = checked(65536, POSITIVE)  # size of the fixed validation subset, in tokens
    # named evaluation sets, each logged as val/<name>/loss and bpb (default: each mixture source)
    eval: list[EvalSet] = field(default_factory=list)


@dataclass
class OptimConfig:
    """AdamW with weight-decay groups and gradient clipping."""

    lr: float = checked(3e-3, POSITIVE)  # peak learning rate
    beta1: float = checked(0.9, FRACTION)  # AdamW beta1
    beta2: float = checked(0.95, FRACTION)  # AdamW beta2
    eps: float = checked(1e-8, POSITIVE)  # AdamW epsilon
    # decoupled weight decay on matrices (never on norms and biases)
    weight_decay: float = checked(0.1, NON_NEGATIVE)
    decay_embeddings: bool = False  # also apply weight decay to embeddings
    grad_clip: float = checked(1.0, NON_NEGATIVE)  # clip the global gradient norm to this; 0 = no clipping
    fused: str = choice("auto", "true", "false")  # fused AdamW kernel; auto = fused on CUDA


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then a decay shape, ending at final_lr_fraction * lr."""

    # decay shape after warmup; wsd = warmup-stable-decay
    kind: str = choice("cosine", "linear", "constant", "wsd")
    warmup_fraction: float = checked(0.05, FRACTION)  # share of training steps spent in linear warmup from 0
    # LR at the last step, as a fraction of the peak LR
    final_lr_fraction: float = checked(0.1, FRACTION_OR_ONE)
    decay_fraction: float = checked(0.2, FRACTION)  # wsd only: share of training steps in the final decay
    # wsd only: shape of the final decay (sqrt = 1-sqrt)
    decay_shape: str = choice("linear", "sqrt", "cosine")


@dataclass
class TrainConfig:
    """How long and how the model is trained; the global batch in tokens is derived."""

    # training length in tokens (steps = tokens / global batch tokens, rounded up)
    tokens: float = checked(2e6, POSITIVE)
    seq_len: int = checked(256, POSITIVE)  # tokens per training sequence (must not exceed model.max_seq_len)
    micro_batch_size: int = checked(16, POSITIVE)  # sequences per device per forward pass
    grad_accum: int = checked(1, POSITIVE)  # micro-batches accumulated per optimiser step
    # validate every this many training tokens (and at the end)
    val_every_tokens: float = checked(5e5, POSITIVE)
    # save a resumable checkpoint every this many tokens (and at the end)
    checkpoint_every_tokens: float = checked(1e6, POSITIVE)
    # also keep checkpoints at these token counts (branch points for cooldowns)
    checkpoint_at_tokens: list[float] = field(default_factory=list)
    log_every_steps: int = checked(10, POSITIVE)  # write train metrics every this many optimiser steps
    # numeric precision; auto = 32-true on CPU, bf16-mixed on GPU
    precision: str = choice("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
    compile: str = choice("auto", "true", "false")  # torch.compile the model; auto = on for CUDA
    # SDPA kernel; auto = PyTorch picks; not in the run id
    attention: str = choice("auto", "flash", "efficient", "cudnn", "math")
    accelerator: str = choice("auto", "cpu", "gpu", "cuda")  # device type, passed to Lightning
    devices: str = "auto"  # auto | N (devices per node) | GPU indices as "0,1", passed to Lightning
    num_nodes: int = checked(1, POSITIVE)  # nodes, passed to Lightning
    # multi-device strategy, passed to Lightning; fsdp (shards each block, sharded checkpoints) and
    # deepspeed_stage_2/3 (ZeRO; needs the deepspeed extra) run on GPUs only
    strategy: str = choice("auto", "ddp", "fsdp", "ddp_spawn", "deepspeed_stage_2", "deepspeed_stage_3")
    # a train loss above this (or NaN/Inf) stops the run as diverged
    max_loss: float = checked(100.0, POSITIVE)
    threads: int | None = checked(None, POSITIVE)  # torch CPU threads; None = leave torch's default


@dataclass
class RunConfig:
    """Identity and placement of one run."""

    dir: str | None = None  # run directory; None = runs/<id>
    name: str | None = None  # human-readable name (W&B display name); None = the run id
    seed: int = 0  # seed for initialisation and data order
    resume: str = choice("never", "auto")  # auto = continue the latest checkpoint in the run dir
    branch_from: str | None = None  # parent run dir to branch from (a cooldown of a constant/WSD trunk)
    # token count of the parent checkpoint to start from
    branch_at_tokens: float | None = checked(None, POSITIVE)


@dataclass
class LoggingConfig:
    """W&B mirroring of runs; the run dir's files stay the source of truth."""

    wandb: str = choice("offline", "online", "disabled")  # W&B mode
    project: str = "scaling"  # W&B project
    entity: str | None = None  # W&B entity (team or user); None = your default
    group: str | None = None  # W&B group (a sweep sets it to the sweep name)
    job_type: str = "train"  # W&B job type
    tags: list[str] = field(default_factory=list)  # W&B tags
    wandb_dir: str | None = None  # where offline run files go; None = the run dir
    # W&B: attach the environment's installed-package list to the run (about 0.6 s per run start)
    save_requirements: bool = True


@dataclass
class EvalConfig:
    """Downstream multiple-choice tasks scored during training (``scaling eval`` scores a finished run)."""

    # shipped task names (stdlib-nextline) or JSONL files; empty = no downstream evaluation
    tasks: list[str] = field(default_factory=list)
    every_tokens: float = checked(
        5e6, POSITIVE
    )  # score the tasks every this many training tokens, and at the end
    limit: int | None = checked(None, POSITIVE)  # score only the first N items of each task (None = all)


@dataclass
class Config:
    """The whole configuration of one training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_DEVICES = re.compile(r"auto|-1|[1-9]\d*|\d+(\s*,\s*\d+)+,?|\d+\s*,")  # auto, a count, or an index list


def parse_devices(setting: Any) -> str | int | list[int]:
    """``train.devices`` as Lightning takes it: ``"auto"``, a count (``-1`` = all), or a list of GPU
    indices (``"0,1"``, ``"[0,1]"``, ``"3,"``); raises :class:`ConfigError` for anything else."""
    text = str(setting).strip().strip("[]")
    if not _DEVICES.fullmatch(text):
        raise ConfigError(f"train.devices={setting!r} is not auto, a count like 2, or GPU indices like 0,1")
    if text == "auto":
        return "auto"
    if "," not in text:
        return int(text)
    return [int(d) for d in text.split(",") if d.strip()]


def _is_float_field(hint: Any) -> bool:
    """Whether a field holds floats (``float``, ``float | None`` or ``list[float]``)."""
    return hint is float or float in typing.get_args(hint)


def _check_value(key: str, value: Any, f: dataclasses.Field, hint: Any) -> None:
    """Apply the rules declared on field ``f`` to its ``value``."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if _is_float_field(hint):
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{key}={v} must be a finite number")
    choices, rule = field_choices(f), field_rule(f)
    if value is None or not (choices or rule):
        return
    if isinstance(value, str):
        if value.lower() not in choices:
            number = f" or a {rule} number" if rule else ""
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}{number}")
    elif rule and not _RULES[rule](value):
        raise ConfigError(f"{key}={value} must be {rule}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_fields(node: Any, cls: type, prefix: str) -> None:
    """Check every field of dataclass ``cls`` in ``node`` (nested groups and list items too)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key, value, hint = f"{prefix}{f.name}", getattr(node, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            _check_fields(value, hint, f"{key}.")
            continue
        item = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
        if item is not None:
            for i, element in enumerate(value):
                _check_fields(element, item, f"{key}[{i}].")
            continue
        _check_value(key, value, f, hint)


def validate(cfg: Any) -> None:
    """Check the rules declared on every field (choices, finite floats, signs and ranges), then the
    cross-field consistency; raise :class:`ConfigError` on the first problem."""
    _check_fields(cfg, Config, "")
    m = cfg.model
    if m.d_model % m.n_head:
        raise ConfigError(f"model.d_model={m.d_model} is not divisible by model.n_head={m.n_head}")
    n_kv = m.n_kv_head if m.n_kv_head is not None else m.n_head
    if m.n_head % n_kv:
        raise ConfigError(f"model.n_head={m.n_head} is not divisible by model.n_kv_head={n_kv}")
    if m.positions == "rope" and (m.d_model // m.n_head) % 2:
        raise ConfigError(f"rope needs an even head size; d_model/n_head = {m.d_model // m.n_head}")
    parse_devices(cfg.train.devices)
    if cfg.train.seq_len > m.max_seq_len:
        raise ConfigError(
            f"train.seq_len={cfg.train.seq_len} is longer than model.max_seq_len={m.max_seq_len}; "
            "shorten train.seq_len or raise model.max_seq_len"
        )
    if cfg.schedule.kind == "wsd" and cfg.schedule.warmup_fraction + cfg.schedule.decay_fraction > 1:
        raise ConfigError("schedule.warmup_fraction + schedule.decay_fraction must not exceed 1")
    if (cfg.run.branch_from is None) != (cfg.run.branch_at_tokens is None):
        raise ConfigError("run.branch_from and run.branch_at_tokens must be set together")
    names = [e.name for e in cfg.data.eval]
    for i, name in enumerate(names):
        if not name or "/" in name or names.index(name) != i:
            raise ConfigError(f"data.eval[{i}].name={name!r} must be a non-empty name without '/', "
                              "different from the other evaluation sets'")
