"""Backtest of the hyperparameter laws: what their settings would have cost on cells they did not see.

Folds: each model size left out in turn and, with three or more token budgets, each size's largest
budget left out in turn. The laws (same forms as the full fit; a simpler form where the fold cannot
determine it) are refitted on the remaining cells' optima and predict the held-out cells' settings.
The cost is the loss at the predicted settings over the cell's best, relative to it, read off the
cell's fitted surface (``penalty``) and off the measured grid (``grid_penalty``: the setting tried
nearest to the prediction against the best tried).
"""

from __future__ import annotations

import numpy as np

from scaling.fit.hparam_laws import FORMS, fit_optimum_law
from scaling.fit.hparam_surface import Surface


def _fold_law(cells: list[dict], form: str):
    """The law of ``form`` (or the next simpler form the fold allows) on the non-bound cells."""
    usable = [c for c in cells if not c["at_edge"]]
    n, d, opt = ([c[k] for c in usable] for k in ("params", "tokens", "opt"))
    for f in FORMS[FORMS.index(form) :]:
        law = fit_optimum_law(f, n, d, opt) if usable else None
        if law is not None:
            return law
    return None


def _folds(keys: list[tuple[float, float]]) -> list[tuple[str, set]]:
    """(kind, held-out cell keys) of every fold."""
    sizes = sorted({n for n, _ in keys})
    folds = [("size", {k for k in keys if k[0] == s}) for s in sizes]
    if len({d for _, d in keys}) >= 3:
        for s in sizes:
            mine = [k for k in keys if k[0] == s]
            if len(mine) >= 2:
                folds.append(("largest budget", {max(mine, key=lambda k: k[1])}))
    return folds


def backtest_hparams(
    surfaces: dict[tuple, Surface | None], laws: dict[str, tuple[list[dict], str | None]]
) -> dict:
    """Held-out predictions of every fitted law and the loss penalty they cost.

    ``laws``: per hyperparameter, its cell optima and the form the full fit chose.
    """
    laws = {c: v for c, v in laws.items() if v[1] is not None}
    keys = [k for k, s in surfaces.items() if s is not None and any(c in s.axes for c in laws)]
    if not laws or len({n for n, _ in keys}) < 2:
        return {
            "cells": [],
            "mean_penalty": None,
            "max_penalty": None,
            "skipped": "needs a law in N, D or compute fitted on 2 or more sizes",
        }
    rows = []
    for kind, held in _folds(keys):
        fold_laws = {
            c: _fold_law([x for x in cells if (x["params"], x["tokens"]) not in held], form)
            for c, (cells, form) in laws.items()
        }
        for key in sorted(held):
            s = surfaces[key]
            predicted = {
                c: float(law(*key)[0]) for c, law in fold_laws.items() if law is not None and c in s.axes
            }
            if not predicted:
                continue
            values = {a: predicted.get(a, s.optimum[a]) for a in s.axes}  # an axis without a law: its optimum
            rows.append(
                {
                    "params": key[0],
                    "tokens": key[1],
                    "held_out": kind,
                    "predicted": predicted,
                    "optimum": s.optimum,
                    "bound": s.bound,
                    **s.penalty(values),
                }
            )
    penalties = np.array([r["penalty"] for r in rows])
    grid = np.array([r["grid_penalty"] for r in rows])
    return {
        "cells": rows,
        "n_cells": len(rows),
        "mean_penalty": float(penalties.mean()) if rows else None,
        "max_penalty": float(penalties.max()) if rows else None,
        "mean_grid_penalty": float(grid.mean()) if rows else None,
        "forms": {c: form for c, (_, form) in laws.items()},
    }
