"""Seeds and knobs: is a knob's effect real, or the luck of the seed?

Runs that differ only in their seed form a *setting*; each gets mean ± std of the final loss. For each
swept knob, every cell (same size, tokens and other knob values) compares the knob's best level
against each other level with Welch's t-test (unequal variances). A level run with a single seed is
compared using the seed noise pooled over all replicated settings instead. p-values are Holm-adjusted
over a knob's comparisons, so a wide LR sweep does not find "real" effects by sheer number of tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scaling.fit.data import Points
from scaling.fit.parametric import huber_delta


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def seed_settings(points: Points) -> list[dict]:
    """Mean, std and count of the final loss per setting (rows identical up to the seed), and its optimizer
    steps (None where the batch size is unknown)."""
    groups: dict[tuple, list[int]] = {}
    keys = sorted(points.knobs)
    cells = points.cells()
    for i, cell in enumerate(cells):
        key = cell + tuple(repr(points.knobs[k][i]) for k in keys)
        groups.setdefault(key, []).append(i)
    out = []
    for idx in groups.values():
        loss = points.loss[idx]
        steps = points.tokens[idx] / points.batch_size[idx]  # NaN where the batch is unknown
        out.append(
            {
                "params": cells[idx[0]][0],
                "tokens": cells[idx[0]][1],
                "steps": float(np.median(steps)) if np.isfinite(steps).all() else None,
                "knobs": {k: points.knobs[k][idx[0]] for k in keys},
                "n": len(idx),
                "mean": float(loss.mean()),
                "std": float(loss.std(ddof=1)) if len(idx) > 1 else None,
                "losses": [float(x) for x in loss],
            }
        )
    return out


def _pooled_std(groups: list[np.ndarray]) -> tuple[float | None, int]:
    """Pooled within-group std and its degrees of freedom (None, 0 without a group of two or more)."""
    repeated = [g for g in groups if g.size > 1]
    dof = sum(g.size - 1 for g in repeated)
    if dof == 0:
        return None, 0
    return float(math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in repeated) / dof)), dof


def pooled_seed_noise(settings: list[dict]) -> tuple[float | None, int]:
    """Pooled within-setting std of the loss and its degrees of freedom (None, 0 without replicates)."""
    return _pooled_std([np.asarray(s["losses"], dtype=float) for s in settings])


NOISE_LAW_SPAN = 2.0  # repeated settings must span this factor in optimizer steps for a noise law in steps
NOISE_LAW_MIN_DOF = 6  # degrees of freedom (over all repeated settings) below which the pooled std stands
NOISE_LAW_EXPONENTS = np.round(np.arange(-1.5, 0.001, 0.01), 2)  # γ searched: noise never grows with steps


@dataclass(frozen=True)
class NoiseLaw:
    """σ(S) = sigma_ref · (S / steps_ref)^exponent: the seed noise of a run of S optimizer steps.

    A seed moves a loss more early in training, where it still falls steeply, so a study whose runs
    differ much in length measures its noise at two lengths or more and reads each run's from this law
    (clamped to the lengths measured: beyond them the nearest end's σ)."""

    sigma_ref: float
    steps_ref: float  # geometric mean of the repeated settings' steps, weighted by their degrees of freedom
    exponent: float  # in [-1.5, 0]
    steps_range: tuple[float, float]  # shortest and longest repeated setting
    dof: int

    def __call__(self, steps) -> np.ndarray:
        s = np.clip(np.asarray(steps, dtype=float), *self.steps_range)
        return self.sigma_ref * (s / self.steps_ref) ** self.exponent

    def to_dict(self) -> dict:
        return {"sigma_ref": self.sigma_ref, "steps_ref": self.steps_ref, "exponent": self.exponent,
                "steps_range": list(self.steps_range), "dof": self.dof}


def seed_noise_by_steps(settings: list[dict]) -> NoiseLaw | None:
    """The seed noise as a power law in optimizer steps (:class:`NoiseLaw`), fitted by maximum likelihood
    to the repeated settings' variances (each with its degrees of freedom); None when they span less
    than ``NOISE_LAW_SPAN`` in steps or have fewer than ``NOISE_LAW_MIN_DOF`` degrees of freedom (the
    pooled std then stands for every run)."""
    rows = [(s["steps"], float(np.var(s["losses"], ddof=1)), s["n"] - 1) for s in settings
            if s["n"] > 1 and s.get("steps")]
    if not rows:
        return None
    steps, var, dof = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
    if steps.max() < NOISE_LAW_SPAN * steps.min() or dof.sum() < NOISE_LAW_MIN_DOF or not (var > 0).any():
        return None
    ref = float(np.exp((dof * np.log(steps)).sum() / dof.sum()))
    best = None
    for g in NOISE_LAW_EXPONENTS:
        shape = (steps / ref) ** (2 * g)  # variance ∝ S^2γ; its scale has a closed-form optimum
        scale = float((dof * var / shape).sum() / dof.sum())
        nll = float((dof * (np.log(scale * shape) + var / (scale * shape))).sum())
        if best is None or nll < best[0]:
            best = (nll, float(g), scale)
    _, exponent, scale = best
    return NoiseLaw(math.sqrt(scale), ref, exponent, (float(steps.min()), float(steps.max())), int(dof.sum()))


def seed_noise_source(points: Points, dof: int) -> str:
    """Where a pooled seed spread comes from, in words: seeds, or (without a seed column) rows that
    merely share a setting, such as near-duplicate points of a published table."""
    what = "seed spread" if np.isfinite(points.seed).any() else "spread of rows sharing a setting (no seeds)"
    return f"{what} ({dof} degrees of freedom)"


def pooled_log_seed_noise(settings: list[dict]) -> float | None:
    """Pooled within-setting std of log loss (the relative run-to-run noise); None without replicates."""
    return _pooled_std([np.log(np.asarray(s["losses"], dtype=float)) for s in settings])[0]


def law_huber_delta(points: Points) -> float:
    """Huber δ of every approach-3 law fitted to ``points``: 1.345× their relative seed noise (repeated
    settings among all runs), or Hoffmann et al.'s 1e-3 without repeats (:func:`huber_delta`)."""
    return huber_delta(pooled_log_seed_noise(seed_settings(points)))


SELECTION_Z = 1.96  # a setting displaces the study's usual one only when better by this many standard errors
USUAL_MATCH = math.log(1.5)  # a searched cell's numeric setting within 1.5x of the usual value is that value


def one_setting_per_cell(points: Points, cells: dict, names: list[str], size_of=lambda key: key[0],
                         group_of=lambda key: None) -> list[int]:
    """The rows of one setting per cell. ``cells`` maps a cell key to {setting: rows}, a setting being the
    values of the knobs ``names``; ``size_of`` gives a key's model size and ``group_of`` what else
    separates usual settings (a knob's level, whose runs have learning rates of their own).

    The best setting (lowest mean loss over its seeds) wins, except against the study's usual setting,
    which it displaces only when better by more than ``SELECTION_Z`` standard errors of the difference
    with the pooled seed noise. The usual setting of a searched cell (one with several settings) is what
    the cells that ran one setting did (:func:`_usual_setting`); without such cells, or without repeated
    seeds to measure the noise, the best wins.

    The best of k noisy runs is lower than any one of them by chance (about 0.85σ for k = 3). When only
    some cells were searched (an LR grid at one budget) and the rest ran a rule, taking each searched
    cell's best lowers those cells against the rest and bends the law; a fully searched study keeps
    each cell's best.
    """
    noise, _ = pooled_seed_noise(seed_settings(points))
    plain: dict = {}  # group -> [(size, first row)] of the cells that ran one setting
    for key, settings in cells.items():
        if len(settings) == 1:
            plain.setdefault(group_of(key), []).append((size_of(key), next(iter(settings.values()))[0]))
    rows: list[int] = []
    for key, settings in cells.items():
        mean = {s: float(np.mean(points.loss[idx])) for s, idx in settings.items()}
        best = min(settings, key=mean.get)
        if noise and len(settings) > 1 and plain.get(group_of(key)):
            usual = _usual_setting(points, names, settings, size_of(key), plain[group_of(key)])
            if usual is not None and usual != best:
                se = noise * math.sqrt(1 / len(settings[usual]) + 1 / len(settings[best]))
                if mean[usual] - mean[best] < SELECTION_Z * se:
                    best = usual
        rows += settings[best]
    return sorted(rows)


def most_common(values: list) -> object:
    """The value that occurs most often in ``values`` (compared by repr; the first seen on a tie)."""
    counts: dict[str, list] = {}
    for v in values:
        counts.setdefault(repr(v), [0, v])[0] += 1
    return max(counts.values(), key=lambda c: c[0])[1]


def _positive_number(value) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def _usual_setting(points: Points, names: list[str], settings: dict, size: float, plain: list):
    """Which of a searched cell's ``settings`` the study would have run there, judged from the ``plain``
    cells (size, row) that ran one setting: a level as most of them had it; a positive number (a
    learning rate, a batch) as their power law in N gives it at ``size`` (their rule), within 1.5x;
    None when no setting matches."""
    expected = {}
    for k in names:
        values = [points.knobs[k][row] for _, row in plain]
        numeric = all(_positive_number(v) for v in values)
        if numeric and len({repr(v) for v in values}) > 1:
            x, y = np.log([n for n, _ in plain]), np.log(np.asarray(values, dtype=float))
            slope, icept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(y.mean()))
            expected[k] = float(np.exp(icept + slope * math.log(size)))
        else:
            expected[k] = repr(most_common(values))
    matches = []
    for setting, idx in settings.items():
        distance = 0.0
        for k in names:
            value, want = points.knobs[k][idx[0]], expected[k]
            if isinstance(want, float):
                off = abs(math.log(value / want)) if _positive_number(value) else math.inf
                distance += off if off < USUAL_MATCH else math.inf
            elif repr(value) != want:
                distance = math.inf
        if distance < math.inf:
            matches.append((distance, setting))
    return min(matches)[1] if matches else None


