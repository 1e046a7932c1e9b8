"""The loss of one (model size, token budget) cell as a surface over its swept hyperparameters.

Settings are first reduced to one loss each: the mean over seeds, and where other knobs vary too,
the best of them. With two hyperparameters swept over three or more values each (learning rate and
batch size), the loss is fitted as a quadratic in (log10 lr, log10 batch) *with* a cross term, so that
the optimum of each hyperparameter is the vertex of the surface, read jointly, not at whatever value the
other one happened to have. Settings more than ``FAR_ABOVE`` above the best loss (a diverged corner, a
far too small batch) are left out, since no quadratic describes a cliff.

Measured bowls are lopsided: a learning rate 4x too high costs more than one 4x too low, a batch too
large (too few steps) more than one too small. A quadratic over a wide grid then puts its vertex on the
gentle side, for a fixed grid by a different amount in every cell. So the quadratic over all plausible
settings is kept only when it fits them: where cubic terms explain significantly more
(:func:`lacks_fit`, an F-test at ``LACK_OF_FIT_P``), the surface is refitted to the settings within
1, then 0.75, then 0.5 decades of the optimum on each axis until one fits (``WINDOWS_DEX``), each window
moving to the setting nearest its vertex until it settles. The widest window a quadratic describes is
the least noisy estimate that is not biased by the bowl's shape; on a symmetric bowl it is all of them.

A surface that does not open upwards drops its cross term; one that still does not falls back to the
best setting tried. With one hyperparameter swept, the loss is a parabola in its log10 near the best
value, as :func:`scaling.fit.basics.windowed_minimum` fits it.

An optimum beyond the values tried is not extrapolated: it is set to the edge value and flagged as a
bound ("above": the optimum is at least the largest value tried; "below": at most the smallest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats

from scaling.fit.basics import window_around, windowed_minimum
from scaling.fit.data import CELL_TOLERANCE_DEX, Points

FAR_ABOVE = 0.05  # settings whose loss is this fraction above the cell's best are left out of a surface
LACK_OF_FIT_P = 0.05  # cubic terms this significant mean the quadratic misses the bowl's shape
RECENTRE_STEPS = 3  # how often a local surface's window may move to the setting nearest its vertex
WINDOW_DEX = 0.5  # half-width, in decades, of the settings around the best that a parabola fits
WINDOWS_DEX = (1.0, 0.75, WINDOW_DEX)  # the windows a surface that lacks fit over all settings tries


@dataclass
class Surface:
    """One cell's fitted loss over its swept hyperparameters (log10 coordinates)."""

    axes: tuple[str, ...]
    """The swept hyperparameters (columns of :class:`Points`), one or two."""
    optimum: dict[str, float]
    """Value of each axis at the surface's minimum (an edge value where ``bound`` says so)."""
    bound: dict[str, str | None]
    """Per axis: None, or "above"/"below" when the optimum lies beyond the largest/smallest value tried."""
    loss_at_opt: float
    """The surface's loss at ``optimum``."""
    method: str
    """"quadratic with cross term", "quadratic without cross term", "parabola" or "best setting tried"
    (for one axis, "best setting tried, below a run that diverged" where that brackets the optimum)."""
    settings: np.ndarray
    """log10 value of every setting (rows) on every axis (columns), seeds averaged."""
    losses: np.ndarray
    """Loss of every setting (infinite for one whose run diverged)."""
    n_used: int
    """Settings the surface was fitted to."""
    coef: np.ndarray | None = None
    """Coefficients over :func:`_features` of the centred coordinates (None: no surface, best setting)."""
    center: np.ndarray | None = None
    residual_squares: float = 0.0
    """Sum of squared residuals of the fitted settings."""
    dof: int = 0
    """Fitted settings minus coefficients."""
    window: str = "all plausible settings"
    """Which settings a two-axis surface was fitted to: "all plausible settings", or "within W decades of
    the optimum" where the quadratic over all of them lacked fit (a lopsided bowl)."""

    def loss_at(self, values: dict[str, float]) -> float:
        """The surface's loss at ``values`` (per axis); the nearest setting tried without a surface."""
        u = np.array([[math.log10(values[a]) for a in self.axes]])
        if self.coef is None:
            return self.measured_near(values)
        return float((_features(u - self.center, self.coef.size) @ self.coef)[0])

    def measured_near(self, values: dict[str, float]) -> float:
        """Loss of the finished setting tried nearest to ``values`` (in decades)."""
        u = np.array([math.log10(values[a]) for a in self.axes])
        distance = np.where(np.isfinite(self.losses), np.sum((self.settings - u) ** 2, axis=1), np.inf)
        return float(self.losses[np.argmin(distance)])

    def penalty(self, values: dict[str, float]) -> dict:
        """How much worse ``values`` is than the optimum, relative to the optimum's loss: read off the
        surface, and off the measured grid (nearest setting tried against the best tried)."""
        best = float(self.losses.min())
        surface = max(0.0, self.loss_at(values) - self.loss_at_opt) / self.loss_at_opt
        grid = max(0.0, self.measured_near(values) - best) / best
        u = np.array([math.log10(values[a]) for a in self.axes])
        outside = bool(
            np.any(u < self.settings.min(axis=0) - 1e-9) or np.any(u > self.settings.max(axis=0) + 1e-9)
        )
        return {"penalty": surface, "grid_penalty": grid, "outside_grid": outside}

    def to_dict(self) -> dict:
        return {
            "axes": list(self.axes),
            "optimum": self.optimum,
            "bound": self.bound,
            "loss_at_opt": self.loss_at_opt,
            "method": self.method,
            "n_settings": int(self.losses.size),
            "n_used": self.n_used,
            "window": self.window,
        }


