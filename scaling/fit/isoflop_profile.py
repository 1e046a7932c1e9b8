"""One IsoFLOP budget's profile (the best loss per model size) and where its minimum lies.

Three ways to place the minimum between the sizes tried:

- ``polynomial`` (the default): a least-squares polynomial in log N through the sizes within
  ``window_dex`` decades of the best one and the two that bracket it, each size weighed by its noise.
  A parabola, the classic Chinchilla reading, which averages the noise of the sizes near the minimum;
  or a cubic where the profile's asymmetry (too small a model loses far more than too large a one)
  shows beyond that noise, which a parabola would read as a shifted vertex. On Chinchilla-like
  grids it is several times more accurate than the other two on clean profiles and as steady as the
  parabola on noisy ones (BENCHMARKS.md).
- ``interpolate``: an Akima interpolant of log loss in log N through every size, minimised on a fine
  grid. It follows the profile's shape without a global form and does not overshoot between points
  the way a cubic spline does, but with noisy losses it follows the noise too.
- ``parabola``: an unweighted parabola in log N fitted near the best size only (``window_dex``
  decades around it); the window keeps the asymmetry from dragging the vertex.

All work on many noisy copies of a profile at once (one column per copy), so the spread of the
minimum under run-to-run noise costs one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import Akima1DInterpolator
from scipy.optimize import brentq

from scaling.fit.basics import parabola_vertices, representative, window_around, windowed_minimum
from scaling.fit.data import CELL_TOLERANCE_DEX
from scaling.fit.options import ISOFLOP_METHODS as METHODS

GRID_PER_GAP = 50  # fine-grid points per average gap between sizes (the minimum is read to 1/50 of a gap)
SCATTER_DEGREE = 3  # the smooth curve a profile's excess scatter is measured about: a cubic in log N ...
SCATTER_WINDOW_DEX = 0.75  # ... through the sizes within this many decades of the best one
# how much lower a cubic's χ² must be than the parabola's for the polynomial method to use it: the 99.9%
# point of χ² with 1 degree of freedom. A cubic read off pure noise puts its minimum far more at random
# than a parabola (at the 95% point, the 5% of noisy copies that took one widened a symmetric profile's
# spread of minima by 44%), while a real asymmetry clears any such bar once the noise is small enough
# for it to move the minimum
CUBIC_CHI2 = 10.83
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
        best = int(np.argmin(loss))
        near = window_around(log_n, best, SCATTER_WINDOW_DEX)
        if near.sum() < SCATTER_DEGREE + 2:
            continue
        residuals.append(_weighted_polynomial(log_n[near] - log_n[best], loss[near, None], 1 / sigma[near],
                                              SCATTER_DEGREE)[1][:, 0])
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


def local_window(log_n: np.ndarray, best: int, window_dex: float | None) -> np.ndarray:
    """Mask of the sizes a local fit around ``best`` uses: those within ``window_dex`` decades of it and,
    wherever they lie, the two that bracket it (a sparse ladder must not leave the fit one-sided)."""
    chosen = window_around(log_n, best, window_dex)
    chosen[max(best - 1, 0)] = chosen[min(best + 1, log_n.size - 1)] = True
    return chosen


def polynomial_minima(log_n: np.ndarray, loss: np.ndarray, window_dex: float | None,
                      sigma: np.ndarray | None = None) -> Minima:
    """Minimum per column of ``loss`` (sizes × copies) of :func:`local_polynomial` around the column's
    best size. The curve, not the best size, says whether the minimum is interior: a best size at the
    first or last size tried (a tie or a noisy point) still has one where the curve turns inside the
    sizes, and a curve whose minimum is the first or last size is only a bound. Where the curve has no
    minimum (a profile too noisy near its best size for either curve) an interior best size stands
    for it: the noisy copies then scatter as widely as the best size does, and the budget weighs
    little in the regression rather than being dropped."""
    loss = loss.reshape(log_n.size, -1)
    best = np.argmin(loss, axis=0)
    cols = np.arange(loss.shape[1])
    u, value = log_n[best].astype(float), loss[best, cols].astype(float)
    interior = (best > 0) & (best < log_n.size - 1)
    for b in np.unique(best):
        which = np.flatnonzero(best == b)
        grid, curves, has_minimum = local_polynomial(log_n, loss[:, which], int(b), window_dex, sigma)
        at = np.argmin(curves, axis=0)
        # strictly between the first and last sizes tried (the grid ends on sizes, up to rounding)
        inside = has_minimum & (grid[at] > log_n[0] + 1e-9) & (grid[at] < log_n[-1] - 1e-9)
        u[which] = np.where(has_minimum, grid[at], u[which])
        value[which] = np.where(has_minimum, curves[at, np.arange(which.size)], value[which])
        interior[which] = np.where(has_minimum, inside, interior[which])
    return Minima(u, value, interior)


def local_polynomial(log_n: np.ndarray, loss: np.ndarray, best: int, window_dex: float | None,
                     sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares polynomials in log N through each column of ``loss`` (sizes × columns) at the
    sizes of :func:`local_window` around ``best``, each size weighed by its σ (``sigma``; None: equally).

    A parabola, or a cubic where the profile's asymmetry shows beyond its noise: where the cubic lowers
    χ² by more than ``CUBIC_CHI2`` (or the parabola opens downwards) and has its minimum between the
    sizes it was fitted to. The choice is made per column, so the noisy copies' spread includes it.
    Returns the fine grid over the sizes used (log10 N), the curves on it (grid × columns; their minimum
    on the grid clamps a parabola's vertex beyond the sizes to them, as :func:`parabola_minima` does) and
    per column whether the curve has a minimum (False: a parabola that opens downwards, and no cubic
    with a minimum inside the sizes)."""
    sigma = np.ones(log_n.size) if sigma is None else np.maximum(np.asarray(sigma, dtype=float), MIN_SIGMA)
    chosen = local_window(log_n, best, window_dex)
    x, y, w = log_n[chosen] - log_n[best], loss[chosen], 1 / sigma[chosen]
    grid = np.linspace(x.min(), x.max(), int(GRID_PER_GAP * np.ptp(x) / np.mean(np.diff(x))) + 1)

    def fit_with_chi2(degree: int) -> tuple[np.ndarray, np.ndarray]:
        coef, residuals = _weighted_polynomial(x, y, w, degree)
        return coef, np.sum((residuals * w[:, None]) ** 2, axis=0)

    coef, chi2 = fit_with_chi2(2)
    curves, has_minimum = np.vander(grid, 3) @ coef, coef[0] > 0
    if x.size >= 5:  # a cubic with a degree of freedom left over
        cubic, cubic_chi2 = fit_with_chi2(3)
        cubic_curves = np.vander(grid, 4) @ cubic
        at = np.argmin(cubic_curves, axis=0)
        # a parabola that opens downwards cannot describe a profile whose best size is inside it
        use = ((chi2 - cubic_chi2 > CUBIC_CHI2) | ~has_minimum) & (at > 0) & (at < grid.size - 1)
        curves, has_minimum = np.where(use, cubic_curves, curves), has_minimum | use
    return log_n[best] + grid, curves, has_minimum


