"""``prepare``: your sources → a trained (or given) tokenizer → token shards → ``manifest.json``.

:func:`run_prepare` is six named steps: check the settings, read the sources (resolve the files and
fingerprint them), get the tokenizer, encode and write the shards, verify what was written, write the
manifest. The tokenizer is trained on a first pass over the training split; a second pass encodes every
kept document (a large plain-text file in pieces, so memory stays bounded; a document longer than the
room left in a shard goes on in the next shard). Each document goes to train or val by a hash of its
content, so the split does not depend on file names or order; with ``dedup`` an exact repeat of an
earlier document is dropped. A corpus of one document with ``val_fraction`` > 0, or one whose
documents all went to validation, stops with an error that says how to fix it.

Output goes only into a new or empty folder or one prepare made (see
:mod:`data_pipelines.output_folder`). After each shard a small state file records progress: a re-run
after a crash or a full disk skips the finished shards and ends with byte-identical output. The
manifest is written last; its presence means the dataset is complete.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_pipelines.atomic import atomic_write_json, atomic_write_text
from data_pipelines.errors import DataError
from data_pipelines.format import (
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    STATE,
    TOKENIZER,
    dtype_name,
    sha256_bytes,
    sha256_file,
    token_dtype,
)
from data_pipelines.options import DEFAULT_SHARD_TOKENS, PrepareOptions
from data_pipelines.output_folder import (
    claim,
    load_state,
    remove_stale_shards,
    remove_temp_files,
    removed_on_user_error,
    write_errors,
)
from data_pipelines.sources import ReadStats, check_utf8_name, fingerprint, iter_documents, resolve_sources
from data_pipelines.tokenizer import (
    check_vocab_size,
    encodes_in_pieces,
    eos_id,
    load_tokenizer,
    train_tokenizer,
    vocab_size_of,
)
from data_pipelines.writing import Encoder, SplitWriter

__all__ = ["DEFAULT_SHARD_TOKENS", "PrepareOptions", "prepare", "run_prepare"]

# Text per encoding batch: small batches balance the worker processes; in this process a big batch
# lets the tokenizer's threads balance documents of very different sizes.
_BATCH_BYTES_WORKERS = 1 << 18
_BATCH_BYTES_IN_PROCESS = 1 << 22
_BATCH_DOCS = 2048


def prepare(sources: list[str | Path], out: str | Path, **options) -> dict:
    """Prepare ``sources`` (files, folders, globs) into a dataset folder ``out``; returns the manifest.

    ``options`` are the other fields of :class:`PrepareOptions` (``vocab_size``, ``tokenizer``, ...);
    this is ``run_prepare(PrepareOptions(sources, out, **options))``."""
    return run_prepare(PrepareOptions(sources, out, **options))


def run_prepare(options: PrepareOptions) -> dict:
    """Prepare a dataset as ``options`` say; returns the manifest.

    ``options.tokenizer`` reuses an existing ``tokenizer.json`` instead of training one of
    ``vocab_size``; ``workers`` > 1 tokenizes in that many processes (the output does not depend on it).
    When ``out`` already holds a complete dataset prepared from the same files with the same
    settings, nothing is redone; an unfinished earlier run with the same settings is resumed. A folder
    holding anything else is refused unless ``overwrite``. Settings are checked before anything is
    written; a call that stops with a user error (:class:`DataError`) removes what it created, except
    after a write error (a full disk), where the same call resumes once the cause is fixed.
    """
    given_tok, given = _check_settings(options)
    files = _read_sources(options.sources)
    job = _Job(options, Path(options.out), files, given_tok, given, _settings_record(options, files, given))
    with write_errors(job.out):
        done = claim(job.out, job.settings, options.overwrite)
        if done is not None:
            return done
        with removed_on_user_error(job.out):
            state = _start(job)
            show = _Progress(options.progress, len(job.files))
            tokenizer = _tokenizer(job, state, show)
            writers, stats = _encode_and_write(job, tokenizer, state, show)
            _verify(job, {s: w.documents_done for s, w in writers.items()}, stats)
            return _write_manifest(job, tokenizer, writers, stats)


@dataclass
class _Job:
    """One prepare: its options and what the first steps found."""

    options: PrepareOptions
    out: Path
    files: list[Path]
    given_tok: object  # the tokenizer the user brought (None: train one)
    given: str | None  # the text of its tokenizer.json
    settings: dict  # what the manifest records under "prepare"; its key identifies the data


@dataclass
class _Tokenizer:
    """The tokenizer the shards are encoded with, as written into the dataset."""

    tok: object
    text: str  # the tokenizer.json written into the dataset
    sha256: str
    eos_token: str
    eos: int


def _check_settings(options: PrepareOptions) -> tuple[object, str | None]:
    """Step 1: refuse bad values before reading or writing anything.

    Returns the tokenizer the user brought and the text of its file (None, None: one is trained)."""
    options.check()
    check_utf8_name(options.out, "choose an --out whose name is valid UTF-8")
    if options.tokenizer is None:
        check_vocab_size(options.vocab_size)
        return None, None
    tok = load_tokenizer(options.tokenizer)
    eos_id(tok, options.eos_token)
    return tok, Path(options.tokenizer).read_text(encoding="utf-8")


def _read_sources(sources: list[str | Path]) -> list[Path]:
    """Step 2: the files the sources name (the documents are read while training and encoding)."""
    return resolve_sources(sources)


def _settings_record(o: PrepareOptions, files: list[Path], given: str | None) -> dict:
    """The settings that decide the output, and their hash (``settings_key``)."""
    settings = {
        "format_version": FORMAT_VERSION,
        "sources": [str(s) for s in o.sources],
        "files": len(files),
        "source_fingerprint": fingerprint(files),
        "vocab_size": None if given else o.vocab_size,
        "tokenizer_sha256": sha256_bytes(given.encode()) if given else None,
        "eos_token": o.eos_token,
        "val_fraction": o.val_fraction,
        "dedup": o.dedup,
        "text_field": o.text_field,
        "shard_tokens": o.shard_tokens,
    }
    settings["settings_key"] = sha256_bytes(json.dumps(settings, sort_keys=True).encode())
    return settings


def _start(job: _Job) -> dict:
    """Make the folder and mark it as prepare's own; the progress of an unfinished run to resume."""
    job.out.mkdir(parents=True, exist_ok=True)
    remove_temp_files(job.out)
    state = load_state(job.out, job.settings["settings_key"])
    if state is None:
        state = {"settings_key": job.settings["settings_key"], "settings": job.settings,
                 "tokenizer_sha256": None, "splits": {}}
        atomic_write_json(job.out / STATE, state)
    return state


