"""The data mixture of the large run: a law of loss against weights, optimised for a target under constraints.

:func:`analyse_mixture` picks the law (:func:`scaling.fit.mixture_law.choose_law`), then minimises the
target (one evaluation set, or a weighted sum of several) over the weight simplex, within:

- the weights the runs tried (a law fitted on [0.1, 0.6] is not trusted at 0.9),
- a minimum weight per domain (``--mixture-min-weight``),
- the repetition each domain allows at the large run's token budget D: weight_j ≤ max_epochs ·
  tokens_j / D, since a domain of 1B tokens at 30% of 2T tokens would be seen 600 times.

The interval of each recommended weight comes from refitting and re-optimising on bootstrap resamples
of the mixtures (all runs of one weight vector drawn together). With runs at two or more model sizes,
the law is fitted at each size with enough mixtures, the recommendation is the largest size's, and the
optimum of each size is reported so the trend is visible.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import optimize

from scaling.errors import ScalingError
from scaling.fit.basics import representative
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.data import CELL_TOLERANCE_DEX
from scaling.fit.mixture_data import WEIGHT_PREFIX, MixtureData, csv_header, csv_rows, parse_counts
from scaling.fit.mixture_law import (
    MIN_MIXTURES,
    MixtureLaw,
    choose_law,
    fit_mixture_law,
    mixture_groups,
    n_parameters,
)

WEAK_RANK_CORR = 0.5  # held-out Spearman correlation below which the law's ranking is not to be trusted
ZERO_WEIGHT = 1e-3  # recommended weights below this leave the domain out of the large run
EDGE = 0.05  # a recommended weight at a bound of the weights tried within this of 0 or 1 is no extrapolation


def parse_target(spec: str | None, eval_sets: list[str]) -> dict[str, float]:
    """``NAME`` or ``NAME=weight,...`` as evaluation set -> weight; none given: every set, equally."""
    if not spec:
        return {e: 1.0 / len(eval_sets) for e in eval_sets}
    weights = {spec.strip(): 1.0} if "=" not in spec else parse_counts([spec], "--mixture-target")
    unknown = [e for e in weights if e not in eval_sets]
    if unknown:
        raise ScalingError(f"--mixture-target names {', '.join(unknown)}; the evaluation sets are "
                           f"{', '.join(eval_sets)}")
    if not sum(weights.values()) > 0:
        raise ScalingError("--mixture-target weights must not all be 0")
    return weights


def min_weights(spec, domains: list[str]) -> np.ndarray:
    """``--mixture-min-weight``: one number for every domain, or ``name=value,...``."""
    if isinstance(spec, (int, float)):
        out = np.full(len(domains), float(spec))
    else:
        try:
            out = np.full(len(domains), float(spec))
        except (TypeError, ValueError):
            given = parse_counts([spec], "--mixture-min-weight")
            unknown = sorted(set(given) - set(domains))
            if unknown:
                raise ScalingError(f"--mixture-min-weight names {', '.join(unknown)}, not a domain "
                                   f"({', '.join(domains)})") from None
            out = np.array([given.get(d, 0.0) for d in domains])
    if np.any(out < 0) or out.sum() > 1:
        raise ScalingError(f"--mixture-min-weight {spec}: each must be >= 0 and together at most 1")
    return out


def _project(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The point of {lo ≤ r ≤ hi, Σ r = 1} nearest to ``x`` (bisection on a common shift)."""
    a, b = float(np.min(x - hi)) - 1, float(np.max(x - lo)) + 1
    for _ in range(100):
        mid = (a + b) / 2
        if np.clip(x - mid, lo, hi).sum() > 1:
            a = mid
        else:
            b = mid
    return np.clip(x - (a + b) / 2, lo, hi)


def optimise(law: MixtureLaw, target: np.ndarray, lo: np.ndarray, hi: np.ndarray, starts) -> np.ndarray:
    """Weights in the box [lo, hi] on the simplex minimising Σ_i target_i · L_i(r), from several starts."""
    def objective(r):
        return float(law.predict(r) @ target)

    cons = [{"type": "eq", "fun": lambda r: r.sum() - 1.0, "jac": lambda r: np.ones_like(r)}]
    best, best_val = None, np.inf
    for s in starts:
        x0 = _project(np.asarray(s, dtype=float), lo, hi)
        res = optimize.minimize(objective, x0, method="SLSQP", bounds=list(zip(lo, hi, strict=True)),
                                constraints=cons, options={"maxiter": 200, "ftol": 1e-12})
        r = _project(res.x, lo, hi)
        for cand in (r, x0):
            val = objective(cand)
            if val < best_val:
                best, best_val = cand, val
    return best