def _weighted_polynomial(x: np.ndarray, y: np.ndarray, w: np.ndarray, degree: int):
    """Weighted least-squares polynomials of ``degree`` through each column of ``y`` at ``x`` (weights
    ``w`` = 1/σ): their coefficients (highest power first; degree+1 × columns) and residuals (like ``y``)."""
    coef = np.polyfit(x, y, degree, w=w)
    return coef, y - np.vander(x, degree + 1) @ coef


def parabola_minima(log_n: np.ndarray, loss: np.ndarray, window_dex: float | None) -> Minima:
    """The windowed parabola's vertex per column of ``loss`` (sizes × copies)."""
    u, value, at_edge = parabola_vertices(log_n, loss.reshape(log_n.size, -1), window_dex)
    return Minima(u, value, ~at_edge & np.isfinite(u))


def find_minima(method: str, log_n: np.ndarray, loss: np.ndarray, window_dex: float | None = 0.75,
                sigma: np.ndarray | None = None) -> Minima:
    """Minima of the profile columns by ``method`` (polynomial | interpolate | parabola); ``sigma``: each
    size's σ, which weighs the polynomial's points."""
    if method == "polynomial":
        return polynomial_minima(log_n, loss, window_dex, sigma)
    if method == "interpolate":
        return interpolated_minima(log_n, loss)
    if method == "parabola":
        return parabola_minima(log_n, loss, window_dex)
    raise ValueError(f"unknown IsoFLOP method {method!r}; expected one of {', '.join(METHODS)}")


def profile_curve(method: str, log_n, loss, window_dex: float | None = 0.75, sigma=None, points: int = 100):
    """(N, loss) along the fitted profile, for plots: the interpolant, or the local polynomial or
    windowed parabola near the best size (``sigma``: each size's σ, which weighs the polynomial)."""
    log_n, loss = np.asarray(log_n, dtype=float), np.asarray(loss, dtype=float)
    if method == "interpolate":
        grid = np.linspace(log_n[0], log_n[-1], points)
        return 10 ** grid, np.exp(Akima1DInterpolator(log_n, np.log(loss))(grid))
    if method == "polynomial":
        grid, curves, has_minimum = local_polynomial(log_n, loss[:, None], int(np.argmin(loss)), window_dex,
                                                     sigma)
        return (10 ** grid, curves[:, 0]) if has_minimum[0] else (np.zeros(0), np.zeros(0))
    best = windowed_minimum(log_n, loss, window_dex)
    if best is None or best.at_edge:
        return np.zeros(0), np.zeros(0)
    u = log_n[best.used]
    coef = np.polyfit(u, loss[best.used], 2)
    grid = np.linspace(u.min(), u.max(), points)
    return 10 ** grid, np.polyval(coef, grid)
