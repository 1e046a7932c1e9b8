"""Synthetic LR x batch sweeps with a known optimum law, as a fit's CSV columns or :class:`Points`.

loss = L(N, D) · (1 + k_lr·x² + k_b·y² + k_xy·x·y) + noise, with x = ln(lr / lr*), y = ln(B / B*),
lr* = LR_COEF·N^LR_N·D^LR_D and B* = B_COEF·N^B_N·D^B_D: the optimum of every cell lies exactly on the
laws, and the cross term tilts the valley so that one hyperparameter's optimum read at a wrong value
of the other is off.
"""

from __future__ import annotations

import numpy as np

from scaling.fit.data import Points

TRUTH = {"lr": {"N": -0.25, "D": 0.08}, "batch_size": {"N": 0.1, "D": 0.3}}
LR_COEF, B_COEF = 3e-2, 2e3


def lr_star(n, d):
    return LR_COEF * n ** TRUTH["lr"]["N"] * d ** TRUTH["lr"]["D"]


def batch_star(n, d):
    return B_COEF * n ** TRUTH["batch_size"]["N"] * d ** TRUTH["batch_size"]["D"]


def landscape(
    seed: int = 0,
    *,
    noise: float = 0.002,
    sizes=(1e7, 3e7, 1e8, 3e8),
    tokens_per_param=(5, 20, 80),
    lr_factors=(1 / 4, 1 / 2, 1, 2, 4),
    batch_factors=(1 / 2, 1, 2),
    curvature=(0.01, 0.005, 0.004),
    offset=(1.1, 0.9),
    diverged_corner: bool = False,
) -> dict[str, np.ndarray]:
    """Columns params, tokens, lr, batch_size, loss of a grid around each cell's optimum (off by ``offset``).

    ``diverged_corner``: the largest LR with the smallest batch blows up (loss 10) in every cell.
    """
    rng = np.random.default_rng(seed)
    k_lr, k_b, k_xy = curvature
    rows = []
    for n in sizes:
        for r in tokens_per_param:
            d = n * r
            base = 1.7 + 400 / n**0.34 + 410 / d**0.28
            for i, fl in enumerate(lr_factors):
                for j, fb in enumerate(batch_factors):
                    x, y = np.log(fl * offset[0]), np.log(fb * offset[1])
                    loss = base * (1 + k_lr * x**2 + k_b * y**2 + k_xy * x * y) + rng.normal(0, noise)
                    if diverged_corner and i == len(lr_factors) - 1 and j == 0:
                        loss = 10.0
                    rows.append(
                        (n, d, lr_star(n, d) * fl * offset[0], batch_star(n, d) * fb * offset[1], loss)
                    )
    cols = np.array(rows).T
    return dict(zip(("params", "tokens", "lr", "batch_size", "loss"), cols, strict=True))


def as_points(cols: dict[str, np.ndarray]) -> Points:
    """The columns as the fit's input table (seeds from a ``seed`` column, else one; no other knob)."""
    n = len(cols["loss"])
    ids = [str(i) for i in range(n)]
    knobs = {c: list(cols[c]) for c in ("lr", "batch_size") if c in cols}
    return Points(
        cols["params"],
        cols["tokens"],
        cols["loss"],
        6 * cols["params"] * cols["tokens"],
        cols.get("lr", np.full(n, np.nan)),
        cols.get("batch_size", np.full(n, np.nan)),
        cols.get("seed", np.zeros(n)),
        ids,
        ids,
        knobs,
    )


# Published optimum laws (B in tokens per step, C = 6·N·D FLOPs):
# Step Law (Li et al. 2025, "Predictable Scale: Part I"): lr* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571;
# DeepSeek LLM (2024): lr* = 0.3118·C^-0.125, B* = 0.2920·C^0.3271.
PUBLISHED_LAWS = {
    "step_law": {"lr": (1.79, {"N": -0.713, "D": 0.307}), "batch_size": (0.58, {"N": 0.0, "D": 0.571})},
    "deepseek": {"lr": (0.3118, {"C": -0.125}), "batch_size": (0.2920, {"C": 0.3271})},
}


