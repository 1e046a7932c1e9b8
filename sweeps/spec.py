"""Sweep specs: a YAML file that names a base config and the knobs to turn, expanded into runs.

A spec is a mapping with these keys (every one optional except that something must produce runs)::

    name: lr-sweep                  # sweep name = W&B group; default: the file's stem
    base: [../run.yaml]             # run config file(s), relative to the spec file
    overrides: [model=s100k, train.tokens=2e5]   # applied to every run (list or mapping)
    grid: {optim.lr: [1e-3, 3e-3]}  # cartesian product over dotlist keys
    knobs: {model.activation: [swiglu, gelu]}   # every level crossed with the size generator's runs
    zip: {optim.lr: [1e-3, 3e-3], optim.beta2: [0.95, 0.99]}   # paired lists, same length
    random: {n: 8, seed: 0, params: {optim.lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}}}
    seeds: 3                        # or a list [0, 1, 2]; sets run.seed
    mixture: {domains: [data/a, data/b], step: 0.25}   # data.mixture weights (see sweeps.mixture)
    ladder: {models: [s100k, s330k], tokens: [1e6]}        # or tokens_per_param: [20]
    isoflop: {budgets: [1e12, 3e12], models: [s100k, s330k, s800k]}   # tokens_per_param_range: [5, 100]
    # ladder and isoflop: lr_exponent: -0.5, lr_reference_params: 1e6 scale each run's optim.lr by
    # (N / 1e6)^-0.5, N its non-embedding parameters
    cooldowns: {models: [s100k], tokens: [2e5, 4e5], decay_fraction: 0.2, kind: linear}
    hparams: {models: [s100k, s330k], tokens_per_param: [10, 40], fit: fit/fit.json}   # LR x batch grid
    launcher: {local: {workers: 2}, slurm: {partition: gpu, gpus_per_node: 1, ...}}

W&B's sweep YAML is accepted too (``method: grid|random``, ``parameters`` with ``value``,
``values``, ``min``/``max``, ``q`` and ``distribution``). Distributions mean what they mean in W&B:
``log_uniform`` takes ``min``/``max`` as natural-log exponents (values e^min..e^max), while
``log_uniform_values`` takes the values themselves; the ``q_`` forms round to a multiple of ``q``.
The parts are combined by cartesian product: generator (ladder / isoflop / cooldowns / hparams) × knobs ×
grid × zip × random × mixture × seeds. ``knobs`` is a grid meant for the fit's knob laws: it needs a ladder
or isoflop generator (each level gets the same sizes and budgets) and at least two levels per key, and it
leaves learning rate and batch size to the hyperparameter laws. The base ``overrides`` may be
overridden by any part; two parts that set the same key conflict and are refused, and so does a part
that sets a key the generator sets (``model`` and ``train.tokens``; for cooldowns also the schedule and
branch keys). A key given twice in one mapping of the file is refused too.
"""

from __future__ import annotations

import difflib
import math
import random as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaling.errors import ScalingError
from sweeps.hparam_grid import SECTION_KEYS as HPARAM_SECTION_KEYS
from sweeps.hparam_grid import SETS_KEYS as HPARAM_SETS_KEYS

SPEC_KEYS = (
    "name",
    "base",
    "overrides",
    "knobs",
    "grid",
    "zip",
    "random",
    "seeds",
    "mixture",
    "ladder",
    "isoflop",
    "hparams",
    "cooldowns",
    "launcher",
    "method",
    "parameters",
    "program",
    "metric",
    "description",
    "project",
    "entity",
    "command",
    "early_terminate",
    "run_cap",
)
_WANDB_IGNORED = ("program", "metric", "description", "project", "entity", "command", "early_terminate",
                  "run_cap")
