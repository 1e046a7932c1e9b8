"""Laws of loss against data-mixture weights, and choosing one by held-out error.

Each evaluation set's loss is predicted from the weights r (non-negative, summing to 1) of the
training domains. The forms:

- ``linear``: L(r) = Σ_j b_j r_j (Scheffé's mixture model: the intercept is implied by Σ r = 1);
- ``quadratic``: the linear terms plus Σ_{j<l} b_jl r_j r_l (synergy or interference of two domains);
- ``exponential``: L(r) = c + k·exp(Σ_j t_j r_j), written c + exp(Σ_j t_j r_j) since Σ r = 1 folds log k
  into the t_j (the "data mixing law" of Ye et al., 2024).

A law is one form fitted to every evaluation set separately. :func:`choose_law` scores each form by
leave-one-mixture-out prediction (every run of a weight vector, seeds included, is held out together:
a seed of the same mixture in the training fold would flatter the law), or 10-fold over mixtures when
there are many, and keeps the form with the lowest mean absolute held-out error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from scaling.errors import ScalingError

FORMS = ("linear", "quadratic", "exponential")
MIN_MIXTURES = 3  # fewer distinct weight vectors leave nothing to hold out
MAX_SINGLE_FOLDS = 30  # up to this many mixtures, each is its own fold; beyond, 10 folds
N_FOLDS = 10


def n_parameters(form: str, k: int) -> int:
    """Constants per evaluation set of ``form`` over ``k`` domains."""
    return {"linear": k, "quadratic": k + k * (k - 1) // 2, "exponential": k + 1}[form]


def _design(form: str, r: np.ndarray) -> np.ndarray:
    """Regressors of the linear-in-coefficients forms."""
    if form == "linear":
        return r
    k = r.shape[1]
    pairs = [r[:, j] * r[:, m] for j in range(k) for m in range(j + 1, k)]
    return np.column_stack([r, *pairs]) if pairs else r


def _fit_exponential(r: np.ndarray, y: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """(c, t_1..t_k) of c + exp(r·t): profile c on a grid (log(y - c) is then linear in r), then refine."""
    def resid(theta):
        return theta[0] + np.exp(np.clip(r @ theta[1:], -50, 50)) - y

    if init is None:
        span = max(float(np.ptp(y)), 1e-6 * max(1.0, abs(float(np.min(y)))))
        best, best_sse = None, np.inf
        for gap in np.geomspace(1e-2, 1e2, 25) * span:
            c = float(np.min(y)) - gap
            t = np.linalg.lstsq(r, np.log(y - c), rcond=None)[0]
            theta = np.concatenate([[c], t])
            sse = float(np.sum(resid(theta) ** 2))
            if sse < best_sse:
                best, best_sse = theta, sse
        init = best
    def jac(theta):
        return np.column_stack([np.ones(len(y)), np.exp(np.clip(r @ theta[1:], -50, 50))[:, None] * r])

    return optimize.least_squares(resid, init, jac=jac, method="lm" if len(y) > len(init) else "trf",
                                  max_nfev=200).x


@dataclass
class MixtureLaw:
    """One form fitted to each evaluation set: ``coef[:, i]`` are evaluation set i's constants."""

    form: str
    coef: np.ndarray
    """(constants, evaluation sets); for ``exponential`` the rows are c, t_1..t_k."""

    def predict(self, r) -> np.ndarray:
        """Loss of every evaluation set at the weights ``r`` ((n, k) or (k,)): (n, m) or (m,)."""
        r = np.asarray(r, dtype=float)
        single = r.ndim == 1
        r = np.atleast_2d(r)
        if self.form == "exponential":
            out = self.coef[0][None, :] + np.exp(np.clip(r @ self.coef[1:], -50, 50))
        else:
            out = _design(self.form, r) @ self.coef
        return out[0] if single else out

    def to_dict(self, domains: list[str], eval_sets: list[str]) -> dict:
        """The constants by evaluation set, named."""
        k = len(domains)
        if self.form == "exponential":
            names = ["c", *[f"t_{d}" for d in domains]]
        else:
            names = list(domains) + [f"{domains[j]}*{domains[m]}" for j in range(k) for m in range(j + 1, k)]
            names = names[:self.coef.shape[0]]
        return {
            e: dict(zip(names, map(float, self.coef[:, i]), strict=True)) for i, e in enumerate(eval_sets)
        }