def _tokenizer(job: _Job, state: dict, show: _Progress) -> _Tokenizer:
    """Step 3: the tokenizer brought, the one an interrupted run trained, or a new one; written to ``out``.

    Training reads the sources once and stops early when they hold no documents or no training split."""
    o, path = job.options, job.out / TOKENIZER
    if job.given is not None:
        tok, text = job.given_tok, job.given
    elif state.get("tokenizer_sha256") and path.is_file() and sha256_file(path) == state["tokenizer_sha256"]:
        text = path.read_text(encoding="utf-8")  # the interrupted run already trained it
        tok = load_tokenizer(path)
    else:
        stats, counts = ReadStats(), dict.fromkeys(SPLITS, 0)
        train_docs = (text for split, text, _, _ in _kept(job.files, o, stats, counts) if split == "train")
        tok = train_tokenizer(show.wrap(train_docs, stats, "training tokenizer"), o.vocab_size)
        _verify(job, counts, stats)
        text = tok.to_str(pretty=True)
    sha = sha256_bytes(text.encode())
    if state.get("tokenizer_sha256") != sha:  # shards encoded with another tokenizer are not kept
        state.update(tokenizer_sha256=sha, splits={})
    atomic_write_text(path, text)
    eos_name, eos = eos_id(tok, o.eos_token)
    return _Tokenizer(tok, text, sha, eos_name, eos)


