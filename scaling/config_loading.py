"""Loading a run config: schema ← YAML file(s) ← presets ← dotlist overrides, with one-line errors.

Presets are named settings for a whole group: ``model=gpt2-small`` or ``model=s1.5m`` (the size
ladder), ``data=stdlib``. They are YAML files under the installed ``configs/<group>/`` folder (the
model group also has the ladder from :mod:`scaling.ladder`). A YAML file may name a preset too
(``model: s6m``). Every error is a :class:`~scaling.errors.ConfigError` with one line that names
the key and, for a typo, the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from scaling.config import Config, validate
from scaling.errors import ConfigError
from scaling.ladder import ladder_names, ladder_preset

GROUPS = tuple(f.name for f in dataclasses.fields(Config))

# Fields that do not change what a run computes: left out of the run id.
# where and how a run executes, not what it computes: the same run id whatever these say
_NOT_IN_RUN_ID = ("run.dir", "run.name", "run.resume", "logging", "train.threads", "data.verify", "train.attention")


def configs_dir() -> Path:
    """The YAML presets: ``scaling/presets``, a link to the repository's ``configs/`` folder in a checkout
    and a copy of it (package data) in an installed wheel."""
    return Path(str(resources.files("scaling"))) / "presets"


def list_presets(group: str) -> list[str]:
    """Names of the presets of a config group (ladder first for ``model``)."""
    folder = configs_dir() / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return (ladder_names() if group == "model" else []) + names


def _preset(group: str, name: str) -> dict:
    if group == "model":
        rung = ladder_preset(name)
        if rung is not None:
            return rung
    path = configs_dir() / group / f"{name}.yaml"
    if not path.is_file():
        valid = list_presets(group)
        listing = ", ".join(valid) if valid else "none"
        raise ConfigError(f"unknown {group} preset {name!r}; valid {group} presets: {listing}")
    data = yaml.safe_load(path.read_text()) or {}
    if group == "model":
        data.setdefault("name", name)
    return data


def all_keys() -> list[str]:
    """Every valid dotted key of the schema (``optim.lr``, ``model.n_layer``, ...)."""
    keys: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):
                walk(type(default), f"{prefix}{f.name}.")
            else:
                keys.append(f"{prefix}{f.name}")

    walk(Config, "")
    return keys


def _unknown_key_message(key: str) -> str:
    """``unknown config key 'modle.n_layer'; did you mean model.n_layer?``: a misspelt group is matched
    against the group names (keeping the rest of the key), a misspelt field against the full keys."""
    keys = all_keys()
    group, _, rest = key.partition(".")
    groups = sorted({k.split(".")[0] for k in keys if "." in k})
    close: list[str] = []
    near = difflib.get_close_matches(group, groups, n=1, cutoff=0.6) if group not in groups else []
    if near:
        fixed = f"{near[0]}.{rest}"
        close = [fixed] if fixed in keys else (difflib.get_close_matches(fixed, keys, n=1, cutoff=0.6) if rest
                                               else []) or near
    if not close:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; see `scaling config show` for the valid keys"
    return f"unknown config key {key!r}{hint}"


def _translate(error: OmegaConfBaseException, fallback_key: str | None = None) -> ConfigError:
    """A one-line :class:`ConfigError` for an OmegaConf error; ``fallback_key`` is the key the user wrote."""
    key = getattr(error, "full_key", None) or fallback_key or "?"
    if fallback_key and fallback_key.startswith(f"{key}."):
        key = fallback_key  # OmegaConf names the first unknown level ('optm'); the user wrote 'optm.lr'
    if isinstance(error, ConfigKeyError):
        return ConfigError(_unknown_key_message(key))
    first_line = str(error).splitlines()[0]
    if isinstance(error, ValidationError):
        hint = ""
        if "Cannot convert 'ListConfig' to string" in first_line:
            hint = f"; write a list of values as one comma-separated string, e.g. {key}=0,1"
        return ConfigError(f"wrong type for {key}: {first_line}{hint}")
    return ConfigError(f"invalid config at {key}: {first_line}")


def _split_presets(tree: dict, source: str) -> tuple[dict, dict[str, str]]:
    """Separate ``group: <preset name>`` entries from ordinary values."""
    presets, rest = {}, {}
    for key, value in tree.items():
        if key in GROUPS and isinstance(value, str):
            presets[key] = value
        else:
            rest[key] = value
    unknown = [k for k in rest if k not in GROUPS]
    if unknown:
        raise ConfigError(f"{source}: {_unknown_key_message(unknown[0])}")
    return rest, presets


def read_yaml(path: str | Path, what: str = "config file", hint: str = "pass an existing YAML file to --config"):
    """Parse a YAML file; a missing or malformed file, or a key given twice in one mapping, is a
    one-line :class:`ConfigError` naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} not found; {hint}")
    text = p.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    refuse_duplicate_keys(text, str(p))
    return data