GENERATORS = ("ladder", "isoflop", "cooldowns", "hparams")
_SECTION_KEYS = {
    "random": ("n", "seed", "params"),
    "ladder": ("models", "tokens", "tokens_per_param", "count", "lr_exponent", "lr_reference_params"),
    "isoflop": ("budgets", "models", "tokens_per_param_range", "count", "lr_exponent", "lr_reference_params"),
    "cooldowns": ("models", "tokens", "decay_fraction", "kind", "decay_shape"),
    "launcher": ("local", "slurm"),
    "hparams": HPARAM_SECTION_KEYS,
}
# run-config keys each generator sets on every run it makes; no other part may set them too
_GENERATOR_KEYS = {
    "ladder": ("model", "train.tokens"),
    "isoflop": ("model", "train.tokens"),
    "cooldowns": ("model", "train.tokens", "schedule.kind", "train.checkpoint_at_tokens", "run.branch_from",
                  "run.branch_at_tokens"),
    "hparams": HPARAM_SETS_KEYS,
}
DISTRIBUTIONS = ("uniform", "log_uniform", "log_uniform_values", "int_uniform", "q_uniform", "q_log_uniform",
                 "q_log_uniform_values", "choice", "categorical", "constant")
_MAX_EXPONENT = 700.0  # math.exp overflows a float just above 709
MAX_RUNS = 10_000  # a spec that expands to more runs is refused unless the caller raises the limit


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1


def count_runs(body: dict) -> int:
    """How many runs a spec's parts make, counted from the lists without expanding them.

    Exact for grid, zip, random, seeds and the generators, before duplicates (points that resolve
    to the same run) are merged, so the count is an upper bound of the plan's size.
    """
    size = 1
    for part in ("grid", "knobs"):
        section = body.get(part)
        for values in section.values() if isinstance(section, dict) else ():
            size *= _length(values)
    if isinstance(body.get("zip"), dict) and body["zip"]:
        size *= max(_length(v) for v in body["zip"].values())
    if isinstance(body.get("random"), dict):
        size *= max(1, int(body["random"].get("n", 1) or 1))
    seeds = body.get("seeds")
    if seeds is not None:
        size *= (
            seeds if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0 else _length(seeds)
        )
    for kind in GENERATORS:
        section = body.get(kind)
        if not isinstance(section, dict):
            continue
        models = _length(section.get("models"))
        if kind == "ladder":
            size *= models * _length(section.get("tokens", section.get("tokens_per_param")))
        elif kind == "isoflop":
            size *= models * _length(section.get("budgets"))
        else:
            size *= models * (1 + _length(section.get("tokens")))
    return size


@dataclass
class Spec:
    """A parsed sweep spec (the expansion into runs is :func:`sweeps.plan.plan_sweep`)."""

    name: str
    base: list[str] = field(default_factory=list)  # absolute paths of the base config files
    overrides: dict[str, Any] = field(default_factory=dict)  # applied to every run
    parts: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (part name, points)
    generator: tuple[str, dict] | None = None  # ("ladder" | "isoflop" | "cooldowns", section)
    launcher: dict[str, dict] = field(default_factory=dict)  # launcher name -> settings
    raw: dict = field(default_factory=dict)  # the spec as read (written to the sweep dir)


def _unknown(where: str, key: str, valid: tuple[str, ...] | list[str]) -> ScalingError:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; valid keys: {', '.join(valid)}"
    return ScalingError(f"{where}: unknown key {key!r}{hint}")


def _check_keys(where: str, section: Any, valid: tuple[str, ...]) -> dict:
    if not isinstance(section, dict):
        raise ScalingError(f"{where} must be a mapping with keys {', '.join(valid)}")
    for key in section:
        if key not in valid:
            raise _unknown(where, str(key), valid)
    return section


