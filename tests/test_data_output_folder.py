"""prepare writes only where it may: a new or empty folder, or its own; file-system errors are one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

import data_pipelines.writing as writing
from data_pipelines import DataError, PreparedDataset, prepare
from scaling.cli import main

SHARD_TOKENS = 400  # a dozen shards from the small corpus below


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        (folder / f"{i:02d}.txt").write_text(f"document {i} says something about the number {i}. " * 12)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("tok") / "ds"
    prepare([str(corpus)], out, vocab_size=300, val_fraction=0.1, progress=False)
    return out / "tokenizer.json"


def run(corpus: Path, out: Path, tokenizer: Path, **kw) -> dict:
    return prepare([str(corpus)], out, tokenizer=tokenizer, val_fraction=0.1, shard_tokens=SHARD_TOKENS,
                   progress=False, **kw)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_error(capsys, argv: list[str], match: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert match in err, err
    return err


def strangers(folder: Path) -> dict[str, bytes]:
    """A folder holding files with the names prepare writes, that prepare did not write."""
    folder.mkdir()
    files = {"tokenizer.json": b'{"mine": true}', "train-00000.bin": b"my bytes", "val-00003.bin": b"more",
             "notes.txt": b"keep me"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_folder_prepare_did_not_make_is_refused_and_left_as_it_was(tmp_path, corpus, tokenizer, capsys):
    out = tmp_path / "theirs"
    files = strangers(out)
    err = one_line_error(capsys, ["prepare", str(corpus), "--out", str(out), "--tokenizer", str(tokenizer),
                                  "--quiet"],
                         "is not empty (notes.txt, tokenizer.json, train-00000.bin and 1 more)")
    assert "--overwrite" in err
    assert tree(out) == files


def test_overwrite_replaces_only_the_files_prepare_writes(tmp_path, corpus, tokenizer):
    out = tmp_path / "theirs"
    strangers(out)
    (out / "sub").mkdir()
    (out / "sub" / "train-00000.bin").write_bytes(b"in a subfolder")
    run(corpus, out, tokenizer, overwrite=True)
    assert (out / "notes.txt").read_bytes() == b"keep me"
    assert (out / "sub" / "train-00000.bin").read_bytes() == b"in a subfolder"
    assert (out / "tokenizer.json").read_bytes() == tokenizer.read_bytes()
    assert not (out / "val-00003.bin").exists()  # a shard of ours by name, not in the new dataset
    clean = tmp_path / "clean"
    run(corpus, clean, tokenizer)
    assert tree(out) == {**tree(clean), "notes.txt": b"keep me"}


def test_a_manifest_prepare_did_not_write_is_never_removed(tmp_path, corpus, tokenizer):
    out = tmp_path / "project"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "my project"}')
    for overwrite in (False, True):
        with pytest.raises(DataError, match="manifest.json was not written by `scaling prepare`"):
            run(corpus, out, tokenizer, overwrite=overwrite)
    assert tree(out) == {"manifest.json": b'{"name": "my project"}'}


def test_other_files_in_a_prepared_folder_survive_a_prepare_with_other_settings(tmp_path, corpus, tokenizer):
    out = tmp_path / "ds"
    run(corpus, out, tokenizer)
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"other settings \(val_fraction: 0.1 there, 0.3 now; shard_tokens: "
                                        r"400 there, 4194304 now\)"):
        prepare([str(corpus)], out, tokenizer=tokenizer, val_fraction=0.3, progress=False)
    prepare([str(corpus)], out, tokenizer=tokenizer, val_fraction=0.3, progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert PreparedDataset.open(out).manifest["prepare"]["val_fraction"] == 0.3


def finished_shards(out: Path) -> dict[str, int]:
    """The token files an unfinished prepare recorded as done, with their modification times."""
    state = json.loads((out / ".prepare-state.json").read_text())
    return {s["file"]: (out / s["file"]).stat().st_mtime_ns
            for shards in state["splits"].values() for s in shards}


def fail_shard_write(monkeypatch, at: int, error: int) -> None:
    """Make the ``at``-th shard file write fail with the OS error ``error`` (as a full disk does)."""
    real, count = writing.atomic_write_bytes, [0]

    def write(path, data):
        count[0] += 1
        if count[0] == at:
            raise OSError(error, os.strerror(error), str(path))
        real(path, data)

    monkeypatch.setattr(writing, "atomic_write_bytes", write)


def test_a_full_disk_is_one_line_and_the_same_call_resumes(tmp_path, corpus, tokenizer, monkeypatch):
    out = tmp_path / "ds"
    fail_shard_write(monkeypatch, at=7, error=errno.ENOSPC)  # writes 1,3,5,7 are token files
    with pytest.raises(DataError, match=f"no space left on the device of {out}; free some space") as info:
        run(corpus, out, tokenizer)
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert not (out / "manifest.json").exists()
    finished = finished_shards(out)
    assert len(finished) == 3  # the shards written before the disk filled stay
    run(corpus, out, tokenizer)
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished  # not written again
    clean = tmp_path / "clean"
    run(corpus, clean, tokenizer)
    assert tree(out) == tree(clean)


def test_an_unfinished_prepare_with_other_settings_is_named_and_refused(tmp_path, corpus, tokenizer,
                                                                        monkeypatch):
    out = tmp_path / "ds"
    fail_shard_write(monkeypatch, at=3, error=errno.ENOSPC)
    with pytest.raises(DataError, match="no space left"):
        run(corpus, out, tokenizer)
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"holds an unfinished prepare with other settings "
                                        r"\(shard_tokens: 400 there, 500 now\)"):
        prepare([str(corpus)], out, tokenizer=tokenizer, val_fraction=0.1, shard_tokens=500, progress=False)
    assert (out / "train-00000.bin").is_file()


def test_a_non_utf8_file_name_in_a_source_is_one_line(tmp_path, corpus, capsys):
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    with open(os.fsencode(src) + b"/\xff.txt", "wb") as f:
        f.write(b"text in a file with a bad name")
    one_line_error(capsys, ["prepare", str(src), "--out", str(tmp_path / "out"), "--quiet"],
                   f"the name {src}/\\xff.txt is not valid UTF-8; rename it")
    assert not (tmp_path / "out").exists()


@contextmanager
def tmpfs(folder: Path, options: str):
    """``folder`` as a fresh tmpfs mount (needs root); skips the test where mounting is not allowed."""
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextmanager
def read_only(folder: Path):
    """A read-only empty folder: a read-only tmpfs for root (who may write anywhere), else mode 0555."""
    if os.geteuid() == 0:
        with tmpfs(folder, "ro,size=64k"):
            yield folder
        return
    folder.mkdir()
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_one_line(tmp_path, corpus, tokenizer, capsys):
    with read_only(tmp_path / "ro") as ro:
        for out in (ro, ro / "new" / "ds"):
            one_line_error(capsys, ["prepare", str(corpus), "--out", str(out), "--tokenizer", str(tokenizer),
                                    "--quiet"], f"cannot write into {ro}")
        assert list(ro.iterdir()) == []


def test_a_really_full_disk_is_one_line_and_a_rerun_resumes(tmp_path, corpus, tokenizer, capsys):
    clean = tmp_path / "clean"
    run(corpus, clean, tokenizer)
    argv = ["prepare", str(corpus), "--tokenizer", str(tokenizer), "--val-fraction", "0.1", "--shard-tokens",
            str(SHARD_TOKENS), "--quiet"]
    with tmpfs(tmp_path / "disk", "size=512k") as disk:
        filler = disk / "filler"
        # room for the tokenizer, the state file (twice, while it is replaced) and about four shards:
        # tmpfs gives every file whole 4 KiB pages
        room = 4096 * (-(-tokenizer.stat().st_size // 4096) + 2 + 8)
        stat = os.statvfs(disk)
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - room))
        out = disk / "ds"
        one_line_error(capsys, [*argv, "--out", str(out)], f"no space left on the device of {out}")
        finished = finished_shards(out)
        assert finished and not (out / "manifest.json").exists()
        filler.unlink()
        assert main([*argv, "--out", str(out)]) == 0
        assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished
        assert tree(out) == tree(clean)
