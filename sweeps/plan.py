"""Expanding a spec into planned runs: resolved configs, stable ids, parameters, tokens and FLOPs.

Every planned run is a fully resolved and validated run config, so a bad key or an inconsistent
value fails here, before anything is launched. Resolving is the slow part of planning (each full
omegaconf merge copies the whole config), so :class:`Resolver` builds the base config once per
combination of presets and sets each run's swept values on it in place, then reads it back as a
plain tree; anything it cannot set that way takes the full, slow path with its exact error message.
Its id is :func:`scaling.config_loading.run_id`,
the hash of everything that changes the result, so the same run planned twice (or by another
launcher) gets the same id and the same run dir. The scaling generators size their runs with the
trainer's own counting (:mod:`scaling.counting`): ``isoflop`` tokens are ``C / flops_per_token``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.counting import global_batch_tokens
from scaling.errors import ScalingError
from sweeps.hparam_grid import hparam_points
from sweeps.spec import Spec

# keys a generator sets that make poor tags (paths, lists) or repeat another tag
_UNTAGGED = ("run.branch_from", "train.checkpoint_at_tokens", "schedule.kind")


@dataclass
class PlannedRun:
    """One run of a sweep, resolved."""

    run_id: str  # hash of the resolved config (the run dir's name)
    overrides: dict[str, Any]  # everything applied on top of the base files, in order
    swept: dict[str, Any]  # the part of ``overrides`` that varies across the sweep (tags, plan table)
    params: int  # total parameters
    non_embedding: int  # non-embedding parameters
    tokens: int  # training tokens (for a branch: its total, trunk part included)
    flops: float  # training FLOPs of this run alone (a branch counts only its own tokens)
    role: str = "run"  # run | trunk | branch
    depends_on: str | None = None  # run id that must finish first (a branch's trunk)
    tree: dict = field(default_factory=dict, repr=False)  # the resolved config as a plain nested dict

    @property
    def config(self):
        """The resolved config as a DictConfig (made on each access; plans keep only the plain tree)."""
        from omegaconf import OmegaConf

        return OmegaConf.create(self.tree)

    @property
    def name(self) -> str:
        """The run's display name (``run.name``)."""
        return str(self.tree.get("run", {}).get("name") or self.run_id)

    @property
    def tags(self) -> list[str]:
        """W&B tags: one ``key=value`` per swept key (W&B allows 64 characters per tag)."""
        return [
            f"{_short(k)}={_fmt(v, short=True)}"[:64] for k, v in self.swept.items() if k not in _UNTAGGED
        ]

    def to_json(self) -> dict:
        """The plan entry as written to ``plan.json`` (no config object)."""
        return {"run_id": self.run_id, "name": self.name, "role": self.role, "depends_on": self.depends_on,
                "overrides": self.overrides, "swept": self.swept, "tags": self.tags, "params": self.params,
                "non_embedding": self.non_embedding, "tokens": self.tokens, "flops": self.flops}


def _short(key: str) -> str:
    return {"run.seed": "seed"}.get(key, key)


def _fmt(value: Any, short: bool = False) -> str:
    """A value as an omegaconf dotlist item understands it, exactly (or rounded, ``short``, for tags)."""
    if isinstance(value, float):
        return f"{value:.4g}" if short else repr(value)
    if isinstance(value, (list, tuple, dict, bool)) or value is None:
        return json.dumps(value)
    return str(value)


def dotlist(overrides: dict[str, Any]) -> list[str]:
    """``{"optim.lr": 1e-3}`` → ``["optim.lr=0.001"]``, in the order given."""
    return [f"{k}={_fmt(v)}" for k, v in overrides.items()]


def resolve_run_config(spec: Spec, overrides: dict[str, Any]):
    """The validated config of one run: the spec's base files plus ``overrides`` (errors name the run)."""
    from scaling.config_loading import load_config

    try:
        return load_config(spec.base, dotlist(overrides))
    except ScalingError as e:
        swept = " ".join(dotlist(overrides)) or "(base)"
        raise ScalingError(f"{e} (in the run {swept})") from None