def compare(best: list[float], other: list[float], pooled_std: float | None, pooled_dof: int) -> dict:
    """A t-test of ``other`` against ``best``: against the pooled seed noise when that rests on more
    degrees of freedom than the two levels' own seeds (two seeds each give Welch's test about one
    degree of freedom, too few to call anything), else Welch's test; None without any replicates."""
    a, b = np.asarray(best), np.asarray(other)
    diff = float(b.mean() - a.mean())
    own_dof = a.size + b.size - 2
    if pooled_std and pooled_dof > own_dof:
        t = diff / (pooled_std * math.sqrt(1 / a.size + 1 / b.size))
        return {
            "diff": diff,
            "t": float(t),
            "p": float(2 * stats.t.sf(abs(t), pooled_dof)),
            "dof": float(pooled_dof),
            "test": "pooled seed noise",
        }
    if a.size >= 2 and b.size >= 2 and (a.std() > 0 or b.std() > 0):
        res = stats.ttest_ind(b, a, equal_var=False)
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
        return {
            "diff": diff,
            "t": float(res.statistic),
            "p": float(res.pvalue),
            "dof": float(dof),
            "test": "welch",
        }
    return {"diff": diff, "t": None, "p": None, "dof": None, "test": "none (no seed replicates)"}


def across_cells(cells, knob: str, min_cells: int = 3) -> dict | None:
    """For a two-level knob compared in ``min_cells`` or more cells: a one-sample t-test of the per-cell
    differences of the seed means (second level minus first). A small effect that no single cell can
    show beats seed noise when it points the same way everywhere. None otherwise."""
    levels = sorted(
        {repr(m["knobs"][knob]) for members in cells for m in members if m["knobs"][knob] is not None}
    )
    if len(levels) != 2:
        return None
    diffs = []
    for members in cells:
        means = {repr(m["knobs"][knob]): m["mean"] for m in members if m["knobs"][knob] is not None}
        if len(means) == 2:
            diffs.append(means[levels[1]] - means[levels[0]])
    if len(diffs) < min_cells:
        return None
    d = np.asarray(diffs)
    spread = d.std(ddof=1)
    t = float(d.mean() / (spread / math.sqrt(d.size))) if spread > 0 else math.copysign(math.inf, d.mean())
    p = float(2 * stats.t.sf(abs(t), d.size - 1)) if math.isfinite(t) else 0.0
    first, second = (_fmt(next(m["knobs"][knob] for ms in cells for m in ms if repr(m["knobs"][knob]) == lv))
                     for lv in levels)
    return {"levels": [first, second], "n_cells": int(d.size), "mean_diff": float(d.mean()), "t": t, "p": p}


