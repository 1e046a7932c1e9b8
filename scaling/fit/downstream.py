"""Two-step prediction of downstream accuracy: task bits-per-byte from (N, D), then accuracy from bpb.

Accuracy on a multiple-choice task sits at chance for small models and then rises steeply, which no
power law in N and D follows; the task's bits per byte of the right answer falls smoothly instead.
So, as in Bhagia et al. (2024, "Establishing task scaling laws via compute-efficient model
ladders"):

1. fit the task's bpb like a validation loss, bpb(N, D) = E + A/N^α + B/D^β (approach 3);
2. fit accuracy as a sigmoid of bpb, acc = floor + (ceiling − floor) / (1 + exp(k·(bpb − x0))),
   with the floor fixed at chance when it is known;
3. chain them at the target, with an interval from a bootstrap over runs that refits both steps;
   the accuracy interval also adds the sigmoid's resampled residuals, so it covers the accuracy a
   new run would measure (a task of a few hundred items is itself noisy), not only the mean curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.parametric import ParametricFit, check_points, fit_parametric


@dataclass
class SigmoidFit:
    """acc = floor + (ceiling − floor) / (1 + exp(k·(bpb − x0))), falling in bpb (k > 0)."""

    floor: float
    ceiling: float
    k: float
    x0: float
    residual_std: float = float("nan")
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # fit minus data

    def predict(self, bpb) -> np.ndarray:
        """Accuracy at ``bpb`` (broadcast)."""
        z = np.clip(self.k * (np.asarray(bpb, dtype=float) - self.x0), -500, 500)
        return self.floor + (self.ceiling - self.floor) / (1.0 + np.exp(z))

    def to_dict(self) -> dict:
        return {"floor": self.floor, "ceiling": self.ceiling, "k": self.k, "x0": self.x0,
                "residual_std": self.residual_std}


def fit_accuracy_sigmoid(bpb, acc, chance: float | None = None) -> SigmoidFit:
    """Least-squares sigmoid of accuracy in bpb; ``chance`` fixes the floor (e.g. 0.25 for 4 choices)."""
    x, y = np.asarray(bpb, dtype=float).ravel(), np.asarray(acc, dtype=float).ravel()
    free = 3 if chance is not None else 4
    if x.size != y.size or x.size < free:
        raise ScalingError(
            f"the accuracy sigmoid needs at least {free} (bpb, acc) points of equal count; got {x.size}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ScalingError("bpb and accuracy must be finite")
    span = max(float(np.ptp(x)), 1e-6)
    lo_floor = chance if chance is not None else 0.0

    def unpack(p):
        return (chance, *p) if chance is not None else tuple(p)

    def residuals(p):
        floor, ceiling, k, x0 = unpack(p)
        return SigmoidFit(floor, ceiling, k, x0).predict(x) - y

    start = [max(float(y.max()), lo_floor + 1e-3), 4.0 / span, float(np.median(x))]
    lower, upper = [lo_floor, 1e-6, float(x.min()) - 10 * span], [1.0, 1e3 / span, float(x.max()) + 10 * span]
    if chance is None:
        start, lower, upper = [float(y.min()) * 0.99, *start], [0.0, *lower], [1.0, *upper]
    best = None
    for k_scale in (0.25, 1.0, 4.0):  # a few steepness starts: the sigmoid's loss surface has flat plateaus
        s = list(start)
        s[-2] *= k_scale
        res = least_squares(residuals, np.clip(s, lower, upper), bounds=(lower, upper), method="trf")
        if best is None or res.cost < best.cost:
            best = res
    floor, ceiling, k, x0 = unpack(best.x)
    return SigmoidFit(
        float(floor), float(ceiling), float(k), float(x0), float(np.std(best.fun)), best.fun.copy()
    )


@dataclass
class TwoStepPrediction:
    """Accuracy predicted at (params, tokens) through the task's bpb, with bootstrap intervals."""

    params: float
    tokens: float
    bpb: float
    acc: float
    bpb_ci: list[float] | None
    acc_ci: list[float] | None
    bpb_fit: ParametricFit
    acc_fit: SigmoidFit
    n_boot: int = 0  # resamples that refitted both steps
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"params": self.params, "tokens": self.tokens, "bpb": self.bpb, "bpb_ci": self.bpb_ci,
                "acc": self.acc, "acc_ci": self.acc_ci, "bpb_fit": self.bpb_fit.to_dict(),
                "acc_fit": self.acc_fit.to_dict(), "n_boot": self.n_boot, "notes": self.notes}


def predict_accuracy(params, tokens, bpb, acc, target_params: float, target_tokens: float, *,
                     chance: float | None = None, n_boot: int = 200, ci: float = 0.95,
                     seed: int = 0) -> TwoStepPrediction:
    """Fit both steps on runs (``params``, ``tokens``, task ``bpb``, task ``acc``) and chain them at the
    target.

    The bootstrap resamples runs with replacement and refits both steps on each resample, so the
    accuracy interval carries the uncertainty of the bpb law and of the sigmoid together, plus the
    scatter of measured accuracies around the sigmoid.
    """
    return predict_accuracies(params, tokens, bpb, acc, [(target_params, target_tokens)], chance=chance,
                              n_boot=n_boot, ci=ci, seed=seed)[0]


