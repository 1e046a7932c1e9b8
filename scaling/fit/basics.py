"""Two small fits every approach shares: a power law by log-log least squares, and the minimum of a
parabola fitted only near an empirical minimum; and how every summary writes an interval."""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


def format_interval(pair, digits: int = 3) -> str:
    """``[lo, hi]`` to ``digits`` significant digits; ``n/a`` without an interval (or half of one)."""
    if not pair or pair[0] is None or pair[1] is None:
        return "n/a"
    return f"[{pair[0]:.{digits}g}, {pair[1]:.{digits}g}]"


def cluster_log(values, tolerance_dex: float) -> list[np.ndarray]:
    """Indices of ``values`` grouped when within ``tolerance_dex`` decades of their group's smallest."""
    logv = np.log10(np.asarray(values, dtype=float))
    groups: list[list[int]] = []
    for i in np.argsort(logv, kind="stable"):
        if groups and logv[i] - logv[groups[-1][0]] <= tolerance_dex:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return [np.array(g) for g in groups]


def representative(values, tolerance_dex: float) -> np.ndarray:
    """Each value replaced by the geometric mean of its :func:`cluster_log` group."""
    values = np.asarray(values, dtype=float)
    out = np.empty_like(values)
    for idx in cluster_log(values, tolerance_dex):
        out[idx] = float(np.exp(np.mean(np.log(values[idx]))))
    return out


@dataclass
class PowerLaw:
    """y = coef · x^exponent, fitted as a line in log-log space."""

    coef: float
    exponent: float
    exponent_se: float  # standard error of the exponent (NaN with fewer than 3 points)
    log_resid_std: float  # residual std in log y (NaN with fewer than 3 points)
    n_points: int

    def __call__(self, x):
        return self.coef * np.asarray(x, dtype=float) ** self.exponent

    def to_dict(self) -> dict:
        return {"coef": self.coef, "exponent": self.exponent, "exponent_se": self.exponent_se,
                "log_resid_std": self.log_resid_std, "n_points": self.n_points}


def fit_power_law(x, y, log_sigma=None) -> PowerLaw | None:
    """Least-squares line through (log x, log y); None with fewer than 2 distinct x.

    ``log_sigma``: each point's uncertainty in log y; points then weigh 1/σ² (weighted least squares).
    """
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if np.unique(lx).size < 2:
        return None
    w = np.ones_like(lx) if log_sigma is None else 1.0 / np.asarray(log_sigma, dtype=float) ** 2
    slope, intercept = np.polyfit(lx, ly, 1, w=np.sqrt(w))
    se = resid = float("nan")
    if lx.size > 2:
        r = ly - (intercept + slope * lx)
        resid = float(np.sqrt(np.sum(w * r ** 2) / np.sum(w) * lx.size / (lx.size - 2)))
        centre = np.sum(w * lx) / np.sum(w)
        se = float(np.sqrt(np.sum(w * r ** 2) / (lx.size - 2) / np.sum(w * (lx - centre) ** 2)))
    return PowerLaw(float(np.exp(intercept)), float(slope), se, resid, int(lx.size))


@dataclass
class Minimum:
    """Where a windowed parabola in u has its vertex, and what it found there."""

    u: float  # vertex position (e.g. log N or log lr)
    value: float  # parabola value at the vertex
    used: np.ndarray  # indices of the points the parabola was fitted to
    at_edge: bool  # the empirical minimum is the smallest or largest u tried: only a bound, not an optimum


def window_around(levels: np.ndarray, best: int, window: float | None, min_points: int = 3) -> np.ndarray:
    """Mask of the ``levels`` within ``window`` of ``levels[best]`` (all for None), grown to the
    ``min_points`` nearest when it holds fewer."""
    distance = np.abs(levels - levels[best])
    chosen = distance <= window if window is not None else np.ones_like(distance, dtype=bool)
    if chosen.sum() < min_points:
        chosen = np.zeros_like(chosen)
        chosen[np.argsort(distance, kind="stable")[:min_points]] = True
    return chosen


