"""``prepare``: your sources → a trained (or given) tokenizer → token shards → ``manifest.json``.

Two passes over the sources: the first trains the tokenizer on the training split, the second
encodes every kept document (a large plain-text file in pieces, so memory stays bounded; a document
longer than the room left in a shard goes on in the next shard). Each document goes to train or val
by a hash of its content, so the split does not depend on file names or order; with ``dedup`` an
exact repeat of an earlier document is dropped. A corpus of one document with ``val_fraction`` > 0, or
one whose documents all went to validation, stops with an error that says how to fix it. After each shard a small state file records progress: a re-run after a crash
skips the finished shards and ends with byte-identical output. The manifest is written last; its
presence means the dataset is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_pipelines.atomic import atomic_write_json, atomic_write_text
from data_pipelines.errors import DataError, UserError
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
from data_pipelines.sources import ReadStats, fingerprint, iter_documents, resolve_sources
from data_pipelines.tokenizer import (
    check_vocab_size,
    encodes_in_pieces,
    eos_id,
    load_tokenizer,
    train_tokenizer,
    vocab_size_of,
)
from data_pipelines.writing import Encoder, SplitWriter

DEFAULT_SHARD_TOKENS = 1 << 22  # 4M tokens: 8 MB per uint16 shard, the bound on the writer's memory
# Text per encoding batch: small batches balance the worker processes; in this process a big batch
# lets the tokenizer's threads balance documents of very different sizes.
_BATCH_BYTES_WORKERS = 1 << 18
_BATCH_BYTES_IN_PROCESS = 1 << 22
_BATCH_DOCS = 2048


def prepare(sources: list[str], out: str | Path, *, vocab_size: int = 8192, tokenizer: str | Path | None = None,
            val_fraction: float = 0.01, workers: int = 1, dedup: bool = False, text_field: str = "text",
            shard_tokens: int = DEFAULT_SHARD_TOKENS, progress: bool = True, eos_token: str | None = None,
            overwrite: bool = False) -> dict:
    """Prepare ``sources`` (files, folders, globs) into a dataset folder ``out``; returns the manifest.

    ``tokenizer`` reuses an existing ``tokenizer.json`` instead of training one of ``vocab_size``.
    ``workers`` > 1 tokenizes in that many processes (the output does not depend on it).
    When ``out`` already holds a complete dataset prepared from the same files with the same
    settings, nothing is redone; one prepared with other settings is refused unless ``overwrite``.
    An unfinished earlier run with the same settings is resumed. Settings are checked before anything
    is written, and a call that stops with a user error (:class:`DataError`) removes what it created.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction} must be in [0, 1)")
    if shard_tokens < 1 or workers < 1:
        raise DataError("shard_tokens and workers must be positive")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; pass a folder for the prepared dataset")
    files = resolve_sources(sources)
    given = None
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        given = Path(tokenizer).read_text(encoding="utf-8")
        eos_id(tok, eos_token)
    else:
        check_vocab_size(vocab_size)
    settings = {
        "format_version": FORMAT_VERSION,
        "sources": [str(s) for s in sources],
        "files": len(files),
        "source_fingerprint": fingerprint(files),
        "vocab_size": None if given else vocab_size,
        "tokenizer_sha256": sha256_bytes(given.encode()) if given else None,
        "eos_token": eos_token,
        "val_fraction": val_fraction,
        "dedup": dedup,
        "text_field": text_field,
        "shard_tokens": shard_tokens,
    }
    key = sha256_bytes(json.dumps(settings, sort_keys=True).encode())
    settings["settings_key"] = key

    done = _existing(out, key, overwrite)
    if done is not None:
        return done
    with _removed_on_user_error(out):
        out.mkdir(parents=True, exist_ok=True)
        for tmp in out.glob(".*.tmp"):  # a crash inside an atomic write leaves its temp file
            tmp.unlink()
        state = _load_state(out, key)
        show = _Progress(progress, len(files))

        if given is None:
            if state is not None and (out / TOKENIZER).is_file():
                tok = load_tokenizer(out / TOKENIZER)  # the interrupted run already trained it
                tokenizer_json = (out / TOKENIZER).read_text(encoding="utf-8")
            else:
                stats = ReadStats()
                counts = dict.fromkeys(SPLITS, 0)
                train_docs = (text for split, text, _, end in _kept(files, text_field, val_fraction, dedup, stats, counts)
                              if split == "train")
                tok = train_tokenizer(show.wrap(train_docs, stats, "training tokenizer"), vocab_size)
                _check_documents(stats, sources)
                _check_split(counts, val_fraction)
                tokenizer_json = tok.to_str(pretty=True)
        else:
            tokenizer_json = given
        tok_sha = sha256_bytes(tokenizer_json.encode())
        if state is not None and state.get("tokenizer_sha256") != tok_sha:
            state = None
        atomic_write_text(out / TOKENIZER, tokenizer_json)
        eos_name, eos = eos_id(tok, eos_token)
        vocab = vocab_size_of(tok)
        dtype = token_dtype(vocab)

        writers: dict[str, SplitWriter] = {}

        def save_state() -> None:
            atomic_write_json(out / STATE, {"settings_key": key, "tokenizer_sha256": tok_sha,
                                            "splits": {s: w.shards for s, w in writers.items()}})

        for split in SPLITS:
            kept = (state or {}).get("splits", {}).get(split, [])
            _remove_stale_shards(out, split, len(kept))
            writers[split] = SplitWriter(out, split, dtype, shard_tokens, kept, save_state)
        save_state()

        stats = ReadStats()
        skip = {s: w.documents_done for s, w in writers.items()}
        encoder = Encoder(tok, tokenizer_json, eos, dtype, workers)
        try:
            docs = _kept(files, text_field, val_fraction, dedup, stats, whole=not encodes_in_pieces(tok))
            batch_bytes = _BATCH_BYTES_WORKERS if workers > 1 else _BATCH_BYTES_IN_PROCESS
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
        _check_documents(stats, sources)
        _check_split({s: w.documents_done for s, w in writers.items()}, val_fraction)

        manifest = {
            "format_version": FORMAT_VERSION,
            "dtype": dtype_name(dtype),
            "tokenizer": {"file": TOKENIZER, "sha256": tok_sha, "vocab_size": vocab, "eos_id": eos,
                          "eos_token": eos_name, "trained": given is None},
            "splits": {s: w.summary() for s, w in writers.items()},
            "read": stats.as_dict(),
            "counting": "tokens include one EOS per document; bytes are the UTF-8 bytes of the document text "
                        "(bits per byte = loss_nats_per_token * tokens / bytes / ln 2)",
            "prepare": settings,
        }
        atomic_write_json(out / MANIFEST, manifest)
        (out / STATE).unlink(missing_ok=True)
        return manifest