def predict_accuracies(params, tokens, bpb, acc, targets: list[tuple[float, float]], *,
                       chance: float | None = None, n_boot: int = 200, ci: float = 0.95,
                       seed: int = 0) -> list[TwoStepPrediction]:
    """:func:`predict_accuracy` at each (N, D) of ``targets``, from one fit and one bootstrap."""
    n, d, b = check_points(params, tokens, bpb)
    a = np.asarray(acc, dtype=float).ravel()
    if a.size != n.size:
        raise ScalingError("acc must have one value per run, like params, tokens and bpb")
    bpb_fit = fit_parametric(n, d, b)
    acc_fit = fit_accuracy_sigmoid(b, a, chance)
    tn, td = (np.array([t[i] for t in targets], dtype=float) for i in (0, 1))
    rng = np.random.default_rng(seed)
    bpb_samples, acc_samples = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n.size, n.size)
        try:
            check_points(n[idx], d[idx], b[idx])
            law = fit_parametric(n[idx], d[idx], b[idx], init=[bpb_fit.theta], grid=False)
            sig = fit_accuracy_sigmoid(b[idx], a[idx], chance)
        except ScalingError:
            continue  # a resample with one size or one token count cannot be fitted
        sample = law.predict(tn, td)
        bpb_samples.append(sample)
        acc_samples.append(sig.predict(sample) - rng.choice(acc_fit.residuals, size=sample.size))
        # the sigmoid's residuals are fit minus data: a new run's accuracy is the curve minus one
    bpb_samples, acc_samples = (
        np.array(bpb_samples).reshape(-1, tn.size),
        np.array(acc_samples).reshape(-1, tn.size),
    )
    out = []
    for j in range(tn.size):
        bpb_hat = float(bpb_fit.predict(tn[j], td[j]))
        notes = []
        if bpb_hat < b.min():
            notes.append(
                f"the target's predicted bpb {bpb_hat:.3f} is below every fitted run's ({b.min():.3f}): "
                "the accuracy step extrapolates the sigmoid"
            )
        out.append(
            TwoStepPrediction(
                params=float(tn[j]),
                tokens=float(td[j]),
                bpb=bpb_hat,
                acc=float(acc_fit.predict(bpb_hat)),
                bpb_ci=percentile_interval(bpb_samples[:, j], ci),
                acc_ci=percentile_interval(acc_samples[:, j], ci),
                bpb_fit=bpb_fit,
                acc_fit=acc_fit,
                n_boot=len(acc_samples),
                notes=notes,
            )
        )
    return out


DEFAULT_CHANCE = 0.25  # four choices, as most multiple-choice benchmarks and the shipped task have


def task_chance(configs: list[dict], task: str, given: float | None = None) -> tuple[float, str]:
    """The accuracy of guessing on ``task`` and where it comes from.

    ``given`` (``--chance``) wins; else the task file one of the runs' configs names in ``eval.tasks``
    (the mean of 1/choices over its items); else :data:`DEFAULT_CHANCE`.
    """
    if given is not None:
        return float(given), "--chance"
    from scaling.evaluation.tasks import load_task

    names = {str(t) for cfg in configs for t in ((cfg.get("eval") or {}).get("tasks") or [])}
    for name in sorted(names):
        try:
            found = load_task(name)
        except ScalingError:
            continue  # a task file that moved since training: fall back below
        if found.name == task:
            return float(
                np.mean([1.0 / len(item.choices) for item in found.items])
            ), f"task file {found.path}"
    return DEFAULT_CHANCE, f"default {DEFAULT_CHANCE} (no task file found; --chance sets it)"


def downstream_section(points, tuned, targets: list[tuple[float, float]], *, chance: float | None,
                       n_boot: int, ci: float, seed: int) -> dict | None:
    """fit.json's ``downstream``: both steps fitted to the tuned runs and chained at each target (the
    recommended run last); None unless ``points`` carries an accuracy metric."""
    if points.accuracy_metric is None:
        return None
    floor, source = task_chance(points.configs, points.accuracy_metric.split("/")[1], chance)
    preds = predict_accuracies(tuned.params, tuned.tokens, tuned.loss, tuned.accuracy, targets, chance=floor,
                               n_boot=n_boot, ci=ci, seed=seed)
    first = preds[0]
    return {
        "task": points.accuracy_metric.split("/")[1],
        "metric": points.accuracy_metric,
        "bpb_metric": points.metric,
        "chance": floor,
        "chance_source": source,
        "n_runs": len(tuned),
        "n_boot": first.n_boot,
        "ci_level": ci,
        "bpb_law": first.bpb_fit.to_dict(),
        "acc_law": first.acc_fit.to_dict(),
        "runs": [
            {
                "run": r,
                "params": n,
                "tokens": d,
                "bpb": b,
                "acc": a,
                "acc_fit": float(first.acc_fit.predict(b)),
            }
            for r, n, d, b, a in zip(
                tuned.run, tuned.params, tuned.tokens, tuned.loss, tuned.accuracy, strict=True
            )
        ],
        "predictions": [
            {
                "params": p.params,
                "tokens": p.tokens,
                "bpb": p.bpb,
                "bpb_lo": (p.bpb_ci or [None, None])[0],
                "bpb_hi": (p.bpb_ci or [None, None])[1],
                "acc": p.acc,
                "lo": (p.acc_ci or [None, None])[0],
                "hi": (p.acc_ci or [None, None])[1],
                "recommended": j == len(preds) - 1,
                "notes": p.notes,
            }
            for j, p in enumerate(preds)
        ],
    }
