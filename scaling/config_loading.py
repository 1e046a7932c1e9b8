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
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from scaling.config import Config, validate
from scaling.errors import ConfigError, DataError
from scaling.ladder import ladder_names, ladder_preset

GROUPS = tuple(f.name for f in dataclasses.fields(Config))

# Keys that say where and how a run executes, not what it computes: left out of the run id (a whole
# group when the key names one); the fit never treats them as knobs either.
RUN_NEUTRAL_KEYS: tuple[str, ...] = (
    "run.dir", "run.name", "run.resume", "logging", "eval", "train.threads", "data.verify", "train.attention",
)
# `${oc.env:HOME}`, `${oc.decode:...}`: a resolver call inside an interpolation (`${other.key}` is allowed)
_RESOLVER_CALL = re.compile(r"\$\{\s*[\w.\-]+\s*:")


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


def read_yaml(path: str | Path, what: str = "config file",
              hint: str = "pass an existing YAML file to --config"):
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
    """Refuse, in one line, a YAML text that gives a mapping key twice (YAML loaders keep the last
    silently)."""
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
                    raise ConfigError(f"{source}: duplicate key {key.value!r}{place} "
                                      f"(lines {first[key.value]} and {line}); give each key once")
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
            except yaml.YAMLError as e:
                first = str(e).splitlines()[0]
                raise ConfigError(f"override {item!r} is not a valid value: {first}; write a list as "
                                  f"{key}=[a,b] and quote values with special characters") from None
    except OmegaConfBaseException as e:
        raise _translate(e) from None
    refuse_resolvers(cfg)
    try:
        OmegaConf.resolve(cfg)  # a reference to another key (`${train.tokens}`) becomes its value
    except OmegaConfBaseException as e:
        raise _translate(e) from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value; set it (e.g. the path of every data.mixture source)")
    validate(cfg)
    resolve_vocab_size(cfg)
    return cfg


def refuse_resolvers(cfg: DictConfig) -> None:
    """Refuse, in one line naming the key, a value that calls a resolver (``${oc.env:VAR}``): config
    values come from files and overrides only, never from the environment (they are logged to W&B).
    A reference to another key (``${train.seq_len}``) is allowed."""
    todo: list[tuple[str, Any]] = [("", OmegaConf.to_container(cfg, resolve=False))]
    while todo:
        where, node = todo.pop()
        if isinstance(node, dict):
            todo += [(f"{where}.{k}" if where else str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(node)]
        elif isinstance(node, str) and _RESOLVER_CALL.search(node):
            raise ConfigError(f"{where}={node!r} calls a resolver; give the value itself (config values may "
                              "refer to other keys, like ${train.seq_len}, but not to the environment)")


@functools.lru_cache(maxsize=64)
def _manifest_vocab(manifest: Path, _stamp: tuple[int, int]) -> int:
    try:
        return int(json.loads(manifest.read_text())["tokenizer"]["vocab_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{manifest} is damaged ({e}); prepare the dataset again") from None


def data_vocab_sizes(cfg: DictConfig) -> dict[str, int | None]:
    """Tokenizer size of each dataset the config trains on (``data.mixture`` sources, else
    ``data.path``), read from its ``manifest.json``; None for a path with no prepared dataset."""
    paths = [str(source.path) for source in cfg.data.mixture] or [str(cfg.data.path)]
    sizes: dict[str, int | None] = {}
    for path in paths:
        manifest = Path(path) / "manifest.json"
        stat = manifest.stat() if manifest.is_file() else None
        sizes[path] = _manifest_vocab(manifest, (stat.st_mtime_ns, stat.st_size)) if stat else None
    return sizes


def resolve_vocab_size(cfg: DictConfig, required: bool = False) -> str | None:
    """Resolve ``model.vocab_size: auto`` in place to the tokenizer size of the config's prepared data.

    Data not prepared yet leaves ``auto`` (``required=True``, as when training, refuses it instead).
    The datasets of a mixture must agree; an explicit ``model.vocab_size`` smaller than the tokenizer
    is refused. Returns a one-line note when an explicit size is larger than the tokenizer (extra
    embedding rows that no token uses), else None. Errors are one-line :class:`ConfigError`.
    """
    sizes = data_vocab_sizes(cfg)
    missing = [path for path, size in sizes.items() if size is None]
    vocab = cfg.model.vocab_size
    if missing:
        if required and vocab == "auto":
            raise ConfigError(f"model.vocab_size is auto but {missing[0]} holds no prepared dataset to take "
                              "it from; prepare it with `scaling prepare` or set model.vocab_size")
        return None
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{path} has {size}" for path, size in sizes.items())
        raise ConfigError(f"data.mixture mixes tokenizers of different sizes ({listing}); "
                          "prepare every source with the same one (--tokenizer FILE)")
    data_vocab, where = next(iter(sizes.values())), ", ".join(sizes)
    if vocab == "auto":
        cfg.model.vocab_size = data_vocab
        return None
    if vocab < data_vocab:
        raise ConfigError(f"model.vocab_size={vocab} is smaller than the {data_vocab}-token tokenizer of "
                          f"{where}; set model.vocab_size=auto (or {data_vocab} or more)")
    if vocab > data_vocab:
        return (f"model.vocab_size={vocab} is larger than the {data_vocab}-token tokenizer of {where}: "
                f"{vocab - data_vocab} embedding rows stay unused (model.vocab_size=auto follows the data)")
    return None


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
    tree = {
        k: dict(v) if isinstance(v, dict) else v
        for k, v in (cfg if isinstance(cfg, dict) else to_dict(cfg)).items()
    }
    if tree["run"].get("branch_from"):
        tree["run"]["branch_from"] = Path(tree["run"]["branch_from"]).name
    for dotted in RUN_NEUTRAL_KEYS:
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node[p]
        node.pop(leaf, None)
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
