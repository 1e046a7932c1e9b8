"""One IsoFLOP budget's profile (the best loss per model size) and where its minimum lies.

Two ways to place the minimum between the sizes tried:

- ``interpolate`` (the default, as published IsoFLOP studies compute it): an Akima interpolant of
  log loss in log N through every size, minimised on a fine grid. Akima follows the asymmetric shape
  of a real profile (too small a model loses far more than too large a one) without a global form,
  and does not overshoot between points the way a cubic spline does.
- ``parabola``: a parabola in log N fitted near the best size only (``window_dex`` decades around it),
  the classic Chinchilla reading; the window keeps the asymmetry from dragging the vertex.

Both work on many noisy copies of a profile at once (one column per copy), so the spread of the
minimum under run-to-run noise costs one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import Akima1DInterpolator
from scipy.optimize import brentq

from scaling.fit.basics import parabola_vertices, representative, window_around, windowed_minimum
from scaling.fit.data import CELL_TOLERANCE_DEX

METHODS = ("interpolate", "parabola")
GRID_PER_GAP = 50  # fine-grid points per average gap between sizes (the minimum is read to 1/50 of a gap)
SCATTER_DEGREE = 3  # the smooth curve a profile's excess scatter is measured about: a cubic in log N ...
SCATTER_WINDOW_DEX = 0.75  # ... through the sizes within this many decades of the best one
MIN_SIGMA = 1e-9  # a stated noise of 0 (identical repeats) weighs the points as this, in nats


@dataclass
class Profile:
    """The runs of one budget, grouped by size and, within a size, by setting."""

    flops: float  # geometric mean of the budget's runs' FLOPs
    log_n: np.ndarray  # log10 of each distinct size, ascending
    groups: list[list[np.ndarray]]  # per size, per setting: positions in ``rows`` (seeds of that setting)
    rows: np.ndarray  # the budget's row indices in the input

    def best_loss(self, loss: np.ndarray) -> np.ndarray:
        """Per size, the best setting's seed-mean loss; ``loss`` holds the budget's rows in the order of
        ``rows``, (rows,) or (rows, copies)."""
        return np.stack([np.min([loss[idx].mean(axis=0) for idx in settings], axis=0)
                         for settings in self.groups])

    def best_sigma(self, loss: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Per size, the σ of :meth:`best_loss`'s value: its setting's seeds' mean σ over √seeds
        (``loss`` and ``sigma`` hold the budget's rows, (rows,))."""
        out = []
        for settings in self.groups:
            best = settings[int(np.argmin([loss[idx].mean() for idx in settings]))]
            out.append(float(sigma[best].mean() / np.sqrt(best.size)))
        return np.array(out)

    @property
    def mean_gap(self) -> float:
        """Average spacing of the sizes in decades."""
        return float(np.ptp(self.log_n) / (self.log_n.size - 1))


def build_profile(flops: float, rows: np.ndarray, params: np.ndarray, setting: list) -> Profile:
    """The profile of the runs ``rows``; sizes within 2% are one size, equal ``setting`` keys are seeds."""
    sizes = representative(params[rows], CELL_TOLERANCE_DEX)
    levels = np.unique(sizes)
    groups = []
    for level in levels:
        members: dict = {}
        for pos in np.flatnonzero(sizes == level):
            members.setdefault(setting[rows[pos]], []).append(int(pos))
        groups.append([np.array(v) for v in members.values()])
    return Profile(float(flops), np.log10(levels), groups, rows)


@dataclass
class ExcessScatter:
    """How far the profiles' losses scatter about smooth curves beyond their stated run-to-run noise.

    Per-size quirks (a width that suits the data better, a learning rate a little off for one size, an
    extraction error in a published curve) stay when a run is repeated with another seed, so the seed
    noise does not hold them, yet they move a profile's minimum just as noise does. ``tau`` is their
    size as the Paule-Mandel estimator of random-effects meta-analysis gives it: the σ that, added in
    quadrature to every point's noise, makes the residuals' χ² equal their degrees of freedom (0 when the
    noise explains the scatter). Pooled over every budget, it rests on many degrees of freedom where the
    optima's scatter about the N*(C) line rests on (budgets - 2)."""

    tau: float  # σ added in quadrature to each run's noise; 0 when the stated noise explains the scatter
    ratio: float  # √(reduced χ²) of the residuals under the stated noise alone
    dof: int  # residual degrees of freedom, summed over the budgets that have some
    n_budgets: int  # budgets with enough sizes in the window to count

    def to_dict(self) -> dict:
        return {"tau": self.tau, "ratio": self.ratio, "dof": self.dof, "n_budgets": self.n_budgets,
                "degree": SCATTER_DEGREE, "window_dex": SCATTER_WINDOW_DEX}


