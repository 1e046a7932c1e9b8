"""A decoder-only transformer in plain PyTorch, configured by :class:`scaling.config.ModelConfig`.

One file to read top to bottom: embeddings → ``n_layer`` blocks (attention + MLP, sequential or
parallel residual) → final norm → output projection. The model knows nothing of Lightning,
distribution or logging. Attention goes through ``F.scaled_dot_product_attention`` with
``is_causal=True``, which picks a flash / memory-efficient kernel on GPUs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.counting import ffn_hidden_size, kv_heads, padded_vocab_size

MUP_ATTENTION_HEAD_DIM = 64  # µP's 1/head_dim attention is scaled to equal 1/sqrt(head_dim) at this head size


def width_mult(cfg: ModelConfig) -> float:
    """How many times wider than µP's base width the model is (1 under the standard parametrization).

    Under µP (maximal update parametrization) hidden matrices start with std init_std/sqrt(m), learn
    with AdamW at lr/m (:func:`scaling.training.optim.param_groups`), and the logits are divided by m:
    the updates of every layer then stay the same size as the model widens, so the best LR found on
    narrow models holds for wide ones.
    """
    return cfg.d_model / cfg.mup_base_d_model if cfg.parametrization == "mup" else 1.0


def make_norm(cfg: ModelConfig, dim: int) -> nn.Module:
    """The configured normalisation over the last dimension."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(dim, eps=cfg.norm_eps)
    return nn.LayerNorm(dim, eps=cfg.norm_eps, bias=cfg.bias)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding: rotates pairs of query/key channels by position-dependent angles."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        # Buffers, not parameters: not trained, not saved (rebuilt from the config).
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape (batch, heads, seq, head_dim)."""
        seq = x.shape[-2]
        cos, sin = self.cos[:seq].to(x.dtype), self.sin[:seq].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2)


class Attention(nn.Module):
    """Causal self-attention with MHA / GQA / MQA, optional QK-norm and RoPE."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head = cfg.n_head, kv_heads(cfg)
        self.head_dim = cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, (self.n_head + 2 * self.n_kv_head) * self.head_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.proj.is_residual_output = True
        self.q_norm = make_norm(cfg, self.head_dim) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg, self.head_dim) if cfg.qk_norm else None
        self.rope = (
            RotaryEmbedding(self.head_dim, cfg.max_seq_len, cfg.rope_theta)
            if cfg.positions == "rope"
            else None
        )
        self.dropout = cfg.dropout
        # µP: attention logits ∝ 1/head_dim (keys and queries correlate after training), not 1/sqrt(head_dim)
        self.scale = (math.sqrt(MUP_ATTENTION_HEAD_DIM) / self.head_dim if cfg.parametrization == "mup"
                      else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim],
            dim=-1,
        )
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv_head != self.n_head, scale=self.scale,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    """Position-wise feed-forward: SwiGLU, GELU or squared ReLU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = ffn_hidden_size(cfg)
        self.activation = cfg.activation
        # SwiGLU's gate and up projections are one matmul, split afterwards.
        width = 2 * hidden if cfg.activation == "swiglu" else hidden
        self.up = nn.Linear(cfg.d_model, width, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)
        self.down.is_residual_output = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.activation == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.activation == "gelu":
            h = F.gelu(h, approximate="tanh")
        else:
            h = F.relu(h).square()
        return self.down(h)


class Block(nn.Module):
    """One pre-norm transformer block; with ``parallel_residual`` attention and MLP share one input."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.parallel = cfg.parallel_residual
        self.norm1 = make_norm(cfg, cfg.d_model)
        self.attn = Attention(cfg)
        # Parallel blocks read both branches from one normalised input: one norm is enough.
        self.norm2 = None if cfg.parallel_residual else make_norm(cfg, cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:
            h = self.norm1(x)
            return x + self.drop(self.attn(h)) + self.drop(self.mlp(h))
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """The decoder-only language model. ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        vocab = padded_vocab_size(cfg)
        self.embed = nn.Embedding(vocab, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.positions == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = make_norm(cfg, cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, vocab, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights, zero biases; residual outputs scaled by 1/sqrt(2·n_layer); under µP
        hidden matrices (not the embedding or the output head) by a further 1/sqrt(width multiplier)."""
        hidden_std = self.cfg.init_std / math.sqrt(width_mult(self.cfg))
        head_std = self.cfg.init_std
        std = hidden_std
        residual_std = std / math.sqrt(2 * self.cfg.n_layer) if self.cfg.scaled_residual_init else std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                s = residual_std if getattr(module, "is_residual_output", False) else std
                s = head_std if module is self.lm_head else s
                nn.init.normal_(module.weight, mean=0.0, std=s)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                # A small init matters: N(0, 1) with tied weights starts at loss ~22 and slow first steps.
                nn.init.normal_(module.weight, mean=0.0, std=head_std)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of shape (batch, seq, padded vocab); with ``targets``, the mean cross-entropy
        (plus ``z_loss`` · mean(logsumexp²) when configured)."""
        T = idx.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {T} tokens is longer than model.max_seq_len={self.cfg.max_seq_len}"
            )
        x = self.embed(idx)
        if self.pos_embed is not None:
            x = x + self.pos_embed(torch.arange(T, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.norm(x))
        if self.cfg.parametrization == "mup":  # µP's output multiplier: logits stay O(1) as the width grows
            logits = logits / width_mult(self.cfg)
        if targets is None:
            return logits, None
        flat = logits.float().view(-1, logits.size(-1))
        loss = F.cross_entropy(flat, targets.reshape(-1))
        if self.cfg.z_loss > 0:
            loss = loss + self.cfg.z_loss * torch.logsumexp(flat, dim=-1).square().mean()
        return logits, loss


def build_model(cfg: ModelConfig) -> Transformer:
    """Instantiate the transformer for a model config (weights initialised, on CPU, float32)."""
    return Transformer(cfg)
