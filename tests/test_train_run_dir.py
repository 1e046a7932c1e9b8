"""What ``train`` does with the run dir it is given: only its own files, one-line refusals, damaged
files detected and recovered from, checkpoints read without running code, stops named plainly."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.config_loading import load_config
from scaling.training.run_files import read_metrics, read_result, train_rows
from scaling.training.train import train
from tests.helpers.runs import REPO, tiny_overrides


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def test_a_folder_with_someone_elses_metrics_is_refused_and_left_alone(tiny_corpus, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"my": "numbers"}\n')
    (run_dir / "notes.txt").write_text("keep me")
    assert main(["train", *tiny_overrides(tiny_corpus, run_dir, "train.tokens=1024")]) == 2
    assert "holds metrics.jsonl but was not made by scaling train" in one_line_error(capsys)
    assert (run_dir / "metrics.jsonl").read_text() == '{"my": "numbers"}\n'
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl", "notes.txt"]


def test_overwrite_replaces_only_the_trainers_files(tiny_corpus, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"my": "numbers"}\n')
    (run_dir / "notes.txt").write_text("keep me")
    assert main(["train", "--overwrite", *tiny_overrides(tiny_corpus, run_dir, "train.tokens=1024")]) == 0
    assert [r["step"] for r in train_rows(read_metrics(run_dir))] == [1, 2]
    assert (run_dir / "notes.txt").read_text() == "keep me"
    assert read_result(run_dir).status == "done"


def test_an_empty_folder_and_a_sweep_launchers_folder_are_accepted(tiny_corpus, tmp_path):
    from scaling import load_config, train

    run_dir = tmp_path / "launched"
    run_dir.mkdir()
    (run_dir / "launch.yaml").write_text("a: 1\n")  # what a launcher writes before the trainer starts
    result = train(load_config([], tiny_overrides(tiny_corpus, run_dir, "train.tokens=1024")))
    assert result.status == "done" and (run_dir / "launch.yaml").read_text() == "a: 1\n"


def test_a_run_dir_that_is_a_file_is_a_one_line_error(tiny_corpus, tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert main(["train", *tiny_overrides(tiny_corpus, path)]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert path.read_text() == "x"


def test_a_read_only_output_folder_is_a_one_line_error(tiny_corpus, tmp_path, capsys):
    if os.geteuid() == 0:  # permissions do not stop root; a read-only file system does
        parent = Path("/proc/sys")
        if os.access(parent, os.W_OK):
            pytest.skip("no read-only folder available to root here")
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
    assert main(["train", *tiny_overrides(tiny_corpus, parent / "run")]) == 2
    assert "read-only or no permission" in one_line_error(capsys)


@pytest.fixture
def finished(tiny_corpus, tmp_path):
    """A finished 4-step run with a checkpoint after every step; its overrides and run dir."""
    from scaling import load_config, train

    run_dir = tmp_path / "run"
    args = tiny_overrides(tiny_corpus, run_dir, "train.tokens=2048", "train.checkpoint_every_tokens=512",
                          "model.dropout=0.1")
    result = train(load_config([], args))
    assert result.status == "done" and result.steps == 4
    return args, run_dir, result


def test_a_truncated_result_json_is_reported_and_the_run_counts_as_unfinished(finished, capsys):
    args, run_dir, result = finished
    text = (run_dir / "result.json").read_text()
    (run_dir / "result.json").write_text(text[: len(text) // 2])
    assert main(["train", *args]) == 2  # resume=never: a checkpoint is there, so it says how to go on
    err = capsys.readouterr().err
    assert "result.json is damaged" in err and "pass run.resume=auto to continue it" in err
    assert main(["train", *args, "run.resume=auto"]) == 0
    assert "result.json is damaged" in capsys.readouterr().err
    again = json.loads((run_dir / "result.json").read_text())
    assert again["status"] == "done" and again["final_val_loss"] == result.final_val_loss


def test_a_truncated_last_checkpoint_resumes_from_the_previous_one_exactly(finished, capsys):
    from scaling import load_config, train

    args, run_dir, _ = finished
    before = {r["step"]: r["train/loss"] for r in train_rows(read_metrics(run_dir))}
    (run_dir / "result.json").unlink()  # as if killed after the last checkpoint
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    resumed = train(load_config([], [*args, "run.resume=auto"]))
    err = capsys.readouterr().err
    assert "last.ckpt is damaged" in err and "resuming from" in err and "previous.ckpt (step 3)" in err
    after = {r["step"]: r["train/loss"] for r in train_rows(read_metrics(run_dir))}
    assert resumed.status == "done" and resumed.steps == 4 and sorted(after) == [1, 2, 3, 4]
    assert after[4] == pytest.approx(before[4], abs=1e-6)  # the same batch and dropout draws as before


def test_damaged_checkpoints_only_say_how_to_start_again_and_overwrite_does(finished, capsys):
    args, run_dir, _ = finished
    (run_dir / "result.json").unlink()
    for name in ("last.ckpt", "previous.ckpt"):
        (run_dir / "checkpoints" / name).write_bytes(b"PK\x03\x04 cut short")
    assert main(["train", *args, "run.resume=auto"]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert main(["train", "--overwrite", *args]) == 0
    assert read_result(run_dir).status == "done"


class _MakesAFile:
    """Unpickling this object would create a file: what a crafted checkpoint could do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 1, "state_dict": {}, "scaling": {"payload": _MakesAFile(marker)}}, path)


