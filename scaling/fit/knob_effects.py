"""Knob effects at the target: predicted loss per level, differences, compute multipliers, crossovers
and a verdict per knob (the fit.json ``knob_effects`` block and each prediction's ``by_knob``).

Verdicts, at the large run's size and budget:

- ``carry``: the best level's lead over the runner-up has an interval that excludes 0, and it is
  also the level that did best at the largest size tried;
- ``reverses``: the lead is decided, but the level predicted best at the target is not the one that
  did best at the largest size tried (the effect changes sign with scale);
- ``undecided``: the interval of the lead includes 0; the large run keeps its base config's level.
"""

from __future__ import annotations

import math

import numpy as np

from scaling.errors import ScalingError
from scaling.fit.basics import format_interval
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.data import Points
from scaling.fit.knob_laws import (
    CROSSOVER_RANGE,
    HPARAM_KNOBS,
    KnobData,
    bootstrap_laws,
    choose_form,
    compute_multiplier,
    crossover_flops,
    fit_form,
    knob_data,
)
from scaling.fit.parametric import ParametricFit

VERDICTS = ("carry", "reverses", "undecided")


def multiplier_phrase(level: str, best: str, multiplier: dict) -> str:
    """``false needs x1.44 [0.85, 17.6] the compute of true``, or, where the level's law levels off above
    the best level's loss (no multiplier), that it never reaches it."""
    if multiplier.get("value") is None:
        return f"{level} never reaches {best}'s loss at any compute (its law levels off above it)"
    ci = format_interval((multiplier.get("lo"), multiplier.get("hi")))
    ci = "" if ci == "n/a" else f" {ci}"
    return f"{level} needs x{multiplier['value']:.3g}{ci} the compute of {best}"


def _interval(samples: dict[str, np.ndarray], key: str, ci: float) -> tuple[float | None, float | None]:
    iv = percentile_interval(samples.get(key, np.zeros(0)), ci)
    return (iv[0], iv[1]) if iv else (None, None)


def _best_at_largest_size(data: KnobData) -> tuple[str | None, float | None]:
    """The level with the lowest mean loss at the largest size (and its largest budget) all levels share."""
    sizes = data.sizes()
    for size in np.unique(sizes)[::-1]:
        at = sizes == size
        shared_tokens = set.intersection(*[set(np.round(np.log10(data.tokens[at & (data.level == i)]), 2))
                                          for i in range(len(data.levels))])
        if not shared_tokens:
            continue
        tok = max(shared_tokens)
        means = [
            float(np.mean(data.loss[at & (data.level == i) & (np.round(np.log10(data.tokens), 2) == tok)]))
            for i in range(len(data.levels))
        ]
        return data.levels[int(np.argmin(means))], float(size)
    return None, None


def _advice(lead: float, lo: float | None, hi: float | None, n_runs: int) -> str:
    """How much more evidence would settle an undecided knob, in plain words."""
    if lo is None or hi is None:
        return "too few bootstrap refits succeeded to give an interval; add runs at more sizes"
    half = (hi - lo) / 2
    factor = (half / lead) ** 2 if lead > 0 else math.inf
    if factor > 100:
        return (
            f"the levels are indistinguishable at the target (lead {lead:.3g}); a lead this small would need "
            f"over 100x the {n_runs} runs -- treat the knob as free and keep the base level"
        )
    return (f"about {max(2.0, factor):.0f}x the {n_runs} runs (more seeds at each size, or a size nearer the "
            f"target) would make the lead's interval exclude 0")


