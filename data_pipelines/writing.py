"""Encoding documents in parallel and writing them into shards, with memory bounded by shard size.

:class:`Encoder` keeps at most a few batches in flight, so a huge corpus never sits in memory;
:class:`SplitWriter` fills shards of exactly ``shard_tokens`` tokens (the last one of a split may hold
fewer) and writes each token file and its document index atomically; a document longer than the room
left in a shard goes on in the next one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_pipelines.atomic import atomic_write_bytes
from data_pipelines.format import INDEX_DTYPE, sha256_bytes, shard_names
from data_pipelines.tokenizer import encode_documents, prepare_for_encoding

_worker: dict[str, Any] = {}


def _init_worker(tokenizer_json: str, eos: int, dtype: str) -> None:
    # Each worker is one tokenizer thread; the parallelism comes from the processes.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    prepare_for_encoding(tok)
    _worker.update(tok=tok, eos=eos, dtype=np.dtype(dtype))


def _encode_in_worker(texts: list[str], ends: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    return encode_documents(_worker["tok"], texts, _worker["eos"], _worker["dtype"], ends)


class Encoder:
    """Encodes batches of documents in order, in this process (workers <= 1) or in a process pool.

    With ``workers <= 1`` the tokenizer's own (Rust) threads do the work in this process.
    """

    def __init__(self, tok, tokenizer_json: str, eos: int, dtype: np.dtype, workers: int):
        self.tok, self.eos, self.dtype, self.workers = tok, eos, np.dtype(dtype), workers
        self._pool = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after tokenizers used threads is unsafe
            self._pool = ctx.Pool(workers, _init_worker, (tokenizer_json, eos, self.dtype.str))
        else:
            prepare_for_encoding(tok)

    def map(self, batches: Iterator[tuple[Any, list[str], list[bool]]]
            ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """Yield ``(meta, flat_tokens, lengths)`` per ``(meta, texts, ends)`` batch, in input order, with
        few batches in flight; ``ends`` says which texts end a document (get an EOS)."""
        if self._pool is None:
            for meta, texts, ends in batches:
                yield (meta, *encode_documents(self.tok, texts, self.eos, self.dtype, ends))
            return
        pending: deque = deque()
        for meta, texts, ends in batches:
            pending.append((meta, self._pool.apply_async(_encode_in_worker, (texts, ends))))
            if len(pending) >= 4 * self.workers:
                meta0, res = pending.popleft()
                yield (meta0, *res.get())
        while pending:
            meta0, res = pending.popleft()
            yield (meta0, *res.get())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


class SplitWriter:
    """Collects one split's encoded text into shards of exactly ``shard_tokens`` tokens (the last fewer).

    A document longer than the room left in a shard goes on in the next: a shard's ``.idx`` holds the
    end of every document that ends in it, and ``open_tokens`` counts the tokens after the last one
    (the start of a document that goes on). ``on_shard`` is called after each shard is on disk, so the
    caller can record progress for a resume; a resumed writer drops the tokens of the unfinished
    document that finished shards already hold.
    """

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int, done: list[dict],
                 on_shard: Callable[[], None]):
        self.out, self.split, self.dtype, self.shard_tokens = out, split, np.dtype(dtype), shard_tokens
        self.shards: list[dict] = list(done)
        self.on_shard = on_shard
        self._parts: list[np.ndarray] = []
        self._ends: list[int] = []
        self._tokens = 0
        self._bytes = 0
        self._skip = 0  # tokens of the unfinished document already in finished shards
        for shard in reversed(self.shards):
            self._skip += shard.get("open_tokens", 0)
            if shard["documents"]:
                break

    def add(self, tokens: np.ndarray, nbytes: int, end: bool = True) -> None:
        """Append a piece of a document (its EOS included when ``end``) and its UTF-8 byte count.

        The bytes count in the shard that holds the piece's first token."""
        if self._skip:
            drop = min(self._skip, len(tokens))
            self._skip -= drop
            tokens, nbytes = tokens[drop:], 0  # this piece started in a finished shard
        self._bytes += nbytes
        while True:
            take = tokens[:self.shard_tokens - self._tokens]
            # A copy: a view would pin the whole encoded batch (mostly other splits' documents) in
            # memory until this split's shard fills, and a small val split may never fill one.
            self._parts.append(take.copy())
            self._tokens += len(take)
            tokens = tokens[len(take):]
            if not len(tokens):
                break
            self.flush()
        if end:
            self._ends.append(self._tokens)
        if self._tokens >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        """Write the collected tokens as the next shard (nothing when empty)."""
        if not self._tokens:
            return
        data = memoryview(np.concatenate(self._parts).astype(self.dtype, copy=False)).cast("B")
        index = memoryview(np.asarray(self._ends, dtype=np.int64).astype(INDEX_DTYPE)).cast("B")
        bin_name, idx_name = shard_names(self.split, len(self.shards))
        atomic_write_bytes(self.out / bin_name, data)
        atomic_write_bytes(self.out / idx_name, index)
        self.shards.append({
            "file": bin_name, "index": idx_name, "tokens": self._tokens, "documents": len(self._ends),
            "open_tokens": self._tokens - (self._ends[-1] if self._ends else 0),
            "bytes": self._bytes, "sha256": sha256_bytes(data), "index_sha256": sha256_bytes(index),
        })
        self._parts, self._ends, self._tokens, self._bytes = [], [], 0, 0
        self.on_shard()

    @property
    def documents_done(self) -> int:
        """Documents already in finished shards."""
        return sum(s["documents"] for s in self.shards)

    def summary(self) -> dict:
        """The split's entry in the manifest."""
        return {
            "documents": self.documents_done,
            "tokens": sum(s["tokens"] for s in self.shards),
            "bytes": sum(s["bytes"] for s in self.shards),
            "shards": self.shards,
        }
