"""The settings of ``prepare``: one dataclass shared by the Python API and ``scaling prepare``.

Only the standard library is imported here, so the command can read its defaults and check a
``--config`` file without loading the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from data_pipelines.errors import DataError

DEFAULT_SHARD_TOKENS = 1 << 22  # 4M tokens: 8 MB per uint16 shard, the bound on the writer's memory


@dataclass
class PrepareOptions:
    """What to prepare, where to, and how. Every field but ``sources`` and ``out`` has a default."""

    sources: list[str | Path]  # files, folders (walked recursively) or globs of text
    out: str | Path  # the dataset folder: new, empty, or one an earlier prepare wrote
    vocab_size: int = 8192  # entries of the byte-level BPE to train (unused with `tokenizer`)
    tokenizer: str | Path | None = None  # a tokenizer.json to reuse instead of training one
    val_fraction: float = 0.01  # share of documents held out for validation, chosen by a hash of their text
    workers: int = 1  # tokenizer processes; 1 = the tokenizer's own threads here (output is the same)
    dedup: bool = False  # drop exact repeats of earlier documents
    text_field: str = "text"  # field of JSON lines / column of Parquet files that holds the text
    shard_tokens: int = DEFAULT_SHARD_TOKENS  # tokens per shard; bounds the writer's memory
    eos_token: str | None = None  # name of the end-of-document token in a tokenizer you bring
    overwrite: bool = False  # replace the files prepare writes when `out` holds something else
    progress: bool = True  # a one-line progress report on stderr

    def check(self) -> None:
        """Raise :class:`DataError` for a value out of range (before anything is read or written)."""
        if not 0.0 <= self.val_fraction < 1.0:
            raise DataError(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.shard_tokens < 1 or self.workers < 1:
            raise DataError("shard_tokens and workers must be positive")


# What a value read from a YAML file must be, by the field's declared type: (check, description).
_KINDS = {
    "list": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of paths"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def option_defaults() -> dict[str, object]:
    """Each option's default (``sources`` and ``out`` have none and are left out)."""
    return {f.name: f.default for f in fields(PrepareOptions) if f.name not in ("sources", "out")}


def option_type_error(name: str, value: object) -> str | None:
    """What ``value`` must be for the option ``name`` (e.g. "a whole number") when it is not; else None."""
    declared = {f.name: str(f.type) for f in fields(PrepareOptions)}[name]
    check, what = _KINDS[declared.split("[")[0].split(" | ")[0]]
    return None if check(value) else what
