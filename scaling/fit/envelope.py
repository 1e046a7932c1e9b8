"""Chinchilla approach 1: the lower envelope of training curves.

Every validation point of every run is a (FLOPs, loss) pair, with FLOPs = the run's training FLOPs
per token × tokens seen. At each of a set of log-spaced compute values, the run with the lowest
(log-log interpolated) loss among the runs whose curve covers it is the compute-optimal size there.
Power laws through those winners give N_opt(C), D_opt(C) = C / (FLOPs per token of the winner).

The curves are those approaches 2 and 3 read: one setting per (size, tokens) cell (the tuned runs; a
learning-rate sweep's worse rates and a knob's other level stay out), and the seeds of that setting
averaged into one curve. Left separate, five seeds of one setting would each compete for the envelope
and the luckiest would win it, some 1.2 σ below that setting's mean.

The interval of a (and b) comes from noisy copies, as approach 2's does: each copy shifts every
curve by its own draw of the run-to-run noise (a seed moves a run's loss all along its curve, not
point by point; σ/√n for a mean of n seeds), finds the envelope again and refits the power laws; the
percentile interval over the copies says how much the winners depend on luck.

Caveat printed in the report: a mid-training point of a cosine run has not decayed its LR yet, so it
is worse than a run trained to exactly that many tokens; Chinchilla used many runs of different
lengths for this reason. Cooldown branches (a WSD trunk) avoid most of the bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.fit.basics import PowerLaw, fit_power_law
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.data import Curve, Points
from scaling.fit.isoflop import DEFAULT_RELATIVE_NOISE

# noisy copies for the interval of a and b: with 200, the 2.5% tail is 5 copies, and on the demo's runs the
# lower end of a's interval moved between 0.336 and 0.374 with the seed of the draws (1000: 0.360-0.366),
# at 0.4 s against 1.5-2 s per fit
N_DRAWS = 1000


@dataclass
class EnvelopeFit:
    """Envelope winners per compute value, the power laws through them, and their intervals."""

    points: list[dict] = field(default_factory=list)  # {flops, params, tokens, loss, run}
    n_opt: PowerLaw | None = None
    d_opt: PowerLaw | None = None
    n_runs: int = 0
    note: str = ""
    a_ci: list[float] | None = None
    b_ci: list[float] | None = None
    n_draws: int = 0  # noisy copies behind the intervals
    excess_scatter: float = 0.0  # σ of the per-size quirks the copies carry on top of the noise (nats)

    @property
    def a(self) -> float | None:
        return self.n_opt.exponent if self.n_opt else None

    def to_dict(self) -> dict:
        return {"a": self.a, "a_ci": self.a_ci, "b": self.d_opt.exponent if self.d_opt else None,
                "b_ci": self.b_ci, "n_draws": self.n_draws, "excess_scatter": self.excess_scatter,
                "n_runs": self.n_runs, "note": self.note,
                "points": self.points,
                "n_opt_law": self.n_opt.to_dict() if self.n_opt else None,
                "d_opt_law": self.d_opt.to_dict() if self.d_opt else None}


def average_curves(curves: list[Curve]) -> Curve:
    """One curve, the mean loss of ``curves`` (seeds of one setting) at the token counts they all
    logged; the first curve alone where they share fewer than two."""
    common = curves[0].tokens
    for c in curves[1:]:
        common = np.intersect1d(common, c.tokens)
    if len(curves) == 1 or common.size < 2:
        return curves[0]

    def mean_at_common(name: str) -> np.ndarray | None:
        columns = []
        for c in curves:
            values = getattr(c, name)
            if values is None:
                return None
            order = np.argsort(c.tokens)
            columns.append(values[order][np.searchsorted(c.tokens[order], common)])
        return np.mean(columns, axis=0)

    first = curves[0]
    return Curve(first.run, first.params, first.flops_per_token, common, mean_at_common("loss"),
                 mean_at_common("bpb"), n_runs=sum(c.n_runs for c in curves))


def one_curve_per_cell(tuned: Points) -> list[Curve]:
    """The curves of ``tuned``'s runs (one setting per (size, tokens) cell), those of one cell averaged
    into one (:func:`average_curves`)."""
    by_run = {c.run: c for c in tuned.curves}
    cells: dict[tuple, list[Curve]] = {}
    for run, cell in zip(tuned.run, tuned.cells(), strict=True):
        if run in by_run:
            cells.setdefault(cell, []).append(by_run[run])
    return [average_curves(group) for group in cells.values()]


def _log_loss_on_grid(curves: list[Curve], grid: np.ndarray) -> np.ndarray:
    """log10 loss of each curve (rows) at each compute of ``grid`` (log10 FLOPs; columns), interpolated
    in log-log; NaN where a curve does not reach that compute."""
    out = np.full((len(curves), grid.size), np.nan)
    for i, curve in enumerate(curves):
        lc = np.log10(curve.flops_per_token * curve.tokens)
        order = np.argsort(lc)
        inside = (grid >= lc.min()) & (grid <= lc.max())
        out[i, inside] = np.interp(grid[inside], lc[order], np.log10(curve.loss[order]))
    return out


def _winners(table: np.ndarray, params: np.ndarray) -> list[tuple[int, int]]:
    """(grid column, winning curve) where at least 3 sizes reach that compute and the best of them is
    neither the smallest nor the largest of those (at an edge it is only a bound)."""
    out = []
    for j in range(table.shape[1]):
        covering = np.flatnonzero(np.isfinite(table[:, j]))
        if np.unique(params[covering]).size < 3:
            continue
        best = covering[np.argmin(table[covering, j])]
        if params[best] in (params[covering].min(), params[covering].max()):
            continue
        out.append((j, int(best)))
    return out


def _laws(grid: np.ndarray, winners: list[tuple[int, int]], params: np.ndarray,
          fpt: np.ndarray) -> tuple[PowerLaw | None, PowerLaw | None]:
    """N_opt(C) and D_opt(C) through the winners; None with fewer than 2 distinct winning sizes."""
    if np.unique([params[w] for _, w in winners]).size < 2:
        return None, None
    cs = np.array([10 ** grid[j] for j, _ in winners])
    ns = np.array([params[w] for _, w in winners])
    return fit_power_law(cs, ns), fit_power_law(cs, cs / np.array([fpt[w] for _, w in winners]))


def fit_envelope(curves: list[Curve], *, n_bins: int = 30, noise: float | np.ndarray | None = None,
                 n_draws: int = N_DRAWS, ci: float = 0.95, seed: int = 0,
                 excess_scatter: float = 0.0) -> EnvelopeFit:
    """Fit approach 1 to validation curves; the result is empty (with a note) when they cannot support it.

    ``noise``: σ of a run's final loss in nats, one for all or one per curve (None:
    ``DEFAULT_RELATIVE_NOISE`` of it), by which the ``n_draws`` noisy copies shift each curve for the
    intervals (0 copies: no interval); a curve averaged over n seeds (``Curve.n_runs``) by σ/√n.
    ``excess_scatter``: σ in nats of per-size quirks beyond that noise (what approach 2's profiles
    measured, :func:`scaling.fit.isoflop_profile.excess_scatter`), added to it in quadrature: a quirk
    that a seed keeps moves the envelope's winners just as noise does.
    """
    keep = [i for i, c in enumerate(curves) if c.tokens.size >= 2]
    curves = [curves[i] for i in keep]
    if noise is not None and np.ndim(noise):
        noise = np.asarray(noise, dtype=float)[keep]
    fit = EnvelopeFit(n_runs=sum(c.n_runs for c in curves))  # runs behind the curves (seeds averaged)
    sizes = sorted({c.params for c in curves})
    if len(sizes) < 3:
        fit.note = f"needs validation curves of at least 3 model sizes; got {len(sizes)}"
        return fit
    logc = [np.log10(c.flops_per_token * c.tokens) for c in curves]
    grid = np.linspace(min(x.min() for x in logc), max(x.max() for x in logc), n_bins)
    table = _log_loss_on_grid(curves, grid)
    params = np.array([c.params for c in curves])
    fpt = np.array([c.flops_per_token for c in curves])
    winners = _winners(table, params)
    for j, w in winners:
        fit.points.append({"flops": float(10 ** grid[j]), "params": float(params[w]),
                           "tokens": float(10 ** grid[j] / fpt[w]), "loss": float(10 ** table[w, j]),
                           "run": curves[w].run})
    fit.n_opt, fit.d_opt = _laws(grid, winners, params, fpt)
    if fit.n_opt is None:
        fit.note = "fewer than 2 distinct sizes win the envelope inside the sizes tried"
        return fit
    if n_draws:
        final = np.array([c.loss[np.argmax(c.tokens)] for c in curves])
        base = noise if noise is not None else DEFAULT_RELATIVE_NOISE * final
        n_runs = np.array([c.n_runs for c in curves])
        sigma = np.hypot(base / np.sqrt(n_runs), excess_scatter) / final  # relative; a quirk is not averaged
        rng = np.random.default_rng(seed)
        a_draws, b_draws = [], []
        for _ in range(n_draws):
            shift = sigma * rng.standard_normal(len(curves)) / np.log(10)  # loss x e^(σz), in log10
            n_law, d_law = _laws(grid, _winners(table + shift[:, None], params), params, fpt)
            if n_law is not None:
                a_draws.append(n_law.exponent)
                b_draws.append(d_law.exponent)
        fit.n_draws, fit.excess_scatter = n_draws, float(excess_scatter)
        fit.a_ci = percentile_interval(np.array(a_draws), ci)
        fit.b_ci = percentile_interval(np.array(b_draws), ci)
    return fit
