"""Reading your text as it is: files, folders and globs of plain text, JSON lines, compressed files
and Parquet, turned into a stream of documents.

One document is a whole plain-text file (any extension; a large one is read and yielded as a
:class:`LargeText`, in pieces of about a million characters, so memory stays bounded), one line of a
``.jsonl``/``.json`` file (its ``text_field``), or one row of a ``.parquet`` file (its ``text_field``
column). ``.gz`` and ``.zst`` files are decompressed on the fly and then read by their inner
extension (``notes.jsonl.zst`` is JSON lines). Binary files (a NUL byte in the first 8 KiB) are skipped and
counted; bytes that are not UTF-8 are replaced by U+FFFD and counted. Folders are walked
recursively in sorted order, skipping hidden entries (names starting with ``.``).
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_pipelines.errors import DataError

_GLOB_CHARS = set("*?[")
_SNIFF_BYTES = 8192
_BINARY_NAMED = 5  # binary files named in the manifest and the summary
_COMPRESSED = (".gz", ".zst")
_JSON_LINES = (".jsonl", ".json", ".ndjson")
_PIECE_CHARS = 1 << 20  # a large plain-text file is read and encoded in pieces of about this many characters
# The last place in a window where a piece may end: just before a newline (else a space) that is followed by
# a non-whitespace character. Byte-level BPE pre-tokenization (the GPT-2 pattern) always has a boundary
# there, so encoding the pieces one by one gives exactly the tokens of encoding the whole text.
_SAFE_CUT = re.compile(r".+\n(?=\S)|.+ (?=\S)", re.DOTALL)


@dataclass
class ReadStats:
    """What reading the sources found; reported in the summary and the manifest."""

    files: int = 0  # files read as text, JSON lines or Parquet
    binary_files_skipped: int = 0  # files skipped because they look binary
    replaced_bytes: int = 0  # undecodable bytes replaced by U+FFFD
    empty_documents: int = 0  # documents with no text, dropped
    documents: int = 0  # non-empty documents read
    duplicates_removed: int = 0  # exact repeats dropped by dedup
    binary_files_skipped_names: list[str] = field(default_factory=list)  # the first few of those files

    def as_dict(self) -> dict:
        """The counts (and the first names of binary files) as a plain dict, for the manifest."""
        return asdict(self)

    def skip_binary(self, path: Path) -> None:
        """Count ``path`` as a binary file skipped (naming it when it is among the first few)."""
        self.binary_files_skipped += 1
        if len(self.binary_files_skipped_names) < _BINARY_NAMED:
            self.binary_files_skipped_names.append(str(path))


# Counting replacement bytes needs a codec error handler that sees every bad byte range.
_replaced = [0]


def _count_and_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    _replaced[0] += err.end - err.start
    return "\ufffd", err.end


codecs.register_error("data_pipelines_count_replace", _count_and_replace)


def decode_utf8(data: bytes, stats: ReadStats) -> str:
    """Decode UTF-8, replacing (and counting into ``stats``) bytes that are not valid UTF-8."""
    before = _replaced[0]
    text = data.decode("utf-8", errors="data_pipelines_count_replace")
    stats.replaced_bytes += _replaced[0] - before
    return text


def safe_cut(text: str, limit: int) -> int:
    """Where to end a piece of ``text`` of at most ``limit`` characters without changing its tokens.

    The last position before a newline followed by a non-whitespace character (else before such a
    space); ``limit`` itself when the window has neither (text without whitespace: the one place
    where a token may differ from encoding the whole text)."""
    m = _SAFE_CUT.match(text, 0, limit + 1)
    return m.end() - 1 if m else limit


def text_pieces(f: io.BufferedIOBase, stats: ReadStats, piece_chars: int | None = None) -> Iterator[str]:
    """Decode a binary stream as UTF-8 (counting replaced bytes) in pieces cut by :func:`safe_cut`."""
    piece_chars = piece_chars or _PIECE_CHARS
    decoder = codecs.getincrementaldecoder("utf-8")(errors="data_pipelines_count_replace")
    buf = ""
    while True:
        raw = f.read(piece_chars)
        before = _replaced[0]
        buf += decoder.decode(raw, final=not raw)
        stats.replaced_bytes += _replaced[0] - before
        while len(buf) > piece_chars:
            cut = safe_cut(buf, piece_chars)
            yield buf[:cut]
            buf = buf[cut:]
        if not raw:
            if buf:
                yield buf
            return


class LargeText:
    """A plain-text file too large to hold as one string: one document, read again for each use."""

    def __init__(self, path: Path, compression: str | None):
        self.path, self.compression = path, compression

    def pieces(self, stats: ReadStats) -> Iterator[str]:
        """The document's text in order, in pieces that encode to exactly the whole text's tokens."""
        with _reading(self.path), _open_binary(self.path, self.compression) as f:
            yield from text_pieces(f, stats)

    def digest(self) -> tuple[bytes, int]:
        """sha256 of the document's UTF-8 text (as decoded) and its length in bytes."""
        h, n = hashlib.sha256(), 0
        for piece in self.pieces(ReadStats()):
            data = piece.encode("utf-8")
            h.update(data)
            n += len(data)
        return h.digest(), n


