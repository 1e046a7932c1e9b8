"""Two small fits every approach shares: a power law by log-log least squares, and the minimum of a
parabola fitted only near an empirical minimum."""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


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


def fit_power_law(x, y) -> PowerLaw | None:
    """Least-squares line through (log x, log y); None with fewer than 2 distinct x."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if np.unique(lx).size < 2:
        return None
    slope, intercept = np.polyfit(lx, ly, 1)
    se = resid = float("nan")
    if lx.size > 2:
        r = ly - (intercept + slope * lx)
        resid = float(np.sqrt(np.sum(r ** 2) / (lx.size - 2)))
        se = resid / float(np.sqrt(np.sum((lx - lx.mean()) ** 2)))
    return PowerLaw(float(np.exp(intercept)), float(slope), se, resid, int(lx.size))


@dataclass
class Minimum:
    """Where a windowed parabola in u has its vertex, and what it found there."""

    u: float  # vertex position (e.g. log N or log lr)
    value: float  # parabola value at the vertex
    used: np.ndarray  # indices of the points the parabola was fitted to
    at_edge: bool  # the empirical minimum is the smallest or largest u tried: only a bound, not an optimum


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
    best = int(np.argmin(means))
    if best in (0, levels.size - 1):  # no bracketed minimum: report the best point tried, flagged
        return Minimum(float(levels[best]), float(means[best]), np.flatnonzero(u == levels[best]), True)
    distance = np.abs(levels - levels[best])
    chosen = distance <= window if window is not None else np.ones_like(distance, dtype=bool)
    if chosen.sum() < min_points:
        chosen = np.zeros_like(chosen)
        chosen[np.argsort(distance, kind="stable")[:min_points]] = True
    c2, c1, c0 = np.polyfit(levels[chosen], means[chosen], 2)
    if not c2 > 0:
        return None
    vertex = -c1 / (2 * c2)
    # a vertex outside the fitted points is an extrapolation of the parabola: clamp it to them
    vertex = float(np.clip(vertex, levels[chosen].min(), levels[chosen].max()))
    used = np.flatnonzero(np.isin(u, levels[chosen]))
    return Minimum(vertex, float(c0 + c1 * vertex + c2 * vertex ** 2), used, False)


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
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.rstrip().endswith(".so")}
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
