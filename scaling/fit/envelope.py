"""Chinchilla approach 1: the lower envelope of training curves.

Every validation point of every run is a (FLOPs, loss) pair, with FLOPs = the run's training FLOPs
per token × tokens seen. At each of a set of log-spaced compute values, the run with the lowest
(log-log interpolated) loss among the runs whose curve covers it is the compute-optimal size there.
Power laws through those winners give N_opt(C), D_opt(C) = C / (FLOPs per token of the winner).

Caveat printed in the report: a mid-training point of a cosine run has not decayed its LR yet, so it
is worse than a run trained to exactly that many tokens; Chinchilla used many runs of different
lengths for this reason. Cooldown branches (a WSD trunk) avoid most of the bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.fit.basics import PowerLaw, fit_power_law
from scaling.fit.data import Curve


@dataclass
class EnvelopeFit:
    """Envelope winners per compute value and the power laws through them."""

    points: list[dict] = field(default_factory=list)  # {flops, params, tokens, loss, run}
    n_opt: PowerLaw | None = None
    d_opt: PowerLaw | None = None
    n_runs: int = 0
    note: str = ""

    @property
    def a(self) -> float | None:
        return self.n_opt.exponent if self.n_opt else None

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.d_opt.exponent if self.d_opt else None, "n_runs": self.n_runs,
                "note": self.note, "points": self.points,
                "n_opt_law": self.n_opt.to_dict() if self.n_opt else None,
                "d_opt_law": self.d_opt.to_dict() if self.d_opt else None}


def fit_envelope(curves: list[Curve], *, n_bins: int = 30) -> EnvelopeFit:
    """Fit approach 1 to validation curves; the result is empty (with a note) when they cannot support it."""
    curves = [c for c in curves if c.tokens.size >= 2]
    fit = EnvelopeFit(n_runs=len(curves))
    sizes = sorted({c.params for c in curves})
    if len(sizes) < 3:
        fit.note = f"needs validation curves of at least 3 model sizes; got {len(sizes)}"
        return fit
    logc = [np.log10(c.flops_per_token * c.tokens) for c in curves]
    grid = np.linspace(min(x.min() for x in logc), max(x.max() for x in logc), n_bins)
    for g in grid:
        candidates = []
        for curve, lc in zip(curves, logc, strict=True):
            if lc.min() <= g <= lc.max():
                order = np.argsort(lc)
                loss = 10 ** np.interp(g, lc[order], np.log10(curve.loss[order]))
                candidates.append((loss, curve))
        covering = sorted({cv.params for _, cv in candidates})
        if len(covering) < 3:
            continue
        loss, winner = min(candidates, key=lambda t: t[0])
        if winner.params in (covering[0], covering[-1]):
            continue  # the best size is at the edge of those that reach this compute: only a bound
        fit.points.append(
            {
                "flops": float(10**g),
                "params": winner.params,
                "tokens": float(10**g / winner.flops_per_token),
                "loss": float(loss),
                "run": winner.run,
            }
        )
    if len({p["params"] for p in fit.points}) >= 2:
        cs = [p["flops"] for p in fit.points]
        fit.n_opt = fit_power_law(cs, [p["params"] for p in fit.points])
        fit.d_opt = fit_power_law(cs, [p["tokens"] for p in fit.points])
    else:
        fit.note = "fewer than 2 distinct sizes win the envelope inside the sizes tried"
    return fit