def fit_mixture_law(
    form: str, r: np.ndarray, losses: np.ndarray, init: MixtureLaw | None = None
) -> MixtureLaw:
    """Fit ``form`` to weights ``r`` (n, k) and losses (n, m); ``init``: a fit to start from (exponential)."""
    if form not in FORMS:
        raise ScalingError(f"unknown mixture law {form!r}; one of {', '.join(FORMS)}")
    if form == "exponential":
        cols = [_fit_exponential(r, losses[:, i], None if init is None else init.coef[:, i])
                for i in range(losses.shape[1])]
        return MixtureLaw(form, np.column_stack(cols))
    x = _design(form, r)
    # a whisper of ridge keeps the coefficients finite when a design is collinear (a grid with few points)
    lam = 1e-8 * max(1.0, float(np.trace(x.T @ x)))
    coef = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ losses)
    return MixtureLaw(form, coef)


def mixture_groups(r: np.ndarray) -> np.ndarray:
    """Per row, the index of its weight vector among the distinct ones (seeds of one mixture share it)."""
    _, inverse = np.unique(np.round(r, 6), axis=0, return_inverse=True)
    return np.asarray(inverse).ravel()


def _folds(groups: np.ndarray, seed: int) -> tuple[list[np.ndarray], str]:
    uniq = np.unique(groups)
    if uniq.size <= MAX_SINGLE_FOLDS:
        return [np.flatnonzero(groups == g) for g in uniq], "leave-one-mixture-out"
    order = np.random.default_rng(seed).permutation(uniq)
    return ([np.flatnonzero(np.isin(groups, part)) for part in np.array_split(order, N_FOLDS)],
            f"{N_FOLDS}-fold over mixtures")


def spearman(a, b) -> float | None:
    """Spearman rank correlation; None when either side is constant or too short."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(stats.spearmanr(a, b).statistic)


def heldout_predictions(
    form: str, r: np.ndarray, losses: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Each row's losses predicted by ``form`` fitted without its fold; and the fold scheme's name."""
    folds, scheme = _folds(mixture_groups(r), seed)
    p = n_parameters(form, r.shape[1])
    pred = np.full_like(losses, np.nan, dtype=float)
    for held in folds:
        train = np.setdiff1d(np.arange(len(r)), held)
        if np.unique(mixture_groups(r[train])).size < p:
            raise ScalingError(
                f"{form}: {p} constants per evaluation set need more mixtures than a fold keeps"
            )
        pred[held] = fit_mixture_law(form, r[train], losses[train]).predict(r[held])
    return pred, scheme


def heldout_scores(pred: np.ndarray, losses: np.ndarray, eval_sets: list[str]) -> dict:
    """Mean absolute error and Spearman correlation of held-out predictions, overall and per evaluation
    set."""
    by_eval = {e: {"mae": float(np.mean(np.abs(pred[:, i] - losses[:, i]))), "rank_corr": spearman(pred[:, i],
               losses[:, i])} for i, e in enumerate(eval_sets)}
    corrs = [v["rank_corr"] for v in by_eval.values() if v["rank_corr"] is not None]
    return {
        "mae": float(np.mean(np.abs(pred - losses))),
        "rank_corr": float(np.mean(corrs)) if corrs else None,
        "by_eval": by_eval,
    }


def choose_law(r: np.ndarray, losses: np.ndarray, eval_sets: list[str], *, seed: int = 0,
               forms: tuple[str, ...] = FORMS) -> tuple[MixtureLaw, dict, dict]:
    """The form with the lowest held-out MAE, fitted to all rows; its held-out scores; every form's scores.

    A form with as many constants as there are mixtures (or more) is not tried: it would interpolate.
    """
    n_mix = np.unique(mixture_groups(r)).size
    if n_mix < MIN_MIXTURES:
        raise ScalingError(f"only {n_mix} distinct mixture(s): a mixture law needs at least {MIN_MIXTURES} "
                           "weight vectors (add mixtures to the sweep)")
    scores, preds = {}, {}
    for form in forms:
        p = n_parameters(form, r.shape[1])
        if n_mix <= p:
            scores[form] = {"skipped": f"{p} constants per evaluation set need more than {n_mix} mixtures"}
            continue
        try:
            pred, scheme = heldout_predictions(form, r, losses, seed)
        except (ScalingError, np.linalg.LinAlgError, ValueError) as e:
            scores[form] = {"skipped": str(e)}
            continue
        preds[form] = pred
        scores[form] = {**heldout_scores(pred, losses, eval_sets), "n_parameters": p, "method": scheme}
    if not preds:
        raise ScalingError(f"no mixture law could be scored on {n_mix} mixtures: add mixtures to the sweep")
    best = min(preds, key=lambda f: scores[f]["mae"])
    heldout = {**{k: v for k, v in scores[best].items()},
               "points": {"predicted": preds[best], "measured": losses}}
    return fit_mixture_law(best, r, losses), heldout, scores