class Resolver:
    """Resolves many runs of one spec fast.

    The base config is built once per combination of presets (a full omegaconf resolve); each
    distinct ``(key, value)`` is typed once by setting it on that base through omegaconf (which
    checks and converts it like the full path would); a run is then a copy of the base's plain
    tree with its typed values set, validated by the same :func:`scaling.config.validate`.
    Anything that fails on this path is resolved the full, slow way, which raises the exact error.
    """

    def __init__(self, spec: Spec):
        from scaling.config_loading import GROUPS

        self.spec, self.groups = spec, GROUPS
        self.bases: dict[tuple, tuple[Any, dict]] = {}  # presets -> (DictConfig, its plain tree)
        self.typed: dict[tuple, Any] = {}  # (presets, key, value as dotlist text) -> typed plain value

    def tree(self, overrides: dict[str, Any]) -> dict:
        """The validated config of one run as a plain tree (errors name the run, as
        :func:`resolve_run_config`)."""
        from scaling.config import validate

        presets = tuple((k, v) for k, v in overrides.items() if k in self.groups)
        try:
            base = self._base(presets)
            changed = [k for k in overrides if k not in self.groups
                       and (k not in self.spec.overrides or overrides[k] != self.spec.overrides[k])]
            if any(_needs_full_load(k, overrides[k]) for k in changed):
                raise ScalingError("resolve the full way")
            tree = _copy_tree(base[1])
            for key in changed:
                *parents, leaf = key.split(".")
                _select(tree, ".".join(parents))[leaf] = self._typed(presets, base, key, overrides[key])
            validate(_namespace(tree))
            return tree
        except ScalingError:
            from scaling.config_loading import to_dict

            return to_dict(resolve_run_config(self.spec, overrides))  # raises the exact error, or resolves

    def _base(self, presets: tuple) -> tuple[Any, dict]:
        from scaling.config_loading import to_dict

        if presets not in self.bases:
            cfg = resolve_run_config(self.spec, {**self.spec.overrides, **dict(presets)})
            self.bases[presets] = (cfg, to_dict(cfg))
        return self.bases[presets]

    def _typed(self, presets: tuple, base: tuple[Any, dict], key: str, value: Any) -> Any:
        """``value`` as the schema types ``key`` (set once on the base config through omegaconf)."""
        from omegaconf import DictConfig, ListConfig, OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        text = dotlist({key: value})[0]
        cache_key = (presets, text)
        if cache_key not in self.typed:
            cfg, pristine = base
            try:
                OmegaConf.update(
                    cfg,
                    key,
                    _select(OmegaConf.to_container(OmegaConf.from_dotlist([text])), key),
                    merge=False,
                )
                typed = OmegaConf.select(cfg, key)
                if isinstance(typed, (DictConfig, ListConfig)):
                    typed = OmegaConf.to_container(typed, resolve=True)
            except (OmegaConfBaseException, ValueError, TypeError, KeyError) as e:
                raise ScalingError(str(e)) from None  # the caller takes the full path for the exact message
            finally:
                OmegaConf.update(cfg, key, _select(pristine, key), merge=False)
            self.typed[cache_key] = typed
        return self.typed[cache_key]


def _needs_full_load(key: str, value: Any) -> bool:
    """Overrides the fast path cannot type alone: the data (``model.vocab_size: auto`` follows its
    tokenizer) and interpolations (checked for resolvers when a config is loaded)."""
    return key.startswith("data.") or key == "model.vocab_size" or "${" in str(value)


def _copy_tree(tree: Any) -> Any:
    """A copy of a plain config tree (dicts, lists, scalars): several times faster than ``copy.deepcopy``."""
    if isinstance(tree, dict):
        return {k: _copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_copy_tree(v) for v in tree]
    return tree


def _namespace(tree: Any) -> Any:
    """A plain tree with attribute access (what :func:`scaling.config.validate` and the counting read)."""
    from types import SimpleNamespace

    if isinstance(tree, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in tree.items()})
    if isinstance(tree, list):
        return [_namespace(v) for v in tree]
    return tree


