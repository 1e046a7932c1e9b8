"""The fit's warnings: small rules, each ``(FitContext) -> list[str]``, run in order by :func:`run_checks`.

A new check is a new function appended to :data:`WARNING_RULES`; the order of the list is the order
of the warnings in fit.json, report.md and the terminal.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from scaling.fit.basics import format_interval
from scaling.fit.data import Points
from scaling.fit.parametric import E_FLOOR, N_PARAMETERS
from scaling.fit.recommend import FAR_AXIS, FAR_EXTRAPOLATION
from scaling.fit.steps import DEFAULT_TARGET_FACTOR, FitContext

PLAUSIBLE_A = (0.3, 0.7)  # N_opt ∝ C^a: published LLM fits fall in this range; outside it, say why
MAX_BACKTEST_ERROR = 0.05  # mean relative error of predicting the largest size beyond which to warn
MAX_A_DISAGREEMENT = 0.1  # |a| difference between approaches beyond which to warn


def _span(values) -> str:
    return f"{float(np.min(values)):.3g}–{float(np.max(values)):.3g}"


def _factor(ctx: FitContext) -> float:
    """The target's compute over the largest run's."""
    return ctx.target.choice["flops"] / float(ctx.points.flops.max())


def loader_notes(ctx: FitContext) -> list[str]:
    """What loading left out or assumed (diverged runs, NaN rows, the metric chosen)."""
    return list(ctx.points.notes)


def worse_settings_left_out(ctx: FitContext) -> list[str]:
    """Approach 3 saw only one setting per (size, tokens)."""
    if not ctx.dropped:
        return []
    return [f"approach 3 uses one setting per (size, tokens), the best or the size's usual one where no "
            f"other beats it beyond the seed noise: {ctx.dropped} run(s) of other settings left out of the "
            f"law (they feed the knob and hyperparameter analyses)"]


def optimiser_not_converged(ctx: FitContext) -> list[str]:
    """Approach 3's optimiser gave up."""
    if ctx.law.converged:
        return []
    return [f"approach 3 optimiser did not report convergence: {ctx.law.message}"]


def few_sizes(ctx: FitContext) -> list[str]:
    """Fewer than four model sizes hardly pin the exponents down."""
    sizes = len({n for n, _ in ctx.tuned.cells()})
    if sizes >= 4:
        return []
    return [f"only {sizes} model sizes: alpha, beta and a are poorly determined; trust the intervals"]


def exponent_at_bound(ctx: FitContext) -> list[str]:
    """An exponent of approach 3 ended at the edge of its search range."""
    alpha, beta = ctx.law.alpha, ctx.law.beta
    if not (min(alpha, beta) < 0.01 or max(alpha, beta) > 2.9):
        return []
    return [f"an exponent sits at its bound (alpha={alpha:.3g}, beta={beta:.3g}): "
            f"the data do not pin the law down"]


def irreducible_loss_at_bound(ctx: FitContext) -> list[str]:
    """Approach 3 put the irreducible loss E at its lower bound: the losses do not pin E down."""
    if ctx.law.E > 1.01 * E_FLOOR:
        return []
    other = f" ({ctx.isoflop.a:.3f})" if ctx.isoflop.a is not None else ""
    return [f"approach 3 puts the irreducible loss E at its lower bound ({ctx.law.E:.2g}): the losses "
            f"({_span(ctx.tuned.loss)}) curve too little to separate E from the two power laws, so its "
            f"exponents, a and N_opt follow from that edge; compare approach 2's a{other}"]


def too_few_runs(ctx: FitContext) -> list[str]:
    """No more tuned runs than the law has parameters: it interpolates, its intervals mean nothing."""
    n = len(ctx.tuned)
    if n > N_PARAMETERS:
        return []
    return [f"only {n} tuned runs for a {N_PARAMETERS}-parameter law: it passes through them "
            f"exactly, so its intervals have no width to show, not certainty; add runs"]


def loss_does_not_fall(ctx: FitContext) -> list[str]:
    """The loss hardly falls with compute: the runs are probably not comparable."""
    tuned: Points = ctx.tuned
    rho = stats.spearmanr(tuned.flops, tuned.loss).statistic if np.ptp(tuned.loss) > 0 else 0.0
    if rho < -0.3:
        return []
    return [f"the final loss hardly falls with compute across these runs (Spearman rho = {rho:.2f}): check "
            f"that they are comparable (same data, tokenizer and validation set); the law describes them "
            f"poorly"]