def test_a_crafted_checkpoint_to_resume_from_is_refused_without_running_it(finished, capsys):
    args, run_dir, _ = finished
    (run_dir / "result.json").unlink()
    marker = run_dir.parent / "pwned"
    _malicious_checkpoint(run_dir / "checkpoints" / "last.ckpt", marker)
    assert main(["train", *args, "run.resume=auto"]) == 2
    err = one_line_error(capsys)
    assert "refusing checkpoint" in err and "last.ckpt" in err
    assert not marker.exists()


def test_a_crafted_parent_checkpoint_of_a_branch_is_refused_without_running_it(tiny_corpus, tmp_path, capsys):
    parent, marker = tmp_path / "parent", tmp_path / "pwned"
    _malicious_checkpoint(parent / "checkpoints" / "tokens-512.ckpt", marker)
    args = tiny_overrides(tiny_corpus, tmp_path / "branch", f"run.branch_from={parent}",
                          "run.branch_at_tokens=512", "train.tokens=1024")
    assert main(["train", *args]) == 2
    err = one_line_error(capsys)
    assert "refusing checkpoint" in err and "tokens-512.ckpt" in err
    assert not marker.exists()


def test_rng_states_are_plain_values_that_load_weights_only_and_restore_the_draws():
    import random

    import numpy as np
    import torch

    from scaling.training.checkpointing import rng_state, set_rng_state

    state = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    # Plain tensors, lists, ints and floats: torch's weights-only loader takes them as they are.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)


STOP_AT = """
import os, signal, sys
import lightning.pytorch as pl
from scaling.config_loading import load_config
from scaling.training.train import train

class StopAt(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))

train(load_config([], sys.argv[2:]), callbacks=[StopAt()])
"""


@pytest.mark.slow
def test_a_run_stopped_by_ctrl_c_says_interrupted(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    # SIGINT at its default in the run, whatever pytest inherited (a shell's background job ignores it, and
    # so would every process it starts)
    proc = subprocess.run([sys.executable, "-c", STOP_AT, "SIGINT", *tiny_overrides(tiny_corpus, run_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    result = read_result(run_dir)
    assert result.status == "failed" and result.error == "interrupted", proc.stderr[-2000:]


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_writes_no_result_and_resumes(tiny_corpus, tmp_path):
    """SIGTERM is how a scheduler preempts, requeues or cancels: the run must stay resumable."""
    from scaling.errors import EXIT_STOPPED

    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", STOP_AT, "SIGTERM", *tiny_overrides(tiny_corpus, run_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_STOPPED and read_result(run_dir) is None, proc.stderr[-2000:]
    resumed = train(load_config([], tiny_overrides(tiny_corpus, run_dir, "run.resume=auto")))
    assert resumed.status == "done"
