"""Hyperparameter laws: the optimal learning rate (and batch size, when swept) as a power law in N.

Per (model size, token budget) cell with three or more values of the hyperparameter, the loss is
fitted as a parabola in log10(value) near the best value (seeds averaged; where other knobs vary too,
each value counts with its best setting). A cell whose best value is the smallest or largest one tried
gives only a bound and is left out of the law. The optima then follow opt = c·N^γ, extrapolated to the
target size.

The interval is a parametric bootstrap over run-to-run noise: every run's loss is redrawn as
loss + N(0, σ²) and the cell optima and the law are refitted. σ is the pooled seed-to-seed spread
of the runs (settings repeated with several seeds), else the scatter of the losses around the cells'
parabolas (cells with four or more values); without either there is no noise estimate and no
interval, and the note says to add seeds. (Resampling runs instead would drop whole values from a
one-seed sweep and mostly measure which values happened to be drawn.)
"""

from __future__ import annotations

import math

import numpy as np

from scaling.fit.basics import fit_power_law, windowed_minimum
from scaling.fit.data import Points
from scaling.fit.knobs import pooled_seed_noise, seed_settings

HPARAM_COLUMNS = ("lr", "batch_size")


def _cells(points: Points) -> dict[tuple[float, float], np.ndarray]:
    cells: dict[tuple[float, float], list[int]] = {}
    for i, key in enumerate(points.cells()):
        cells.setdefault(key, []).append(i)
    return {k: np.array(v) for k, v in cells.items()}


def _setting_losses(points: Points, idx: np.ndarray, column: str,
                    loss: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(value, loss) per value of ``column`` in a cell: mean over seeds, best over other settings.
    ``loss`` replaces ``points.loss`` (a bootstrap draw)."""
    loss = points.loss if loss is None else loss
    values = getattr(points, column)[idx]
    others = [k for k in points.knobs if k != column]
    per_setting: dict[tuple, list[float]] = {}
    for j, i in enumerate(idx):
        if math.isfinite(values[j]):
            key = (values[j],) + tuple(repr(points.knobs[k][i]) for k in others)
            per_setting.setdefault(key, []).append(loss[i])
    best: dict[float, float] = {}
    for key, losses in per_setting.items():
        best[key[0]] = min(best.get(key[0], math.inf), float(np.mean(losses)))
    v = np.array(sorted(best))
    return v, np.array([best[x] for x in v])


def _cell_optimum(points: Points, idx: np.ndarray, column: str, window_dex: float,
                  loss: np.ndarray | None = None) -> dict | None:
    v, loss = _setting_losses(points, idx, column, loss)
    if v.size < 3:
        return None
    best = windowed_minimum(np.log10(v), loss, window_dex)
    if best is None:
        return None
    return {"opt": float(10 ** best.u), "loss_at_opt": best.value, "at_edge": best.at_edge, "n_values": int(v.size)}


def run_noise(points: Points, cells: dict, column: str) -> tuple[float | None, str]:
    """σ of a run's final loss and where it comes from: seed replicates, else parabola residuals."""
    sigma, dof = pooled_seed_noise(seed_settings(points))
    if sigma is not None:
        return sigma, f"seed spread ({dof} degrees of freedom)"
    squares, dof = 0.0, 0
    for idx in cells.values():
        v, loss = _setting_losses(points, idx, column)
        if v.size >= 4:
            u = np.log10(v)
            residuals = loss - np.polyval(np.polyfit(u, loss, 2), u)
            squares, dof = squares + float(residuals @ residuals), dof + v.size - 3
    if dof == 0:
        return None, "no seed replicates and no cell with 4+ values"
    return float(np.sqrt(squares / dof)), f"parabola residuals ({dof} degrees of freedom)"


def _law_prediction(cells: list[dict], target_params: float, use_edges: bool = False):
    """(law or None, prediction or None) from cell optima; ``use_edges`` counts edge optima (bounds) too."""
    usable = [c for c in cells if use_edges or not c["at_edge"]]
    law = fit_power_law([c["params"] for c in usable], [c["opt"] for c in usable]) if usable else None
    if law is not None:
        return law, float(law(target_params))
    if usable:  # one size only: carry the measured optimum unchanged
        return None, float(np.exp(np.mean(np.log([c["opt"] for c in usable]))))
    return None, None


def fit_hparam_laws(points: Points, target_params: float | None = None, *, window_dex: float = 0.5,
                    n_boot: int = 200, ci: float = 0.95, seed: int = 0) -> dict:
    """Per swept hyperparameter (lr, batch_size): cell optima, the power law in N, and the target prediction."""
    out: dict[str, dict] = {}
    cells = _cells(points)
    target = target_params if target_params is not None else float(points.params.max())
    rng = np.random.default_rng(seed)
    for column in HPARAM_COLUMNS:
        if column not in points.knobs:
            continue
        optima = []
        for (n, d), idx in cells.items():
            opt = _cell_optimum(points, idx, column, window_dex)
            if opt is not None:
                optima.append({"params": float(n), "tokens": float(d), **opt})
        if not optima:
            out[column] = {"cells": [], "note": "swept, but no size has 3 or more values of it"}
            continue
        law, value = _law_prediction(optima, target)
        entry = {"cells": optima, "law": law.to_dict() if law else None, "target_params": target,
                 "prediction": value}
        if value is None:
            entry["note"] = "every cell's best value is at the edge of the range tried: widen the sweep"
        elif law is None:
            entry["note"] = "optimum measured at one size only: carried over unchanged (no size law)"
        else:
            entry["note"] = ""
        sigma, source = run_noise(points, cells, column)
        entry.update(noise=sigma, noise_source=source)
        if value is not None and n_boot > 0 and sigma is None:
            entry["note"] = (entry["note"] + "; " if entry["note"] else "") + (
                "no interval: repeat some settings with another seed to measure run-to-run noise")
        elif value is not None and n_boot > 0:
            # Each draw refits the cells the point estimate used. A cell whose noisy optimum lands on the
            # edge of its sweep keeps that edge value (the best tried): dropping it would turn a two-size
            # law into a one-size carry-over and mix two different estimators in one interval.
            draws = []
            for _ in range(n_boot):
                noisy = points.loss + rng.normal(0.0, sigma, points.loss.size)
                boot_cells = []
                for c in optima:
                    if c["at_edge"]:
                        continue
                    idx = cells[(c["params"], c["tokens"])]
                    opt = _cell_optimum(points, idx, column, window_dex, noisy)
                    if opt is not None:
                        boot_cells.append({"params": c["params"], **opt})
                boot_law, prediction = _law_prediction(boot_cells, target, use_edges=True)
                draws.append(prediction if boot_law is not None or law is None else None)
            draws = np.array([x for x in draws if x is not None], dtype=float)
            if draws.size >= max(10, n_boot // 4):
                lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
                entry.update(lo=float(lo), hi=float(hi), n_boot_ok=int(draws.size))
        out[column] = entry
    return out
