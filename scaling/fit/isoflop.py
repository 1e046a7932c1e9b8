"""Chinchilla approach 2: IsoFLOP profiles.

Runs of (nearly) equal training FLOPs form a budget. Per budget, loss is fitted as a parabola in
log10 N *only near the budget's empirical minimum*: the profile is asymmetric (far too small models
lose much more than far too large ones), so a parabola over a wide range of sizes pulls its vertex
away from the true optimum and biases the exponent. A budget whose best run is the smallest or the
largest size tried has no bracketed minimum and is skipped (and reported). Power laws through the
per-budget optima then give N_opt(C), D_opt(C) and L_opt(C).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.fit.basics import PowerLaw, cluster_log, fit_power_law, windowed_minimum


def group_budgets(flops, tolerance_dex: float = 0.05) -> list[np.ndarray]:
    """Indices of runs whose FLOPs agree within ``tolerance_dex`` (decades) of the group's smallest."""
    return cluster_log(flops, tolerance_dex)


@dataclass
class IsoFlopFit:
    """Per-budget optima and the power laws through them."""

    budgets: list[dict] = field(default_factory=list)  # {flops, n_opt, d_opt, loss_opt, n_runs, n_used}
    skipped: list[dict] = field(default_factory=list)  # {flops, n_runs, reason}
    n_opt: PowerLaw | None = None
    d_opt: PowerLaw | None = None
    loss_opt: PowerLaw | None = None  # a pure power law in C (no irreducible term): for reading, not for far extrapolation
    window_dex: float | None = None
    n_lone_runs: int = 0  # runs with no other size at the same compute

    @property
    def a(self) -> float | None:
        return self.n_opt.exponent if self.n_opt else None

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.d_opt.exponent if self.d_opt else None, "window_dex": self.window_dex,
                "budgets": self.budgets, "skipped": self.skipped, "n_lone_runs": self.n_lone_runs,
                "n_opt_law": self.n_opt.to_dict() if self.n_opt else None,
                "d_opt_law": self.d_opt.to_dict() if self.d_opt else None,
                "loss_opt_law": self.loss_opt.to_dict() if self.loss_opt else None}


def fit_isoflop(params, tokens, loss, flops, *, window_dex: float | None = 0.75, tolerance_dex: float = 0.05,
                min_sizes: int = 3) -> IsoFlopFit:
    """Fit IsoFLOP parabolas per budget (``window_dex`` decades of N around each minimum; None = global)."""
    n, d, lo, c = (np.asarray(v, dtype=float) for v in (params, tokens, loss, flops))
    fit = IsoFlopFit(window_dex=window_dex)
    for idx in group_budgets(c, tolerance_dex):
        budget = float(np.exp(np.mean(np.log(c[idx]))))
        sizes = np.unique(n[idx]).size
        if sizes == 1:
            fit.n_lone_runs += int(idx.size)  # a run alone at its compute is no IsoFLOP profile: not a budget
            continue
        if sizes < min_sizes:
            fit.skipped.append({"flops": budget, "n_runs": int(idx.size), "reason": f"{sizes} size(s) (< {min_sizes})"})
            continue
        u = np.log10(n[idx])
        best = windowed_minimum(u, lo[idx], window_dex)
        if best is None:
            fit.skipped.append({"flops": budget, "n_runs": int(idx.size), "reason": "no parabola with a minimum"})
            continue
        if best.at_edge:
            fit.skipped.append({"flops": budget, "n_runs": int(idx.size),
                                "reason": "best run is at the edge of the sizes tried"})
            continue
        used = idx[best.used]
        # tokens at the optimum: log D is (nearly) linear in log N along an IsoFLOP line
        slope, icept = np.polyfit(np.log10(n[used]), np.log10(d[used]), 1)
        fit.budgets.append({"flops": budget, "n_opt": float(10 ** best.u), "d_opt": float(10 ** (icept + slope * best.u)),
                            "loss_opt": best.value, "n_runs": int(idx.size), "n_used": int(used.size)})
    if len(fit.budgets) >= 2:
        cs = [b["flops"] for b in fit.budgets]
        fit.n_opt = fit_power_law(cs, [b["n_opt"] for b in fit.budgets])
        fit.d_opt = fit_power_law(cs, [b["d_opt"] for b in fit.budgets])
        fit.loss_opt = fit_power_law(cs, [b["loss_opt"] for b in fit.budgets])
    return fit