def _select(tree: dict, key: str) -> Any:
    for part in key.split(".") if key else ():
        tree = tree[part]
    return tree


def _numbers(tree: dict) -> tuple[int, int, int, float]:
    from scaling.counting import count_params, flops_per_token

    model = _namespace(tree["model"])
    count = count_params(model)
    tokens = int(round(tree["train"]["tokens"]))
    return count.total, count.non_embedding, tokens, flops_per_token(model, tree["train"]["seq_len"])


def _models(where: str, section: dict) -> list[str]:
    models = section.get("models")
    if not isinstance(models, list) or not models:
        raise ScalingError(f"{where}.models is empty; list model presets such as s100k, s330k")
    return [str(m) for m in models]


def _floats(where: str, values: Any) -> list[float]:
    values = values if isinstance(values, list) else [values]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ScalingError(f"{where} must be numbers, got {values!r}") from None
    if not out or any(v <= 0 for v in out):
        raise ScalingError(f"{where} must be a non-empty list of positive numbers")
    return out


def _param_count(section: dict, where: str) -> str:
    count = section.get("count", "non_embedding")
    if count not in ("total", "non_embedding"):
        raise ScalingError(f"{where}.count={count!r} is not one of total, non_embedding")
    return count


_LR_SCALING_KEYS = ("lr_exponent", "lr_reference_params")  # a ladder or isoflop section's size-scaled LR


def _ladder_points(spec: Spec, section: dict, point: dict, resolver: Resolver) -> list[dict]:
    models = _models("ladder", section)
    if ("tokens" in section) == ("tokens_per_param" in section):
        raise ScalingError("ladder needs exactly one of tokens (absolute) or tokens_per_param (multiples)")
    count = _param_count(section, "ladder")
    out = []
    # the sizes are resolved only when the tokens or the learning rate follow them
    sized = any(key in section for key in ("tokens_per_param", *_LR_SCALING_KEYS))
    for model in models:
        cfg = resolver.tree({**spec.overrides, **point, "model": model}) if sized else None
        total, non_emb = _numbers(cfg)[:2] if cfg else (0, 0)
        if "tokens" in section:
            budgets = _floats("ladder.tokens", section["tokens"])
        else:
            params = total if count == "total" else non_emb
            budgets = [m * params for m in _floats("ladder.tokens_per_param", section["tokens_per_param"])]
        lr = _size_scaled_lr("ladder", section, cfg, non_emb)
        out += [{"model": model, "train.tokens": float(round(t)), **lr} for t in budgets]
    return out


def _size_scaled_lr(where: str, section: dict, cfg: dict | None, non_embedding: int) -> dict:
    """``{"optim.lr": ...}`` when the section scales the learning rate with size, else ``{}``: the run's
    ``optim.lr`` (from the overrides or a grid) times (N / ``lr_reference_params``)^``lr_exponent``, N the
    non-embedding parameters, so each size of a ladder trains near its own optimum."""
    if "lr_exponent" not in section:
        if "lr_reference_params" in section:
            raise ScalingError(f"{where}.lr_reference_params needs {where}.lr_exponent")
        return {}
    try:
        exponent = float(section["lr_exponent"])
    except (TypeError, ValueError):
        raise ScalingError(f"{where}.lr_exponent must be a number, got {section['lr_exponent']!r}") from None
    (reference,) = _floats(f"{where}.lr_reference_params", section.get("lr_reference_params"))
    return {"optim.lr": float(f"{cfg['optim']['lr'] * (non_embedding / reference) ** exponent:.4g}")}


def _tokens_per_param_range(section: dict) -> tuple[float, float] | None:
    """``isoflop.tokens_per_param_range`` as (low, high), or None when the section has none."""
    if "tokens_per_param_range" not in section:
        return None
    bounds = _floats("isoflop.tokens_per_param_range", section["tokens_per_param_range"])
    if len(bounds) != 2 or bounds[0] >= bounds[1]:
        raise ScalingError(f"isoflop.tokens_per_param_range must be [low, high] with low < high, got "
                           f"{section['tokens_per_param_range']!r}")
    return bounds[0], bounds[1]


