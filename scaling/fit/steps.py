"""The computing steps of a fit, each a function of what it needs, and :class:`FitContext`, what they found.

Order (see :func:`scaling.fit.pipeline.fit_context`): :func:`load` -> :func:`best_settings` ->
:func:`fit_law` -> :func:`isoflop_step` -> :func:`law_refits` -> :func:`choose_target` ->
:func:`estimate_uncertainty` -> the other approaches and analyses (:func:`envelope_step`,
:func:`hparams_step`, :func:`knobs_step`, :func:`backtest_step`, :func:`mixture_step`). The warning
rules (:mod:`scaling.fit.checks`) and the recommendation (:func:`scaling.fit.recommend.recommend`) read
the finished :class:`FitContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.bootstrap import (
    backtest,
    bootstrap_refits,
    percentile_interval,
    prediction_interval,
    samples_of,
)
from scaling.fit.data import Points, load_points
from scaling.fit.downstream import downstream_section
from scaling.fit.envelope import EnvelopeFit, fit_envelope, one_curve_per_cell
from scaling.fit.hparams import fit_hparam_laws
from scaling.fit.isoflop import IsoFlopFit, fit_isoflop_points
from scaling.fit.knob_effects import knob_effects
from scaling.fit.knobs import analyze_knobs, law_huber_delta, one_setting_per_cell
from scaling.fit.options import FitOptions
from scaling.fit.parametric import N_PARAMETERS, ParametricFit, fit_parametric
from scaling.fit.recommend import (
    BASE_FROM_DEFAULTS,
    BASE_FROM_OPTION,
    BASE_FROM_RUNS,
    Allocation,
    Ladder,
    best_on_ladder,
    build_ladder,
    choose,
    choose_allocation,
)

DEFAULT_TARGET_FACTOR = 10.0  # with no target given, recommend for 10× the largest run's compute
FRONTIER_POINTS = 24


@dataclass
class Target:
    """The large run the fit recommends: the config it starts from, the candidate shapes, the choice."""

    base: dict
    """Config the large run starts from (``base_source``); its knobs go into large_run.yaml."""
    ladder: Ladder
    """Candidate shapes on top of ``base``'s model."""
    choice: dict
    """The chosen shape, tokens and FLOPs (:func:`scaling.fit.recommend.choose`)."""
    default_flops: float | None
    """The compute recommended for when no target was given (``None`` when one was)."""
    allocation: Allocation
    """Which approach set the size (:func:`scaling.fit.recommend.choose_allocation`)."""
    base_source: str = BASE_FROM_RUNS
    """Where ``base`` comes from: the largest tuned run, ``--base-config``, or the defaults (a CSV)."""


@dataclass
class Uncertainty:
    """Approach 3's bootstrap: intervals of its constants, predictions and frontier."""

    samples: dict[str, np.ndarray]
    """Bootstrap values of every quantity (empty with no bootstrap)."""
    info: dict
    """Bootstrap counts (``n_boot``, ``n_ok``, ...)."""
    point: dict[str, float]
    """Every quantity at the fitted law itself."""
    cis: dict[str, list]
    """Intervals of the constants and allocations."""
    predictions: list[dict]
    """The ``--predict`` points, then the recommended run, each with its prediction interval."""
    frontier_flops: np.ndarray
    """Compute values of the loss frontier."""


@dataclass
class KnobEffects:
    """Each knob judged at the target (:mod:`scaling.fit.knob_effects`)."""

    effects: dict
    """fit.json's ``knob_effects``: per knob its law, levels, differences, multipliers, crossovers,
    verdict."""
    by_point: list[dict]
    """Per (N, D) of :attr:`Uncertainty.predictions`, in that order: each knob level's predicted loss."""
    notes: list[str]
    """Knobs that could not be judged at the target, and why."""