def setting_losses(
    points: Points, idx: np.ndarray, axes: tuple[str, ...], loss: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values, loss) per setting of ``axes`` in a cell: mean over seeds, best over other knobs.

    ``values`` has one row per setting and one column per axis; ``loss`` replaces ``points.loss``
    (a bootstrap draw). Rows with an unknown axis value or a non-finite loss are skipped; the settings of
    runs that diverged in the cell (:attr:`Points.diverged`) are added with an infinite loss.
    """
    loss = points.loss if loss is None else loss
    columns = np.column_stack([getattr(points, a)[idx] for a in axes])
    others = [k for k in points.knobs if k not in axes]
    per_setting: dict[tuple, list[float]] = {}
    for j, i in enumerate(idx):
        if np.all(np.isfinite(columns[j])) and math.isfinite(loss[i]):
            key = tuple(columns[j]) + tuple(repr(points.knobs[k][i]) for k in others)
            per_setting.setdefault(key, []).append(loss[i])
    best: dict[tuple, float] = {}
    for key, losses in per_setting.items():
        head = key[: len(axes)]
        best[head] = min(best.get(head, math.inf), float(np.mean(losses)))
    for key in _diverged_settings(points, idx, axes):
        best.setdefault(key, math.inf)
    keys = sorted(best)
    return np.array(keys, dtype=float).reshape(-1, len(axes)), np.array([best[k] for k in keys])


def _diverged_settings(points: Points, idx: np.ndarray, axes: tuple[str, ...]) -> list[tuple]:
    """The ``axes`` values of the runs that diverged in the cell ``idx`` (their loss counts as infinite)."""
    if not len(points.diverged) or not len(idx):
        return []
    cell = np.array([np.median(points.params[idx]), np.median(points.tokens[idx])])
    here = np.all(np.abs(np.log10(points.diverged[:, :2] / cell)) <= CELL_TOLERANCE_DEX, axis=1)
    values = points.diverged[here][:, [2 if a == "lr" else 3 for a in axes]]
    return [tuple(map(float, v)) for v in values if np.all(np.isfinite(v) & (v > 0))]


def swept_axes(points: Points, idx: np.ndarray, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The ``columns`` with three or more distinct values in the cell ``idx``."""
    out = []
    for c in columns:
        values = getattr(points, c)[idx]
        if np.unique(values[np.isfinite(values)]).size >= 3:
            out.append(c)
    return tuple(out)


def _features(u: np.ndarray, n_coef: int) -> np.ndarray:
    """Quadratic features of centred log coordinates: 3 (one axis), 5 (no cross term) or 6 columns."""
    one = np.ones(len(u))
    if n_coef == 3:
        return np.column_stack([one, u[:, 0], u[:, 0] ** 2])
    x, y = u[:, 0], u[:, 1]
    cols = [one, x, y, x**2, y**2] + ([x * y] if n_coef == 6 else [])
    return np.column_stack(cols)


def near(u: np.ndarray, centre: int, half_width: float) -> np.ndarray:
    """Mask of the settings within ``half_width`` decades of setting ``centre`` on every axis, each axis's
    window grown to its 3 values nearest the centre when it holds fewer (as the one-axis parabola's)."""
    mask = np.ones(len(u), dtype=bool)
    for k in range(u.shape[1]):
        levels = np.unique(u[:, k])
        chosen = levels[window_around(levels, int(np.searchsorted(levels, u[centre, k])), half_width)]
        mask &= (u[:, k] >= chosen.min() - 1e-12) & (u[:, k] <= chosen.max() + 1e-12)
    return mask


