"""Small real corpora for the data-pipeline tests: slices of the interpreter's standard library."""

from __future__ import annotations

from pathlib import Path

from data_pipelines import prepare, stdlib_sources


def prepare_small(out: Path, max_bytes: int = 300_000, **kwargs) -> dict:
    """Prepare ~``max_bytes`` of stdlib source with a 1024-token tokenizer (about a second)."""
    kwargs.setdefault("vocab_size", 1024)
    kwargs.setdefault("val_fraction", 0.1)
    kwargs.setdefault("progress", False)
    return prepare([str(p) for p in stdlib_sources(max_bytes=max_bytes)], out, **kwargs)
