"""AdamW with weight-decay groups (decay on matrices, never on norms and biases, and on embeddings
only when ``optim.decay_embeddings`` is set; a tied output head is the embedding), and gradient
clipping that stays correct when the model is sharded by FSDP."""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = False,
                 hidden_lr_mult: float = 1.0) -> list[dict]:
    """Two AdamW parameter groups, ``decay`` and ``no_decay``, each parameter in exactly one.

    Parameters are classified by the module that owns them, not by their shape: under FSDP every
    parameter is a flattened 1-D shard, so a shape rule would put all of them in ``no_decay``.
    ``nn.Linear`` weights decay; ``nn.Embedding`` weights decay only with ``decay_embeddings`` (a tied
    head shares the embedding's tensor and follows its rule); other parameters (norms, biases) do not,
    except a ≥2-D parameter of another module type (as a fallback for custom layers).

    With ``hidden_lr_mult`` ≠ 1 (µP) the hidden matrices (``nn.Linear`` weights other than the output
    head and a tied embedding) form a third group, ``hidden``, last, whose ``lr_mult`` scales the LR;
    every group carries its ``lr_mult``.
    """
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = getattr(model, "lm_head", None)
    head_ids = {id(head.weight)} if isinstance(head, nn.Linear) else set()
    decay, no_decay, hidden, seen = [], [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):  # a shared (tied) tensor counts once
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if id(p) in embedding_ids:
                decays = decay_embeddings
            elif isinstance(module, nn.Linear):
                decays = name == "weight"
            else:
                decays = p.ndim >= 2 and not isinstance(module, (nn.LayerNorm, nn.RMSNorm))
            shared = embedding_ids | head_ids
            is_hidden = isinstance(module, nn.Linear) and name == "weight" and id(p) not in shared
            if hidden_lr_mult != 1.0 and is_hidden:
                hidden.append(p)
            else:
                (decay if decays else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay", "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay", "lr_mult": 1.0},
    ]
    if hidden_lr_mult != 1.0:
        groups.append({"params": hidden, "weight_decay": weight_decay, "name": "hidden",
                       "lr_mult": hidden_lr_mult})
    return groups


def clip_gradients(module: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip ``module``'s gradients to a global L2 norm of ``max_norm``; returns the norm before clipping.

    An FSDP-wrapped root is clipped by FSDP itself: ``torch.nn.utils.clip_grad_norm_`` over sharded
    parameters would see only this rank's shard, giving every rank a different, too small norm.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    if isinstance(module, FullyShardedDataParallel):
        return module.clip_grad_norm_(max_norm)
    return torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)


def use_fused(fused: str, device: torch.device | str) -> bool:
    """Whether to use the fused AdamW kernel: ``auto`` means on CUDA only."""
    setting = str(fused).lower()
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return setting == "true"


def build_optimizer(model: nn.Module, optim_cfg, device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` of ``model`` as :class:`scaling.config.OptimConfig` says; under µP
    (``model.cfg.parametrization``) the hidden matrices learn at lr / width multiplier."""
    from scaling.model import width_mult

    model_cfg = getattr(model, "cfg", None)
    mult = width_mult(model_cfg) if model_cfg is not None else 1.0
    groups = param_groups(model, optim_cfg.weight_decay, optim_cfg.decay_embeddings,
                          hidden_lr_mult=1.0 / mult)
    for group in groups:
        group["lr"] = optim_cfg.lr * group["lr_mult"]
    return torch.optim.AdamW(
        groups, lr=optim_cfg.lr, betas=(optim_cfg.beta1, optim_cfg.beta2), eps=optim_cfg.eps,
        fused=use_fused(optim_cfg.fused, device) or None,
    )
