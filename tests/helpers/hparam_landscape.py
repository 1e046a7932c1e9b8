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
    """The columns as the fit's input table (one seed, no other knob)."""
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
        np.zeros(n),
        ids,
        ids,
        knobs,
    )
