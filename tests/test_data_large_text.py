"""A large plain-text file: read and encoded in pieces with the same tokens, spread over shards."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from data_fixtures import prepare_small
from test_data_prepare import documents, tree

import data_pipelines.sources as sources
import data_pipelines.writing as writing
from data_pipelines import DataError, PreparedDataset, prepare, stdlib_sources
from data_pipelines.sources import ReadStats, safe_cut, text_pieces
from data_pipelines.tokenizer import encodes_in_pieces, prepare_for_encoding

PIECE = 20_000  # characters per piece in these tests (1 Mi in use), so a few hundred KB make many pieces


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "ds"
    prepare_small(out, max_bytes=120_000, vocab_size=600)
    return out / "tokenizer.json"


@pytest.fixture(scope="module")
def big_text() -> str:
    """~400 KB of real text: stdlib sources, with CRLF line ends and blank-line runs in parts."""
    parts = [p.read_text(encoding="utf-8") for p in stdlib_sources(max_bytes=400_000)]
    parts[1] = parts[1].replace("\n", "\r\n")
    parts[2] = parts[2].replace("\n\n", "\n  \n\n\t")
    return "".join(parts)


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(sources, "_PIECE_CHARS", PIECE)


def test_encoding_in_pieces_gives_exactly_the_tokens_of_the_whole_text(tokenizer_file, big_text):
    tok = PreparedDataset.open(tokenizer_file.parent).tokenizer()
    prepare_for_encoding(tok)
    assert encodes_in_pieces(tok)
    pieces = list(text_pieces(io.BytesIO(big_text.encode()), ReadStats(), piece_chars=PIECE))
    assert len(pieces) > 10 and "".join(pieces) == big_text
    assert max(map(len, pieces)) <= PIECE
    whole = tok.encode(big_text, add_special_tokens=False).ids
    in_pieces = [i for e in tok.encode_batch(pieces, add_special_tokens=False) for i in e.ids]
    assert in_pieces == whole


def test_a_piece_ends_before_a_newline_or_space_followed_by_text():
    assert safe_cut("ab\ncd\nef", 7) == 5  # before the last newline followed by non-whitespace in reach
    assert safe_cut("ab\ncd\n  ef", 9) == 2  # a newline (if any) rather than a space
    assert safe_cut("abc def", 6) == 3
    assert safe_cut("abcdefgh", 4) == 4  # no whitespace: a hard cut


def test_a_large_file_is_one_document_spread_over_shards(tmp_path, tokenizer_file, big_text, small_pieces):
    src = tmp_path / "book.txt"
    src.write_text(big_text, encoding="utf-8", newline="")
    out = tmp_path / "ds"
    m = prepare([str(src)], out, tokenizer=tokenizer_file, val_fraction=0.0, shard_tokens=30_000,
                progress=False)
    shards = m["splits"]["train"]["shards"]
    assert len(shards) > 3 and all(s["tokens"] == 30_000 for s in shards[:-1])
    assert [s["documents"] for s in shards] == [0] * (len(shards) - 1) + [1]
    assert documents(out, "train") == [big_text]  # one EOS, at the very end
    assert m["splits"]["train"]["bytes"] == len(big_text.encode())


def test_a_one_document_corpus_with_a_validation_fraction_is_refused(tmp_path, tokenizer_file):
    (tmp_path / "one.txt").write_text("just one document\n")
    with pytest.raises(DataError, match="one document.*--val-fraction 0") as info:
        prepare([str(tmp_path / "one.txt")], tmp_path / "out", tokenizer=tokenizer_file, progress=False)
    assert "\n" not in str(info.value)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [3, 6])  # in the middle of the large document's shards
def test_a_prepare_stopped_inside_a_large_document_resumes_to_identical_output(
        tmp_path, tokenizer_file, big_text, small_pieces, monkeypatch, kill_at):
    src = tmp_path / "src"
    src.mkdir()
    (src / "book.txt").write_text(big_text)
    for p in stdlib_sources(max_bytes=60_000):
        shutil.copy(p, src / f"{p.name}.txt")
    kw = dict(tokenizer=tokenizer_file, val_fraction=0.2, shard_tokens=30_000, progress=False)
    real, count = writing.atomic_write_bytes, [0]

    def dying_write(path, data):
        count[0] += 1
        if count[0] == kill_at:
            raise _Killed
        real(path, data)

    monkeypatch.setattr(writing, "atomic_write_bytes", dying_write)
    with pytest.raises(_Killed):
        prepare([str(src)], tmp_path / "out", **kw)
    monkeypatch.setattr(writing, "atomic_write_bytes", real)
    prepare([str(src)], tmp_path / "out", **kw)
    prepare([str(src)], tmp_path / "clean", **kw)
    assert tree(tmp_path / "out") == tree(tmp_path / "clean")
    assert big_text in documents(tmp_path / "clean", "train") + documents(tmp_path / "clean", "val")
    assert np.diff(PreparedDataset.open(tmp_path / "clean").document_ends("train")).min() > 0


def test_a_tokenizer_that_cannot_encode_in_pieces_gets_the_large_file_whole(tmp_path, tokenizer_file,
                                                                           big_text,
                                                                            small_pieces):
    import json

    from tokenizers import Tokenizer

    spec = json.loads(tokenizer_file.read_text())
    spec["pre_tokenizer"]["add_prefix_space"] = True  # encoded in pieces, every piece would get a space
    given = tmp_path / "prefix-space.json"
    given.write_text(json.dumps(spec))
    tok = Tokenizer.from_file(str(given))
    assert not encodes_in_pieces(tok)
    src = tmp_path / "book.txt"
    src.write_text(big_text, encoding="utf-8", newline="")
    m = prepare([str(src)], tmp_path / "ds", tokenizer=given, val_fraction=0.0, shard_tokens=30_000,
                progress=False)
    ds = PreparedDataset.open(tmp_path / "ds")
    prepare_for_encoding(tok)
    expected = tok.encode(big_text, add_special_tokens=False).ids + [ds.eos_id]
    assert np.asarray(ds.tokens("train")).tolist() == expected  # the tokens of the whole text, one EOS
    assert m["splits"]["train"]["bytes"] == len(big_text.encode())