def check_config_key(where: str, key: str) -> None:
    """Refuse a dotlist key that is not in the run-config schema (with the nearest valid key)."""
    from scaling.config_loading import GROUPS, all_keys

    valid = all_keys()
    if key in valid or key in GROUPS:
        return
    close = difflib.get_close_matches(key, valid + list(GROUPS), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; see `scaling config show` for the valid keys"
    raise ScalingError(f"{where}: unknown config key {key!r}{hint}")


def _as_list(where: str, value: Any, allow_empty: bool = False) -> list:
    values = value if isinstance(value, list) else [value]
    if not values and not allow_empty:
        raise ScalingError(f"{where} is empty; give at least one value")
    return values


def _overrides(where: str, value: Any) -> dict[str, Any]:
    """A list of ``key=value`` strings or a mapping, as an ordered mapping without duplicates."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ScalingError(f"{where}: {item!r} is not key=value (e.g. optim.lr=3e-4)")
            key, val = item.split("=", 1)
            items.append((key.strip(), yaml.safe_load(val) if val.strip() else val))
    else:
        raise ScalingError(f"{where} must be a list of key=value or a mapping")
    out: dict[str, Any] = {}
    for key, val in items:
        check_config_key(where, key)
        if key in out and out[key] != val:
            raise ScalingError(f"conflicting overrides: {key} is set to {out[key]!r} and {val!r} in {where}")
        out[key] = val
    return out


def generator_keys(kind: str, section: dict) -> tuple[str, ...]:
    """The run-config keys the generator ``kind`` sets on every run (so grid, zip, random, seeds may not)."""
    optional = ("schedule.decay_shape",) if kind == "cooldowns" and "decay_shape" in section else ()
    return _GENERATOR_KEYS[kind] + optional


def _grid(section: Any, where: str = "grid") -> list[dict]:
    points: list[dict] = [{}]
    for key, values in _check_keys_any(where, section).items():
        check_config_key(where, key)
        points = [{**p, key: v} for p in points for v in _as_list(f"{where}.{key}", values)]
    return points


# keys the hyperparameter laws judge: a knob study that swept them would judge them at one size only
_HPARAM_KEYS = ("optim.lr", "train.micro_batch_size", "train.grad_accum", "train.seq_len")


def _knobs(section: Any) -> list[dict]:
    """Every combination of the knobs' levels (a grid of at least two levels per key, no LR or batch)."""
    for key, values in _check_keys_any("knobs", section).items():
        if key in _HPARAM_KEYS:
            raise ScalingError(
                f"knobs.{key}: learning rate and batch size are judged by the hyperparameter laws; "
                "sweep them under grid: instead"
            )
        if len(_as_list(f"knobs.{key}", values)) < 2:
            raise ScalingError(f"knobs.{key}: a knob needs at least two levels to compare")
    return _grid(section, "knobs")


def _check_keys_any(where: str, section: Any) -> dict:
    if not isinstance(section, dict) or not section:
        raise ScalingError(f"{where} is empty; give at least one key with a list of values")
    return section


def _zip(section: Any) -> list[dict]:
    lists = {}
    for key, values in _check_keys_any("zip", section).items():
        check_config_key("zip", key)
        lists[key] = _as_list(f"zip.{key}", values)
    lengths = {len(v) for v in lists.values()}
    if len(lengths) != 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in lists.items())
        raise ScalingError(f"zip lists must have the same length ({sizes})")
    return [dict(zip(lists, values, strict=True)) for values in zip(*lists.values(), strict=True)]


