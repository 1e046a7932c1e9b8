"""Parameter and FLOP counting from the config alone, and MFU against a table of device peaks.

Conventions (stated once, used everywhere: trainer, sweeps' IsoFLOP budgets, fits):

- ``total`` is every unique parameter of the instantiated model (a tied output head counts once,
  padded vocab rows count). It equals ``sum(p.numel() for p in model.parameters())``.
- ``non_embedding`` is ``total`` minus the input token embedding and learned position embeddings
  (Kaplan et al.). With tied embeddings the output head is that same matrix, so it is excluded too.
- ``flops_per_token`` is the *training* cost of one token, forward + backward, in the PaLM /
  nanoGPT convention: ``6 * N_matmul + 12 * n_layer * d_model * seq_len``. ``N_matmul`` is every
  parameter that multiplies activations once per token (all but the input lookups, but including
  a tied output head); the second term is the attention scores and weighted sum, counted without
  the causal-mask saving. Training FLOPs of a run = ``flops_per_token * tokens``.
- ``model.vocab_size: auto`` follows the data's tokenizer and is resolved when a config is loaded
  with its data prepared (:func:`scaling.config_loading.resolve_vocab_size`). Where it is still
  ``auto`` (no prepared data yet) counts assume :data:`ASSUMED_VOCAB_SIZE`, the default vocabulary
  of ``scaling prepare``; building a model needs the real number (:func:`padded_vocab_size`).

This module is plain arithmetic (no torch), so commands that only count start fast; the model
imports its shape helpers from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.config import ModelConfig
from scaling.errors import ConfigError

ASSUMED_VOCAB_SIZE = 8192  # counts of a config whose vocab_size is still auto (the `scaling prepare` default)


def _padded(vocab: int, multiple: int) -> int:
    return ((vocab + multiple - 1) // multiple) * multiple


def padded_vocab_size(cfg: ModelConfig) -> int:
    """Embedding rows: the vocab rounded up to a multiple of ``pad_vocab_to`` (faster matmuls).

    Raises :class:`ConfigError` while ``vocab_size`` is still ``auto``: a model needs the number."""
    if not isinstance(cfg.vocab_size, int):
        raise ConfigError(f"model.vocab_size={cfg.vocab_size} is not resolved: point data.path at a prepared "
                          "dataset (its tokenizer sets it) or set model.vocab_size to a number")
    return _padded(cfg.vocab_size, cfg.pad_vocab_to)


def counted_vocab_size(cfg: ModelConfig) -> int:
    """The vocabulary the counts use: ``vocab_size``, or :data:`ASSUMED_VOCAB_SIZE` while it is ``auto``."""
    return cfg.vocab_size if isinstance(cfg.vocab_size, int) else ASSUMED_VOCAB_SIZE


def ffn_hidden_size(cfg: ModelConfig) -> int:
    """MLP hidden width: ``ffn_hidden`` if set, else 4·d (gelu, relu2) or 8/3·d rounded up to 32 (swiglu)."""
    if cfg.ffn_hidden is not None:
        return cfg.ffn_hidden
    if cfg.activation == "swiglu":
        return int(math.ceil(8 * cfg.d_model / 3 / 32) * 32)
    return 4 * cfg.d_model


def kv_heads(cfg: ModelConfig) -> int:
    """Number of key/value heads (``n_head`` when unset: plain multi-head attention)."""
    return cfg.n_kv_head if cfg.n_kv_head is not None else cfg.n_head


def global_batch_tokens(cfg, world_size: int = 1, grad_accum: int | None = None) -> int:
    """Tokens per optimiser step of run config ``cfg``: ``train.micro_batch_size × train.seq_len ×
    grad_accum × world_size``. ``world_size`` is the number of data-parallel ranks (devices × nodes;
    1 gives the batch per device); ``grad_accum`` defaults to ``train.grad_accum`` (a Trainer built
    elsewhere passes its own accumulation)."""
    t = cfg.train
    accum = t.grad_accum if grad_accum is None else grad_accum
    return int(t.micro_batch_size * t.seq_len * accum * world_size)


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of a model config (see the module docstring for the conventions)."""

    total: int  # all unique parameters
    non_embedding: int  # total minus token and position embeddings
    matmul: int  # parameters used in a per-token multiply-add (enters 6*N)


def _norm_params(cfg: ModelConfig, dim: int) -> int:
    if cfg.norm == "rmsnorm":
        return dim
    return dim * (2 if cfg.bias else 1)


def count_params(cfg: ModelConfig) -> ParamCount:
    """Count parameters by formula; matches the instantiated :class:`scaling.model.Transformer` exactly
    (with ``vocab_size: auto`` unresolved, for a vocabulary of :data:`ASSUMED_VOCAB_SIZE`)."""
    d, head_dim = cfg.d_model, cfg.d_model // cfg.n_head
    qkv_out = (cfg.n_head + 2 * kv_heads(cfg)) * head_dim
    hidden = ffn_hidden_size(cfg)
    up_out = 2 * hidden if cfg.activation == "swiglu" else hidden
    bias = 1 if cfg.bias else 0
    attention = d * qkv_out + bias * qkv_out + d * d + bias * d
    qk_norm = 2 * _norm_params(cfg, head_dim) if cfg.qk_norm else 0
    mlp = d * up_out + bias * up_out + hidden * d + bias * d
    norms = _norm_params(cfg, d) * (1 if cfg.parallel_residual else 2)
    per_layer = attention + qk_norm + mlp + norms
    vocab = _padded(counted_vocab_size(cfg), cfg.pad_vocab_to)
    token_embedding = vocab * d
    position_embedding = cfg.max_seq_len * d if cfg.positions == "learned" else 0
    head = 0 if cfg.tie_embeddings else vocab * d
    body = cfg.n_layer * per_layer + _norm_params(cfg, d)
    total = body + token_embedding + position_embedding + head
    return ParamCount(
        total=total,
        non_embedding=total - token_embedding - position_embedding,
        matmul=body + vocab * d,  # the output head multiplies every token, tied or not
    )


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token: 6·N_matmul + 12·n_layer·d_model·seq_len."""
    return 6.0 * count_params(cfg).matmul + 12.0 * cfg.n_layer * cfg.d_model * seq_len


# Dense (no sparsity) bf16 tensor-core peak FLOP/s per device, from vendor data sheets.
# Matched against the device name in order, so more specific names come first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("H800", 989e12),
    ("B200", 2250e12),
    ("B100", 1750e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("A6000", 155e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("MI300X", 1307e12),
    ("MI250X", 383e12),
)


def peak_flops(device_name: str | None) -> float | None:
    """Dense bf16 peak FLOP/s of one device by name, or None for a device not in the table (e.g. a CPU)."""
    if not device_name:
        return None
    for key, peak in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def mfu(tokens_per_sec: float, flops_per_tok: float, device_name: str | None,
        n_devices: int = 1) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the devices' summed peak; None if unknown."""
    peak = peak_flops(device_name)
    if peak is None:
        return None
    return tokens_per_sec * flops_per_tok / (peak * n_devices)