@dataclass
class FitContext:
    """Everything the steps computed: read by the warning rules, the recommendation and fit.json."""

    options: FitOptions
    points: Points
    """Every loaded run."""
    tuned: Points
    """One setting per (size, tokens) (:func:`best_settings`): what the laws of tuned runs are fitted to."""
    dropped: int
    """How many runs of worse settings ``tuned`` left out."""
    law: ParametricFit
    """Approach 3."""
    target: Target
    extra: list[tuple[float, float]]
    """The ``--predict`` points as (N, D)."""
    uncertainty: Uncertainty
    isoflop: IsoFlopFit
    """Approach 2."""
    envelope: EnvelopeFit
    """Approach 1."""
    hparams: dict
    """LR and batch-size laws."""
    knobs: dict
    """Seed noise and knob effects at the sizes tried."""
    knob_effects: KnobEffects
    """Each knob's levels judged at the target by a law per level."""
    backtest: dict
    """Predicting the largest size from the others."""
    mixture: dict | None = None
    """The data-mixture law and the recommended weights (None when the runs' weights do not vary)."""
    downstream: dict | None = None
    """Accuracy metrics: the two-step prediction (task bpb law, accuracy sigmoid) at each prediction point."""


def load(inputs, options: FitOptions) -> Points:
    """Run dirs, sweep dirs or CSV paths (or a ready :class:`Points`) as the points to fit."""
    if isinstance(inputs, Points):
        return inputs
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    return load_points(list(inputs), params=options.params, exclude_diverged=options.exclude_diverged,
                       metric=options.metric)


def best_settings(points: Points) -> tuple[Points, int]:
    """Per (size, tokens), keep only the runs of one setting: the best (lowest seed-mean loss), or the
    size's usual setting when no other beats it beyond the seed noise
    (:func:`scaling.fit.knobs.one_setting_per_cell`).

    The scaling law is a law of *tuned* runs: an LR sweep's bad learning rates would bend it; so would
    a searched cell's luck. Returns the kept rows and how many were dropped.
    """
    knobs = sorted(points.knobs)
    cells: dict[tuple, dict[tuple, list[int]]] = {}
    for i, cell in enumerate(points.cells()):
        setting = tuple(repr(points.knobs[k][i]) for k in knobs)
        cells.setdefault(cell, {}).setdefault(setting, []).append(i)
    keep = one_setting_per_cell(points, cells, knobs)
    return points.subset(keep), len(points) - len(keep)


def fit_law(tuned: Points, points: Points | None = None) -> ParametricFit:
    """Approach 3, L(N, D) = E + A/N^α + B/D^β, fitted to the tuned runs, with Huber's δ from the seed
    noise of ``points`` (all runs; default ``tuned``)."""
    delta = law_huber_delta(tuned if points is None else points)
    return fit_parametric(tuned.params, tuned.tokens, tuned.loss, delta=delta)


def base_config(points: Points | None, options: FitOptions) -> tuple[dict, str]:
    """The config the large run starts from and where it comes from: ``options.base_config``, else the
    largest of ``points``' runs, else (a CSV, or no points) the framework's defaults."""
    given = options.load_base_config()
    if given is not None:
        return given, BASE_FROM_OPTION
    if points is not None and points.configs:
        return points.configs[int(np.argmax(points.params))], BASE_FROM_RUNS
    from scaling.config_loading import load_config, to_dict

    return to_dict(load_config([])), BASE_FROM_DEFAULTS


def law_refits(tuned: Points, law: ParametricFit, options: FitOptions) -> tuple[list, dict]:
    """Approach 3 refitted on ``options.n_boot`` resamples of the runs, and the bootstrap's run info."""
    if not options.n_boot:
        return [], {"n_boot": 0}
    return bootstrap_refits(tuned, law, n_boot=options.n_boot, seed=options.seed)


def choose_target(points: Points, tuned: Points, law: ParametricFit, isoflop: IsoFlopFit, refits: list,
                  options: FitOptions) -> Target:
    """The shape and tokens of the large run for the target in ``options`` (10x the compute without one),
    its size set by approach 2 or 3, or by the runs' one tokens-per-parameter ratio
    (:func:`scaling.fit.recommend.choose_allocation`; ``refits``: approach 3's bootstrap, whose interval of
    a is compared with approach 2's)."""
    base, base_source = base_config(tuned, options)
    seq_len = int(base.get("train", {}).get("seq_len", 256))
    ladder = build_ladder(base.get("model", {}), seq_len, options.params)
    default = None if options.has_target else DEFAULT_TARGET_FACTOR * float(points.flops.max())
    a3_ci = percentile_interval(np.array([r.a for r in refits if r is not None]), options.ci)
    allocation = choose_allocation(a3_ci, isoflop.a_ci, isoflop.n_opt, len(isoflop.budgets),
                                   tuned.tokens / tuned.params)
    choice = choose(law, ladder, flops=options.target_flops if default is None else default,
                    params=options.target_params, tokens=options.target_tokens, allocation=allocation)
    return Target(base, ladder, choice, default, allocation, base_source)


