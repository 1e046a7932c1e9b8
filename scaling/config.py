"""Typed run configuration: one dataclass per group, each field documented where it is declared.

A run's configuration is the tree ``model / data / optim / schedule / train / run / logging``.
It is loaded by :func:`scaling.config_loading.load_config` as
schema ← YAML file(s) ← presets (``model=gpt2-small``) ← dotlist overrides (``optim.lr=3e-4``),
then checked by :func:`validate` before any compute. Token counts are floats so that ``2e6`` works
on the command line; they are rounded where they become step counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture of the decoder-only transformer (see :mod:`scaling.model`)."""

    name: str = "custom"  # preset this came from (informational; `model=<preset>` sets it)
    n_layer: int = 2  # number of transformer blocks
    d_model: int = 64  # residual stream width
    n_head: int = 2  # attention (query) heads; d_model must be divisible by it
    n_kv_head: int | None = None  # key/value heads: None = n_head (MHA), 1 = MQA, between = GQA
    ffn_hidden: int | None = None  # MLP hidden size; None = 4*d_model (gelu/relu2) or 8/3*d_model rounded up to 32 (swiglu)
    activation: str = "swiglu"  # swiglu | gelu | relu2
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    norm_eps: float = 1e-5  # epsilon inside the norm
    positions: str = "rope"  # rope | learned | none
    rope_theta: float = 10000.0  # RoPE base frequency
    max_seq_len: int = 1024  # longest sequence the model accepts (size of learned positions; RoPE cache)
    qk_norm: bool = False  # normalise queries and keys per head before attention
    tie_embeddings: bool = True  # share the input embedding and the output projection
    parallel_residual: bool = False  # attention and MLP read the same input and add side by side (GPT-J style)
    bias: bool = False  # biases in linear layers and LayerNorm
    dropout: float = 0.0  # dropout on attention weights and residual branches
    init_std: float = 0.02  # std of the normal init of weights and embeddings
    scaled_residual_init: bool = True  # divide the init std of residual output projections by sqrt(2*n_layer)
    z_loss: float = 0.0  # weight of the z-loss (mean squared log-partition of the logits); 0 = off
    vocab_size: int = 8192  # tokenizer vocabulary size (must cover the tokenizer of the data)
    pad_vocab_to: int = 64  # round the embedding table up to a multiple of this (64 or 128 help matmul speed)
    parametrization: str = "standard"  # standard | mup: µP scales hidden init/LR, logits, attention by width
    mup_base_d_model: int = 64  # µP's base width: at this d_model µP and standard are the same model


@dataclass
class MixtureSource:
    """One prepared dataset in a weighted mixture."""

    path: str = "???"  # prepared dataset directory (output of `scaling prepare`)
    weight: float = 1.0  # relative sampling weight (normalised over the mixture)


@dataclass
class DataConfig:
    """Where the prepared token shards are and how they are read."""

    path: str = "data/stdlib"  # prepared dataset directory (output of `scaling prepare`)
    mixture: list[MixtureSource] = field(default_factory=list)  # weighted datasets; when set, replaces `path` for training
    tokenizer_sha256: str | None = None  # expected tokenizer hash; a dataset with another tokenizer is refused
    verify: str = "fast"  # fast (sizes + manifest) | full (sha256 of every shard) check when opening
    val_tokens: float = 65536  # size of the fixed validation subset, in tokens


