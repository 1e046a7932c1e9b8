"""AdamW with weight-decay groups: decay on matrices, never on norms and biases, and on
embeddings only when ``optim.decay_embeddings`` is set (a tied output head is the embedding)."""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = False) -> list[dict]:
    """Two AdamW parameter groups, ``decay`` and ``no_decay``, each parameter in exactly one.

    Norm weights and biases are 1-D; embeddings are found by module type so that a tied head
    (the same tensor as the input embedding) follows the embedding's rule.
    """
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # parameters() yields a shared (tied) tensor once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_embedding = id(p) in embedding_ids
        if p.ndim >= 2 and (decay_embeddings or not is_embedding):
            decay.append(p)
        else:
            no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def use_fused(fused: str, device: torch.device | str) -> bool:
    """Whether to use the fused AdamW kernel: ``auto`` means on CUDA only."""
    setting = str(fused).lower()
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return setting == "true"


def build_optimizer(model: nn.Module, optim_cfg, device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` of ``model`` as :class:`scaling.config.OptimConfig` says."""
    groups = param_groups(model, optim_cfg.weight_decay, optim_cfg.decay_embeddings)
    return torch.optim.AdamW(
        groups, lr=optim_cfg.lr, betas=(optim_cfg.beta1, optim_cfg.beta2), eps=optim_cfg.eps,
        fused=use_fused(optim_cfg.fused, device) or None,
    )