def fit_surface(values: np.ndarray, losses: np.ndarray, axes: tuple[str, ...]) -> Surface | None:
    """The surface of one cell from its settings (``values`` in natural units, one column per axis).

    Two axes: the quadratic over all plausible settings, unless it lacks fit there (:func:`lacks_fit`);
    then over the widest of ``WINDOWS_DEX`` around the optimum where it does not (the narrowest if none),
    each window moving to the setting nearest its vertex (at most ``RECENTRE_STEPS`` times) so that one
    noisy best setting does not leave the vertex at its edge.
    """
    if len(axes) == 1:
        return _parabola(np.log10(values), losses, axes)
    if len(axes) != 2 or np.isfinite(losses).sum() < 6:
        return None
    u = np.log10(values)
    best = int(np.argmin(losses))
    plausible = losses <= losses[best] + FAR_ABOVE * abs(losses[best])
    if not lacks_fit(u[plausible] - u[best], losses[plausible]):
        surface = _surface_near(u, losses, axes, best, plausible)
        return surface if surface is not None else _best_tried(u, losses, axes)
    narrowest = None
    for width in WINDOWS_DEX:
        surface, window = _following_the_vertex(u, losses, axes, best, plausible, width)
        if surface is not None:
            narrowest = surface
            if not lacks_fit(u[window] - u[best], losses[window]):
                break
    return narrowest if narrowest is not None else _best_tried(u, losses, axes)


def _following_the_vertex(u, losses, axes, best: int, plausible: np.ndarray, width: float):
    """The surface over the plausible settings within ``width`` decades of a centre that starts at the
    best setting and moves to the setting nearest the vertex until it stays; (None, …) when the surface
    does not open upwards. Returns the surface and the mask of the settings it was fitted to."""
    centre, seen, surface, window = best, set(), None, plausible
    while centre not in seen and len(seen) <= RECENTRE_STEPS:
        seen.add(centre)
        window = plausible & near(u, centre, width)
        surface = _surface_near(u, losses, axes, centre, window)
        if surface is None:
            return None, window
        surface.window = f"within {width:g} decade{'' if width == 1 else 's'} of the optimum"
        vertex = np.log10([surface.optimum[a] for a in axes])
        centre = int(np.argmin(np.where(plausible, np.sum((u - vertex) ** 2, axis=1), np.inf)))
    return surface, window


def lacks_fit(z: np.ndarray, losses: np.ndarray) -> bool:
    """Whether a quadratic in the two centred log coordinates ``z`` misses the losses' shape: cubic terms
    (those the design can tell apart: z0³ and z1³ with 4+ values on the axis, z0²z1 and z0·z1² with 3+)
    reduce the squared residuals by more than chance would (F-test, p < ``LACK_OF_FIT_P``)."""
    levels = [np.unique(z[:, k]).size for k in range(2)]
    extra = [z[:, k] ** 3 for k in range(2) if levels[k] >= 4]
    extra += [z[:, k] ** 2 * z[:, 1 - k] for k in range(2) if levels[k] >= 3 and levels[1 - k] >= 2]
    quadratic = _features(z, 6)
    if not extra or len(z) - quadratic.shape[1] - len(extra) < 2:
        return False
    cubic = np.column_stack([quadratic, *extra])
    rss = [_residual_squares(x, losses) for x in (quadratic, cubic)]
    dof = len(z) - cubic.shape[1]
    if rss[1] <= 0:
        return rss[0] > 0
    f = ((rss[0] - rss[1]) / len(extra)) / (rss[1] / dof)
    return bool(scipy.stats.f.sf(f, len(extra), dof) < LACK_OF_FIT_P)


def _residual_squares(design: np.ndarray, y: np.ndarray) -> float:
    residuals = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(residuals @ residuals)


def _surface_near(u, losses, axes, centre: int, keep: np.ndarray) -> Surface | None:
    """The quadratic (with, else without, cross term) over the settings ``keep``, centred on setting
    ``centre``; None when neither opens upwards."""
    keep = keep.copy()
    if keep.sum() < 7:  # a surface needs a few more settings than its 6 coefficients: take the next best
        order = np.argsort(losses)
        keep[order[np.isfinite(losses[order])][:7]] = True
    center = u[centre]
    for n_coef, method in ((6, "quadratic with cross term"), (5, "quadratic without cross term")):
        if keep.sum() < n_coef or np.unique(u[keep, 0]).size < 3 or np.unique(u[keep, 1]).size < 3:
            continue
        design = _features(u[keep] - center, n_coef)
        coef, *_ = np.linalg.lstsq(design, losses[keep], rcond=None)
        hessian = np.array(
            [[2 * coef[3], coef[5] if n_coef == 6 else 0.0], [coef[5] if n_coef == 6 else 0.0, 2 * coef[4]]]
        )
        if np.all(np.linalg.eigvalsh(hessian) > 0):
            residuals = losses[keep] - design @ coef
            return _vertex(
                u,
                losses,
                axes,
                center,
                coef,
                hessian,
                method,
                int(keep.sum()),
                float(residuals @ residuals),
                int(keep.sum()) - n_coef,
            )
    return None


