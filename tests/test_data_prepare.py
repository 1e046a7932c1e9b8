"""prepare: exact round trip, content-hash split, dedup, formats, tokenizer, crash-safe resume."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zstandard
from data_fixtures import prepare_small

from data_pipelines import DataError, PreparedDataset, prepare, stdlib_sources
from data_pipelines.format import token_dtype

SMALL = 150_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder of real text files (stdlib modules) with flat names."""
    folder = tmp_path_factory.mktemp("corpus")
    for p in stdlib_sources(max_bytes=SMALL):
        shutil.copy(p, folder / f"{p.parent.name}_{p.name}.txt")
    return folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("prep") / "ds"
    prepare([str(corpus)], out, vocab_size=1024, val_fraction=0.2, shard_tokens=8000, progress=False)
    return out


def documents(out: Path, split: str) -> list[str]:
    """Decode a split by its document index, checking that every document ends with its only EOS."""
    ds = PreparedDataset.open(out, verify="full")
    tok = ds.tokenizer()
    shards = ds.manifest["splits"][split]["shards"]
    for shard in shards:
        assert len(np.fromfile(out / shard["file"], dtype=ds.dtype)) == shard["tokens"]
    tokens, ends = np.asarray(ds.tokens(split)), ds.document_ends(split)
    assert len(tokens) == (ends[-1] if len(ends) else 0)
    docs, start = [], 0
    for end in ends:
        assert tokens[end - 1] == ds.eos_id
        assert ds.eos_id not in tokens[start:end - 1]
        docs.append(tok.decode(tokens[start:end - 1].tolist(), skip_special_tokens=False))
        start = end
    return docs


def test_decoding_the_shards_gives_back_exactly_the_documents(prepared, corpus):
    originals = {p.read_text() for p in corpus.iterdir()} - {""}
    train, val = documents(prepared, "train"), documents(prepared, "val")
    assert val and train
    assert set(train) | set(val) == originals and not set(train) & set(val)
    assert len(train) + len(val) == len(originals)
    # train keeps the sorted file order
    ordered = [t for p in sorted(corpus.iterdir(), key=str) if (t := p.read_text()) and t in set(train)]
    assert train == ordered


def test_manifest_counts_match_the_shards(prepared):
    m = json.loads((prepared / "manifest.json").read_text())
    ds = PreparedDataset.open(prepared)
    for split in ("train", "val"):
        docs = documents(prepared, split)
        assert ds.split_documents(split) == len(docs)
        assert ds.split_bytes(split) == sum(len(d.encode()) for d in docs)
        assert ds.split_tokens(split) == sum(s["tokens"] for s in m["splits"][split]["shards"])
        # the document-boundary index across shards: one end per document, each on an EOS
        ends, tokens = ds.document_ends(split), np.asarray(ds.tokens(split))
        assert len(ends) == len(docs) and ends[-1] == len(tokens) == ds.split_tokens(split)
        assert (tokens[ends - 1] == ds.eos_id).all() and (np.diff(ends) > 0).all()
    assert m["dtype"] == "uint16" and m["tokenizer"]["vocab_size"] == ds.vocab_size == 1024
    assert len(m["splits"]["train"]["shards"]) > 1


def test_split_does_not_change_when_files_are_renamed_or_reordered(tmp_path, corpus, prepared):
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    files = sorted(corpus.iterdir())
    for i, p in enumerate(reversed(files)):  # reversed order and new names
        sub = renamed / f"part{i % 3}"
        sub.mkdir(exist_ok=True)
        shutil.copy(p, sub / f"{i:04d}.md")
    out = tmp_path / "ds"
    prepare([str(renamed)], out, tokenizer=prepared / "tokenizer.json", val_fraction=0.2,
            shard_tokens=8000, progress=False)
    assert set(documents(out, "val")) == set(documents(prepared, "val"))
    assert set(documents(out, "train")) == set(documents(prepared, "train"))


def test_dedup_removes_exact_duplicates_only(tmp_path, prepared):
    src = tmp_path / "src"
    src.mkdir()
    base = "def f(x):\n    return x + 1\n" * 20
    texts = {"a.txt": base, "b.txt": base, "c.txt": base + " ", "d.txt": base.upper(), "e.txt": base}
    for name, text in texts.items():
        (src / name).write_text(text)
    tok = prepared / "tokenizer.json"
    m = prepare([str(src)], tmp_path / "dedup", tokenizer=tok, dedup=True, val_fraction=0.0, progress=False)
    assert m["read"]["duplicates_removed"] == 2
    assert sorted(documents(tmp_path / "dedup", "train")) == sorted([base, base + " ", base.upper()])
    m = prepare([str(src)], tmp_path / "all", tokenizer=tok, val_fraction=0.0, progress=False)
    assert m["splits"]["train"]["documents"] == 5 and m["read"]["duplicates_removed"] == 0


