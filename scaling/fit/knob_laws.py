"""Which knobs to carry: each knob level's own loss law, judged at the large run's size and budget.

A knob (an architecture, optimiser or data setting swept at fixed size and budget) can win at the
sizes tried and lose at the size that matters, so every level gets its own law
L_level(N, D) = E + A_level/N^α + B_level/D^β, in one of two forms:

- ``shared``: one E, α and β for all levels, an A and a B per level (3 + 2·levels parameters; the
  levels differ by a constant factor of effective parameters and of effective data);
- ``separate``: a full law per level (5 parameters each; the levels may scale differently).

Held-out error decides between them: each model size is left out in turn, both forms are fitted to
the rest and predict it. Uncertainty comes from a bootstrap over runs (stratified by level; seeds stay
separate runs). At a target (N, D) each level gets its predicted loss, its difference to the best
level, and its *compute multiplier*: the compute it needs to reach the best level's predicted loss,
divided by the target's compute, when the run is scaled along the target's tokens-per-parameter ratio
(N and D both grow by √m when the compute grows by m). Two levels *cross over* where their losses on
that path are equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, least_squares

from scaling.errors import ScalingError
from scaling.fit.basics import representative, single_threaded_blas
from scaling.fit.data import CELL_TOLERANCE_DEX, Points
from scaling.fit.knobs import law_huber_delta, most_common, one_setting_per_cell
from scaling.fit.parametric import HUBER_DELTA, ParametricFit, fit_parametric

HPARAM_KNOBS = ("lr", "batch_size")  # judged by the hyperparameter laws, not here
FORMS = ("shared", "separate")
CROSSOVER_RANGE = 1e4  # crossovers are looked for within this factor of the runs' compute, each way
_BOUND_LOG_COEF, _BOUND_LOG_E, _BOUND_EXP = (-10.0, 60.0), (-10.0, 5.0), (1e-3, 3.0)

def level_name(value) -> str:
    """A knob value as a level name, written as in a config file or CSV (``true``, ``0.1``, ``gelu``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass
class KnobData:
    """The runs that judge one knob: other knobs at their usual level, each cell's best hyperparameters."""

    knob: str
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    level: np.ndarray  # index into ``levels`` per run
    levels: list[str]
    values: dict[str, object]  # level name -> the value as the runs had it
    fixed: dict[str, str]  # the other knobs and the level they are held at
    delta: float = HUBER_DELTA  # Huber δ on log loss of every law fitted to these runs (approach 3's)

    def sizes(self) -> np.ndarray:
        """Each run's model size, with sizes within 2% counted as one."""
        return representative(self.params, CELL_TOLERANCE_DEX)

    def subset(self, idx: np.ndarray) -> KnobData:
        """The runs ``idx`` (repeats allowed, as in a bootstrap resample)."""
        return KnobData(self.knob, self.params[idx], self.tokens[idx], self.loss[idx], self.level[idx],
                        self.levels, self.values, self.fixed, self.delta)


def knob_data(points: Points, knob: str) -> KnobData | None:
    """The runs that judge ``knob``; None when fewer than two of its levels have runs at two sizes.

    Other knobs are held at their most common level; where learning rate or batch size were swept,
    each (size, tokens, level) keeps the runs of one setting, as the law of tuned runs does
    (:func:`scaling.fit.knobs.one_setting_per_cell`).
    """
    n = len(points)
    keep = np.array([points.knobs[knob][i] is not None for i in range(n)])
    fixed = {}
    for other, values in points.knobs.items():
        if other == knob or other in HPARAM_KNOBS:
            continue
        usual = most_common([values[i] for i in np.flatnonzero(keep)]) if keep.any() else None
        fixed[other] = level_name(usual)
        keep &= np.array([repr(v) == repr(usual) for v in values])
    cells = points.cells()
    settings: dict[tuple, dict[tuple, list[int]]] = {}
    for i in np.flatnonzero(keep):
        hp = tuple(repr(points.knobs[h][i]) if h in points.knobs else "" for h in HPARAM_KNOBS)
        settings.setdefault((cells[i], level_name(points.knobs[knob][i])), {}).setdefault(hp, []).append(
            int(i)
        )
    # per level, the size's usual hyperparameters unless others beat them beyond the noise
    hparams = [h for h in HPARAM_KNOBS if h in points.knobs]
    rows = np.array(one_setting_per_cell(points, settings, hparams, size_of=lambda key: key[0][0],
                                         group_of=lambda key: key[1]), dtype=int)
    if rows.size == 0:
        return None
    names = [level_name(points.knobs[knob][i]) for i in rows]
    sizes = representative(points.params[rows], CELL_TOLERANCE_DEX)
    levels = sorted(
        {nm for nm in names if np.unique(sizes[[j for j, m in enumerate(names) if m == nm]]).size >= 2}
    )
    if len(levels) < 2:
        return None
    use = np.array([nm in levels for nm in names])
    rows = rows[use]
    values = {level_name(points.knobs[knob][i]): points.knobs[knob][i] for i in rows}
    return KnobData(
        knob,
        points.params[rows],
        points.tokens[rows],
        points.loss[rows],
        np.array([levels.index(nm) for nm, u in zip(names, use, strict=True) if u]),
        levels,
        values,
        fixed,
        law_huber_delta(points),
    )


def _shared_residuals(theta: np.ndarray, x, y, ll, level, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Log residuals of the shared form and their Jacobian; θ = (log E, α, β, log A_l…, log B_l…)."""
    e, alpha, beta = theta[:3]
    a, b = theta[3:3 + n_levels][level], theta[3 + n_levels:][level]
    t1, t2 = a - alpha * x, b - beta * y
    top = np.maximum(np.maximum(t1, t2), e)  # log-sum-exp, shifted by the largest term for stability
    w1, w2, w3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = w1 + w2 + w3
    r = top + np.log(total) - ll
    s1, s2 = w1 / total, w2 / total  # each term's share of the predicted loss
    jac = np.zeros((x.size, theta.size))
    rows = np.arange(x.size)
    jac[:, 0], jac[:, 1], jac[:, 2] = w3 / total, -s1 * x, -s2 * y
    jac[rows, 3 + level], jac[rows, 3 + n_levels + level] = s1, s2
    return r, jac


def _laws_from_shared(
    theta: np.ndarray, n_levels: int, n_points: int, residuals: np.ndarray, delta: float
) -> list[ParametricFit]:
    e, alpha, beta = theta[:3]
    return [
        ParametricFit(
            E=float(np.exp(e)),
            A=float(np.exp(theta[3 + i])),
            B=float(np.exp(theta[3 + n_levels + i])),
            alpha=float(alpha),
            beta=float(beta),
            n_points=n_points,
            residual_std=float(np.std(residuals)),
            residuals=residuals,
            theta=np.array([theta[3 + i], theta[3 + n_levels + i], e, alpha, beta]),
            delta=delta,
        )
        for i in range(n_levels)
    ]


def fit_shared(
    data: KnobData, starts: list[np.ndarray] | None = None
) -> tuple[list[ParametricFit], np.ndarray]:
    """The shared form fitted to ``data``: one law per level and the joint θ (a warm start for refits).

    Without ``starts`` it starts from a single law fitted to all levels together.
    """
    k = len(data.levels)
    x, y, ll = np.log(data.params), np.log(data.tokens), np.log(data.loss)
    if starts is None:
        pooled = fit_parametric(data.params, data.tokens, data.loss, delta=data.delta)
        la, lb, le, alpha, beta = pooled.theta
        starts = [np.concatenate([[le, alpha, beta], np.full(k, la), np.full(k, lb)])]
    lower, upper = np.array([_BOUND_LOG_E, _BOUND_EXP, _BOUND_EXP] + [_BOUND_LOG_COEF] * (2 * k)).T
    level = data.level

    def residuals(theta):
        return _shared_residuals(theta, x, y, ll, level, k)[0]

    def jacobian(theta):
        return _shared_residuals(theta, x, y, ll, level, k)[1]

    best = None
    with single_threaded_blas():
        for start in starts:
            # Huber loss on log residuals (robust as approach 3 is); trust-region steps with the exact
            # Jacobian converge in tens of evaluations where a quasi-Newton method needs hundreds
            res = least_squares(residuals, np.clip(start, lower + 1e-9, upper - 1e-9), jac=jacobian,
                                bounds=(lower, upper), loss="huber", f_scale=data.delta, x_scale="jac",
                                ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
            if best is None or res.cost < best.cost:
                best = res
    r = residuals(best.x)
    return _laws_from_shared(best.x, k, x.size, r, data.delta), best.x.copy()


OFF_LINE_DEX = 0.05  # a level's runs must leave one line in (log N, log D) by this much (RMS, decades)


def _off_line_dex(params: np.ndarray, tokens: np.ndarray) -> float:
    """RMS distance, in decades, of the points (log10 N, log10 D) from the straight line closest to them."""
    xy = np.stack([np.log10(params), np.log10(tokens)], axis=1)
    xy = xy - xy.mean(axis=0)
    return float(np.linalg.svd(xy, compute_uv=False)[-1] / np.sqrt(len(xy)))


def separate_fittable(data: KnobData) -> bool:
    """Whether every level has the runs a law of its own needs: 5 runs, 2 sizes and 2 token counts, and
    runs off one line in (log N, log D). Runs of one compute budget lie on such a line (D falls as N
    grows), where a law of its own cannot tell its N term from its D term."""
    for i in range(len(data.levels)):
        sel = data.level == i
        if sel.sum() < 5 or np.unique(data.sizes()[sel]).size < 2 or np.unique(data.tokens[sel]).size < 2:
            return False
        if _off_line_dex(data.params[sel], data.tokens[sel]) < OFF_LINE_DEX:
            return False
    return True


def fit_separate(data: KnobData, starts: list[ParametricFit] | None = None) -> list[ParametricFit]:
    """A full law per level (from ``starts`` when given, else from a grid of starts)."""
    laws = []
    for i, name in enumerate(data.levels):
        sel = np.flatnonzero(data.level == i)
        one = KnobData(
            data.knob,
            data.params[sel],
            data.tokens[sel],
            data.loss[sel],
            np.zeros(sel.size, dtype=int),
            [name],
            data.values,
            data.fixed,
            data.delta,
        )
        init = None
        if starts:
            la, lb, le, alpha, beta = starts[i].theta
            init = [np.array([le, alpha, beta, la, lb])]
        laws.append(fit_shared(one, init)[0][0])
    return laws


@dataclass
class FormFit:
    """One form's laws fitted to all the runs of a knob, kept as the warm start of every refit."""

    form: str
    laws: list[ParametricFit]
    theta: np.ndarray | None  # the shared form's joint parameters

    def refit(self, data: KnobData) -> list[ParametricFit]:
        """The same form fitted to ``data`` (a subset or resample), starting from these laws."""
        if self.form == "shared":
            return fit_shared(data, [self.theta])[0]
        return fit_separate(data, self.laws)


def fit_form(data: KnobData, form: str) -> FormFit:
    """The laws of ``form`` ("shared" or "separate") fitted to ``data`` from a grid of starts."""
    if form == "shared":
        laws, theta = fit_shared(data)
        return FormFit(form, laws, theta)
    return FormFit(form, fit_separate(data), None)


def leave_one_size_out(data: KnobData, full: FormFit) -> float | None:
    """Mean absolute log error on each size when it is left out of ``full``'s fit; None when it cannot be
    done."""
    sizes = data.sizes()
    errors = []
    for size in np.unique(sizes):
        held = sizes == size
        rest = data.subset(np.flatnonzero(~held))
        if any(np.unique(rest.sizes()[rest.level == i]).size < 2 for i in range(len(data.levels))):
            continue  # a level would keep one size: its law could not be told from the others
        try:
            if full.form == "separate" and not separate_fittable(rest):
                return None
            laws = full.refit(rest)
        except ScalingError:
            return None
        pred = np.array([laws[lv].predict(n, d) for lv, n, d in
                         zip(data.level[held], data.params[held], data.tokens[held], strict=True)])
        errors += list(np.abs(np.log(pred) - np.log(data.loss[held])))
    return float(np.mean(errors)) if errors else None


def choose_form(data: KnobData) -> tuple[FormFit, dict]:
    """The form with the lower held-out error (shared on a tie or when only it can be judged), fitted."""
    fits = {"shared": fit_form(data, "shared")}
    if separate_fittable(data):
        fits["separate"] = fit_form(data, "separate")
    heldout = {form: leave_one_size_out(data, fit) for form, fit in fits.items()}
    heldout.setdefault("separate", None)
    sep, sh = heldout["separate"], heldout["shared"]
    form = "separate" if sep is not None and sh is not None and sep < sh else "shared"
    if "separate" not in fits:
        why = ("too few runs per level for separate laws (each level needs 5 runs at 2 sizes and 2 token "
               "counts, not all on one line in (N, D) as one compute budget's runs are)")
    elif sep is None or sh is None:
        why = "too few sizes to hold one out"
    else:
        why = f"held-out error {min(sep, sh):.4f} vs {max(sep, sh):.4f} (mean |log error|, one size left out)"
    return fits[form], {"errors": heldout, "why": why}


def loss_on_path(law: ParametricFit, n: float, d: float, multiplier) -> np.ndarray:
    """The law's loss when the run (n, d) is scaled to ``multiplier``× its compute at the same N/D ratio."""
    s = np.sqrt(np.asarray(multiplier, dtype=float))
    return law.predict(n * s, d * s)


def compute_multiplier(law: ParametricFit, n: float, d: float, goal: float) -> float:
    """Compute, relative to the run (n, d), that ``law`` needs to reach the loss ``goal``; inf if never."""
    if law.E >= goal:
        return math.inf

    def gap(log_m: float) -> float:
        return float(loss_on_path(law, n, d, math.exp(log_m))) - goal

    lo, hi = -40.0, 40.0
    if gap(lo) < 0:
        return 0.0
    if gap(hi) > 0:
        return math.inf
    return math.exp(brentq(gap, lo, hi, xtol=1e-10))


def crossover_flops(
    law_a: ParametricFit, law_b: ParametricFit, n: float, d: float, flops_range
) -> float | None:
    """Compute (6·N·D) where the two laws' losses are equal along the run's N/D ratio, within ``flops_range``.

    With several crossings the one nearest the run's own compute is returned."""
    c0 = 6.0 * n * d
    grid = np.geomspace(flops_range[0], flops_range[1], 801)
    diff = loss_on_path(law_a, n, d, grid / c0) - loss_on_path(law_b, n, d, grid / c0)
    flips = np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0)
    if flips.size == 0:
        return None

    def gap(log_c: float) -> float:
        m = math.exp(log_c) / c0
        return float(loss_on_path(law_a, n, d, m) - loss_on_path(law_b, n, d, m))

    roots = [math.exp(brentq(gap, math.log(grid[i]), math.log(grid[i + 1]))) for i in flips]
    return min(roots, key=lambda c: abs(math.log(c / c0)))


def bootstrap_laws(
    data: KnobData,
    full: FormFit,
    quantities: Callable[[list[ParametricFit]], dict[str, float]],
    *,
    n_boot: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Samples of ``quantities(laws)`` over refits of ``full``'s form on runs resampled within each level."""
    rng = np.random.default_rng(seed)
    by_level = [np.flatnonzero(data.level == i) for i in range(len(data.levels))]
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(ix, ix.size, replace=True) for ix in by_level])
        sub = data.subset(idx)
        if any(np.unique(sub.sizes()[sub.level == i]).size < 2 for i in range(len(data.levels))):
            continue
        try:
            laws = full.refit(sub)
        except ScalingError:
            continue
        for key, value in quantities(laws).items():
            samples.setdefault(key, []).append(value)
    return {k: np.asarray(v, dtype=float) for k, v in samples.items()}