def _encode_and_write(job: _Job, tokenizer: _Tokenizer, state: dict, show: _Progress
                      ) -> tuple[dict[str, SplitWriter], ReadStats]:
    """Step 4: encode every kept document into the shards, skipping those finished shards hold."""
    o, out = job.options, job.out
    dtype = token_dtype(vocab_size_of(tokenizer.tok))
    writers: dict[str, SplitWriter] = {}

    def save_state() -> None:
        state["splits"] = {s: w.shards for s, w in writers.items()}
        atomic_write_json(out / STATE, state)

    for split in SPLITS:
        kept = state.get("splits", {}).get(split, [])
        remove_stale_shards(out, split, len(kept))
        writers[split] = SplitWriter(out, split, dtype, o.shard_tokens, kept, save_state)
    save_state()

    stats = ReadStats()
    skip = {s: w.documents_done for s, w in writers.items()}
    encoder = Encoder(tokenizer.tok, tokenizer.text, tokenizer.eos, dtype, o.workers)
    try:
        docs = _kept(job.files, o, stats, whole=not encodes_in_pieces(tokenizer.tok))
        batch_bytes = _BATCH_BYTES_WORKERS if o.workers > 1 else _BATCH_BYTES_IN_PROCESS
        batches = _batches(show.wrap(docs, stats, "encoding"), skip, batch_bytes)
        for metas, flat, lengths in encoder.map(batches):
            start = 0
            for (split, nbytes, end), n in zip(metas, lengths, strict=True):
                writers[split].add(flat[start:start + n], nbytes, end)
                start += n
    finally:
        encoder.close()
    for w in writers.values():
        w.flush()
    return writers, stats


def _verify(job: _Job, documents: dict[str, int], stats: ReadStats) -> None:
    """Step 5: refuse a result that holds no documents or no training split (``documents`` per split)."""
    _check_documents(stats, job.options.sources)
    _check_split(documents, job.options.val_fraction)


def _write_manifest(job: _Job, tokenizer: _Tokenizer, writers: dict[str, SplitWriter], stats: ReadStats
                    ) -> dict:
    """Step 6: the manifest, written last (its presence means "complete"); the state file goes."""
    vocab = vocab_size_of(tokenizer.tok)
    manifest = {
        "format_version": FORMAT_VERSION,
        "dtype": dtype_name(token_dtype(vocab)),
        "tokenizer": {"file": TOKENIZER, "sha256": tokenizer.sha256, "vocab_size": vocab,
                      "eos_id": tokenizer.eos, "eos_token": tokenizer.eos_token,
                      "trained": job.given is None},
        "splits": {s: w.summary() for s, w in writers.items()},
        "read": stats.as_dict(),
        "counting": "tokens include one EOS per document; bytes are the UTF-8 bytes of the document text "
                    "(bits per byte = loss_nats_per_token * tokens / bytes / ln 2)",
        "prepare": job.settings,
    }
    atomic_write_json(job.out / MANIFEST, manifest)
    (job.out / STATE).unlink(missing_ok=True)
    return manifest