def _starts(law: MixtureLaw, target: np.ndarray, observed: np.ndarray, n: int = 5) -> list[np.ndarray]:
    """The centre of the simplex and the ``n`` tried mixtures the law predicts best."""
    k = observed.shape[1]
    order = np.argsort(law.predict(observed) @ target)
    return [np.full(k, 1.0 / k), *observed[order[:n]]]


def _bounds(data: MixtureData, observed: np.ndarray, floor: np.ndarray, max_epochs: float,
            large_tokens: float | None, warnings: list[str], notes: list[str]) -> tuple:
    """Lower and upper weight of each domain, and the epoch cap behind the upper one (inf when none)."""
    lo = np.maximum(floor, observed.min(axis=0))
    cap = np.full(len(data.domains), np.inf)
    if large_tokens:
        for j, d in enumerate(data.domains):
            if data.domain_tokens.get(d):
                cap[j] = max_epochs * data.domain_tokens[d] / large_tokens
        unknown = [d for d in data.domains if not data.domain_tokens.get(d)]
        if unknown:
            notes.append(f"no token count for {', '.join(unknown)} (give --domain-tokens NAME=COUNT): "
                         "their repetition at the large run is not checked")
        if np.all(np.isfinite(cap)) and cap.sum() < 1:
            need = large_tokens / sum(data.domain_tokens[d] for d in data.domains)
            warnings.append(
                f"all domains together hold {sum(data.domain_tokens.values()):.3g} tokens: "
                f"D={large_tokens:.3g} repeats them {need:.3g} times on average, more than "
                f"--max-epochs {max_epochs:g}; the cap is raised to {need:.3g} epochs for every domain"
            )
            cap = cap / cap.sum()
    else:
        notes.append("the large run's token budget is unknown (no scaling law, no --target-tokens): "
                     "repetition is not checked")
    hi = np.minimum(observed.max(axis=0), cap)
    hi = np.maximum(hi, lo)
    if lo.sum() > 1 + 1e-9:
        raise ScalingError("the minimum weights and the weights tried leave no mixture summing to 1; "
                           "lower --mixture-min-weight")
    if hi.sum() < 1 - 1e-9:  # the caps cut below the range tried: the caps win, the range gives way
        hi = np.maximum(np.minimum(cap, 1.0), lo)
    if hi.sum() < 1 - 1e-9:
        raise ScalingError("the epoch caps leave no mixture summing to 1; raise --max-epochs")
    return lo, hi, cap


def _cells(data: MixtureData) -> list[np.ndarray]:
    """Rows per (size, tokens) when the runs name them, largest last; one group otherwise."""
    if not np.all(np.isfinite(data.params)):
        return [np.arange(len(data))]
    size = representative(data.params, CELL_TOLERANCE_DEX)
    tok = (
        representative(data.tokens, CELL_TOLERANCE_DEX)
        if np.all(np.isfinite(data.tokens))
        else np.ones(len(data))
    )
    keys = sorted({(float(s), float(t)) for s, t in zip(size, tok, strict=True)})
    return [np.flatnonzero((size == s) & (tok == t)) for s, t in keys]


def _named(domains: list[str], values) -> dict[str, float]:
    return {d: float(v) for d, v in zip(domains, values, strict=True)}