def _quantities(ladder: Ladder, target_flops: float, predictions: list[tuple[float, float]],
                frontier_c: np.ndarray, allocation: Allocation):
    """What each bootstrap refit contributes: constants, approach 3's allocation, predicted losses (also
    of the compute-optimal run by ``allocation``, ``pred_compute_optimal``), frontier."""

    def q(fit: ParametricFit) -> dict[str, float]:
        i = best_on_ladder(fit, target_flops, ladder)
        k = allocation.index(fit, target_flops, ladder)
        out = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a,
               "b": fit.b, "n_opt": float(ladder.params[i]),
               "d_opt": float(target_flops / ladder.flops_per_token[i]),
               "loss_opt": float(fit.predict(ladder.params[i], target_flops / ladder.flops_per_token[i])),
               "n_opt_closed_form": float(fit.n_opt(target_flops)),
               "d_opt_closed_form": float(fit.d_opt(target_flops))}
        for j, (n, d) in enumerate(predictions):
            out[f"pred_{j}"] = float(fit.predict(n, d))
        out["pred_compute_optimal"] = float(fit.predict(ladder.params[k],
                                                        target_flops / ladder.flops_per_token[k]))
        losses = fit.predict(ladder.params[None, :], frontier_c[:, None] / ladder.flops_per_token[None, :])
        for j, v in enumerate(losses.min(axis=1)):
            out[f"frontier_{j}"] = float(v)
        return out

    return q


def estimate_uncertainty(points: Points, law: ParametricFit, target: Target, extra: list[tuple[float, float]],
                         options: FitOptions, refits: list, info: dict) -> Uncertainty:
    """Approach 3's bootstrap (``refits``, ``info``: :func:`law_refits`): intervals of its constants, of
    every prediction and of the frontier."""
    choice, ci, seed = target.choice, options.ci, options.seed
    preds = extra + [(choice["params"], choice["tokens"])]
    max_c = float(points.flops.max())
    frontier_c = np.logspace(np.log10(points.flops.min()), np.log10(max(choice["flops"], max_c)),
                             FRONTIER_POINTS)
    q = _quantities(target.ladder, choice["flops"], preds, frontier_c, target.allocation)
    samples = samples_of(refits, q)
    point = q(law)
    cis = {k: percentile_interval(samples[k], ci) for k in samples
           if not k.startswith(("pred_", "frontier_"))}
    predictions = []
    for j, (n, d) in enumerate(preds):
        key = f"pred_{j}"
        lo, hi = prediction_interval(samples.get(key), point[key], law.residuals, ci, n_params=N_PARAMETERS,
                                     seed=seed + j)
        predictions.append({"params": n, "tokens": d, "loss": point[key], "lo": lo, "hi": hi,
                            "mean_ci": percentile_interval(samples[key], ci) if key in samples else None,
                            "recommended": j == len(preds) - 1})
    return Uncertainty(samples, info, point, cis, predictions, frontier_c)


def isoflop_step(tuned: Points, points: Points, options: FitOptions) -> IsoFlopFit:
    """Approach 2 on the tuned runs: an LR sweep's worse settings would pull each parabola up and aside."""
    return fit_isoflop_points(
        tuned,
        points,
        method=options.isoflop_method,
        window_dex=options.isoflop_window_dex,
        ci=options.ci,
        seed=options.seed,
    )