@dataclass
class OptimConfig:
    """AdamW with weight-decay groups and gradient clipping."""

    lr: float = 3e-3  # peak learning rate
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.95  # AdamW beta2
    eps: float = 1e-8  # AdamW epsilon
    weight_decay: float = 0.1  # decoupled weight decay on matrices (never on norms and biases)
    decay_embeddings: bool = False  # also apply weight decay to embeddings
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = no clipping
    fused: str = "auto"  # auto (fused on CUDA) | true | false: fused AdamW kernel


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then a decay shape, ending at final_lr_fraction * lr."""

    kind: str = "cosine"  # cosine | linear | constant | wsd (warmup-stable-decay)
    warmup_fraction: float = 0.05  # share of training steps spent in linear warmup from 0
    final_lr_fraction: float = 0.1  # LR at the last step, as a fraction of the peak LR
    decay_fraction: float = 0.2  # wsd only: share of training steps in the final decay
    decay_shape: str = "linear"  # wsd only: linear | sqrt (1-sqrt) | cosine


@dataclass
class TrainConfig:
    """How long and how the model is trained; the global batch in tokens is derived."""

    tokens: float = 2e6  # training length in tokens (steps = tokens / global batch tokens, rounded up)
    seq_len: int = 256  # tokens per training sequence (must not exceed model.max_seq_len)
    micro_batch_size: int = 16  # sequences per device per forward pass
    grad_accum: int = 1  # micro-batches accumulated per optimiser step
    val_every_tokens: float = 5e5  # validate every this many training tokens (and at the end)
    checkpoint_every_tokens: float = 1e6  # save a resumable checkpoint every this many tokens (and at the end)
    checkpoint_at_tokens: list[float] = field(default_factory=list)  # also keep checkpoints at these token counts (branch points for cooldowns)
    log_every_steps: int = 10  # write train metrics every this many optimiser steps
    precision: str = "auto"  # auto (32-true on CPU, bf16-mixed on GPU) | 32-true | bf16-mixed | 16-mixed
    compile: str = "auto"  # auto (on for CUDA) | true | false: torch.compile the model
    attention: str = "auto"  # auto (PyTorch picks the SDPA kernel) | flash | efficient | cudnn | math; not in the run id
    accelerator: str = "auto"  # auto | cpu | gpu (cuda), passed to Lightning
    devices: str = "auto"  # auto | N (devices per node) | GPU indices as "0,1", passed to Lightning
    num_nodes: int = 1  # nodes, passed to Lightning
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp (GPUs only; each block a shard unit), passed to Lightning
    max_loss: float = 100.0  # a train loss above this (or NaN/Inf) stops the run as diverged
    threads: int | None = None  # torch CPU threads; None = leave torch's default


@dataclass
class RunConfig:
    """Identity and placement of one run."""

    dir: str | None = None  # run directory; None = runs/<id>
    name: str | None = None  # human-readable name (W&B display name); None = the run id
    seed: int = 0  # seed for initialisation and data order
    resume: str = "never"  # never | auto (continue the latest checkpoint in the run dir)
    branch_from: str | None = None  # parent run dir to branch from (a cooldown of a constant/WSD trunk)
    branch_at_tokens: float | None = None  # token count of the parent checkpoint to start from


@dataclass
class LoggingConfig:
    """W&B mirroring of runs; the run dir's files stay the source of truth."""

    wandb: str = "offline"  # offline | online | disabled
    project: str = "scaling"  # W&B project
    entity: str | None = None  # W&B entity (team or user); None = your default
    group: str | None = None  # W&B group (a sweep sets it to the sweep name)
    job_type: str = "train"  # W&B job type
    tags: list[str] = field(default_factory=list)  # W&B tags
    wandb_dir: str | None = None  # where offline run files go; None = the run dir


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


_CHOICES: dict[str, tuple[str, ...]] = {
    "model.activation": ("swiglu", "gelu", "relu2"),
    "model.norm": ("rmsnorm", "layernorm"),
    "model.positions": ("rope", "learned", "none"),
    "model.parametrization": ("standard", "mup"),
    "data.verify": ("fast", "full"),
    "optim.fused": ("auto", "true", "false"),
    "schedule.kind": ("cosine", "linear", "constant", "wsd"),
    "schedule.decay_shape": ("linear", "sqrt", "cosine"),
    "train.precision": ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"),
    "train.compile": ("auto", "true", "false"),
    "train.attention": ("auto", "flash", "efficient", "cudnn", "math"),
    "train.strategy": ("auto", "ddp", "fsdp", "ddp_spawn"),
    "train.accelerator": ("auto", "cpu", "gpu", "cuda"),
    "run.resume": ("never", "auto"),
    "logging.wandb": ("offline", "online", "disabled"),
}

_POSITIVE: tuple[str, ...] = (
    "model.n_layer", "model.d_model", "model.n_head", "model.n_kv_head", "model.ffn_hidden",
    "model.norm_eps", "model.rope_theta", "model.max_seq_len", "model.init_std", "model.vocab_size",
    "model.pad_vocab_to", "model.mup_base_d_model", "data.val_tokens", "optim.lr", "optim.eps",
    "train.tokens", "train.seq_len",
    "train.micro_batch_size", "train.grad_accum", "train.val_every_tokens",
    "train.checkpoint_every_tokens", "train.log_every_steps", "train.num_nodes", "train.max_loss",
    "train.threads", "run.branch_at_tokens",
)
_NON_NEGATIVE: tuple[str, ...] = (
    "model.dropout", "model.z_loss", "optim.weight_decay", "optim.grad_clip",
    "schedule.warmup_fraction", "schedule.final_lr_fraction", "schedule.decay_fraction",
)
_FRACTIONS: tuple[str, ...] = (
    "model.dropout", "optim.beta1", "optim.beta2", "schedule.warmup_fraction",
    "schedule.final_lr_fraction", "schedule.decay_fraction",
)


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


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


def validate(cfg: Any) -> None:
    """Check choices, signs and cross-field consistency; raise :class:`ConfigError` on the first problem."""
    for key, choices in _CHOICES.items():
        value = str(_get(cfg, key)).lower()
        if value not in choices:
            raise ConfigError(f"{key}={_get(cfg, key)!r} is not one of {', '.join(choices)}")
    for key in _POSITIVE:
        value = _get(cfg, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key}={value} must be positive")
    for key in _NON_NEGATIVE:
        if _get(cfg, key) < 0:
            raise ConfigError(f"{key}={_get(cfg, key)} must not be negative")
    for key in _FRACTIONS:
        value = _get(cfg, key)
        if not 0 <= value < 1 and not (key == "schedule.final_lr_fraction" and value == 1):
            raise ConfigError(f"{key}={value} must be in [0, 1)")
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
    for i, source in enumerate(cfg.data.mixture):
        if not source.weight > 0:
            raise ConfigError(f"data.mixture[{i}].weight={source.weight} must be positive")