def _vertex(u, losses, axes, center, coef, hessian, method, n_used, squares, dof) -> Surface:
    """The surface's minimum inside the values tried: an axis whose vertex lies outside is held at its
    edge (a bound) and the other axis minimised given it."""
    lo, hi = u.min(axis=0) - center, u.max(axis=0) - center
    gradient = coef[1:3]
    v = np.linalg.solve(hessian, -gradient)
    bound: dict[str, str | None] = {a: None for a in axes}
    for k in range(2):
        if not lo[k] - 1e-9 <= v[k] <= hi[k] + 1e-9:
            bound[axes[k]] = "above" if v[k] > hi[k] else "below"
    for k in range(2):  # minimise the free axis given the clamped one (both clamped: nothing to solve)
        if bound[axes[k]] is not None:
            v[k] = hi[k] if bound[axes[k]] == "above" else lo[k]
            other = 1 - k
            if bound[axes[other]] is None:
                v[other] = float(
                    np.clip(
                        -(gradient[other] + hessian[other, k] * v[k]) / hessian[other, other],
                        lo[other],
                        hi[other],
                    )
                )
    surface = Surface(
        axes,
        {a: float(10 ** (center[k] + v[k])) for k, a in enumerate(axes)},
        bound,
        0.0,
        method,
        u,
        losses,
        n_used,
        coef,
        center,
        squares,
        dof,
    )
    surface.loss_at_opt = float((_features(v[None, :], coef.size) @ coef)[0])
    return surface


def _best_tried(u: np.ndarray, losses: np.ndarray, axes: tuple[str, ...]) -> Surface:
    """No convex surface: the best setting tried, each axis a bound when that setting is on its edge."""
    best = int(np.argmin(losses))
    bound = {
        a: ("below" if u[best, k] <= u[:, k].min() else "above" if u[best, k] >= u[:, k].max() else None)
        for k, a in enumerate(axes)
    }
    return Surface(
        axes,
        {a: float(10 ** u[best, k]) for k, a in enumerate(axes)},
        bound,
        float(losses[best]),
        "best setting tried",
        u,
        losses,
        1,
    )


def _parabola(u: np.ndarray, losses: np.ndarray, axes: tuple[str, ...]) -> Surface | None:
    """One swept hyperparameter: the windowed parabola of :func:`windowed_minimum` over the finished
    settings, and its coefficients. A best setting on the edge of the finished ones is a bound, unless a
    run diverged beyond it: then the optimum lies between the two, and the best setting stands for it."""
    finite = np.isfinite(losses)
    x, y = u[finite, 0], losses[finite]
    best = windowed_minimum(x, y, WINDOW_DEX)
    if best is None:
        return None
    name = axes[0]
    if best.at_edge:
        above = best.u >= x.max()
        diverged = u[~finite, 0]
        if np.any(diverged > best.u) if above else np.any(diverged < best.u):
            method = f"best setting tried, {'below' if above else 'above'} a run that diverged"
            return Surface(axes, {name: float(10**best.u)}, {name: None}, best.value, method, u, losses, 1)
        return Surface(
            axes, {name: float(10**best.u)}, {name: "above" if above else "below"}, best.value,
            "best setting tried", u, losses, 1,
        )
    center = np.array([x[np.argmin(y)]])
    used = x[best.used]
    coef = np.polyfit(used - center[0], y[best.used], 2)[::-1]
    residuals = y[best.used] - _features((used - center[0])[:, None], 3) @ coef
    return Surface(
        axes,
        {name: float(10**best.u)},
        {name: None},
        best.value,
        "parabola",
        u,
        losses,
        int(used.size),
        coef,
        center,
        float(residuals @ residuals),
        int(used.size) - 3,
    )


def cell_surface(
    points: Points, idx: np.ndarray, columns: tuple[str, ...], loss: np.ndarray | None = None
) -> Surface | None:
    """The surface of the cell ``idx`` over those of ``columns`` it sweeps (None: none swept enough)."""
    axes = swept_axes(points, idx, columns)
    if not axes:
        return None
    values, losses = setting_losses(points, idx, axes, loss)
    if len(axes) == 2 and np.isfinite(losses).sum() < 6:  # too few joint settings: the better-sampled one
        axes = axes[:1]
        values, losses = setting_losses(points, idx, axes, loss)
    return fit_surface(values, losses, axes)