def no_target_given(ctx: FitContext) -> list[str]:
    """The target was the default multiple of the largest run's compute."""
    flops = ctx.target.default_flops
    if flops is None:
        return []
    return [f"no target given: recommending for {DEFAULT_TARGET_FACTOR:g}x the largest run's compute "
            f"({flops:.3g} FLOPs); use --target-flops"]


def smallest_shape(ctx: FitContext) -> list[str]:
    """The law put the optimum at the ladder's smallest shape."""
    choice = ctx.target.choice
    if choice["index"] != 0:
        return []
    return [f"the best shape for the target is the smallest of the ladder ({choice['params']:.3g} params): "
            f"the law puts the optimum at or below it, which usually means it is poorly determined"]


def far_target(ctx: FitContext) -> list[str]:
    """The target lies orders of magnitude beyond the runs' compute."""
    factor = _factor(ctx)
    if not factor >= FAR_EXTRAPOLATION:
        return []
    return [f"the target is {factor:.3g}x the largest fitted compute ({math.log10(factor):.1f} orders "
            f"of magnitude): an extrapolation this far is a guess with error bars; "
            f"validate with a run in between"]


def tokens_per_param_outside(ctx: FitContext) -> list[str]:
    """The recommended tokens per parameter lie outside the runs' range."""
    choice = ctx.target.choice
    ratio, fitted = choice["tokens"] / choice["params"], ctx.tuned.tokens / ctx.tuned.params
    if fitted.min() / 2 <= ratio <= 2 * fitted.max():
        return []
    return [f"the recommended run has {ratio:.3g} tokens per parameter, outside the fitted "
            f"{fitted.min():.3g}-{fitted.max():.3g}: the law is extrapolated along that axis too"]


def one_ratio(ctx: FitContext) -> list[str]:
    """Every run has the same tokens per parameter: the allocation is not measured, the ratio is kept."""
    allocation = ctx.target.allocation
    if allocation.tokens_per_param is None:
        return []
    return [f"{allocation.why}; approach 3's a = {ctx.law.a:.3f} is not determined by such runs"]


def _far_from_data(n: float, d: float, fitted: Points, max_flops: float) -> str:
    """Why a prediction at (N, D) lies far outside the fitted runs ('' when it does not)."""
    reasons = []
    factor = 6.0 * n * d / max_flops
    if factor >= FAR_EXTRAPOLATION:
        reasons.append(f"{factor:.3g}x the largest fitted compute")
    for name, value, seen in (("N", n, fitted.params), ("D", d, fitted.tokens)):
        if value > FAR_AXIS * seen.max() or value < seen.min() / FAR_AXIS:
            reasons.append(f"{name} {value:.3g} against fitted {_span(seen)}")
    return ", ".join(reasons)


def far_predictions(ctx: FitContext) -> list[str]:
    """Each ``--predict`` point far outside the fitted runs."""
    out = []
    for n, d in ctx.extra:
        far = _far_from_data(n, d, ctx.tuned, float(ctx.points.flops.max()))
        if far:
            out.append(f"--predict {n:.3g}:{d:.3g} is {far}: an extrapolation this far is a guess with error "
                       f"bars wider than shown")
    return out


def few_bootstrap_fits(ctx: FitContext) -> list[str]:
    """Fewer than half the bootstrap resamples could be fitted."""
    n_boot, info = ctx.options.n_boot, ctx.uncertainty.info
    if not n_boot or info["n_ok"] >= n_boot / 2:
        return []
    return [f"only {info['n_ok']} of {n_boot} bootstrap resamples could be fitted: intervals are rough"]


def implausible_a(ctx: FitContext) -> list[str]:
    """The allocation exponent a lies outside the range of published LLM fits."""
    a = ctx.law.a
    if PLAUSIBLE_A[0] <= a <= PLAUSIBLE_A[1]:
        return []
    a_ci = ctx.uncertainty.cis.get("a")
    span = f" (interval {a_ci[0]:.2f}–{a_ci[1]:.2f})" if a_ci and None not in a_ci else ""
    return [f"a = {a:.3f}{span} lies outside {PLAUSIBLE_A[0]}–{PLAUSIBLE_A[1]}, the range of published "
            f"LLM fits (Chinchilla ~0.5): runs this small or short ({_span(ctx.tuned.params)} params, "
            f"{_span(ctx.tuned.tokens)} tokens) sit in the early, fast-falling part of training where "
            f"L(N, D) is not yet a clean power law; add larger sizes or longer runs before trusting N_opt"]