def test_every_input_format_is_read_and_binary_and_bad_bytes_are_counted(tmp_path, prepared):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "plain.rst").write_text("plain text file\n")
    (src / "nested" / "lines.jsonl").write_text('{"text": "json one"}\n\n{"text": "json two", "id": 2}\n')
    with gzip.open(src / "nested" / "lines.json.gz", "wt") as f:
        f.write(json.dumps({"text": "gzip json"}) + "\n")
    (src / "nested" / "deeper" / "doc.md.zst").write_bytes(zstandard.ZstdCompressor().compress(b"zstd text"))
    pq.write_table(pa.table({"text": ["parquet a", "parquet b"], "n": [1, 2]}), src / "table.parquet")
    (src / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (src / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (src / ".hidden").write_text("never read")
    m = prepare([str(src)], tmp_path / "out", tokenizer=prepared / "tokenizer.json", val_fraction=0.0,
                progress=False)
    assert sorted(documents(tmp_path / "out", "train")) == sorted(
        ["plain text file\n", "json one", "json two", "gzip json", "zstd text", "parquet a", "parquet b",
         "caf\ufffd cr\ufffdme"])
    assert m["read"]["binary_files_skipped"] == 1
    assert m["read"]["replaced_bytes"] == 2
    assert m["read"]["files"] == 6


def test_globs_select_files(tmp_path, prepared):
    for name in ("a.txt", "b.txt", "c.log"):
        (tmp_path / name).write_text(f"text of {name}")
    m = prepare([str(tmp_path / "*.txt")], tmp_path / "out", tokenizer=prepared / "tokenizer.json",
                val_fraction=0.0, progress=False)
    assert m["splits"]["train"]["documents"] == 2


def test_text_field_chooses_the_json_field_and_a_missing_one_is_named(tmp_path, prepared):
    (tmp_path / "d.jsonl").write_text('{"content": "the body", "text": "other"}\n')
    tok = prepared / "tokenizer.json"
    prepare([str(tmp_path / "d.jsonl")], tmp_path / "out", tokenizer=tok, text_field="content",
            val_fraction=0.0, progress=False)
    assert documents(tmp_path / "out", "train") == ["the body"]
    with pytest.raises(DataError, match="no field 'body'.*--text-field"):
        prepare([str(tmp_path / "d.jsonl")], tmp_path / "out2", tokenizer=tok, text_field="body",
                progress=False)


def test_tokenizer_training_is_deterministic_and_a_given_tokenizer_is_kept_byte_for_byte(tmp_path, corpus,
                                                                                        prepared):
    again = prepare([str(corpus)], tmp_path / "again", vocab_size=1024, val_fraction=0.2, shard_tokens=8000,
                    progress=False)
    first = json.loads((prepared / "manifest.json").read_text())
    assert again["tokenizer"]["sha256"] == first["tokenizer"]["sha256"]
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (prepared / "tokenizer.json").read_bytes()
    reused = prepare([str(corpus)], tmp_path / "reused", tokenizer=prepared / "tokenizer.json",
                     val_fraction=0.2, shard_tokens=8000, progress=False)
    assert reused["tokenizer"]["sha256"] == first["tokenizer"]["sha256"]
    assert not reused["tokenizer"]["trained"]
    assert reused["splits"] == first["splits"]


def test_a_literal_eos_string_in_the_text_is_not_an_eos_token(tmp_path, prepared):
    (tmp_path / "a.txt").write_text("before <|endoftext|> after")
    prepare([str(tmp_path / "a.txt")], tmp_path / "out", tokenizer=prepared / "tokenizer.json",
            val_fraction=0.0, progress=False)
    assert documents(tmp_path / "out", "train") == ["before <|endoftext|> after"]


def test_token_dtype_widens_past_65536_ids():
    assert token_dtype(65536).itemsize == 2 and token_dtype(65537).itemsize == 4


def test_a_complete_dataset_is_not_prepared_again(tmp_path):
    out = tmp_path / "ds"
    prepare_small(out, max_bytes=60_000)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    prepare_small(out, max_bytes=60_000)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    with pytest.raises(DataError, match=r"other settings \(vocab_size: 1024 there, 600 now\).*--overwrite"):
        prepare_small(out, max_bytes=60_000, vocab_size=600)
    prepare_small(out, max_bytes=60_000, vocab_size=600, overwrite=True)
    assert PreparedDataset.open(out).vocab_size == 600


@pytest.mark.parametrize(("error", "call"), [
    ("source not found", lambda t: prepare([str(t / "missing")], t / "o", progress=False)),
    ("no files match", lambda t: prepare([str(t / "*.nothing")], t / "o", progress=False)),
    ("no documents found", lambda t: prepare([str(t / "empty")], t / "o", progress=False)),
    ("not a HF tokenizers tokenizer.json",
     lambda t: prepare([str(t / "empty")], t / "o", tokenizer=t / "empty" / "bin.dat", progress=False)),
])
def test_bad_input_is_a_one_line_data_error(tmp_path, error, call):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("")
    (tmp_path / "empty" / "bin.dat").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match=error) as info:
        call(tmp_path)
    assert "\n" not in str(info.value)


def test_two_workers_write_the_same_bytes_as_one(tmp_path, corpus, prepared):
    tok = prepared / "tokenizer.json"
    kw = dict(tokenizer=tok, val_fraction=0.2, shard_tokens=8000, progress=False)
    prepare([str(corpus)], tmp_path / "one", workers=1, **kw)
    prepare([str(corpus)], tmp_path / "two", workers=2, **kw)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


_KILLER = """
import os, signal, sys
import data_pipelines.writing as w
from data_pipelines import prepare
real = w.atomic_write_bytes
count = [0]
def dying_write(path, data):
    count[0] += 1
    if count[0] == {kill_at}:
        # die in the middle of writing a shard: half a temp file on disk, nothing renamed
        with open(path.parent / ("." + path.name + ".partial.tmp"), "wb") as f:
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
w.atomic_write_bytes = dying_write
prepare([sys.argv[1]], sys.argv[2], tokenizer=sys.argv[3], val_fraction=0.2, shard_tokens=8000,
        progress=False)
"""


@pytest.mark.parametrize("kill_at", [4, 7])  # writes 1,3,5,7 are token files, 2,4,6 indexes
def test_a_prepare_killed_midway_resumes_to_byte_identical_output(tmp_path, corpus, prepared, kill_at):
    tok = str(prepared / "tokenizer.json")
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLER.format(kill_at=kill_at)),
                           str(corpus), str(out), tok], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (out / "manifest.json").exists()
    with pytest.raises(DataError, match="did not finish"):
        PreparedDataset.open(out)
    finished = out / "train-00000.bin"
    stamp = finished.stat().st_mtime_ns
    prepare([str(corpus)], out, tokenizer=tok, val_fraction=0.2, shard_tokens=8000, progress=False)
    assert finished.stat().st_mtime_ns == stamp  # the finished shard was kept, not rewritten
    clean = tmp_path / "clean"
    prepare([str(corpus)], clean, tokenizer=tok, val_fraction=0.2, shard_tokens=8000, progress=False)
    assert tree(out) == tree(clean)