def parabola_vertices(levels: np.ndarray, means: np.ndarray, window: float | None = None,
                      min_points: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`windowed_minimum` for many columns at once: ``means`` is (levels × copies) over distinct,
    ascending ``levels``. Returns per column the vertex, the value there and whether the best level is
    the first or last (then the vertex is that level and the value its mean); the vertex and value are
    NaN where the windowed parabola opens downwards."""
    best = np.argmin(means, axis=0)
    cols = np.arange(means.shape[1])
    u, value = levels[best].astype(float), means[best, cols].astype(float)
    at_edge = (best == 0) | (best == levels.size - 1)
    for b in np.unique(best[~at_edge]):
        which = np.flatnonzero(best == b)
        chosen = window_around(levels, int(b), window, min_points)
        c2, c1, c0 = np.polyfit(levels[chosen], means[chosen][:, which], 2)
        opens_up = c2 > 0
        # a vertex outside the fitted points is an extrapolation of the parabola: clamp it to them
        vertex = np.clip(-c1 / (2 * np.where(opens_up, c2, 1.0)), levels[chosen].min(), levels[chosen].max())
        u[which] = np.where(opens_up, vertex, np.nan)
        value[which] = np.where(opens_up, c0 + c1 * vertex + c2 * vertex ** 2, np.nan)
    return u, value, at_edge


def windowed_minimum(u, values, window: float | None = None, min_points: int = 3) -> Minimum | None:
    """Fit values ≈ c0 + c1·u + c2·u² near the empirical minimum and return its vertex.

    ``window``: half-width in u around the best point (None = all points, the global parabola).
    The window grows to the ``min_points`` nearest points when it holds fewer. A best point at the
    smallest or largest u is returned as it is, flagged ``at_edge`` (no parabola: only a bound).
    Returns None for fewer than 3 distinct u or a parabola that opens downwards.
    Repeated u (seeds) are averaged first so that each setting weighs the same.
    """
    u = np.asarray(u, dtype=float)
    values = np.asarray(values, dtype=float)
    levels = np.unique(u)
    if levels.size < 3:
        return None
    means = np.array([values[u == lv].mean() for lv in levels])
    found = parabola_vertices(levels, means[:, None], window, min_points)
    vertex, value, at_edge = (float(x[0]) for x in found)
    best = int(np.argmin(means))
    if at_edge:  # no bracketed minimum: report the best point tried, flagged
        return Minimum(vertex, value, np.flatnonzero(u == levels[best]), True)
    if not np.isfinite(vertex):
        return None
    used = np.flatnonzero(np.isin(u, levels[window_around(levels, best, window, min_points)]))
    return Minimum(vertex, value, used, False)


_PINNED = False  # inside single_threaded_blas already


@contextmanager
def single_threaded_blas():
    """Run the block with OpenBLAS on one thread.

    L-BFGS-B works on 5-vectors and 20×20 matrices, where OpenBLAS threads only spin-wait: on our busy
    2-core machine a bootstrap ran 10–20× slower with them (see BENCHMARKS.md). Environment variables
    act only before numpy loads, so this sets the thread count of the already loaded libraries
    (found through /proc/self/maps; a no-op where that does not exist) and restores it afterwards.
    Nested uses (a refit inside a pinned bootstrap) do nothing more.
    """
    global _PINNED
    if _PINNED:
        yield
        return
    handles = []
    try:
        with open("/proc/self/maps") as f:
            paths = {
                line.split()[-1] for line in f if "openblas" in line.lower() and line.rstrip().endswith(".so")
            }
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("", "64_"):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                handles.append((set_, int(get())))
                set_(1)
                break
    _PINNED = True
    try:
        yield
    finally:
        _PINNED = False
        for set_, previous in handles:
            set_(previous)