def backtest_error(ctx: FitContext) -> list[str]:
    """Predicting the largest size from the smaller ones misses by more than a few percent."""
    error = ctx.backtest.get("mean_abs_rel_error")
    if error is None or not error > MAX_BACKTEST_ERROR:
        return []
    return [f"backtest: predicting the largest size from the others is off by {100 * error:.1f}% on average; "
            f"extrapolations are unreliable"]


def combined_half_width(a: float, a_ci, other: float, other_ci) -> float | None:
    """How far two estimates may lie apart within their intervals: each interval's half on the side facing
    the other estimate, added in quadrature (as for the difference of independent errors). None without
    both intervals."""
    if not a_ci or not other_ci or None in a_ci or None in other_ci:
        return None
    toward = (a_ci[1] - a, other - other_ci[0]) if other > a else (a - a_ci[0], other_ci[1] - other)
    return math.hypot(*toward)


# why an approach's interval of a is wide, and what narrows it
_WIDE_BECAUSE = {
    "approach 3": "these runs determine its five constants loosely (sizes and budgets over a wider range "
                  "narrow it)",
    "approach 2": "its budgets' optima are few, move with the noise and the per-size quirks of their "
                  "profiles, or scatter about the line beyond that (more budgets, or more sizes and seeds "
                  "near each optimum, narrow it)",
    "approach 1": "its envelope's winners change with the noise in its copies (more sizes and longer "
                  "curves narrow it)",
}


def approaches_disagree(ctx: FitContext) -> list[str]:
    """Approaches 2 and 1 give an allocation exponent far from approach 3's: beyond their intervals, or
    within them only because one of the two intervals is wide (the warning names which)."""
    a, a_ci = ctx.law.a, ctx.uncertainty.cis.get("a")
    out = []
    for name, kind, fit in (("approach 2", "IsoFLOP", ctx.isoflop), ("approach 1", "envelope", ctx.envelope)):
        if fit.a is None or abs(fit.a - a) <= MAX_A_DISAGREEMENT:
            continue
        said = (f"{name} ({kind}) gives a={fit.a:.3f} {format_interval(fit.a_ci)}, approach 3 a={a:.3f} "
                f"{format_interval(a_ci)}")
        allowed = combined_half_width(a, a_ci, fit.a, fit.a_ci)
        if allowed is not None and abs(fit.a - a) <= allowed:
            wide = "approach 3" if a_ci[1] - a_ci[0] >= fit.a_ci[1] - fit.a_ci[0] else name
            out.append(f"{said}: {abs(fit.a - a):.2f} apart, within their combined intervals "
                       f"({allowed:.2f}) only because {wide}'s is wide; {_WIDE_BECAUSE[wide]}; the large "
                       f"run's size follows {ctx.target.allocation.approach}")
        else:
            out.append(f"{said}: the approaches disagree beyond their intervals")
    return out


SHORT_RUN_FACTOR = 3.0  # fitted runs this many times fewer steps than every repeated setting get a warning


def seed_noise_from_longer_runs(ctx: FitContext) -> list[str]:
    """The seed noise was measured only on repeated settings far longer (in optimizer steps) than some
    fitted runs. Early in training a loss still falls steeply, and a seed moves it more: on the demo's
    runs, seeds of 95-160 step runs differ by about 0.04 nats (std), of 600 or more steps by 0.01-0.015.
    The intervals that take that noise as every run's (approaches 1 and 2, the knob and LR verdicts)
    are then too narrow where the short runs matter."""
    noise = ctx.knobs.get("seed_std")
    repeated = [s["steps"] for s in ctx.knobs.get("settings", []) if s["n"] > 1 and s["steps"] is not None]
    if noise is None or not repeated:
        return []
    measured = min(repeated)
    steps = ctx.tuned.tokens / ctx.tuned.batch_size
    short = steps[np.isfinite(steps) & (steps < measured / SHORT_RUN_FACTOR)]
    if not short.size:
        return []
    return [f"the seed noise ({noise:.3g}) comes from repeated settings of {measured:.0f} optimizer steps "
            f"or more, but {short.size} fitted run(s) train for only {_span(np.round(short))} steps, where a "
            f"seed moves the loss more (early training is steep): the intervals that use that noise "
            f"(approaches 1 and 2, knob and LR verdicts) are likely too narrow there; repeat seeds at one of "
            f"the short runs"]