def _sample(key: str, dist: dict, rng: _random.Random) -> Any:
    kind = dist.get("distribution")
    if "value" in dist:
        return dist["value"]
    if "values" in dist:
        values = _as_list(f"{key}.values", dist["values"])
        if kind in (None, "choice", "categorical"):
            return rng.choice(values)
    if kind is None:
        kind = (
            "int_uniform"
            if isinstance(dist.get("min"), int) and isinstance(dist.get("max"), int)
            else "uniform"
        )
    if kind not in DISTRIBUTIONS:
        raise _unknown(f"random {key}.distribution", kind, DISTRIBUTIONS)
    if "min" not in dist or "max" not in dist:
        raise ScalingError(f"random {key}: distribution {kind} needs min and max")
    lo, hi = float(dist["min"]), float(dist["max"])
    if not lo <= hi:
        raise ScalingError(f"random {key}: min {lo} is larger than max {hi}")
    if kind == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if kind in ("uniform", "q_uniform"):
        x = rng.uniform(lo, hi)
    elif kind in ("log_uniform", "q_log_uniform"):  # as in W&B: min and max are natural-log exponents
        if hi > _MAX_EXPONENT:
            raise ScalingError(f"random {key}: {kind} takes min and max as natural-log exponents (values "
                               f"e^min..e^max) and e^{hi:g} is too large; for min and max as the values use "
                               f"{kind}_values")
        x = math.exp(rng.uniform(lo, hi))
    elif kind in ("log_uniform_values", "q_log_uniform_values"):  # min and max are the values
        if lo <= 0:
            raise ScalingError(f"random {key}: {kind} needs min > 0, got {lo:g}")
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        raise ScalingError(f"random {key}: distribution {kind} needs values")
    if not kind.startswith("q_"):
        return x
    q = float(dist.get("q", 1))
    if q <= 0:
        raise ScalingError(f"random {key}: {kind} needs q > 0, got {q:g}")
    return round(x / q) * q


def _random_points(section: Any) -> list[dict]:
    section = _check_keys("random", section, _SECTION_KEYS["random"])
    n = int(section.get("n", 0))
    params = section.get("params") or {}
    if n < 1 or not params:
        raise ScalingError("random needs n >= 1 and at least one entry in params")
    for key, dist in params.items():
        check_config_key("random.params", key)
        if not isinstance(dist, dict):
            raise ScalingError(f"random.params.{key} must be a mapping (distribution, min, max or values)")
    rng = _random.Random(int(section.get("seed", 0)))
    return [{key: _sample(key, dist, rng) for key, dist in params.items()} for _ in range(n)]


def _seeds(value: Any) -> list[dict]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ScalingError(f"seeds={value} must be a positive count or a list of seeds")
        seeds = list(range(value))
    else:
        seeds = _as_list("seeds", value)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise ScalingError(f"seeds: {bad[0]!r} is not a whole number; give a count (seeds: 3) or a list of "
                           "integers (seeds: [0, 1])")
    return [{"run.seed": s} for s in seeds]


def _from_wandb(raw: dict) -> dict:
    """Translate W&B's ``method`` + ``parameters`` into our grid or random part."""
    method = raw.get("method", "grid")
    params = raw.get("parameters") or {}
    if method not in ("grid", "random"):
        raise ScalingError(f"W&B sweep method {method!r} is not supported; use grid or random")
    if not isinstance(params, dict) or not params:
        raise ScalingError("parameters is empty; give at least one parameter")
    fixed = {k: v["value"] for k, v in params.items() if isinstance(v, dict) and "value" in v}
    swept = {k: v for k, v in params.items() if k not in fixed}
    for key, dist in swept.items():
        if not isinstance(dist, dict):
            raise ScalingError(f"parameters.{key} must be a mapping (value, values, min/max, distribution)")
        for k in dist:
            if k not in ("value", "values", "min", "max", "distribution", "q"):
                raise _unknown(f"parameters.{key}", k, ("value", "values", "min", "max", "distribution", "q"))
    out: dict[str, Any] = {"overrides": fixed}
    if method == "grid":
        for key, dist in swept.items():
            if "values" not in dist:
                raise ScalingError(
                    f"parameters.{key}: a grid sweep needs values (min/max only work with random)"
                )
        out["grid"] = {k: v["values"] for k, v in swept.items()}
    else:
        out["random"] = {"n": raw.get("run_cap", 10), "seed": 0, "params": swept}
    return out


