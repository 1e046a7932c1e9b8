"""Chinchilla approach 2: IsoFLOP profiles, the minimum of each, and the power law through the minima.

Runs of (nearly) equal training FLOPs form a budget. Per budget:

1. the profile: per model size, the best setting's loss (seeds averaged first);
2. its minimum N*: by default a polynomial in log N through the sizes near the best one, weighted by
   each size's noise: a parabola, or a cubic where the profile's asymmetry shows beyond the noise
   (``method="polynomial"``); else an Akima interpolant through every size (``"interpolate"``) or an
   unweighted parabola near the best size (``"parabola"``), see :mod:`scaling.fit.isoflop_profile`.
   A budget whose minimum lies at the smallest or largest size tried has no bracketed optimum and is
   dropped (and listed);
3. its uncertainty: the whole step repeated on ``n_draws`` copies of the runs with each loss
   perturbed by the run-to-run noise (the measured seed spread, else 0.5% of the loss) and by the
   profiles' scatter beyond it: per-size quirks a new seed keeps, measured about a smooth curve through
   every budget's profile (:func:`scaling.fit.isoflop_profile.excess_scatter`). The spread
   of log N* over the copies, never below a third of the spacing of the sizes (a profile read on a
   grid of sizes cannot place its minimum more finely than that) and scaled up by the share of
   copies whose minimum left the sizes tried, is the budget's uncertainty. A budget whose minimum
   leaves the sizes tried in half of the copies or more is dropped too.

N*(C) ∝ C^a is then a regression of log N* on log C weighted by 1/uncertainty². The interval of a
comes from the same fit repeated on every noisy copy; where the optima scatter about the line more
than their uncertainties explain (reduced χ² > 1), the interval is widened by √χ². Where the profiles
could not measure their own scatter (too few sizes per budget) and either the optima scatter so or
no copy moved any optimum beyond its floor, it is also made to cover the regression's t-interval, so
a noise level that is too small cannot make it look tight; where they
could, that t-interval (at budgets - 2 degrees of freedom: 12.7 x its standard error with 3 budgets)
is not needed, and would widen the interval six-fold whenever √χ² crossed 1 by chance, about one
study in three with 3 budgets (BENCHMARKS.md, "Approach 2's interval on few budgets").
L*(C), the loss at each optimum, is fitted as E + A·C^−α (it levels off at the irreducible loss E,
so a pure power law would mislead far out); its interval comes from the noisy copies too, stretched in
the same way where the optimal losses scatter about it more than the noise explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.fit.basics import PowerLaw, cluster_log, fit_power_law
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.data import Points
from scaling.fit.isoflop_profile import METHODS, build_profile, excess_scatter, find_minima
from scaling.fit.knobs import pooled_seed_noise, seed_noise_by_steps, seed_noise_source, seed_settings

DEFAULT_RELATIVE_NOISE = 0.005  # run-to-run std of a final loss without seeds to measure it: 0.5% of it
DEFAULT_NOISE_SOURCE = f"default {100 * DEFAULT_RELATIVE_NOISE:g}% of each loss"
N_DRAWS = 1000
MIN_SPREAD_GAPS = 1 / 3  # floor of a budget's uncertainty in log N, in units of its average size spacing
# residual degrees of freedom of the profiles' scatter (``isoflop_profile.ExcessScatter``) from which it
# is trusted to size the copies' noise, so that the optima's remaining scatter widens a's interval ×√χ² only
MIN_SCATTER_DOF = 6
LOSS_LAW_DRAWS = 50  # noisy copies refitted for the interval of L*(C)'s constants (a nonlinear fit each)
METHODS_DIFFER = 0.01  # |Δa| from which the report explains how the methods differ


def group_budgets(flops, tolerance_dex: float = 0.05) -> list[np.ndarray]:
    """Indices of runs whose FLOPs agree within ``tolerance_dex`` (decades) of the group's smallest."""
    return cluster_log(flops, tolerance_dex)


