"""The size ladder: LLaMA-style model presets from ~0.1M to ~1B non-embedding parameters.

Every rung has the same aspect ratio d_model / n_layer = 32, so the only thing that changes along
the ladder is size (Kaplan et al. found loss depends little on shape at fixed size). Heads are 32
wide up to d_model=512 and 64 wide above. The architecture is LLaMA's (RoPE, RMSNorm, SwiGLU, no
biases) with tied embeddings, which keeps the embedding share of tiny models in check.
A rung's name is its non-embedding parameter count, rounded (``s1.5m`` has 1.59M).
"""

from __future__ import annotations

ASPECT_RATIO = 32  # d_model / n_layer

# name -> n_layer; d_model = ASPECT_RATIO * n_layer
_RUNGS: dict[str, int] = {
    "s100k": 2, "s330k": 3, "s800k": 4, "s1.5m": 5, "s2.6m": 6, "s6m": 8, "s12m": 10, "s21m": 12,
    "s50m": 16, "s100m": 20, "s170m": 24, "s400m": 32, "s800m": 40, "s1b": 44,
}


def ladder_names() -> list[str]:
    """Names of the ladder presets, smallest first."""
    return list(_RUNGS)


def ladder_shape(n_layer: int) -> dict:
    """The model fields of a ladder rung with ``n_layer`` blocks (also used to size a recommended model)."""
    d_model = ASPECT_RATIO * n_layer
    head_dim = 32 if d_model <= 512 else 64
    return {
        "n_layer": n_layer, "d_model": d_model, "n_head": max(1, d_model // head_dim),
        "activation": "swiglu", "norm": "rmsnorm", "positions": "rope", "tie_embeddings": True,
        "bias": False, "ffn_hidden": None, "n_kv_head": None,
    }


def ladder_preset(name: str) -> dict | None:
    """The model fields of ladder rung ``name``, or None when it is not a ladder name."""
    if name not in _RUNGS:
        return None
    return {"name": name, **ladder_shape(_RUNGS[name])}