def _isoflop_points(spec: Spec, section: dict, point: dict, resolver: Resolver) -> list[dict]:
    """Every budget × model; with ``tokens_per_param_range``, only the sizes whose tokens per parameter
    at that budget lie in the range (so each budget keeps the sizes around its own optimum)."""
    window, count = _tokens_per_param_range(section), _param_count(section, "isoflop")
    out = []
    for budget in _floats("isoflop.budgets", section.get("budgets")):
        kept = []
        for model in _models("isoflop", section):
            cfg = resolver.tree({**spec.overrides, **point, "model": model})
            total, non_emb, _, flops_per_token = _numbers(cfg)
            tokens = budget / flops_per_token
            ratio = tokens / (total if count == "total" else non_emb)
            if window and not window[0] <= ratio <= window[1]:
                continue
            batch = global_batch_tokens(_namespace(cfg))
            if tokens < batch:
                raise ScalingError(
                    f"isoflop budget {budget:.3g} gives {model} {tokens:.0f} tokens, less than "
                    f"one batch ({batch}); raise the budget or drop the model"
                )
            kept.append({"model": model, "train.tokens": float(round(tokens)),
                         **_size_scaled_lr("isoflop", section, cfg, non_emb)})
        if window and len(kept) < 3:
            raise ScalingError(f"isoflop budget {budget:.3g} keeps {len(kept)} size(s) within "
                               f"tokens_per_param_range {list(window)}; a budget needs 3 or more: widen the "
                               "range or add sizes")
        out += kept
    return out


def _hparam_points(spec: Spec, section: dict, point: dict, resolver: Resolver) -> list[dict]:
    def resolve(extra: dict):  # the centre of each cell's grid comes from the fully loaded config
        return resolve_run_config(spec, {**spec.overrides, **point, **extra})

    return hparam_points(section, resolve)


def _cooldown_runs(
    spec: Spec, section: dict, point: dict, runs_dir: Path, resolver: Resolver
) -> list[PlannedRun]:
    """Per model: a constant-LR trunk with checkpoints at the branch points, and one decay branch each."""
    decay = float(section.get("decay_fraction", 0.2))
    if not 0 < decay < 1:
        raise ScalingError(f"cooldowns.decay_fraction={decay} must be in (0, 1)")
    finals = sorted(_floats("cooldowns.tokens", section.get("tokens")))
    runs = []
    for model in _models("cooldowns", section):
        probe = resolver.tree({**spec.overrides, **point, "model": model})
        batch = global_batch_tokens(_namespace(probe))
        starts = [max(1, round(t * (1 - decay) / batch)) * batch for t in finals]
        if any(t - s < batch for t, s in zip(finals, starts, strict=True)):
            raise ScalingError(f"cooldowns: a decay of {decay} of {finals[0]:.0f} tokens is shorter than one "
                               f"batch ({batch} tokens); raise cooldowns.tokens or decay_fraction")
        trunk_swept = {
            **point,
            "model": model,
            "schedule.kind": "constant",
            "train.tokens": float(max(starts)),
            "train.checkpoint_at_tokens": [float(s) for s in starts],
        }
        trunk = _planned(spec, resolver, trunk_swept, role="trunk")
        runs.append(trunk)
        for final, start in zip(finals, starts, strict=True):
            swept = {**point, "model": model, "schedule.kind": section.get("kind", "linear"),
                     "train.tokens": float(final), "run.branch_from": str(runs_dir / trunk.run_id),
                     "run.branch_at_tokens": float(start)}
            if "decay_shape" in section:
                swept["schedule.decay_shape"] = section["decay_shape"]
            branch = _planned(spec, resolver, swept, role="branch", depends_on=trunk.run_id)
            branch.flops = branch.flops * (final - start) / final
            runs.append(branch)
    return runs


_NAME_KEYS = {"optim.lr": "lr", "train.tokens": "tok", "optim.weight_decay": "wd"}  # short names in run names


