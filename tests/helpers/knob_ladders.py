"""Synthetic knob ladders with a known truth: each level of a knob follows a law of our choosing."""

from __future__ import annotations

import numpy as np

from scaling.fit.data import Points
from scaling.fit.parametric import ParametricFit

BASE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
SIZES = (1e6, 3e6, 1e7, 3e7, 1e8)
TARGET = (1e9, 2e10)  # 20 tokens per parameter, 10x the largest run's size


def law(a_factor: float = 1.0, b_factor: float = 1.0) -> ParametricFit:
    return ParametricFit.from_constants(BASE["E"], BASE["A"] * a_factor, BASE["B"] * b_factor, BASE["alpha"],
                                        BASE["beta"])


def worth(multiplier: float) -> ParametricFit:
    """The base law with every run worth ``multiplier``x its compute (N and D each worth √multiplier)."""
    return law(multiplier ** (-BASE["alpha"] / 2), multiplier ** (-BASE["beta"] / 2))


def ladder(
    laws: dict[str, ParametricFit], rng, *, ratios=(10, 40), seeds=2, noise=0.01, extra=None
) -> Points:
    rows = [(n, n * r, level, s) for level in laws for n in SIZES for r in ratios for s in range(seeds)]
    params = np.array([r[0] for r in rows])
    tokens = np.array([r[1] for r in rows])
    loss = np.array([float(laws[r[2]].predict(r[0], r[1])) for r in rows]) * np.exp(
        rng.normal(0, noise, len(rows))
    )
    n = len(rows)
    knobs = {"model.activation": [r[2] for r in rows], **(extra(rows) if extra else {})}
    return Points(
        params,
        tokens,
        loss,
        6 * params * tokens,
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.array([r[3] for r in rows], dtype=float),
        [str(i) for i in range(n)],
        [str(i) for i in range(n)],
        knobs,
    )


def crossing_at(params: float, alpha: float) -> ParametricFit:
    """A law with a flatter parameter exponent that equals the base law's N term at ``params``: better
    below that size, worse above it (the same data term, so the crossing does not depend on D)."""
    return ParametricFit.from_constants(
        BASE["E"], BASE["A"] * params ** (alpha - BASE["alpha"]), BASE["B"], alpha, BASE["beta"]
    )