def envelope_step(tuned: Points, isoflop: IsoFlopFit, options: FitOptions) -> EnvelopeFit:
    """Approach 1, from the validation curves of the tuned runs (one per cell, seeds averaged); its interval
    from copies shifted by the run-to-run noise approach 2 measured (each run's own, ``isoflop.run_noise``;
    none measured: the envelope's default) and by the profiles' per-size quirks beyond it
    (``isoflop.excess_scatter``)."""
    tau = isoflop.excess_scatter["tau"] if isoflop.profiles_checked else 0.0  # measured on enough dof
    curves = one_curve_per_cell(tuned)
    noise = (None if isoflop.noise is None
             else np.array([isoflop.run_noise.get(c.run, isoflop.noise) for c in curves]))
    return fit_envelope(curves, noise=noise, ci=options.ci, seed=options.seed, excess_scatter=tau)


def hparams_step(points: Points, target: Target, options: FitOptions,
                 extra: list[tuple[float, float]]) -> dict:
    """LR and batch-size laws from every run, predicted at every ``--predict`` point and the target run."""
    return fit_hparam_laws(points, target.choice["params"], target.choice["tokens"], predict=extra,
                           n_boot=min(options.n_boot, 200), ci=options.ci, seed=options.seed)


def knobs_step(points: Points) -> dict:
    """Seed noise and each knob's effect against it, at the sizes tried."""
    return analyze_knobs(points)


def knob_effects_step(points: Points, target: Target, extra: list[tuple[float, float]],
                      options: FitOptions) -> KnobEffects:
    """Every knob's levels judged at the recommended run and at each ``--predict`` point."""
    choice = target.choice
    effects, by_knob, notes = knob_effects(points, (choice["params"], choice["tokens"]), extra,
                                           n_boot=min(options.n_boot, 200), ci=options.ci, seed=options.seed)
    # knob_effects lists the target first; the predictions list it last
    return KnobEffects(effects, by_knob[1:] + by_knob[:1], notes)


def downstream_step(
    points: Points, tuned: Points, uncertainty: Uncertainty, options: FitOptions
) -> dict | None:
    """For an accuracy metric, accuracy at every prediction point (the recommended run last) in two steps."""
    targets = [(p["params"], p["tokens"]) for p in uncertainty.predictions]
    return downstream_section(points, tuned, targets, chance=options.chance, n_boot=min(options.n_boot, 200),
                              ci=options.ci, seed=options.seed)


def backtest_step(tuned: Points, law: ParametricFit, options: FitOptions) -> dict:
    """Approach 3 fitted as ``law`` was (its Huber δ) without the largest size, scored on it."""
    return backtest(tuned, options.ci, n_boot=min(options.n_boot, 100), seed=options.seed, delta=law.delta)


def mixture_step(inputs, options: FitOptions, large_tokens: float | None, notes: list[str] | None = None
                 ) -> dict | None:
    """The mixture law and the weights recommended for the large run of ``large_tokens`` tokens.

    None when no run names mixture weights or the weights do not vary (an error with ``--mixture``).
    Without ``--mixture``, a mixture study the law cannot be fitted to (no loss per evaluation set, too
    few mixtures) is a line in ``notes`` instead of an error, so the rest of the fit still runs.
    """
    from scaling.fit.mixture import analyse_mixture, read_candidates
    from scaling.fit.mixture_data import load_mixture

    if not options.mixture and notes is not None:
        try:
            return mixture_step(inputs, options, large_tokens)
        except ScalingError as e:
            notes.append(f"no mixture law: {e} (--mixture makes this an error)")
            return None
    data = None if isinstance(inputs, Points) else load_mixture(
        inputs, exclude_diverged=options.exclude_diverged, domain_tokens=options.domain_tokens)
    if data is None or not data.varies():
        if options.mixture:
            raise ScalingError("--mixture: the runs' mixture weights do not vary (give runs of several "
                               "data.mixture weights, or a CSV with w_<domain> columns)")
        return None
    candidates = read_candidates(options.predict_mixtures, data.domains) if options.predict_mixtures else None
    return analyse_mixture(
        data,
        target=options.mixture_target,
        min_weight=options.mixture_min_weight,
        max_epochs=options.max_epochs,
        large_tokens=large_tokens,
        n_boot=min(options.n_boot, 200),
        ci=options.ci,
        seed=options.seed,
        candidates=candidates,
    )