def _compact(value: Any) -> str:
    """``0.006`` → ``6e-3``, ``100000.0`` → ``1e5``, ``0.1`` → ``0.1``: short numbers for run names."""
    if isinstance(value, float) and value and not 1e-2 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return _fmt(value, short=True)


def run_name(tree: dict, swept: dict, role: str = "run") -> str:
    """A readable default ``run.name``: the model, the role of a trunk or branch, the swept values, the seed.

    E.g. ``s330k lr=6e-3 tok=1e5 s1``; W&B shows it as the display name (the W&B id stays the run id).
    """
    parts = [str(tree["model"].get("name") or "custom")] + ([role] if role != "run" else [])
    for key, value in swept.items():
        if key in ("model", "run.seed") or key in _UNTAGGED:
            continue
        value = tree["train"]["tokens"] if key == "train.tokens" else value
        parts.append(f"{_NAME_KEYS.get(key, key.rsplit('.', 1)[-1])}={_compact(value)}")
    return " ".join([*parts, f"s{tree['run']['seed']}"])


def _planned(spec: Spec, resolver: Resolver, swept: dict, role: str = "run",
             depends_on: str | None = None) -> PlannedRun:
    from scaling.config_loading import run_id

    overrides = {**spec.overrides, **swept}
    tree = resolver.tree(overrides)
    total, non_emb, tokens, fpt = _numbers(tree)
    rid = run_id(tree)
    if not tree["run"].get("name"):  # not part of the run id: naming a run never retrains it
        tree["run"]["name"] = run_name(tree, swept, role)
    return PlannedRun(run_id=rid, overrides=overrides, swept=swept, params=total,
                      non_embedding=non_emb, tokens=tokens, flops=fpt * tokens, role=role,
                      depends_on=depends_on, tree=tree)


def plan_sweep(spec: Spec, sweep_dir: str | Path, check_data: bool = False) -> list[PlannedRun]:
    """All runs of a sweep, resolved and checked, in launch order (a trunk before its branches).

    ``check_data`` also opens each distinct prepared dataset once and checks every run against it
    (missing data, a tokenizer larger than ``model.vocab_size``), as ``scaling train`` would at start.
    """
    runs_dir = Path(sweep_dir).resolve() / "runs"
    resolver = Resolver(spec)
    points = [dict(itertools.chain.from_iterable(p.items() for p in combo))
              for combo in itertools.product(*(points for _, points in spec.parts))]
    planned: list[PlannedRun] = []
    for point in points:
        if spec.generator is None:
            planned.append(_planned(spec, resolver, point))
            continue
        kind, section = spec.generator
        if kind == "cooldowns":
            planned += _cooldown_runs(spec, section, point, runs_dir, resolver)
            continue
        expand = {"ladder": _ladder_points, "isoflop": _isoflop_points, "hparams": _hparam_points}[kind]
        planned += [_planned(spec, resolver, {**point, **g}) for g in expand(spec, section, point, resolver)]
    seen: set[str] = set()
    unique = [r for r in planned if not (r.run_id in seen or seen.add(r.run_id))]
    if not unique:
        raise ScalingError("the sweep has no runs")
    if check_data:
        from sweeps.plan_checks import check_run_data

        check_run_data(unique)
    return unique


def _si(x: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_plan(name: str, runs: list[PlannedRun]) -> str:
    """The plan as a table and totals (what ``scaling sweep plan`` prints)."""
    rows = [("id", "role", "params", "tokens", "FLOPs", "overrides")]
    for r in runs:
        swept = " ".join(f"{k}={_fmt(v, short=True)}" for k, v in r.swept.items() if k not in _UNTAGGED[:2])
        rows.append((r.run_id, r.role, _si(r.params), _si(r.tokens), _si(r.flops), swept or "(base)"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + row[5] for row in rows
    ]
    total_flops = sum(r.flops for r in runs)
    lines.append(f"sweep {name}: {len(runs)} runs, {_si(sum(r.tokens for r in runs))} tokens, "
                 f"{_si(total_flops)} FLOPs ({total_flops:.3e})")
    return "\n".join(lines)
