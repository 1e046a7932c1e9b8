"""Hyperparameter laws: the optimal learning rate and batch size as power laws in N and D.

Per (model size, token budget) cell, the loss is fitted as a surface over the swept hyperparameters
(:mod:`scaling.fit.hparam_surface`: jointly in log lr and log batch when both are swept, a parabola
when one is), and each hyperparameter's optimum is read off it. A cell whose optimum lies beyond the
values tried gives only a bound and is left out of the law. The optima then follow a power law in N
and D, in N alone, or in compute alone (:mod:`scaling.fit.hparam_laws` picks the form by held-out
error), predicted at the target run and at every ``--predict`` point.

The intervals are a parametric bootstrap over run-to-run noise: every run's loss is redrawn as
loss + N(0, σ²), the cell surfaces and the laws are refitted. σ is the pooled seed-to-seed spread of
the runs (settings repeated with several seeds), else the scatter of the losses around the cells'
parabolas and surfaces; without either there is no noise estimate and no interval, and the note says
to add seeds. (Resampling runs instead would drop whole values from a one-seed sweep and mostly
measure which values happened to be drawn.)
"""

from __future__ import annotations

import numpy as np

from scaling.fit.bootstrap import percentile_interval
from scaling.fit.data import Points
from scaling.fit.hparam_backtest import backtest_hparams
from scaling.fit.hparam_laws import choose_form, fit_optimum_law
from scaling.fit.hparam_surface import Surface, cell_surface
from scaling.fit.knobs import pooled_seed_noise, seed_noise_source, seed_settings

HPARAM_COLUMNS = ("lr", "batch_size")


def _cells(points: Points) -> dict[tuple[float, float], np.ndarray]:
    cells: dict[tuple[float, float], list[int]] = {}
    for i, key in enumerate(points.cells()):
        cells.setdefault(key, []).append(i)
    return {k: np.array(v) for k, v in cells.items()}


def run_noise(points: Points, surfaces: dict[tuple, Surface | None]) -> tuple[float | None, str]:
    """σ of a run's final loss and where it comes from: seed replicates, else parabola/surface residuals.

    A one-hyperparameter cell with 4+ values contributes the residuals of one parabola over all its
    values; a two-hyperparameter cell those of its fitted surface.
    """
    sigma, dof = pooled_seed_noise(seed_settings(points))
    if sigma is not None:
        return sigma, seed_noise_source(points, dof)
    squares, dof, joint = 0.0, 0, False
    for s in surfaces.values():
        if s is None:
            continue
        finite = np.isfinite(s.losses)
        if len(s.axes) == 1 and finite.sum() >= 4:
            u, losses = s.settings[finite, 0], s.losses[finite]
            residuals = losses - np.polyval(np.polyfit(u, losses, 2), u)
            squares, dof = squares + float(residuals @ residuals), dof + losses.size - 3
        elif len(s.axes) == 2 and s.dof > 0:
            squares, dof, joint = squares + s.residual_squares, dof + s.dof, True
    if dof == 0:
        return None, "no seed replicates and no cell with 4+ values"
    kind = "surface" if joint else "parabola"
    return float(np.sqrt(squares / dof)), f"{kind} residuals ({dof} degrees of freedom)"


def _optima(surfaces: dict[tuple, Surface | None], column: str) -> list[dict]:
    """The cells whose surface includes ``column``: their optimum of it, and whether it is a bound."""
    out = []
    for (n, d), s in surfaces.items():
        if s is not None and column in s.axes:
            out.append(
                {
                    "params": float(n),
                    "tokens": float(d),
                    "opt": s.optimum[column],
                    "loss_at_opt": s.loss_at_opt,
                    "at_edge": s.bound[column] is not None,
                    "bound": s.bound[column],
                    "n_values": int(np.unique(s.settings[:, s.axes.index(column)]).size),
                    "joint": len(s.axes) == 2,
                    "method": s.method,
                    "window": s.window if len(s.axes) == 2 else None,
                }
            )
    return out