def test_atomic_writes_get_the_permissions_the_umask_gives(tmp_path):
    import os
    import stat

    from data_pipelines.atomic import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "shared.json", {"a": 1})
        os.umask(0o077)
        atomic_write_json(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644  # teammates can read it
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def _cases(t: Path, tok: Path) -> dict:
    """Bad inputs found only after the output folder was made (or, before the fix, after it was)."""
    (t / "empty").mkdir(exist_ok=True)
    (t / "empty" / "blank.txt").write_text("")
    (t / "bad.txt.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    (t / "bad.md.zst").write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
    (t / "many").mkdir(exist_ok=True)
    for i in range(20):
        (t / "many" / f"{i}.txt").write_text(f"document {i} of several\n")
    return {
        "no documents found": lambda out, **kw: prepare([str(t / "empty")], out, vocab_size=300,
                                                        progress=False, **kw),
        "vocab_size=10 is too small": lambda out, **kw: prepare([str(t / "many")], out, vocab_size=10,
                                                                progress=False, **kw),
        "no documents found ": lambda out, **kw: prepare([str(t / "empty")], out, tokenizer=tok,
                                                         progress=False, **kw),
        "cannot read": lambda out, **kw: prepare([str(t / "bad.txt.gz")], out, tokenizer=tok, progress=False,
                                                 **kw),
        "cannot read ": lambda out, **kw: prepare([str(t / "bad.md.zst")], out, tokenizer=tok, progress=False,
                                                  **kw),
        "went to validation": lambda out, **kw: prepare([str(t / "many")], out, tokenizer=tok,
                                                        val_fraction=0.9999, shard_tokens=5, progress=False,
                                                        **kw),
    }


@pytest.mark.parametrize("case", ["no documents found", "vocab_size=10 is too small", "no documents found ",
                                  "cannot read", "cannot read ", "went to validation"])
def test_a_failed_prepare_leaves_no_debris_and_keeps_what_was_there(tmp_path, prepared, case):
    call = _cases(tmp_path, prepared / "tokenizer.json")[case]
    with pytest.raises(DataError, match=case.strip()) as info:
        call(tmp_path / "new" / "nested" / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "new").exists()  # the folders it made are gone
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=case.strip()):
        call(mine, overwrite=True)  # a folder holding other files is written into only with --overwrite
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_an_out_path_that_is_a_file_is_a_one_line_error(tmp_path, prepared):
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(DataError, match="is a file; pass a folder"):
        prepare([str(tmp_path / "a.txt")], tmp_path / "taken", tokenizer=prepared / "tokenizer.json",
                progress=False)
    assert (tmp_path / "taken").read_text() == "a file"
