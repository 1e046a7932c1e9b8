"""``scaling prepare``: turn your text into a tokenizer and verified token shards.

Only the standard library and the options dataclass are imported at the top; the pipeline is imported
inside :func:`run`. The command builds the same :class:`PrepareOptions` the Python API takes.
"""

from __future__ import annotations

import argparse
import difflib
from importlib import resources
from pathlib import Path

from data_pipelines.options import PrepareOptions, option_defaults, option_type_error

_BUILT_IN_CORPORA = ("stdlib",)
_DEFAULTS = option_defaults()
# Settings of the command only (not of the pipeline), and what their --config value must be.
_COMMAND_TYPES = {"preset": (lambda v: isinstance(v, str), "a string"),
                  "max_bytes": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number")}
# Settings a --config YAML may hold: the fields of PrepareOptions (but progress: see --quiet), and these.
_CONFIG_KEYS = tuple(k for k in ("sources", "out", *_DEFAULTS) if k != "progress") + tuple(_COMMAND_TYPES)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``scaling prepare``."""
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="files, folders (recursive) or globs: text of any extension, .jsonl/.json, "
                        ".gz/.zst, .parquet")
    p.add_argument("--out", metavar="DIR",
                   help="output folder: new, empty, or prepared before (default for --preset: its data path)")
    p.add_argument("--vocab-size", type=int,
                   help=f"size of the byte-level BPE vocabulary to train (default {_DEFAULTS['vocab_size']})")
    p.add_argument("--tokenizer", metavar="FILE", help="reuse this tokenizer.json instead of training one")
    p.add_argument("--val-fraction", type=float,
                   help=f"share of documents held out for validation (default {_DEFAULTS['val_fraction']})")
    p.add_argument("--workers", type=int, help="tokenizer processes (default 1: the tokenizer's own threads)")
    p.add_argument("--dedup", action="store_true", default=None, help="drop exact duplicate documents")
    p.add_argument("--text-field", help="field of JSON lines / column of Parquet holding the text "
                                        f"(default {_DEFAULTS['text_field']})")
    p.add_argument("--shard-tokens", type=int,
                   help=f"tokens per shard; bounds memory (default {_DEFAULTS['shard_tokens']})")
    p.add_argument("--eos-token", help="name of the end-of-document token in a --tokenizer you bring")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the files prepare writes (a dataset prepared with other settings) in --out; "
                        "other files there are kept")
    p.add_argument("--config", metavar="FILE", help="YAML file of these settings (flags override it)")
    p.add_argument("--preset", choices=_BUILT_IN_CORPORA, help="a built-in corpus instead of SOURCEs")
    p.add_argument("--max-bytes", type=int, help="with --preset: keep only about this many bytes of it")
    p.add_argument("--verify", metavar="DIR", help="re-check every shard hash of a prepared dataset and exit")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    """Run ``scaling prepare``; user errors raise DataError (printed as one line, exit code 2)."""
    from data_pipelines.dataset import PreparedDataset
    from data_pipelines.errors import DataError
    from data_pipelines.preparation import run_prepare
    from data_pipelines.stdlib_corpus import stdlib_sources

    if args.verify:
        ds = PreparedDataset.open(args.verify, verify="full")
        shards = sum(len(s["shards"]) for s in ds.manifest["splits"].values())
        print(f"ok: {ds.path}: {shards} shards and the tokenizer match their sha256 "
              f"(tokenizer {ds.tokenizer_sha256[:12]}, {ds.split_tokens('train'):,} train tokens)")
        return 0
    settings = _settings(args)
    preset = settings.pop("preset", None)
    max_bytes = settings.pop("max_bytes", None)
    if preset:
        if settings.get("sources"):
            raise DataError("give either SOURCEs or --preset, not both")
        settings["sources"] = [str(p) for p in stdlib_sources(max_bytes=max_bytes)]
        settings.setdefault("out", _preset_path(preset))
    elif max_bytes is not None:
        raise DataError("--max-bytes applies to --preset only")
    if not settings.get("sources"):
        raise DataError("nothing to prepare: pass SOURCE... (files, folders, globs) or --preset stdlib")
    if not settings.get("out"):
        raise DataError("pass --out DIR: where to write the prepared dataset")
    options = PrepareOptions(progress=not settings.pop("quiet", False), **settings)
    manifest = run_prepare(options)
    print(summary(manifest, options.out))
    return 0


def _settings(args: argparse.Namespace) -> dict:
    """Settings from --config, overridden by the flags that were given."""
    from data_pipelines.errors import DataError

    settings: dict = {}
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise DataError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from e
        if not isinstance(loaded, dict):
            raise DataError(f"{path} must be a mapping of prepare settings")
        for key in loaded:
            if key not in _CONFIG_KEYS:
                near = difflib.get_close_matches(str(key), _CONFIG_KEYS, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(_CONFIG_KEYS)}"
                raise DataError(f"unknown prepare setting {key!r} in {path}{hint}")
        if isinstance(loaded.get("sources"), str):
            loaded["sources"] = [loaded["sources"]]
        for key, value in loaded.items():
            if key in _COMMAND_TYPES:
                ok, what = _COMMAND_TYPES[key]
                what = None if ok(value) else what
            else:
                what = option_type_error(key, value)
            if value is not None and what is not None:
                raise DataError(f"{key} in {path} must be {what}, not {value!r}")
        settings.update({k: v for k, v in loaded.items() if v is not None})
    flags = {k: getattr(args, k) for k in _CONFIG_KEYS
             if k != "sources" and getattr(args, k, None) is not None}
    settings.update(flags)
    if args.sources:
        settings["sources"] = args.sources
    if args.quiet:
        settings["quiet"] = True
    return settings


def _preset_path(name: str) -> str:
    """The ``path`` of ``configs/data/<name>.yaml``: where the preset's dataset lives."""
    import yaml

    # the presets ship as package data of ``scaling`` (the command this module serves)
    text = resources.files("scaling").joinpath("presets", "data", f"{name}.yaml").read_text()
    return str(yaml.safe_load(text)["path"])


def summary(manifest: dict, out: str | Path) -> str:
    """A few lines saying what was prepared, what was skipped on the way, and what a run will see of it."""
    lines = [f"prepared {out}"]
    for name, s in manifest["splits"].items():
        per = s["bytes"] / s["tokens"] if s["tokens"] else 0.0
        lines.append(f"  {name}: {s['documents']:,} documents, {s['tokens']:,} tokens, {s['bytes']:,} bytes "
                     f"({per:.2f} bytes/token) in {len(s['shards'])} shards")
    t = manifest["tokenizer"]
    lines.append(f"  tokenizer: {t['vocab_size']:,} tokens, EOS {t['eos_token']!r}={t['eos_id']}, "
                 f"sha256 {t['sha256']} ({'trained' if t['trained'] else 'given'}), "
                 f"dtype {manifest['dtype']}")
    r = manifest["read"]
    lines.append(f"  read: {r['files']:,} files, {r['binary_files_skipped']:,} binary files skipped, "
                 f"{r['replaced_bytes']:,} undecodable bytes replaced, {r['empty_documents']:,} empty "
                 f"documents, {r['duplicates_removed']:,} duplicates removed")
    names = r.get("binary_files_skipped_names", [])
    if names:
        more = r["binary_files_skipped"] - len(names)
        lines.append(f"  skipped as binary: {', '.join(names)}" + (f" and {more:,} more" if more else ""))
    lines.extend(_validation_note(manifest["splits"]["val"]["tokens"]))
    return "\n".join(lines)


def _validation_note(val_tokens: int) -> list[str]:
    """A line when the val split is smaller than the validation set a run asks for by default."""
    from data_pipelines.sampler import DEFAULT_VAL_TOKENS

    if val_tokens == 0:
        return ["  note: no val split (--val-fraction 0): runs validate on the end of the train split, "
                "which they also train on"]
    if val_tokens < DEFAULT_VAL_TOKENS:
        return [f"  note: the val split has {val_tokens:,} tokens; runs evaluate on at most {val_tokens:,} "
                f"(data.val_tokens={DEFAULT_VAL_TOKENS:,}); raise --val-fraction for a larger val split"]
    return []
