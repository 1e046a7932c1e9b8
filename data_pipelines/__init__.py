"""Own data in, shards out: read your text, train a tokenizer, write verified token shards, and
sample training windows from them (exactly resumable, mixable, split across data-parallel ranks).

Typical use::

    from data_pipelines import prepare, stdlib_sources, PreparedDataset, WindowSampler
    prepare(stdlib_sources(max_bytes=1_000_000), "data/tiny", vocab_size=2048)
    ds = PreparedDataset.open("data/tiny")
    batches = WindowSampler([(ds, 1.0)], seq_len=128, batch_size=8, seed=0)
"""

from __future__ import annotations

from data_pipelines.errors import DataError, UserError
from data_pipelines.lazy import lazy_exports

# public name -> module that defines it; imported on first use so that importing the error types
# (every CLI start does) does not pull in numpy and tokenizers
_EXPORTS: dict[str, str] = {
    "PreparedDataset": "data_pipelines.dataset",
    "ShardedTokens": "data_pipelines.dataset",
    "check_compatible": "data_pipelines.dataset",
    "DEFAULT_SHARD_TOKENS": "data_pipelines.options",
    "PrepareOptions": "data_pipelines.options",
    "prepare": "data_pipelines.preparation",
    "run_prepare": "data_pipelines.preparation",
    "WindowSampler": "data_pipelines.sampler",
    "validation_windows": "data_pipelines.sampler",
    "DEFAULT_VAL_TOKENS": "data_pipelines.sampler",
    "STDLIB_PRESET_PATH": "data_pipelines.stdlib_corpus",
    "stdlib_sources": "data_pipelines.stdlib_corpus",
}

__all__ = ["DataError", "UserError", *_EXPORTS]


__getattr__ = lazy_exports(__name__, _EXPORTS)