def published_optimum(law: str, column: str, n, d):
    """The optimum ``column`` (lr or batch_size) of the published law ``law`` at (N, D)."""
    coef, exponents = PUBLISHED_LAWS[law][column]
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    if "C" in exponents:
        return coef * (6 * n * d) ** exponents["C"]
    return coef * n ** exponents["N"] * d ** exponents["D"]


def linex(x, skew: float):
    """An asymmetric bowl: x² near 0, exponential on the side ``skew`` points to, linear on the other."""
    x = np.asarray(x, dtype=float)
    if skew == 0:
        return x**2
    return 2 * (np.exp(skew * x) - 1 - skew * x) / skew**2


def published_landscape(
    law: str,
    cells,
    lr_values,
    batch_values,
    *,
    seed: int = 0,
    noise: float = 0.002,
    seeds: int = 1,
    curvature=(0.01, 0.004),
    skew=(1.5, 1.0),
    lr_follows_batch: float = 0.3,
    diverge_above: float = 8.0,
    diverged_loss: float = 7.0,
) -> dict[str, np.ndarray]:
    """Columns params, tokens, lr, batch_size, seed, loss of LR x batch grids over ``cells`` ((N, D) pairs),
    with the optimum of every cell on the published law ``law``.

    loss = L(N, D)·(1 + k_lr·linex(x - ρ·y) + k_b·linex(y))·exp(noise), x = ln(lr / lr*), y = ln(B / B*).
    Unlike :func:`landscape` the bowl is lopsided as measured ones are: a learning rate too high costs
    more than one as much too low (``skew``), and one above ``diverge_above`` x the optimum diverges
    (``diverged_loss``); a batch too large (too few steps) costs more than one too small. At a batch B the
    best learning rate is lr*·(B / B*)^ρ (ρ: ``lr_follows_batch``). ``lr_values`` and
    ``batch_values`` are either fixed lists (one grid for every cell, as published sweeps run) or
    callables of (lr*, B*) giving a grid per cell.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in cells:
        lr_opt, b_opt = published_optimum(law, "lr", n, d), published_optimum(law, "batch_size", n, d)
        base = 1.7 + 400 / n**0.34 + 410 / d**0.28
        lrs = lr_values(lr_opt) if callable(lr_values) else lr_values
        batches = batch_values(b_opt) if callable(batch_values) else batch_values
        for lr in lrs:
            for b in batches:
                x, y = np.log(lr / lr_opt), np.log(b / b_opt)
                mean = base * (1 + _bowl(x, y, curvature, skew, lr_follows_batch))
                diverged = lr > diverge_above * lr_opt
                for s in range(seeds):
                    loss = diverged_loss if diverged else mean * np.exp(rng.normal(0, noise))
                    rows.append((n, d, lr, b, s, loss))
    cols = np.array(rows, dtype=float).T
    return dict(zip(("params", "tokens", "lr", "batch_size", "seed", "loss"), cols, strict=True))


def _bowl(x, y, curvature, skew, lr_follows_batch):
    k_lr, k_b = curvature
    return k_lr * linex(x - lr_follows_batch * y, skew[0]) + k_b * linex(y, skew[1])


def landscape_penalty(law: str, n, d, lr, batch, *, curvature=(0.01, 0.004), skew=(1.5, 1.0),
                      lr_follows_batch: float = 0.3):
    """What (lr, batch) costs at (N, D) on :func:`published_landscape`'s bowl, as a fraction of the loss."""
    x = np.log(lr / published_optimum(law, "lr", n, d))
    y = np.log(batch / published_optimum(law, "batch_size", n, d))
    return float(_bowl(x, y, curvature, skew, lr_follows_batch))