def isoflop_noise(points: Points) -> tuple[float | None, str]:
    """σ of a run's final loss for the perturbation (None: the default) and where it comes from."""
    sigma, dof = pooled_seed_noise(seed_settings(points))
    if sigma is not None:
        return sigma, seed_noise_source(points, dof)
    return None, DEFAULT_NOISE_SOURCE + " (no repeated seeds to measure it)"


@dataclass
class LossLaw:
    """L*(C) = E + A·C^−α through the budgets' optimal losses."""

    E: float
    A: float
    alpha: float
    n_points: int
    log_resid_std: float
    ci: dict = field(default_factory=dict)  # E, alpha -> [lo, hi] from the noisy copies

    def __call__(self, flops):
        return self.E + self.A * np.asarray(flops, dtype=float) ** -self.alpha

    def to_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "alpha": self.alpha, "n_points": self.n_points,
                "log_resid_std": self.log_resid_std, "ci": self.ci}


def fit_loss_law(flops, loss, start: LossLaw | None = None) -> LossLaw | None:
    """Least squares on log L of E + A·C^−α (E ≥ 0, 0 ≤ α ≤ 3); None with fewer than 3 budgets.

    Without ``start``, a small grid of starts (α, E as a fraction of the lowest loss)."""
    c, y = np.asarray(flops, dtype=float), np.log(np.asarray(loss, dtype=float))
    if np.unique(c).size < 3:
        return None
    ref = float(np.exp(np.mean(np.log(c))))  # C/ref keeps log A of order one
    x = np.log(c / ref)

    def residual(theta):  # theta = (log A', log E, alpha) with A' = A·ref^−α
        return np.logaddexp(theta[0] - theta[2] * x, theta[1]) - y

    def jacobian(theta):
        share = 1.0 / (1.0 + np.exp(theta[1] - theta[0] + theta[2] * x))  # of the power-law term in L
        return np.stack([share, 1.0 - share, -x * share], axis=1)

    low = float(np.exp(y.min()))
    if start is not None:
        starts = [(np.log(start.A) - start.alpha * np.log(ref), np.log(max(start.E, 1e-9)), start.alpha)]
    else:
        starts = [(np.log(max(np.exp(y.mean()) - f * low, 1e-3 * low)), np.log(max(f * low, 1e-9)), al)
                  for al in (0.1, 0.3) for f in (0.0, 0.5, 0.8, 0.95)]
    upper_e = np.log(low)
    fits = [least_squares(residual, np.clip(s, (-50, -21, 0), (50, upper_e - 1e-9, 3)),
                          jac=jacobian, bounds=((-50, -21, 0), (50, upper_e, 3))) for s in starts]
    best = min(fits, key=lambda f: f.cost)
    log_a, log_e, alpha = best.x
    r = best.fun
    resid = float(np.sqrt(r @ r / (r.size - 3))) if r.size > 3 else float("nan")
    return LossLaw(float(np.exp(log_e)), float(np.exp(log_a) * ref ** alpha), float(alpha), int(c.size),
                   resid)