def _law_values(
    cells: list[dict], form: str | None, targets: list[tuple[float, float]], use_edges: bool = False
):
    """(law or None, predicted value per target or None) from cell optima of one form."""
    usable = [c for c in cells if use_edges or not c["at_edge"]]
    if not usable:
        return None, None
    law = (
        fit_optimum_law(
            form, [c["params"] for c in usable], [c["tokens"] for c in usable], [c["opt"] for c in usable]
        )
        if form
        else None
    )
    if law is not None:
        return law, [float(law(n, d)[0]) for n, d in targets]
    if form is None:  # one cell size and budget: carry the measured optimum unchanged
        value = float(np.exp(np.mean(np.log([c["opt"] for c in usable]))))
        return None, [value] * len(targets)
    return None, None


def _law_entry(cells: list[dict], targets: list[tuple[float, float]]) -> dict:
    """The law of one hyperparameter from its cell optima, without interval."""
    usable = [c for c in cells if not c["at_edge"]]
    n, d, opt = ([c[k] for c in usable] for k in ("params", "tokens", "opt"))
    form, errors, why = (
        choose_form(n, d, opt) if usable else (None, {}, "no cell with an optimum inside its sweep")
    )
    law, values = _law_values(cells, form, targets)
    entry = {
        "cells": cells,
        "law": law.to_dict() if law else None,
        "form": form,
        "form_errors": errors,
        "form_reason": why,
        "target_params": targets[-1][0],
        "target_tokens": targets[-1][1],
        "prediction": values[-1] if values else None,
        "predictions": [
            {"params": t[0], "tokens": t[1], "value": values[j] if values else None}
            for j, t in enumerate(targets)
        ],
    }
    bounds = sum(c["at_edge"] for c in cells)
    if values is None:
        entry["note"] = "every cell's best value is at the edge of the range tried: widen the sweep"
    elif law is None:
        entry["note"] = "optimum measured at one size only: carried over unchanged (no size law)"
    else:
        entry["note"] = (
            f"{bounds} cell(s) with the optimum beyond the values tried give only a bound and are left out"
            if bounds
            else ""
        )
    return entry