def excess_scatter(profiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> ExcessScatter | None:
    """:class:`ExcessScatter` of profiles given as (log10 N, loss, σ) per budget, each about its own
    weighted cubic in log N through the sizes within ``SCATTER_WINDOW_DEX`` of its best size (a budget
    with too few sizes there leaves no residual and does not count). None when no budget counts."""
    residuals, sigmas, dof, used = [], [], 0, 0
    for log_n, loss, sigma in profiles:
        sigma = np.maximum(sigma, MIN_SIGMA)
        near = window_around(log_n, int(np.argmin(loss)), SCATTER_WINDOW_DEX)
        if near.sum() < SCATTER_DEGREE + 2:
            continue
        coef = np.polyfit(log_n[near], loss[near], SCATTER_DEGREE, w=1 / sigma[near])
        residuals.append(loss[near] - np.polyval(coef, log_n[near]))
        sigmas.append(sigma[near])
        dof += int(near.sum()) - SCATTER_DEGREE - 1
        used += 1
    if not used:
        return None
    r2, s2 = np.concatenate(residuals) ** 2, np.concatenate(sigmas) ** 2
    chi2 = float(np.sum(r2 / s2))
    # Σ r²/(σ² + τ²) falls from χ² at τ² = 0 to below 1 at τ² = Σ r², so it meets dof (≥ 1) in between
    tau2 = brentq(lambda t2: float(np.sum(r2 / (s2 + t2))) - dof, 0.0, float(r2.sum())) if chi2 > dof else 0.0
    return ExcessScatter(float(np.sqrt(tau2)), float(np.sqrt(chi2 / dof)), dof, used)


@dataclass
class Minima:
    """Minimum of each column of a profile: position (log10 N), loss there, and whether it is interior."""

    log_n: np.ndarray
    loss: np.ndarray
    interior: np.ndarray  # False where the minimum is at (or beyond) the smallest or largest size tried


def interpolated_minima(log_n: np.ndarray, loss: np.ndarray) -> Minima:
    """Akima interpolant of log loss in log N per column of ``loss`` (sizes × copies), minimised on a
    grid of ``GRID_PER_GAP`` points per gap. A minimum on the grid's first or last point is not
    interior: the profile may still fall beyond the sizes tried."""
    loss = loss.reshape(log_n.size, -1)
    grid = np.linspace(log_n[0], log_n[-1], GRID_PER_GAP * (log_n.size - 1) + 1)
    curves = Akima1DInterpolator(log_n, np.log(loss), axis=0)(grid)  # (grid, copies)
    best = np.argmin(curves, axis=0)
    cols = np.arange(curves.shape[1])
    return Minima(grid[best], np.exp(curves[best, cols]), (best > 0) & (best < grid.size - 1))


def parabola_minima(log_n: np.ndarray, loss: np.ndarray, window_dex: float | None) -> Minima:
    """The windowed parabola's vertex per column of ``loss`` (sizes × copies)."""
    u, value, at_edge = parabola_vertices(log_n, loss.reshape(log_n.size, -1), window_dex)
    return Minima(u, value, ~at_edge & np.isfinite(u))


def find_minima(method: str, log_n: np.ndarray, loss: np.ndarray, window_dex: float | None = 0.75) -> Minima:
    """Minima of the profile columns by ``method`` (interpolate | parabola)."""
    if method == "interpolate":
        return interpolated_minima(log_n, loss)
    if method == "parabola":
        return parabola_minima(log_n, loss, window_dex)
    raise ValueError(f"unknown IsoFLOP method {method!r}; expected one of {', '.join(METHODS)}")


def profile_curve(method: str, log_n, loss, window_dex: float | None = 0.75, points: int = 100):
    """(N, loss) along the fitted profile, for plots: the interpolant, or the windowed parabola."""
    log_n, loss = np.asarray(log_n, dtype=float), np.asarray(loss, dtype=float)
    if method == "interpolate":
        grid = np.linspace(log_n[0], log_n[-1], points)
        return 10 ** grid, np.exp(Akima1DInterpolator(log_n, np.log(loss))(grid))
    best = windowed_minimum(log_n, loss, window_dex)
    if best is None or best.at_edge:
        return np.zeros(0), np.zeros(0)
    u = log_n[best.used]
    coef = np.polyfit(u, loss[best.used], 2)
    grid = np.linspace(u.min(), u.max(), points)
    return 10 ** grid, np.polyval(coef, grid)