@dataclass
class IsoFlopFit:
    """Per-budget optima, the laws through them and their intervals, for one method."""

    method: str = "polynomial"
    budgets: list[dict] = field(default_factory=list)  # flops, n_opt, d_opt, loss_opt, n_opt_log10_std, ...
    skipped: list[dict] = field(default_factory=list)  # flops, n_runs, reason (and sizes, losses if any)
    n_opt: PowerLaw | None = None
    d_opt: PowerLaw | None = None
    loss_law: LossLaw | None = None
    a_ci: list[float] | None = None
    b_ci: list[float] | None = None
    ci_level: float = 0.95
    scatter_ratio: float | None = None  # √(reduced χ²) of the weighted N* regression; > 1 widens a_ci
    noise: float | None = None  # the pooled seed noise (each run's own, where a noise law gives one, below)
    noise_source: str = ""
    noise_law: dict | None = None  # the :class:`scaling.fit.knobs.NoiseLaw` that set each run's σ, if any
    run_noise: dict = field(default_factory=dict)  # run id -> that run's σ (from fit_isoflop_points)
    # the profiles' scatter beyond that noise (:class:`scaling.fit.isoflop_profile.ExcessScatter`), added to
    # each run's σ in the noisy copies; None where no budget has enough sizes to measure it
    excess_scatter: dict | None = None
    n_draws: int = 0
    window_dex: float | None = None
    n_lone_runs: int = 0  # runs with no other size at the same compute
    methods: dict = field(default_factory=dict)  # method -> summary, when both were fitted
    method_note: str = ""  # why the methods' exponents differ, when they do
    # ln N* per budget (rows, in ``budgets`` order) x noisy copy, NaN where a copy's minimum was not
    # interior: what :meth:`n_opt_at` draws its interval from
    log_n_draws: np.ndarray | None = field(default=None, repr=False)

    @property
    def profiles_checked(self) -> bool:
        """Whether the profiles measured their scatter beyond the noise on enough degrees of freedom
        (``MIN_SCATTER_DOF``) for the copies to be trusted to carry it."""
        return bool(self.excess_scatter) and self.excess_scatter["dof"] >= MIN_SCATTER_DOF

    @property
    def needs_t_interval(self) -> bool:
        """Whether a's interval must also cover the regression's t-interval: only where the profiles did
        not measure their own scatter, and either the optima scatter about their line beyond their
        uncertainties (√χ² > 1) or the noisy copies moved no budget's optimum beyond its floor (a third
        of the sizes' spacing): then a stated noise too small to move the optima is all the copies carry,
        and only the line's own scatter tells how uncertain they are."""
        if self.profiles_checked:
            return False
        return (self.scatter_ratio or 0.0) > 1 or all(b["n_opt_at_floor"] for b in self.budgets)

    @property
    def a(self) -> float | None:
        """Exponent of N*(C) ∝ C^a."""
        return self.n_opt.exponent if self.n_opt else None

    @property
    def b(self) -> float | None:
        """Exponent of D*(C) ∝ C^b."""
        return self.d_opt.exponent if self.d_opt else None

    def n_opt_at(self, flops: float) -> tuple[float, list[float] | None]:
        """N* at ``flops`` from the N*(C) law, and its interval: the law refitted on every noisy copy of
        the optima, widened where they scatter about the line as a's interval is (None without copies
        or with fewer than 3 budgets, whose line nothing checks)."""
        point = float(self.n_opt(flops))
        if self.log_n_draws is None or len(self.budgets) < 3:
            return point, None
        cs = np.log(np.array([b["flops"] for b in self.budgets]))
        w = 1.0 / (np.log(10) * np.array([b["n_opt_log10_std"] for b in self.budgets])) ** 2
        ok = np.isfinite(self.log_n_draws)
        slopes, x_mean, y_mean = _weighted_lines(cs, self.log_n_draws, w, ok)
        interval = percentile_interval(y_mean + slopes * (np.log(flops) - x_mean), self.ci_level)
        if interval is None:
            return point, None
        # the regression's standard error at ln C: se(slope)·√(Sxx/Σw + (ln C − centre)²)
        centre = np.sum(w * cs) / np.sum(w)
        sxx = np.sum(w * (cs - centre) ** 2)
        se = self.n_opt.exponent_se * np.sqrt(sxx / np.sum(w) + (np.log(flops) - centre) ** 2)
        lo, hi = _widened(interval, np.log(point), se, len(self.budgets), self.scatter_ratio, self.ci_level,
                          self.needs_t_interval)
        return point, [float(np.exp(lo)), float(np.exp(hi))]

    def summary(self) -> dict:
        """The few numbers that compare methods: a, b, intervals, budgets used and dropped."""
        return {"a": self.a, "a_ci": self.a_ci, "b": self.b, "b_ci": self.b_ci,
                "n_budgets": len(self.budgets), "n_skipped": len(self.skipped),
                "scatter_ratio": self.scatter_ratio,
                "loss_law": self.loss_law.to_dict() if self.loss_law else None}

    def to_dict(self) -> dict:
        return {**self.summary(), "method": self.method, "ci_level": self.ci_level, "noise": self.noise,
                "noise_source": self.noise_source, "noise_law": self.noise_law,
                "excess_scatter": self.excess_scatter, "n_draws": self.n_draws,
                "window_dex": self.window_dex,
                "budgets": self.budgets, "skipped": self.skipped, "n_lone_runs": self.n_lone_runs,
                "n_opt_law": self.n_opt.to_dict() if self.n_opt else None,
                "d_opt_law": self.d_opt.to_dict() if self.d_opt else None,
                "methods": self.methods, "method_note": self.method_note}