def isoflop_skipped(ctx: FitContext) -> list[str]:
    """IsoFLOP budgets without a usable minimum."""
    skipped = ctx.isoflop.skipped
    return [f"IsoFLOP: {len(skipped)} budget(s) skipped (see isoflop.skipped)"] if skipped else []


def knob_reverses(ctx: FitContext) -> list[str]:
    """A knob whose best level at the target is not the best at the largest size tried."""
    return [
        f"knob {knob}: {e['best_at_largest_size']} did best at the largest size tried, but {e['best']} is "
        f"predicted best at the target; the large run takes {e['best']}"
        for knob, e in ctx.knob_effects.effects.items()
        if e["verdict"] == "reverses"
    ]


def knob_one_ratio(ctx: FitContext) -> list[str]:
    """Knob laws fitted on one tokens-per-parameter ratio cannot tell a parameter effect from a data
    effect."""
    ratio = ctx.target.choice["tokens"] / ctx.target.choice["params"]
    seen = np.unique(np.round(np.log10(ctx.points.tokens / ctx.points.params), 1))
    if not ctx.knob_effects.effects or seen.size > 1 or abs(seen[0] - math.log10(ratio)) < 0.15:
        return []
    return [
        f"every knob run has {10 ** seen[0]:.3g} tokens per parameter, the target {ratio:.3g}: the knob laws "
        "extrapolate along a ratio they never saw; add runs at a second ratio to judge knobs there"
    ]


def hparam_bounds_one_sided(ctx: FitContext) -> list[str]:
    """A hyperparameter whose optimum lay beyond the values tried, on the same side, in a third or more
    of the cells: those cells only bound it and are left out of its law, which the others alone set."""
    out = []
    for name in ("lr", "batch_size"):
        cells = (ctx.hparams.get(name) or {}).get("cells") or []
        sides = [c["bound"] for c in cells if c["at_edge"]]  # "above" or "below"
        if len(sides) >= 2 and 3 * len(sides) >= len(cells) and len(set(sides)) == 1:
            below, bounds = sides[0] == "below", len(sides)
            out.append(
                f"{name}: in {bounds} of {len(cells)} cells the best value lies "
                f"{'below the smallest' if below else 'above the largest'} tried; those cells are left out "
                f"of the law, which the others alone set: extend the sweep {'down' if below else 'up'}"
            )
    return out


def mixture_warnings(ctx: FitContext) -> list[str]:
    """The mixture law's own warnings: capped domains, optima at the edge of the weights tried, weak
    ranking."""
    return list(ctx.mixture["warnings"]) if ctx.mixture else []


def large_run_base(ctx: FitContext) -> list[str]:
    """Where large_run.yaml's other settings come from when that may surprise: the framework's defaults
    (a CSV has no run config), or relative paths resolved against the current folder."""
    from scaling.fit.large_run import path_notes
    from scaling.fit.recommend import BASE_FROM_DEFAULTS, BASE_FROM_OPTION

    if ctx.target.base_source == BASE_FROM_DEFAULTS:
        base = ctx.target.base
        return [f"large_run.yaml: the inputs hold no run config, so all but the fit's shape, tokens and "
                f"fitted hyperparameters are the framework's defaults (data.path {base['data']['path']!r}, "
                f"seq_len {base['train']['seq_len']}, optim.lr {base['optim']['lr']:g}); pass "
                f"--base-config YOUR_RUN.yaml to start from your own"]
    whose = "--base-config's" if ctx.target.base_source == BASE_FROM_OPTION else "the runs'"
    return path_notes(ctx.target.base, whose=whose)


WARNING_RULES = [
    loader_notes, worse_settings_left_out, optimiser_not_converged, few_sizes, exponent_at_bound,
    irreducible_loss_at_bound, too_few_runs, loss_does_not_fall, no_target_given, large_run_base,
    smallest_shape, far_target,
    one_ratio, tokens_per_param_outside, far_predictions, few_bootstrap_fits, implausible_a, backtest_error,
    approaches_disagree, seed_noise_from_longer_runs, isoflop_skipped, knob_reverses, knob_one_ratio,
    hparam_bounds_one_sided, mixture_warnings,
]
"""Every warning rule, in the order their warnings are listed."""


def run_checks(ctx: FitContext, rules=None) -> list[str]:
    """The warnings of every rule in ``rules`` (default :data:`WARNING_RULES`), in order."""
    return [w for rule in (WARNING_RULES if rules is None else rules) for w in rule(ctx)]