def _add_intervals(entry: dict, draws: list[tuple], ci: float, n_boot: int) -> None:
    """Percentile intervals of the prediction, every target and every exponent from bootstrap draws."""
    draws = [d for d in draws if d is not None]
    if len(draws) < max(10, n_boot // 4):
        return
    values = np.array([d[1] for d in draws], dtype=float)
    lo, hi = np.quantile(values[:, -1], [(1 - ci) / 2, (1 + ci) / 2])
    entry.update(lo=float(lo), hi=float(hi), n_boot_ok=len(draws))
    for j, p in enumerate(entry["predictions"]):
        p["ci"] = percentile_interval(values[:, j], ci)
    if entry["law"] is not None:
        entry["law"]["exponent_ci"] = {
            k: percentile_interval(np.array([d[0][k] for d in draws]), ci) for k in entry["law"]["exponents"]
        }


def fit_hparam_laws(
    points: Points,
    target_params: float | None = None,
    target_tokens: float | None = None,
    *,
    predict=(),
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> dict:
    """Per swept hyperparameter (lr, batch_size): cell optima, the law, and its value at each target.

    Targets: the ``predict`` (N, D) pairs, then the run (``target_params``, ``target_tokens``), which
    default to the largest size and the runs' median tokens per parameter. The result also holds
    ``backtest``: the laws refitted without each size (and each size's largest budget) and the loss
    their settings cost on the held-out cells.
    """
    columns = tuple(c for c in HPARAM_COLUMNS if c in points.knobs)
    if not columns:
        return {}
    target_params = target_params if target_params is not None else float(points.params.max())
    if target_tokens is None:
        target_tokens = target_params * float(np.median(points.tokens / points.params))
    targets = [tuple(map(float, t)) for t in predict] + [(float(target_params), float(target_tokens))]
    cells = _cells(points)
    surfaces = {key: cell_surface(points, idx, columns) for key, idx in cells.items()}
    sigma, source = run_noise(points, surfaces)
    out: dict[str, dict] = {}
    for column in columns:
        optima = _optima(surfaces, column)
        if not optima:
            out[column] = {
                "cells": [],
                "prediction": None,
                "predictions": [],
                "note": "swept, but no cell has 3 or more values of it",
            }
            continue
        out[column] = {**_law_entry(optima, targets), "noise": sigma, "noise_source": source}
    fitted = [c for c in columns if out[c]["prediction"] is not None]
    if fitted and n_boot > 0 and sigma is None:
        for c in fitted:
            out[c]["note"] = (out[c]["note"] + "; " if out[c]["note"] else "") + (
                "no interval: repeat some settings with another seed to measure run-to-run noise"
            )
    elif fitted and n_boot > 0:
        draws = _bootstrap(points, cells, out, fitted, columns, targets, sigma, n_boot, seed)
        for c in fitted:
            _add_intervals(out[c], draws[c], ci, n_boot)
    out["backtest"] = backtest_hparams(surfaces, {c: (out[c]["cells"], out[c].get("form")) for c in fitted})
    return out


def _bootstrap(points, cells, out, fitted, columns, targets, sigma, n_boot, seed) -> dict[str, list]:
    """Per hyperparameter, (exponents, values at targets) of each redraw of the losses (None: no law).

    Each draw refits the cells the point estimate used. A cell whose noisy optimum lands on the edge
    of its sweep keeps that edge value (the best tried): dropping it would turn a two-size law into a
    one-size carry-over and mix two different estimators in one interval.
    """
    rng = np.random.default_rng(seed)
    used = {
        key
        for c in fitted
        for key in ((x["params"], x["tokens"]) for x in out[c]["cells"] if not x["at_edge"])
    }
    draws: dict[str, list] = {c: [] for c in fitted}
    for _ in range(n_boot):
        noisy = points.loss + rng.normal(0.0, sigma, points.loss.size)
        surfaces = {key: cell_surface(points, cells[key], columns, noisy) for key in used}
        for c in fitted:
            boot = [
                x
                for x in _optima(surfaces, c)
                if any(
                    (x["params"], x["tokens"]) == (y["params"], y["tokens"]) and not y["at_edge"]
                    for y in out[c]["cells"]
                )
            ]
            law, values = _law_values(boot, out[c]["form"], targets, use_edges=True)
            if values is None or (law is None and out[c]["law"] is not None):
                draws[c].append(None)
            else:
                draws[c].append((law.exponents if law else {}, values))
    return draws


def hparam_at(hparams: dict, j: int) -> dict:
    """``lr``, ``lr_ci``, ``batch_tokens``, ``batch_ci`` at target ``j`` of the laws (``-1``: the run),
    each None with a ``*_note`` saying why when the hyperparameter was not swept or has no law."""
    out = {}
    for column, key, ci_key in (("lr", "lr", "lr_ci"), ("batch_size", "batch_tokens", "batch_ci")):
        entry = hparams.get(column)
        preds = entry.get("predictions", []) if entry else []
        if not preds or preds[j]["value"] is None:
            out.update(
                {
                    key: None,
                    ci_key: None,
                    f"{key}_note": "not swept" if entry is None else entry.get("note") or "no law",
                }
            )
        else:
            out.update({key: preds[j]["value"], ci_key: preds[j].get("ci")})
    return out


def with_hparams(predictions: list[dict], hparams: dict) -> list[dict]:
    """Each prediction entry (the ``--predict`` points, then the run) with its LR and batch from the laws."""
    return [{**p, **hparam_at(hparams, j)} for j, p in enumerate(predictions)]
