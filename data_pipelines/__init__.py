"""Own data in, shards out: read your text, train a tokenizer, write verified token shards, and
sample training windows from them (exactly resumable, mixable, split across data-parallel ranks).

Typical use::

    from data_pipelines import prepare, stdlib_sources, PreparedDataset, WindowSampler
    prepare(stdlib_sources(max_bytes=1_000_000), "data/tiny", vocab_size=2048)
    ds = PreparedDataset.open("data/tiny")
    batches = WindowSampler([(ds, 1.0)], seq_len=128, batch_size=8, seed=0)
"""

from data_pipelines.dataset import PreparedDataset, ShardedTokens, check_compatible
from data_pipelines.errors import DataError, UserError
from data_pipelines.prepare import DEFAULT_SHARD_TOKENS, prepare
from data_pipelines.sampler import WindowSampler, validation_windows
from data_pipelines.stdlib_corpus import STDLIB_PRESET_PATH, stdlib_sources

__all__ = [
    "DEFAULT_SHARD_TOKENS", "DataError", "PreparedDataset", "STDLIB_PRESET_PATH", "ShardedTokens", "UserError",
    "WindowSampler", "check_compatible", "prepare", "stdlib_sources", "validation_windows",
]