def _kept(files: list[Path], o: PrepareOptions, stats: ReadStats, counts: dict[str, int] | None = None,
          whole: bool = False) -> Iterator[tuple[str, str, int, bool]]:
    """Yield ``(split, text, utf8_bytes, ends_document)`` for every piece of every document kept after dedup.

    A large plain-text file comes in several pieces (all of one split, by the hash of its whole
    text); ``whole`` joins them into one text, for a tokenizer that cannot encode in pieces.
    ``counts`` (optional) is incremented per split for each kept document."""
    seen: set[bytes] = set()
    threshold = int(o.val_fraction * 2**64)
    for doc in iter_documents(files, o.text_field, stats):
        if isinstance(doc, str):
            data = doc.encode("utf-8")
            digest, pieces = hashlib.sha256(data).digest(), [(doc, len(data))]
        else:
            digest, nbytes = doc.digest()
            if whole:
                pieces = [("".join(doc.pieces(stats)), nbytes)]
            else:
                pieces = ((p, len(p.encode("utf-8"))) for p in doc.pieces(stats))
        if o.dedup:
            if digest[:16] in seen:
                stats.duplicates_removed += 1
                continue
            seen.add(digest[:16])
        split = "val" if int.from_bytes(digest[:8], "big") < threshold else "train"
        if counts is not None:
            counts[split] += 1
        previous = None
        for piece in pieces:
            if previous is not None:
                yield split, *previous, False
            previous = piece
        yield split, *previous, True


def _batches(docs: Iterator[tuple[str, str, int, bool]], skip: dict[str, int], batch_bytes: int
             ) -> Iterator[tuple[list[tuple[str, int, bool]], list[str], list[bool]]]:
    """Group pieces into encoding batches ``(metas, texts, ends)``, leaving out the documents that
    ended in finished shards (the writer drops the finished part of an unfinished one)."""
    seen = dict.fromkeys(skip, 0)  # documents of each split that ended before this piece
    metas: list[tuple[str, int, bool]] = []
    texts: list[str] = []
    size = 0
    for split, text, nbytes, end in docs:
        index = seen[split]
        seen[split] += end
        if index < skip[split]:
            continue
        metas.append((split, nbytes, end))
        texts.append(text)
        size += nbytes
        if size >= batch_bytes or len(texts) >= _BATCH_DOCS:
            yield metas, texts, [m[2] for m in metas]
            metas, texts, size = [], [], 0
    if texts:
        yield metas, texts, [m[2] for m in metas]


def _check_split(counts: dict[str, int], val_fraction: float) -> None:
    """Refuse a split that left train empty, or a one-document corpus when ``val_fraction`` asks for a
    validation split (a document is never cut between train and val)."""
    total = sum(counts.values())
    fix = ("documents go to validation whole, by a hash of their text: split the text into more documents "
           "(e.g. one per line of a .jsonl file, or several text files)")
    if total == 1 and val_fraction > 0:
        raise DataError(f"the sources hold one document, so it cannot be split into train and val; {fix}, "
                        "or pass --val-fraction 0 to validate on training text")
    if counts["train"] == 0:
        raise DataError(f"all {total} documents went to validation; {fix}, or lower --val-fraction")


def _check_documents(stats: ReadStats, sources: list) -> None:
    if stats.documents == 0:
        raise DataError(
            f"no documents found in {', '.join(map(str, sources))} ({stats.files} text files, "
            f"{stats.binary_files_skipped} binary files skipped, {stats.empty_documents} empty documents)")


class _Progress:
    """A one-line progress report on stderr, refreshed at most twice a second."""

    def __init__(self, enabled: bool, total_files: int):
        self.enabled, self.total = enabled and sys.stderr is not None, total_files

    def wrap(self, docs: Iterator, stats: ReadStats, what: str) -> Iterator:
        start, nbytes, last = time.monotonic(), 0, 0.0
        for item in docs:
            if self.enabled:
                nbytes += len(item[1]) if isinstance(item, tuple) else len(item)
                now = time.monotonic()
                if now - last > 0.5:
                    last = now
                    self._line(what, stats, nbytes, now - start)
            yield item
        if last:
            self._line(what, stats, nbytes, time.monotonic() - start)
            print(file=sys.stderr)

    def _line(self, what: str, stats: ReadStats, nbytes: int, seconds: float) -> None:
        done = stats.files + stats.binary_files_skipped
        print(f"\rprepare: {what}: {done}/{self.total} files, {nbytes / 1e6:.1f} MB "
              f"({nbytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)   ", end="", file=sys.stderr, flush=True)