def _bootstrap(data: MixtureData, law: MixtureLaw, target: np.ndarray, lo, hi, r_opt, *, n_boot: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-optimised weights and the losses at ``r_opt`` of refits on resampled mixtures."""
    groups = mixture_groups(data.weights)
    units = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    p = n_parameters(law.form, len(data.domains))
    rng = np.random.default_rng(seed)
    weights, losses = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), len(units))
        if np.unique(pick).size <= p:
            continue  # a resample with too few distinct mixtures cannot pin the law down
        idx = np.concatenate([units[i] for i in pick])
        try:
            refit = fit_mixture_law(law.form, data.weights[idx], data.losses[idx], init=law)
        except (ValueError, np.linalg.LinAlgError):
            continue
        weights.append(optimise(refit, target, lo, hi, [r_opt, np.full(len(r_opt), 1.0 / len(r_opt))]))
        losses.append(refit.predict(r_opt))
    return np.array(weights).reshape(-1, len(data.domains)), np.array(losses).reshape(-1, len(data.eval_sets))


def _interval(samples: np.ndarray, ci: float) -> tuple[float | None, float | None]:
    iv = percentile_interval(samples, ci) if samples.size else None
    return (iv[0], iv[1]) if iv else (None, None)


def read_candidates(path, domains: list[str]) -> np.ndarray:
    """The ``w_<domain>`` rows of a CSV of candidate mixtures, each normalised to sum to 1."""
    path = Path(path)
    if not path.is_file():
        raise ScalingError(f"--predict-mixtures {path}: no such file; give a CSV with w_<domain> columns")
    extra = sorted(
        {h[len(WEIGHT_PREFIX) :] for h in csv_header(path) if h.startswith(WEIGHT_PREFIX)} - set(domains)
    )
    if extra:
        raise ScalingError(f"--predict-mixtures {path}: domain(s) {', '.join(extra)} are not in the runs "
                           f"({', '.join(domains)}); the law cannot predict them")
    rows = np.array([[r["weights"].get(d, 0.0) for d in domains] for r in csv_rows(path)], dtype=float)
    rows = np.nan_to_num(rows.reshape(-1, len(domains)))
    if not len(rows) or np.any(rows < 0) or np.any(rows.sum(axis=1) <= 0):
        raise ScalingError(f"--predict-mixtures {path}: every row needs non-negative w_<domain> weights")
    return rows / rows.sum(axis=1, keepdims=True)


def _by_size(
    data: MixtureData, form: str, target: np.ndarray, lo, hi, cells
) -> tuple[list[dict], str | None]:
    """The optimum of the law fitted at each (size, tokens) with enough mixtures, and how it moves."""
    out = []
    for idx in cells:
        sub = data.subset(idx)
        if np.unique(mixture_groups(sub.weights)).size <= max(
            MIN_MIXTURES - 1, n_parameters(form, len(data.domains))
        ):
            continue
        law = fit_mixture_law(form, sub.weights, sub.losses)
        r = optimise(law, target, lo, hi, _starts(law, target, sub.weights))
        tokens = sub.tokens[np.isfinite(sub.tokens)]
        out.append({"params": float(np.exp(np.mean(np.log(sub.params)))),
                    "tokens": float(np.mean(tokens)) if tokens.size else None,
                    "n_runs": len(idx), "weights": _named(data.domains, r),
                    "target_loss": float(law.predict(r) @ target)})
    if len(out) < 2:
        return out, None
    first, last = out[0], out[-1]
    moves = ", ".join(f"{d} {first['weights'][d]:.3f} -> {last['weights'][d]:.3f}" for d in data.domains)
    return out, f"from N={first['params']:.3g} to N={last['params']:.3g} the optimum moves: {moves}"


def analyse_mixture(data: MixtureData, *, target: str | None = None, min_weight=0.0, max_epochs: float = 4.0,
                    large_tokens: float | None = None, n_boot: int = 200, ci: float = 0.95, seed: int = 0,
                    candidates: np.ndarray | None = None) -> dict:
    """fit.json's ``mixture``: the law, its held-out scores, and the recommended weights with intervals."""
    warnings, notes = [], list(data.notes)
    goal = parse_target(target, data.eval_sets)
    t = np.array([goal.get(e, 0.0) for e in data.eval_sets])
    cells = _cells(data)
    main_idx = next((idx for idx in reversed(cells) if np.unique(mixture_groups(data.weights[idx])).size
                     >= MIN_MIXTURES + 1), np.arange(len(data)))
    if len(cells) > 1 and len(main_idx) == len(data):
        notes.append(f"{len(cells)} sizes but none with enough mixtures on its own: one law over all runs")
    main = data.subset(main_idx)
    law, heldout, forms = choose_law(main.weights, main.losses, data.eval_sets, seed=seed)
    floor = min_weights(min_weight, data.domains)
    lo, hi, cap = _bounds(data, main.weights, floor, max_epochs, large_tokens, warnings, notes)
    r = optimise(law, t, lo, hi, _starts(law, t, main.weights))
    boot_w, boot_l = _bootstrap(main, law, t, lo, hi, r, n_boot=n_boot, seed=seed) if n_boot else (
        np.zeros((0, len(r))), np.zeros((0, len(t))))
    pred = law.predict(r)
    weights = {d: {"value": float(r[j]), **dict(zip(("lo", "hi"), _interval(boot_w[:, j], ci), strict=True))}
               for j, d in enumerate(data.domains)}
    predicted = {
        e: {"loss": float(pred[i]), **dict(zip(("lo", "hi"), _interval(boot_l[:, i], ci), strict=True))}
        for i, e in enumerate(data.eval_sets)
    }
    epochs = {
        d: (
            float(r[j] * large_tokens / data.domain_tokens[d])
            if large_tokens and data.domain_tokens.get(d)
            else None
        )
        for j, d in enumerate(data.domains)
    }
    # what the law alone wants: optimised within the weights tried, without the epoch caps
    free = optimise(
        law, t, np.maximum(lo, 0), np.maximum(main.weights.max(axis=0), lo), _starts(law, t, main.weights)
    )
    tried_lo, tried_hi = main.weights.min(axis=0), main.weights.max(axis=0)
    for j, d in enumerate(data.domains):
        if math.isfinite(cap[j]) and r[j] >= cap[j] - 1e-6 and free[j] > cap[j] + 1e-6:
            warnings.append(
                f"{d} is capped at weight {r[j]:.3g} by --max-epochs {max_epochs:g}: its "
                f"{data.domain_tokens[d]:.3g} tokens would be repeated "
                f"{free[j] * large_tokens / data.domain_tokens[d]:.3g} "
                f"times at the law's optimum weight {free[j]:.3g} of D={large_tokens:.3g}"
            )
        elif (r[j] >= tried_hi[j] - 1e-6 and tried_hi[j] < 1 - EDGE) or (
            r[j] <= tried_lo[j] + 1e-6 and tried_lo[j] > max(EDGE, floor[j])
        ):
            warnings.append(f"{d}: the recommended weight {r[j]:.3g} is at the edge of the weights tried "
                            f"([{tried_lo[j]:.3g}, {tried_hi[j]:.3g}]); the law is not trusted beyond it -- "
                            "try mixtures past it")
        if epochs[d] is not None and epochs[d] > 1:
            notes.append(f"{d} is repeated {epochs[d]:.3g} times at the recommended weight")
    if heldout["rank_corr"] is not None and heldout["rank_corr"] < WEAK_RANK_CORR:
        warnings.append(f"the mixture law ranks held-out runs poorly (Spearman {heldout['rank_corr']:.2f}): "
                        "treat the recommended weights as a guess; add mixtures or seeds")
    by_size, trend = _by_size(data, law.form, t, lo, hi, cells) if len(cells) > 1 else ([], None)
    natural = None
    if all(data.domain_tokens.get(d) for d in data.domains):
        nat = np.array([data.domain_tokens[d] for d in data.domains])
        nat = nat / nat.sum()
        natural = {
            "weights": _named(data.domains, nat),
            "predicted": _named(data.eval_sets, law.predict(nat)),
            "target_loss": float(law.predict(nat) @ t),
        }
    points = [{"run": main.run[i], "eval_set": e, "measured": float(main.losses[i, j]),
               "predicted": float(heldout["points"]["predicted"][i, j])}
              for i in range(len(main)) for j, e in enumerate(data.eval_sets)]
    return {
        "law": law.form, "constants": law.to_dict(data.domains, data.eval_sets),
        "heldout": {**{k: v for k, v in heldout.items() if k != "points"}, "points": points},
        "forms": {f: {k: v for k, v in s.items() if k != "by_eval"} for f, s in forms.items()},
        "target": goal, "target_loss": {"value": float(pred @ t), **dict(zip(("lo", "hi"), _interval(
            boot_l @ t if boot_l.size else np.zeros(0), ci), strict=True))},
        "domains": data.domains, "eval_sets": data.eval_sets, "n_runs": len(main),
        "n_mixtures": int(np.unique(mixture_groups(main.weights)).size),
        "weights": weights, "predicted": predicted, "epochs": epochs, "natural": natural,
        "bounds": {d: [float(lo[j]), float(hi[j])] for j, d in enumerate(data.domains)},
        "max_epochs": max_epochs, "large_tokens": large_tokens, "domain_tokens": dict(data.domain_tokens),
        "domain_paths": dict(data.domain_paths), "n_boot": int(len(boot_w)), "ci_level": ci,
        "by_size": by_size, "size_trend": trend,
        "candidates": [] if candidates is None else [
            {"weights": _named(data.domains, c), "predicted": _named(data.eval_sets, law.predict(c)),
             "target_loss": float(law.predict(c) @ t)} for c in candidates],
        "warnings": warnings, "notes": notes,
    }


def mixture_config(mixture: dict) -> list[dict]:
    """``data.mixture`` of the large run: each domain's dataset folder (its name for CSV input) and weight."""
    paths = mixture.get("domain_paths") or {}
    return [{"path": paths.get(d, d), "weight": round(w["value"], 4)} for d, w in mixture["weights"].items()
            if w["value"] >= ZERO_WEIGHT]
