"""`scaling prepare` and opening datasets: every bad input is one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import prepare_small

from data_pipelines import DataError, PreparedDataset, check_compatible
from data_pipelines.stdlib_corpus import STDLIB_PRESET_PATH
from scaling.cli import main


@pytest.fixture
def dataset(tmp_path) -> Path:
    out = tmp_path / "ds"
    prepare_small(out, max_bytes=60_000)
    return out


def one_line_error(capsys, argv: list[str], match: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert match in err, err
    return err


def test_prepare_and_verify_from_the_command_line(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"{i}.txt").write_text(f"document number {i} says hello to the world. " * 20)
    for name in ("a.bin", "b.so", "c.png", "d.pyc", "e.zip", "f.o", "g.dat"):
        (src / name).write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out), "--vocab-size", "300", "--val-fraction", "0.1",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "7 binary files skipped" in printed and f"prepared {out}" in printed
    first = ", ".join(str(src / n) for n in ("a.bin", "b.so", "c.png", "d.pyc", "e.zip"))
    assert f"  skipped as binary: {first} and 2 more\n" in printed
    ds = PreparedDataset.open(out, verify="full")
    assert ds.split_documents("train") + ds.split_documents("val") == 30 and ds.vocab_size == 300
    val = ds.split_tokens("val")
    assert 0 < val < 65536
    assert (f"note: the val split has {val:,} tokens; runs evaluate on at most {val:,} "
            "(data.val_tokens=65,536)") in printed
    assert main(["prepare", "--verify", str(out)]) == 0
    assert "ok:" in capsys.readouterr().out
    one_line_error(capsys, ["prepare", str(src), "--out", str(out), "--vocab-size", "280",
                            "--val-fraction", "0.1"],
                   "already holds a dataset prepared with other settings (vocab_size: 300 there, 280 now)")


def test_the_val_note_uses_the_runs_default_validation_size():
    from data_pipelines import DEFAULT_VAL_TOKENS
    from scaling.config import DataConfig

    assert DataConfig().val_tokens == DEFAULT_VAL_TOKENS


def test_without_a_val_split_the_summary_says_what_runs_validate_on(tmp_path, capsys):
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(f"text {i} " * 30)
    assert main(["prepare", str(tmp_path), "--out", str(tmp_path / "out"), "--vocab-size", "260",
                 "--val-fraction", "0", "--quiet"]) == 0
    assert "note: no val split (--val-fraction 0): runs validate on the end of the train split" in \
        capsys.readouterr().out


def test_config_file_sets_options_and_flags_override_it(tmp_path, capsys):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(f'{{"body": "line {i} of some json text"}}\n' for i in range(20)))
    cfg = tmp_path / "prep.yaml"
    cfg.write_text(f"sources: [{src}]\nout: {tmp_path / 'out'}\ntext_field: body\nvocab_size: 400\n"
                   "val_fraction: 0.0\n")
    assert main(["prepare", "--config", str(cfg), "--vocab-size", "280", "--quiet"]) == 0
    ds = PreparedDataset.open(tmp_path / "out")
    assert ds.vocab_size <= 280 and ds.split_documents("train") == 20
    cfg.write_text("sourcs: [x]\n")
    one_line_error(capsys, ["prepare", "--config", str(cfg)], "did you mean 'sources'")


def test_the_stdlib_preset_writes_to_the_preset_path_by_default(tmp_path, capsys, monkeypatch):
    from importlib import resources

    import yaml

    preset = yaml.safe_load(resources.files("scaling").joinpath("presets", "data", "stdlib.yaml").read_text())
    assert preset["path"] == STDLIB_PRESET_PATH
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--preset", "stdlib", "--max-bytes", "80000", "--vocab-size", "400",
                 "--quiet"]) == 0
    ds = PreparedDataset.open(tmp_path / STDLIB_PRESET_PATH)
    assert 60_000 < ds.split_bytes("train") + ds.split_bytes("val") <= 80_000


def test_missing_source_no_documents_and_a_non_tokenizer_exit_2(tmp_path, capsys):
    one_line_error(capsys, ["prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                   "source not found")
    (tmp_path / "empty.txt").write_text("")
    one_line_error(capsys, ["prepare", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")],
                   "no documents found")
    (tmp_path / "tok.json").write_text('{"not": "a tokenizer"}')
    (tmp_path / "t.txt").write_text("some text")
    one_line_error(capsys, ["prepare", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"), "--tokenizer",
                            str(tmp_path / "tok.json")], "is not a HF tokenizers tokenizer.json")


def test_a_truncated_shard_is_caught_by_the_fast_check(dataset, capsys):
    shard = dataset / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    err = one_line_error(capsys, ["prepare", "--verify", str(dataset)], "truncated or altered")
    assert "train-00000.bin" in err
    with pytest.raises(DataError, match="truncated"):
        PreparedDataset.open(dataset, verify="fast")


def test_an_altered_shard_of_the_same_size_is_caught_by_the_full_check(dataset, capsys):
    shard = dataset / "train-00000.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    PreparedDataset.open(dataset, verify="fast")  # sizes still agree
    one_line_error(capsys, ["prepare", "--verify", str(dataset)], "fails its sha256 check")


def test_opening_a_missing_or_unprepared_folder_says_to_run_prepare(tmp_path):
    with pytest.raises(DataError, match="run `scaling prepare"):
        PreparedDataset.open(tmp_path / "absent")
    with pytest.raises(DataError, match="no manifest.json"):
        PreparedDataset.open(tmp_path)


def test_a_dataset_with_another_tokenizer_than_the_config_names_is_refused(dataset):
    ds = PreparedDataset.open(dataset)
    check_compatible(ds, 1024, ds.tokenizer_sha256)  # the pinned one passes
    with pytest.raises(DataError, match="data.tokenizer_sha256"):
        check_compatible(ds, 1024, "0" * 64)
    with pytest.raises(DataError, match="data.tokenizer_sha256"):
        PreparedDataset.open(dataset, expected_tokenizer_sha256="f" * 64)


def test_a_vocab_too_large_for_the_model_is_refused(dataset):
    ds = PreparedDataset.open(dataset)
    check_compatible(ds, ds.vocab_size, None)
    with pytest.raises(DataError, match=f"set model.vocab_size={ds.vocab_size} or more"):
        check_compatible(ds, ds.vocab_size - 1, None)


def test_the_installed_command_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scaling", "prepare", str(tmp_path / "missing"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: source not found: {tmp_path / 'missing'}; "
                                                "pass an existing file, folder or glob"]


def test_a_damaged_dataset_is_prepared_again_by_the_same_command(dataset):
    (dataset / "train-00000.bin").unlink()
    prepare_small(dataset, max_bytes=60_000)
    PreparedDataset.open(dataset, verify="full")


def test_bits_per_byte_uses_the_splits_tokens_per_byte(dataset):
    ds = PreparedDataset.open(dataset)
    ratio = ds.split_tokens("val") / ds.split_bytes("val")
    assert ds.bits_per_byte(2.0) == pytest.approx(2.0 * ratio / 0.6931471805599453)


@pytest.mark.parametrize(("line", "match"), [
    ("vocab_size: abc", "vocab_size in"), ("val_fraction: '0.1'", "val_fraction in"),
    ("workers: 2.5", "workers in"), ("dedup: 3", "dedup in"),
])
def test_config_values_of_the_wrong_type_exit_2(tmp_path, capsys, line, match):
    (tmp_path / "t.txt").write_text("some text")
    cfg = tmp_path / "prep.yaml"
    cfg.write_text(f"sources: [{tmp_path / 't.txt'}]\nout: {tmp_path / 'out'}\n{line}\n")
    one_line_error(capsys, ["prepare", "--config", str(cfg)], match)
    assert not (tmp_path / "out").exists()


def test_corrupt_zst_int_parquet_column_and_out_file_exit_2(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "bad.txt.zst").write_bytes(b"\x28\xb5\x2f\xfd\x00garbage that is not a zstd frame")
    one_line_error(capsys, ["prepare", str(tmp_path / "bad.txt.zst"), "--out", str(tmp_path / "o")],
                   "cannot read")
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "ints.parquet")
    one_line_error(capsys, ["prepare", str(tmp_path / "ints.parquet"), "--out", str(tmp_path / "o")],
                   "column 'text' holds int64, not text")
    (tmp_path / "t.txt").write_text("some text")
    (tmp_path / "file").write_text("")
    one_line_error(capsys, ["prepare", str(tmp_path / "t.txt"), "--out", str(tmp_path / "file")], "is a file")
    assert not (tmp_path / "o").exists()