@contextmanager
def _removed_on_user_error(out: Path) -> Iterator[None]:
    """On a :class:`UserError` inside the block, remove what it created: ``out`` (and any parent folders
    made for it) when it did not exist, else only the entries of ``out`` that were not there before.

    Other exceptions (an interruption, a crash) leave everything in place for a resume."""
    top = None  # the outermost folder this call creates
    for folder in (out, *out.parents):
        if folder.exists():
            break
        top = folder
    before = None if top is not None else set(out.iterdir())
    try:
        yield
    except UserError:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        elif out.is_dir():
            for path in set(out.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def _existing(out: Path, key: str, overwrite: bool) -> dict | None:
    """The manifest of a complete dataset with the same settings; None when work is needed."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        same = manifest["prepare"]["settings_key"] == key
    except (ValueError, KeyError, TypeError):
        same = False
    if same:
        from data_pipelines.dataset import PreparedDataset

        try:
            PreparedDataset.open(out, verify="fast")
            return manifest
        except DataError:  # damaged since (a truncated or deleted shard): prepare it again
            path.unlink()
            return None
    if not overwrite:
        raise DataError(f"{out} already holds a dataset prepared from other sources or settings; "
                        "choose another --out or pass --overwrite")
    path.unlink()
    return None


def _load_state(out: Path, key: str) -> dict | None:
    """The progress of an interrupted run with the same settings, if its shards are intact."""
    path = out / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return None
    if state.get("settings_key") != key:
        return None
    for shards in state.get("splits", {}).values():
        for s in shards:
            for name, digest in ((s["file"], s["sha256"]), (s["index"], s["index_sha256"])):
                if not (out / name).is_file() or sha256_file(out / name) != digest:
                    return None
    return state


def _remove_stale_shards(out: Path, split: str, keep: int) -> None:
    for path in out.glob(f"{split}-*.*"):
        if path.suffix in (".bin", ".idx") and path.stem[len(split) + 1:].isdigit():
            if int(path.stem[len(split) + 1:]) >= keep:
                path.unlink()


def _kept(files: list[Path], text_field: str, val_fraction: float, dedup: bool, stats: ReadStats,
          counts: dict[str, int] | None = None, whole: bool = False) -> Iterator[tuple[str, str, int, bool]]:
    """Yield ``(split, text, utf8_bytes, ends_document)`` for every piece of every document kept after dedup.

    A large plain-text file comes in several pieces (all of one split, by the hash of its whole
    text); ``whole`` joins them into one text, for a tokenizer that cannot encode in pieces.
    ``counts`` (optional) is incremented per split for each kept document."""
    seen: set[bytes] = set()
    threshold = int(val_fraction * 2**64)
    for doc in iter_documents(files, text_field, stats):
        if isinstance(doc, str):
            data = doc.encode("utf-8")
            digest, pieces = hashlib.sha256(data).digest(), [(doc, len(data))]
        else:
            digest, nbytes = doc.digest()
            if whole:
                pieces = [("".join(doc.pieces(stats)), nbytes)]
            else:
                pieces = ((p, len(p.encode("utf-8"))) for p in doc.pieces(stats))
        if dedup:
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
