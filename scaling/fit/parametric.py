"""Chinchilla approach 3: the parametric law L(N, D) = E + A/N^α + B/D^β and the allocation it implies.

The fit follows Hoffmann et al. (2022) and the Besiroglu et al. (2024) replication: minimise the Huber
loss between log L and LSE(log A − α log N, log B − β log D, log E) over
θ = (log A, log B, log E, α, β) with L-BFGS-B, from the best points of a grid of starts.

Huber's δ is a scale: residuals within δ count as squares (least squares), beyond it as absolute values
(an outlier's pull is capped). Hoffmann et al.'s δ = 1e-3 suits their losses, whose run-to-run noise is
below 0.1%. Small models' seeds move the loss by 0.3-1%, so at 1e-3 nearly every residual is beyond δ:
the fit becomes least absolute deviations, which passes through about five of the points and leans on
whichever have leverage. Where repeated seeds measure the noise, :func:`huber_delta` sets δ to 1.345
times it (Huber's choice: 95% of least squares' efficiency under normal noise, outliers still capped);
without them δ stays 1e-3.

The trap: with residuals of ~1e-2 the Huber objective is ~1e-5 per point, and L-BFGS-B's default
stopping rule (relative reduction against max(|f|, 1)) then declares convergence a few steps from the
start. We minimise the objective divided by n·δ (a mean absolute log-error in units of δ, values ~10)
with tight tolerances, and report the gradient norm of the *unscaled* objective at the end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from scaling.errors import ScalingError
from scaling.fit.basics import single_threaded_blas

HUBER_DELTA = 1e-3  # Hoffmann et al.'s δ on log loss, the default without a measured noise
HUBER_EFFICIENCY_FACTOR = 1.345  # δ in units of the noise σ that keeps 95% efficiency under normal noise
HUBER_DELTA_FLOOR = 1e-4  # repeated seeds that agree exactly do not make δ zero
# L-BFGS-B may end in a failed line search at a point where the objective it sees (Huber sum / (n·δ))
# has no slope left to follow: a projected gradient this small is a stationary point, not a failure
STATIONARY_GRADIENT = 1e-6
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022, eq. 10
# Hoffmann et al.'s grid of initialisations: α, β ∈ {0, .5, …, 2}, e ∈ {−1, −.5, …, 1}, a, b ∈ {0, 5, …, 25}
_GRID = np.array(list(itertools.product(np.arange(0, 30, 5.0), np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
                                        np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))))
_BOUNDS = [(-10.0, 60.0), (-10.0, 60.0), (-10.0, 5.0), (1e-3, 3.0), (1e-3, 3.0)]
N_PARAMETERS = 5
E_FLOOR = float(np.exp(_BOUNDS[2][0]))  # the smallest irreducible loss the fit can return (its lower bound)


@dataclass
class ParametricFit:
    """A fitted L(N, D) = E + A/N^α + B/D^β with its optimiser diagnostics."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")  # Huber sum at the optimum (unscaled, as in Hoffmann et al.)
    grad_norm: float = float("nan")  # gradient norm of that objective at the optimum
    n_points: int = 0
    converged: bool = True
    message: str = ""
    residual_std: float = float("nan")  # std of log L − log L̂ over the fitted points
    delta: float = HUBER_DELTA  # Huber δ of the fit on log loss (refits of the same data keep it)
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # (log A, log B, log E, α, β)

    @classmethod
    def from_constants(cls, E: float, A: float, B: float, alpha: float, beta: float) -> ParametricFit:
        """A law from published or known constants (no fit)."""
        return cls(E, A, B, alpha, beta, theta=np.array([np.log(A), np.log(B), np.log(E), alpha, beta]))

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a: β/(α+β)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b: α/(α+β)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """(αA / βB)^(1/(α+β)): N_opt = G·(C/6)^a, D_opt = (C/6)^b / G."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def predict(self, params, tokens) -> np.ndarray:
        """Predicted loss at ``params`` and ``tokens`` (broadcast)."""
        n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    def n_opt(self, flops, flops_per_param_token: float = 6.0):
        """Compute-optimal parameters at ``flops`` under C = k·N·D (k = 6 in Chinchilla's convention)."""
        return self.G * (np.asarray(flops, dtype=float) / flops_per_param_token) ** self.a

    def d_opt(self, flops, flops_per_param_token: float = 6.0):
        """Compute-optimal tokens at ``flops`` under C = k·N·D."""
        return (np.asarray(flops, dtype=float) / flops_per_param_token) ** self.b / self.G

    def to_dict(self) -> dict:
        """The fit.json ``parametric`` block (without ``ci``, which the bootstrap adds)."""
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta, "a": self.a,
                "b": self.b, "G": self.G, "objective": self.objective, "grad_norm": self.grad_norm,
                "n_points": self.n_points, "converged": self.converged, "message": self.message,
                "residual_std": self.residual_std, "huber_delta": self.delta}


def huber_delta(relative_noise: float | None) -> float:
    """δ for a run-to-run noise of ``relative_noise`` (σ of log L, i.e. σ of L over L): 1.345σ, and
    Hoffmann et al.'s 1e-3 when the noise was not measured (None)."""
    if relative_noise is None or not np.isfinite(relative_noise):
        return HUBER_DELTA
    return max(HUBER_EFFICIENCY_FACTOR * float(relative_noise), HUBER_DELTA_FLOOR)