def judge_knob(data: KnobData, target: tuple[float, float], predict: list[tuple[float, float]], flops_range,
               *, n_boot: int = 200, ci: float = 0.95, seed: int = 0, form: str | None = None) -> dict:
    """Everything fit.json says about one knob at ``target`` (N, D) and at each ``predict`` point."""
    if form is None:
        full, choice = choose_form(data)
    else:
        full, choice = fit_form(data, form), {"errors": {}, "why": f"{form} laws asked for"}
    laws = full.laws
    n_t, d_t = target
    pred = np.array([law.predict(n_t, d_t) for law in laws])
    order = np.argsort(pred)
    best = int(order[0])
    points = [target, *predict]

    def quantities(fits: list[ParametricFit]) -> dict[str, float]:
        out = {}
        for j, (n, d) in enumerate(points):
            for i, law in enumerate(fits):
                out[f"loss/{j}/{i}"] = float(law.predict(n, d))
        goal = float(fits[best].predict(n_t, d_t))
        for i, law in enumerate(fits):
            out[f"diff/{i}"] = out[f"loss/0/{i}"] - goal
            out[f"mult/{i}"] = compute_multiplier(law, n_t, d_t, goal)
        return out

    samples = bootstrap_laws(data, full, quantities, n_boot=n_boot, seed=seed)
    sizes = data.sizes()
    levels, difference, multiplier, crossover = {}, {}, {}, {}
    for i, name in enumerate(data.levels):
        lo, hi = _interval(samples, f"loss/0/{i}", ci)
        sel = data.level == i
        levels[name] = {"loss": float(pred[i]), "lo": lo, "hi": hi, "n_runs": int(sel.sum()),
                        "sizes": sorted({float(s) for s in sizes[sel]})}
        lo, hi = _interval(samples, f"diff/{i}", ci)
        difference[name] = {"value": float(pred[i] - pred[best]), "lo": lo, "hi": hi}
        lo, hi = _interval(samples, f"mult/{i}", ci)
        multiplier[name] = {
            "value": compute_multiplier(laws[i], n_t, d_t, float(pred[best])),
            "lo": lo,
            "hi": hi,
        }
        crossover[name] = None if i == best else crossover_flops(laws[i], laws[best], n_t, d_t, flops_range)
    runner = data.levels[int(order[1])]
    lead = difference[runner]
    decided = lead["lo"] is not None and lead["lo"] > 0
    at_largest, largest = _best_at_largest_size(data)
    if not decided:
        verdict = "undecided"
        advice = _advice(lead["value"], lead["lo"], lead["hi"], len(data.loss))
    elif at_largest is not None and at_largest != data.levels[best]:
        verdict = "reverses"
        advice = (
            f"{at_largest} did best at the largest size tried (N={largest:.3g}), but {data.levels[best]} "
            f"is predicted best at the target: carry {data.levels[best]}"
        )
    else:
        verdict = "carry"
        advice = f"carry {data.levels[best]}: its lead over {runner} at the target excludes 0"
    by_point = [{name: {"loss": float(laws[i].predict(n, d)), **dict(zip(("lo", "hi"), _interval(
        samples, f"loss/{j}/{i}", ci), strict=True))} for i, name in enumerate(data.levels)}
        for j, (n, d) in enumerate(points)]
    return {
        "law": full.form,
        "law_choice": choice,
        "levels": levels,
        "best": data.levels[best],
        "runner_up": runner,
        "difference": difference,
        "multiplier": multiplier,
        "crossover_flops": crossover,
        "verdict": verdict,
        "advice": advice,
        "best_at_largest_size": at_largest,
        "largest_size": largest,
        "held_at": data.fixed,
        "n_boot": int(len(next(iter(samples.values()), []))),
        "laws": {
            name: {k: laws[i].to_dict()[k] for k in ("E", "A", "B", "alpha", "beta")}
            for i, name in enumerate(data.levels)
        },
        "_by_point": by_point,
        "_values": data.values,
    }


def knob_effects(
    points: Points,
    target: tuple[float, float],
    predict: list[tuple[float, float]] | None = None,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[dict, list[dict], list[str]]:
    """Judge every knob at ``target``: (fit.json ``knob_effects``, ``by_knob`` per prediction, notes).

    The first ``by_knob`` entry is the target's, then one per ``predict`` point. Knobs whose levels do
    not each cover two sizes are listed in the notes, not judged.
    """
    predict = predict or []
    flops = 6.0 * points.params * points.tokens
    flops_range = (float(flops.min()) / CROSSOVER_RANGE, float(flops.max()) * CROSSOVER_RANGE)
    effects: dict[str, dict] = {}
    by_knob: list[dict] = [{} for _ in range(len(predict) + 1)]
    notes = []
    for knob in sorted(points.knobs):
        if knob in HPARAM_KNOBS:
            continue
        data = knob_data(points, knob)
        if data is None:
            notes.append(f"knob {knob}: no two levels each have runs at two or more sizes; "
                         "judged only at the sizes tried")
            continue
        try:
            effect = judge_knob(data, target, predict, flops_range, n_boot=n_boot, ci=ci, seed=seed)
        except ScalingError as e:
            notes.append(f"knob {knob}: no law per level could be fitted ({e})")
            continue
        for j, entry in enumerate(effect.pop("_by_point")):
            by_knob[j][knob] = entry
        effect["values"] = effect.pop("_values")
        effects[knob] = effect
    return effects, by_knob, notes


def carried_levels(effects: dict) -> dict[str, object]:
    """Config key -> value the large run takes, for knobs whose verdict is ``carry`` or ``reverses``.

    Undecided knobs are left out (the large run keeps its base config's level), and so are knobs
    merged from several keys (``a + b``), which the report lists instead."""
    out = {}
    for knob, effect in effects.items():
        if effect["verdict"] in ("carry", "reverses") and " + " not in knob:
            out[knob] = effect["values"][effect["best"]]
    return out