def resolve_sources(sources: list[str | Path]) -> list[Path]:
    """Expand files, folders (recursively) and globs into a sorted, de-duplicated list of files.

    Raises DataError for a path that does not exist or a glob that matches nothing.
    """
    if not sources:
        raise DataError("no sources given; pass files, folders or globs of text to prepare")
    files: set[Path] = set()
    for src in sources:
        s = str(src)
        if _GLOB_CHARS & set(s) and not Path(s).exists():
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise DataError(f"no files match {s!r}; check the pattern (use ** for subfolders)")
            candidates = [Path(m) for m in matches]
        else:
            p = Path(s)
            if not p.exists():
                raise DataError(f"source not found: {s}; pass an existing file, folder or glob")
            candidates = [p]
        for p in candidates:
            if p.is_dir():
                files.update(_walk(p))
            elif p.is_file():
                files.add(p)
    for p in files:
        check_utf8_name(p)
    return sorted(files, key=lambda p: str(p))


def check_utf8_name(path: str | Path, fix: str = "rename it or leave it out of the sources") -> None:
    """Raise DataError (saying ``fix``) when ``path`` is not valid UTF-8: manifests record names as text."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise DataError(f"the name {shown} is not valid UTF-8; {fix}") from None


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def fingerprint(files: list[Path]) -> str:
    """A hash of the file list with sizes and modification times: changes when the input changes."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _inner_suffix(path: Path) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _COMPRESSED else None
    if compression:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compression


def _open_binary(path: Path, compression: str | None) -> io.BufferedIOBase:
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".zst":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _is_binary(head: bytes) -> bool:
    return b"\0" in head[:_SNIFF_BYTES]


def iter_documents(files: list[Path], text_field: str, stats: ReadStats) -> Iterator[str | LargeText]:
    """Yield every non-empty document of ``files`` in order, updating ``stats`` as it goes.

    A document is a string, or a :class:`LargeText` for a plain-text file of more than about a
    million characters (its replaced bytes are counted when its pieces are read)."""
    for path in files:
        suffix, compression = _inner_suffix(path)
        with _reading(path):
            if suffix == ".parquet":
                docs = _parquet_documents(path, text_field, stats)
            else:
                docs = _stream_documents(path, suffix, compression, text_field, stats)
            for doc in docs:
                if doc:
                    stats.documents += 1
                    yield doc
                else:
                    stats.empty_documents += 1


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a file, or decompressing a corrupt ``.gz``/``.zst``, raises."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a read or decompression error inside the block into a one-line DataError naming ``path``."""
    try:
        yield
    except _read_errors() as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"cannot read {path}: {first}; check that the file is complete and not "
                        "corrupt") from e


def _stream_documents(path: Path, suffix: str, compression: str | None, text_field: str,
                      stats: ReadStats) -> Iterator[str]:
    with _open_binary(path, compression) as f:
        head = f.peek(_SNIFF_BYTES)[:_SNIFF_BYTES] if hasattr(f, "peek") else b""
        if _is_binary(head):
            stats.skip_binary(path)
            return
        stats.files += 1
        if suffix not in _JSON_LINES:
            head = f.read(_PIECE_CHARS)
            if f.read(1):
                yield LargeText(path, compression)
            else:
                yield decode_utf8(head, stats)
            return
        for lineno, raw in enumerate(f, start=1):
            line = decode_utf8(raw, stats).strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {lineno} is not JSON ({e.msg}); one JSON object per line "
                                "is expected") from e
            yield _field(record, text_field, f"{path} line {lineno}")


def _field(record: object, text_field: str, where: str) -> str:
    if isinstance(record, str):
        return record
    if not isinstance(record, dict) or text_field not in record:
        keys = ", ".join(map(str, record)) if isinstance(record, dict) else type(record).__name__
        raise DataError(f"{where} has no field {text_field!r} (found: {keys}); pass --text-field NAME")
    value = record[text_field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {text_field!r} is {type(value).__name__}, not text")
    return value


def _parquet_documents(path: Path, text_field: str, stats: ReadStats) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own types for a corrupt file
        raise DataError(f"cannot read {path} as Parquet: {e}") from e
    names = pf.schema_arrow.names
    if text_field not in names:
        raise DataError(f"{path} has no column {text_field!r} (columns: {', '.join(names)}); "
                        "pass --text-field NAME")
    column = pf.schema_arrow.field(text_field).type
    if not (pa.types.is_string(column) or pa.types.is_large_string(column) or pa.types.is_binary(column)
            or pa.types.is_large_binary(column)):
        raise DataError(f"{path}: column {text_field!r} holds {column}, not text; pass --text-field NAME of "
                        "a text column")
    stats.files += 1
    for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            if isinstance(value, bytes):
                value = decode_utf8(value, stats)
            yield value or ""