def refuse_duplicate_keys(text: str, source: str) -> None:
    """Refuse, in one line, a YAML text that gives a mapping key twice (YAML loaders keep the last silently)."""
    todo, seen = [(yaml.compose(text, Loader=yaml.SafeLoader), "")], set()
    while todo:
        node, where = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo += [(child, where) for child in node.value]
        elif isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                    continue
                line = key.start_mark.line + 1
                if key.value in first:
                    place = f" in {where}" if where else ""
                    raise ConfigError(f"{source}: duplicate key {key.value!r}{place} (lines {first[key.value]} "
                                       f"and {line}); give each key once")
                first[key.value] = line
                todo.append((value, f"{where}.{key.value}" if where else key.value))


def _read_yaml(path: str | Path) -> dict:
    p = Path(path)
    data = read_yaml(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of config groups")
    return data


def parse_overrides(overrides: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Split command-line overrides into presets (``model=s6m``) and dotlist items (``optim.lr=1e-3``)."""
    presets: dict[str, str] = {}
    dotlist: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. optim.lr=3e-4 or model=s6m)")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if key in GROUPS:
            presets[key] = value.strip()
        elif "." not in key:
            raise ConfigError(_unknown_key_message(key))
        else:
            dotlist.append(f"{key}={value}")
    return presets, dotlist


def load_config(config_files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> DictConfig:
    """Build and validate a run config: schema ← YAML files ← dotlist overrides.

    A preset named in a file (``model: s330k``) is applied at that file's layer, one named on the
    command line (``model=s330k``) before the dotlist values; later layers win.

    Raises :class:`ConfigError` with a one-line message for any unknown key, wrong type, unknown
    preset or inconsistent value. The result is a structured (typed) ``DictConfig``.
    """
    cfg = OmegaConf.structured(Config)
    # Each file is one layer: the presets it names, then its own values; later layers win.
    layers = [(str(path), *_split_presets(_read_yaml(path), str(path))) for path in config_files]
    cli_presets, dotlist = parse_overrides(overrides)
    try:
        for source, tree, file_presets in layers:
            for group, name in file_presets.items():
                cfg = OmegaConf.merge(cfg, {group: _preset(group, name)})
            try:
                cfg = OmegaConf.merge(cfg, tree)
            except OmegaConfBaseException as e:
                raise ConfigError(f"{source}: {_translate(e)}") from None
        for group, name in cli_presets.items():
            cfg = OmegaConf.merge(cfg, {group: _preset(group, name)})
        for item in dotlist:
            key = item.split("=", 1)[0]
            try:
                cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
            except OmegaConfBaseException as e:
                raise _translate(e, key) from None
    except OmegaConfBaseException as e:
        raise _translate(e) from None
    validate(cfg)
    return cfg


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The config as a plain nested dict."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: DictConfig) -> str:
    """The fully resolved config as YAML text (what is written to a run dir's config.yaml)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def run_id(cfg: DictConfig | dict) -> str:
    """A stable 12-hex-digit id: the hash of everything in the config that changes the result.

    ``cfg`` is a resolved config or its plain tree (:func:`to_dict`).

    A branch's parent enters by its folder name (in a sweep: the trunk's run id), not its full path,
    so a sweep dir that is moved or mounted elsewhere keeps its ids.
    """
    # the two top levels are copied: only keys at those depths are dropped or rewritten below
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in (cfg if isinstance(cfg, dict) else to_dict(cfg)).items()}
    if tree["run"].get("branch_from"):
        tree["run"]["branch_from"] = Path(tree["run"]["branch_from"]).name
    for dotted in _NOT_IN_RUN_ID:
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node[p]
        node.pop(leaf, None)
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