def _weighted_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray,
                    ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares line of each column of ``y`` on ``x`` over its ``ok`` rows: its slope (NaN
    with < 2 rows) and the weighted means of x and y it passes through."""
    wk = np.where(ok, w[:, None], 0.0)
    y = np.where(ok, y, 0.0)
    total = wk.sum(axis=0)
    enough = ok.sum(axis=0) >= 2
    total = np.where(enough, total, 1.0)
    xm = (wk * x[:, None]).sum(axis=0) / total
    ym = (wk * y).sum(axis=0) / total
    dx = x[:, None] - xm
    sxx = (wk * dx ** 2).sum(axis=0)
    slopes = (wk * dx * (y - ym)).sum(axis=0) / np.where(sxx > 0, sxx, 1.0)
    return np.where(enough & (sxx > 0), slopes, np.nan), xm, ym


def _widened(interval: list[float] | None, point: float, se: float, n_points: int, ratio: float | None,
             ci: float, needs_t: bool) -> list[float] | None:
    """The noise interval, widened ×``ratio`` where the optima scatter beyond their uncertainties
    (``ratio`` > 1), and where ``needs_t`` (:attr:`IsoFlopFit.needs_t_interval`) stretched to cover the
    regression's t-interval (``point`` ± t·``se``), whose standard error comes from the optima's scatter
    alone: a stated noise too small to move the optima cannot then make a tight one."""
    if interval is None or ratio is None:
        return interval
    lo, hi = interval
    if ratio > 1:
        lo, hi = point - (point - lo) * ratio, point + (hi - point) * ratio
    if not needs_t or n_points < 3 or not np.isfinite(se):
        return [lo, hi]
    half = stats.t.ppf((1 + ci) / 2, n_points - 2) * se
    return [min(lo, point - half), max(hi, point + half)]


def fit_isoflop(params, tokens, loss, flops, *, method: str = "polynomial", setting=None,
                noise: float | np.ndarray | None = None, noise_source: str = "", n_draws: int = N_DRAWS,
                ci: float = 0.95,
                seed: int = 0, window_dex: float | None = 0.75, tolerance_dex: float = 0.05,
                min_sizes: int = 3, profile_scatter: bool = True) -> IsoFlopFit:
    """Approach 2 by ``method`` (polynomial | interpolate | parabola); see the module docstring.

    ``setting``: per row a hashable key; rows of one size with equal keys are seeds (averaged), with
    different keys swept settings (the best is kept). Default: every row its own setting.
    ``noise``: σ of a run's loss, one for all or one per row (None: ``DEFAULT_RELATIVE_NOISE`` of each
    loss). ``window_dex``: half-width in decades of N of the sizes around the best one that the polynomial
    and the parabola are fitted to (None = all sizes).
    ``profile_scatter``: measure the profiles' scatter beyond the noise and add it to the copies (False:
    the copies carry the stated noise alone, and a's interval falls back on the regression's t-interval
    where the optima scatter beyond it, as approach 2 did before; for comparison).
    """
    n, d, lo, c = (np.asarray(v, dtype=float) for v in (params, tokens, loss, flops))
    setting = list(range(n.size)) if setting is None else list(setting)
    fit = IsoFlopFit(method=method, ci_level=ci, noise=None if noise is None else float(np.mean(noise)),
                     n_draws=n_draws,
                     window_dex=window_dex if method in ("parabola", "polynomial") else None,
                     noise_source=noise_source or ("given" if noise is not None else DEFAULT_NOISE_SOURCE))
    sigma = np.broadcast_to(np.asarray(noise, dtype=float), lo.shape) if noise is not None \
        else DEFAULT_RELATIVE_NOISE * lo
    profiles = [build_profile(float(np.exp(np.mean(np.log(c[idx])))), idx, n, setting)
                for idx in group_budgets(c, tolerance_dex)]
    excess = excess_scatter([(p.log_n, p.best_loss(lo[p.rows]), p.best_sigma(lo[p.rows], sigma[p.rows]))
                             for p in profiles if p.log_n.size >= min_sizes]) if profile_scatter else None
    if excess is not None:
        fit.excess_scatter = excess.to_dict()
        sigma = np.sqrt(sigma ** 2 + excess.tau ** 2)  # the copies carry the per-size quirks too
    rng = np.random.default_rng(seed)
    draws_u, draws_loss = [], []
    for prof in profiles:
        idx, budget = prof.rows, prof.flops
        sizes = prof.log_n.size
        if sizes == 1:
            fit.n_lone_runs += int(idx.size)  # a run alone at its compute is no IsoFLOP profile: not a budget
            continue
        entry = {"flops": budget, "n_runs": int(idx.size)}
        if sizes < min_sizes:
            fit.skipped.append({**entry, "reason": f"{sizes} size(s) (< {min_sizes})"})
            continue
        best = prof.best_loss(lo[idx])
        noisy = lo[idx, None] + sigma[idx, None] * rng.standard_normal((idx.size, n_draws))
        size_sigma = prof.best_sigma(lo[idx], sigma[idx])
        entry.update(sizes=(10 ** prof.log_n).tolist(), losses=best.tolist(), loss_sigmas=size_sigma.tolist())
        point = find_minima(method, prof.log_n, best, window_dex, size_sigma)
        if not np.isfinite(point.log_n[0]):
            fit.skipped.append({**entry, "reason": "the fit near the best size has no minimum"})
            continue
        if not point.interior[0]:
            end = "smallest" if point.log_n[0] <= prof.log_n[0] else "largest"
            fit.skipped.append({**entry, "reason": f"the minimum is at the {end} size tried: add sizes "
                                                   f"beyond it"})
            continue
        floor = spread = MIN_SPREAD_GAPS * prof.mean_gap
        at_floor = True  # no copy moved the optimum further than the floor (or none was drawn)
        u_draws = loss_draws = np.zeros(0)
        if n_draws:
            draws = find_minima(method, prof.log_n, prof.best_loss(noisy), window_dex, size_sigma)
            ok = draws.interior
            if ok.sum() < n_draws / 2:
                fit.skipped.append({**entry, "reason": f"the minimum leaves the sizes tried in "
                                                       f"{n_draws - ok.sum()} of {n_draws} noisy copies: "
                                                       f"add sizes around it"})
                continue
            moved = float(np.std(draws.log_n[ok]))
            at_floor = moved <= floor
            spread = max(moved, floor) * n_draws / ok.sum()
            u_draws, loss_draws = np.where(ok, draws.log_n, np.nan), np.where(ok, draws.loss, np.nan)
        # tokens at the optimum: log D is (nearly) linear in log N along an IsoFLOP line
        slope, icept = np.polyfit(np.log10(n[idx]), np.log10(d[idx]), 1)
        fit.budgets.append({**entry, "n_opt": float(10 ** point.log_n[0]),
                            "d_opt": float(10 ** (icept + slope * point.log_n[0])),
                            "loss_opt": float(point.loss[0]),
                            "n_opt_log10_std": spread, "n_opt_at_floor": at_floor, "n_sizes": sizes,
                            "d_per_n_slope": float(slope),
                            "n_draws_ok": int(np.isfinite(u_draws).sum())})
        draws_u.append(u_draws)
        draws_loss.append(loss_draws)
    if len(fit.budgets) >= 2:
        _fit_laws(fit, np.array(draws_u), np.array(draws_loss), ci)
    return fit


def _fit_laws(fit: IsoFlopFit, u_draws: np.ndarray, loss_draws: np.ndarray, ci: float) -> None:
    """N*(C), D*(C) and L*(C) through the budgets' optima, with intervals from the noisy copies
    (``u_draws``: log10 N* per budget × copy, NaN where a copy's minimum was not interior)."""
    cs = np.array([b["flops"] for b in fit.budgets])
    n_opt = np.array([b["n_opt"] for b in fit.budgets])
    d_opt = np.array([b["d_opt"] for b in fit.budgets])
    sigma = np.log(10) * np.array([b["n_opt_log10_std"] for b in fit.budgets])
    fit.n_opt = fit_power_law(cs, n_opt, sigma)
    fit.d_opt = fit_power_law(cs, d_opt, sigma)  # D* ≈ C/(6N*): its uncertainty is N*'s
    if fit.n_opt is None:
        return
    fit.scatter_ratio = _scatter_ratio(np.log(n_opt) - np.log(fit.n_opt(cs)), sigma, n_constants=2)
    if u_draws.size:
        ok = np.isfinite(u_draws)
        x, w = np.log(cs), 1.0 / sigma ** 2
        slope = np.array([b["d_per_n_slope"] for b in fit.budgets])
        icept = np.log10(d_opt) - slope * np.log10(n_opt)
        fit.log_n_draws = np.log(10) * u_draws
        a_draws = _weighted_lines(x, fit.log_n_draws, w, ok)[0]
        b_draws = _weighted_lines(x, np.log(10) * (icept[:, None] + slope[:, None] * u_draws), w, ok)[0]
        fit.a_ci = _widened(percentile_interval(a_draws, ci), fit.n_opt.exponent, fit.n_opt.exponent_se,
                            cs.size, fit.scatter_ratio, ci, fit.needs_t_interval)
        if fit.d_opt is not None:
            fit.b_ci = _widened(percentile_interval(b_draws, ci), fit.d_opt.exponent, fit.d_opt.exponent_se,
                                cs.size, fit.scatter_ratio, ci, fit.needs_t_interval)
    loss_opt = np.array([b["loss_opt"] for b in fit.budgets])
    fit.loss_law = fit_loss_law(cs, loss_opt)
    if fit.loss_law is not None and loss_draws.size:
        whole = np.flatnonzero(np.isfinite(loss_draws).all(axis=0))[:LOSS_LAW_DRAWS]
        copies = _scatter_widened(np.log(loss_opt), np.log(loss_draws[:, whole]),
                                  np.log(fit.loss_law(cs)))
        refits = [fit_loss_law(cs, np.exp(copies[:, j]), start=fit.loss_law) for j in range(whole.size)]
        for name in ("E", "alpha"):
            interval = percentile_interval(np.array([getattr(f, name) for f in refits if f is not None]), ci)
            if interval is not None:
                fit.loss_law.ci[name] = interval


def _scatter_widened(point: np.ndarray, copies: np.ndarray, fitted: np.ndarray, n_constants: int = 3):
    """Noisy copies (log values, budget × copy) whose deviations from ``point`` are stretched by how much
    more the points scatter about their ``fitted`` law than the copies vary (√reduced χ², when over 1):
    a noise too small to explain the scatter cannot make the law's constants look tight."""
    spread = copies.std(axis=1)
    ratio = _scatter_ratio(point - fitted, spread, n_constants) if (spread > 0).all() else None
    if ratio is None:
        return copies
    return point[:, None] + max(ratio, 1.0) * (copies - point[:, None])


def _scatter_ratio(residuals: np.ndarray, sigma: np.ndarray, n_constants: int) -> float | None:
    """√(reduced χ²) of ``residuals`` with standard deviations ``sigma`` about a law of ``n_constants``
    constants (None without a degree of freedom left): over 1, they scatter more than ``sigma`` explains."""
    dof = residuals.size - n_constants
    if dof < 1:
        return None
    r = residuals / sigma
    return float(np.sqrt(r @ r / dof))


_METHOD_NAMES = {"polynomial": "the local polynomial", "interpolate": "the interpolant",
                 "parabola": "the unweighted parabola"}
_METHOD_TRAITS = {
    "polynomial": "The polynomial averages over the sizes near the best one, each weighed by its noise, "
                  "and turns cubic only where the profile's asymmetry shows beyond that noise.",
    "interpolate": "The interpolant passes through every size, so with noisy losses it follows the noise "
                   "too.",
    "parabola": "A parabola assumes a profile symmetric in log N about its minimum; real profiles rise "
                "faster towards small models, so its vertex shifts with how the sizes tried sit around the "
                "optimum (uneven spacing, more sizes on one side).",
}


def _method_note(fits: dict[str, IsoFlopFit], method: str) -> str:
    """How the other methods' exponents differ from ``method``'s, in words ('' when all agree within
    METHODS_DIFFER)."""
    chosen = fits[method]
    others = [m for m, f in fits.items() if m != method and chosen.a is not None and f.a is not None
              and abs(f.a - chosen.a) >= METHODS_DIFFER]
    if not others:
        return ""
    parts = [f"{_METHOD_NAMES[method]} gives a={chosen.a:.3f} (reported), "
             + ", ".join(f"{_METHOD_NAMES[m]} a={fits[m].a:.3f}" for m in others) + "."]
    used = {m: {round(np.log10(b["flops"]), 3) for b in f.budgets} for m, f in fits.items()}
    if any(used[m] != used[method] for m in others):
        counts = ", ".join(f"{m} {len(fits[m].budgets)}" for m in (method, *others))
        parts.append(f"They use different budgets ({counts}): a budget whose minimum is bracketed for one "
                     f"method but not another moves the fit.")
    parts += [_METHOD_TRAITS[m] for m in (method, *others)]
    parts.append("Compare the intervals.")
    return " ".join(parts)


def fit_isoflop_methods(params, tokens, loss, flops, *, method: str = "polynomial", **options) -> IsoFlopFit:
    """Every method on the same noisy copies; returns ``method``'s fit with ``methods`` (each method's
    summary) and ``method_note`` filled in. ``options`` go to :func:`fit_isoflop`."""
    if method not in METHODS:
        raise ScalingError(f"unknown IsoFLOP method {method!r}; use one of {', '.join(METHODS)}")
    fits = {m: fit_isoflop(params, tokens, loss, flops, method=m, **options) for m in METHODS}
    chosen = fits[method]
    chosen.methods = {m: f.summary() for m, f in fits.items()}
    chosen.method_note = _method_note(fits, method)
    return chosen


def fit_isoflop_points(tuned: Points, noise_from: Points, *, method: str = "polynomial",
                       window_dex: float | None = 0.75, ci: float = 0.95, seed: int = 0) -> IsoFlopFit:
    """Approach 2 on the tuned runs (one setting per cell), every method, with the run-to-run noise
    measured on ``noise_from`` (all runs: every repeated setting tells how much a seed moves a loss).
    Where the repeated settings differ enough in length for a noise law in steps
    (:func:`scaling.fit.knobs.seed_noise_by_steps`), each run's σ is the law's at its own steps."""
    pooled, source = isoflop_noise(noise_from)
    noise = pooled
    law = seed_noise_by_steps(seed_settings(noise_from))
    if law is not None:
        steps = tuned.tokens / tuned.batch_size
        noise = np.where(np.isfinite(steps), law(np.nan_to_num(steps, nan=1.0)), pooled)
        source += (f"; by optimizer steps S, σ = {law.sigma_ref:.3g}·(S/{law.steps_ref:.0f})^"
                   f"{law.exponent:.2f} from repeated settings of {law.steps_range[0]:.0f}-"
                   f"{law.steps_range[1]:.0f} steps")
    knobs = sorted(tuned.knobs)
    setting = [tuple(repr(tuned.knobs[k][i]) for k in knobs) for i in range(len(tuned))]
    fit = fit_isoflop_methods(tuned.params, tuned.tokens, tuned.loss, tuned.flops, method=method,
                              setting=setting, noise=noise, noise_source=source, ci=ci, seed=seed,
                              window_dex=window_dex)
    fit.noise = pooled
    fit.noise_law = law.to_dict() if law is not None else None
    if pooled is not None:
        fit.run_noise = dict(zip(tuned.run, np.broadcast_to(noise, (len(tuned),)).tolist(), strict=True))
    return fit