def _holm(pvalues: list[float | None]) -> list[float | None]:
    known = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[i] = running
    return adjusted


def analyze_knobs(points: Points, *, alpha: float = 0.05) -> dict:
    """The fit.json ``knobs`` block: settings with seed statistics, seed noise, and per-knob verdicts."""
    settings = seed_settings(points)
    noise, dof = pooled_seed_noise(settings)
    knobs: dict[str, dict] = {}
    for knob in sorted(points.knobs):
        cells: dict[tuple, list[dict]] = {}
        for s in settings:
            other = tuple(repr(v) for k, v in sorted(s["knobs"].items()) if k != knob)
            cells.setdefault((s["params"], s["tokens"]) + other, []).append(s)
        comparisons = []
        for members in cells.values():
            levels = [m for m in members if m["knobs"][knob] is not None]
            if len(levels) < 2:
                continue
            best = min(levels, key=lambda m: m["mean"])
            for m in levels:
                if m is best:
                    continue
                c = compare(best["losses"], m["losses"], noise, dof)
                comparisons.append(
                    {
                        "params": best["params"],
                        "tokens": best["tokens"],
                        "best": _fmt(best["knobs"][knob]),
                        "other": _fmt(m["knobs"][knob]),
                        "n_best": best["n"],
                        "n_other": m["n"],
                        **c,
                    }
                )
        if not comparisons:
            continue
        for c, adj in zip(comparisons, _holm([c["p"] for c in comparisons]), strict=True):
            c["p_holm"] = adj
            c["verdict"] = "undetermined" if adj is None else ("real" if adj < alpha else "within seed noise")
        n_real = sum(c["verdict"] == "real" for c in comparisons)
        across = across_cells(cells.values(), knob)
        consistent = across is not None and across["p"] < alpha
        verdict = (
            "real"
            if n_real or consistent
            else "undetermined"
            if all(c["p"] is None for c in comparisons)
            else "within seed noise"
        )
        knobs[knob] = {"verdict": verdict, "n_comparisons": len(comparisons), "n_real": n_real,
                       "across_cells": across, "comparisons": comparisons}
    return {"alpha": alpha, "seed_std": noise, "seed_dof": dof,
            "settings": [{k: v for k, v in s.items() if k != "losses"} for s in settings], "knobs": knobs}