def _objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, log_loss: np.ndarray, delta: float):
    """Huber sum of log-loss residuals, its gradient and the residuals, for a batch θ of shape (k, 5)."""
    theta = np.atleast_2d(theta)
    a, b, e, alpha, beta = (theta[:, i:i + 1] for i in range(5))
    t1, t2 = a - alpha * x, b - beta * y
    top = np.maximum(np.maximum(t1, t2), e)  # log-sum-exp, shifted by the largest term for stability
    w1, w2, w3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = w1 + w2 + w3
    r = top + np.log(total) - log_loss
    dr = np.clip(r, -delta, delta) / total  # Huber derivative × softmax normaliser
    huber = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    g1, g2 = dr * w1, dr * w2
    grad = np.stack([g1.sum(1), g2.sum(1), (dr * w3).sum(1), -(g1 * x).sum(1), -(g2 * y).sum(1)], axis=1)
    return huber.sum(1), grad, r


def check_points(params, tokens, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate inputs to approach 3; one-line errors for what cannot be fitted."""
    n, d, lo = (np.asarray(v, dtype=float).ravel() for v in (params, tokens, loss))
    if not (n.size == d.size == lo.size):
        raise ScalingError("params, tokens and loss must have the same length")
    if n.size < N_PARAMETERS:
        raise ScalingError(
            f"approach 3 fits {N_PARAMETERS} parameters and needs at least {N_PARAMETERS} points; "
            f"got {n.size}"
        )
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(d)) and np.all(np.isfinite(lo))):
        raise ScalingError("params, tokens and loss must be finite (drop NaN rows first)")
    if np.any(n <= 0) or np.any(d <= 0) or np.any(lo <= 0):
        raise ScalingError("params, tokens and loss must all be positive")
    if np.unique(n).size < 2:
        raise ScalingError(f"approach 3 needs at least 2 model sizes; all points have params={n[0]:g}")
    if np.unique(d).size < 2:
        raise ScalingError(f"approach 3 needs at least 2 token counts; all points have tokens={d[0]:g}")
    return n, d, lo


def grid_starts(params, tokens, loss, k: int, delta: float = HUBER_DELTA) -> np.ndarray:
    """The ``k`` best starting points of Hoffmann et al.'s grid for these data."""
    x, y, ll = np.log(params), np.log(tokens), np.log(loss)
    values = np.concatenate([_objective(chunk, x, y, ll, delta)[0] for chunk in np.array_split(_GRID, 8)])
    return _GRID[np.argsort(values)[:k]]


def fit_parametric(params, tokens, loss, *, init=None, n_starts: int = 5, grid: bool = True,
                   delta: float = HUBER_DELTA, scale_objective: bool = True) -> ParametricFit:
    """Fit L(N, D) = E + A/N^α + B/D^β (Chinchilla approach 3) by Huber regression on log loss.

    ``init``: extra starting point(s) as dicts of E, A, B, alpha, beta or θ arrays; ``grid``: also start
    from the ``n_starts`` best grid points; ``delta``: Huber's δ on log loss (see :func:`huber_delta`).
    ``scale_objective=False`` reproduces the early-stopping trap (kept for the test that shows it) and
    should not be used otherwise.
    """
    n, d, lo = check_points(params, tokens, loss)
    x, y, ll = np.log(n), np.log(d), np.log(lo)
    starts = [_as_theta(s) for s in (init if isinstance(init, list) else [init] if init is not None else [])]
    if grid:
        starts += list(grid_starts(n, d, lo, n_starts, delta))
    if not starts:
        raise ScalingError("fit_parametric needs a starting point: pass init= or grid=True")
    scale = n.size * delta if scale_objective else 1.0

    def fun(theta):
        f, g, _ = _objective(theta, x, y, ll, delta)
        return f[0] / scale, g[0] / scale

    options = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000, "maxfun": 20000} if scale_objective else {}
    best = None
    with single_threaded_blas():
        for start in starts:
            start = np.clip(start, [b[0] for b in _BOUNDS], [b[1] for b in _BOUNDS])
            res = minimize(fun, start, jac=True, method="L-BFGS-B", bounds=_BOUNDS, options=options)
            if best is None or res.fun < best.fun:
                best = res
    f, g, r = _objective(best.x, x, y, ll, delta)
    la, lb, le, alpha, beta = best.x
    grad_norm = float(np.linalg.norm(_free_gradient(best.x, g[0])))
    return ParametricFit(
        E=float(np.exp(le)),
        A=float(np.exp(la)),
        B=float(np.exp(lb)),
        alpha=float(alpha),
        beta=float(beta),
        objective=float(f[0]),
        grad_norm=grad_norm,
        n_points=int(n.size),
        converged=reached_optimum(bool(best.success), grad_norm / scale),
        message=str(best.message),
        residual_std=float(np.std(r[0], ddof=0)),
        residuals=r[0],
        theta=best.x.copy(),
        delta=float(delta),
    )


def reached_optimum(success: bool, scaled_gradient_norm: float) -> bool:
    """Whether the optimiser's end point is the optimum: it said so, or it stopped (a failed line search)
    where the objective it minimised has a projected gradient below :data:`STATIONARY_GRADIENT`."""
    return success or scaled_gradient_norm < STATIONARY_GRADIENT


def _free_gradient(theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The gradient with components pointing out of an active bound zeroed (the projected gradient)."""
    g = grad.copy()
    for i, (lo, hi) in enumerate(_BOUNDS):
        if (theta[i] <= lo and g[i] > 0) or (theta[i] >= hi and g[i] < 0):
            g[i] = 0.0
    return g


def _as_theta(start) -> np.ndarray:
    if isinstance(start, ParametricFit):
        return start.theta.copy()
    if isinstance(start, dict):
        return np.array(
            [np.log(start["A"]), np.log(start["B"]), np.log(start["E"]), start["alpha"], start["beta"]]
        )
    return np.asarray(start, dtype=float)