def parse_spec(raw: Any, source: str = "<spec>", base_dir: str | Path = ".",
               max_runs: int | None = MAX_RUNS) -> Spec:
    """Check a spec mapping and turn it into a :class:`Spec`; every problem is one ScalingError line.

    A spec that would make more than ``max_runs`` runs (None: no limit) is refused before it is expanded.
    """
    if not isinstance(raw, dict):
        raise ScalingError(f"{source}: a sweep spec must be a mapping (see configs/sweeps/ for examples)")
    for key in raw:
        if key not in SPEC_KEYS:
            raise _unknown(source, str(key), [k for k in SPEC_KEYS if k not in _WANDB_IGNORED])
    body = dict(raw)
    if "parameters" in body:
        if any(k in body for k in ("grid", "random")):
            raise ScalingError(f"{source}: use either W&B parameters or grid/random, not both")
        translated = _from_wandb(body)
        body["overrides"] = {**_overrides("overrides", body.get("overrides")), **translated.pop("overrides")}
        body.update(translated)
    size = count_runs(body)
    if max_runs is not None and size > max_runs:
        raise ScalingError(
            f"{source} expands to {size:,} runs, more than the limit of {max_runs:,}; shrink the "
            f"spec, or raise the limit with --max-runs {size}"
        )
    base = [str((Path(base_dir) / p).resolve()) for p in _as_list("base", body.get("base") or [], True)]
    for path in base:
        if not Path(path).is_file():
            raise ScalingError(f"{source}: base config {path!r} not found")
    spec = Spec(name=str(body.get("name") or Path(source).stem), base=base,
                overrides=_overrides("overrides", body.get("overrides")), raw=raw)
    generators = [g for g in GENERATORS if g in body]
    if len(generators) > 1:
        raise ScalingError(f"{source}: use one of {', '.join(GENERATORS)} per sweep, "
                           f"not {' and '.join(generators)}")
    if generators:
        spec.generator = (generators[0], _check_keys(generators[0], body[generators[0]],
                                                     _SECTION_KEYS[generators[0]]))
        if spec.generator[0] == "hparams" and spec.generator[1].get("fit"):  # a fit.json next to the spec
            fit = str((Path(base_dir) / str(spec.generator[1]["fit"])).resolve())
            spec.generator = ("hparams", {**spec.generator[1], "fit": fit})
    if "knobs" in body and (spec.generator is None or spec.generator[0] not in ("ladder", "isoflop")):
        raise ScalingError(
            f"{source}: knobs: needs a ladder: or isoflop: generator, so that every level gets the "
            "same sizes and budgets"
        )
    from sweeps.mixture import mixture_points

    expanders = {"knobs": _knobs, "grid": _grid, "zip": _zip, "random": _random_points,
                 "mixture": lambda section: mixture_points(section, base_dir), "seeds": _seeds}
    for part, expand in expanders.items():
        if part in body:
            spec.parts.append((part, expand(body[part])))
    setters: dict[str, str] = {}
    if spec.generator is not None:
        setters = dict.fromkeys(generator_keys(*spec.generator), spec.generator[0])
    for part, points in spec.parts:
        for key in dict.fromkeys(k for p in points for k in p):
            if key in setters:
                raise ScalingError(f"conflicting overrides: {key} is set by both {setters[key]} and {part}")
            setters[key] = part
    launcher = body.get("launcher") or {}
    spec.launcher = _check_keys("launcher", launcher, _SECTION_KEYS["launcher"]) if launcher else {}
    return spec


def load_spec(path: str | Path, max_runs: int | None = MAX_RUNS) -> Spec:
    """Read and check a sweep spec YAML file (a key given twice in one mapping is refused by read_yaml)."""
    from scaling.config_loading import read_yaml

    p = Path(path)
    raw = read_yaml(p, "sweep spec", "pass a YAML file (examples in configs/sweeps/)")
    return parse_spec(raw, source=str(p), base_dir=p.parent, max_runs=max_runs)
