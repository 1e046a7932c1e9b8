"""Exact resume after SIGKILL, divergence as a result, and checkpoints that do not fit the model."""

import math
import shutil
import subprocess
import sys

import pytest

from scaling.cli import main
from scaling.training.run_files import read_metrics, read_result, train_rows
from tests.helpers.runs import REPO, run_cli, tiny_overrides

KILL_AFTER = """
import os, signal, sys
import lightning.pytorch as pl
from scaling.config_loading import load_config
from scaling.training.train import train

class KillAfter(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind

train(load_config([], sys.argv[2:]), callbacks=[KillAfter()])
"""


def losses(run_dir) -> dict[int, float]:
    rows = train_rows(read_metrics(run_dir))
    steps = [r["step"] for r in rows]
    assert len(steps) == len(set(steps)), "duplicate steps in metrics.jsonl"
    return {r["step"]: r["train/loss"] for r in rows}


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_same_batches_and_rng(tiny_corpus, tmp_path):
    from scaling import load_config, train

    # 12 steps of 2 accumulated micro-batches, dropout on (RNG matters), a checkpoint every 6 steps.
    extra = ["train.tokens=6144", "train.micro_batch_size=4", "train.grad_accum=2", "model.dropout=0.1",
             "train.checkpoint_every_tokens=3072", "train.val_every_tokens=2048", "run.resume=auto"]
    straight = train(load_config([], tiny_overrides(tiny_corpus, tmp_path / "straight", *extra)))
    assert straight.status == "done" and straight.steps == 12

    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, "8", *tiny_overrides(tiny_corpus, killed, *extra)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert read_result(killed) is None and max(losses(killed)) >= 8  # killed after step 8, checkpoint at 6

    resumed = train(load_config([], tiny_overrides(tiny_corpus, killed, *extra)))
    assert resumed.status == "done" and resumed.steps == 12
    a, b = losses(tmp_path / "straight"), losses(killed)
    assert sorted(b) == list(range(1, 13))
    for step in range(1, 13):
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    assert resumed.final_val_loss == pytest.approx(straight.final_val_loss, abs=1e-6)
    vals = [r["step"] for r in read_metrics(killed) if "val/loss" in r]
    assert vals == [4, 8, 12]


def test_nan_loss_stops_the_run_as_diverged_with_exit_code_3(tiny_corpus, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    # An absurd LR blows the weights up within a few updates: the loss turns Inf/NaN or huge.
    assert (
        main(["train", *tiny_overrides(tiny_corpus, run_dir, "optim.lr=1e30", "schedule.warmup_fraction=0")])
        == 3
    )
    result = read_result(run_dir)
    rows = train_rows(read_metrics(run_dir))
    bad = rows[-1]["train/loss"]
    assert result.status == "diverged" and result.diverged_at_step == rows[-1]["step"] < 20
    assert not math.isfinite(bad) or bad > 100
    assert all(math.isfinite(r["train/loss"]) and r["train/loss"] < 100 for r in rows[:-1])
    assert result.last_good_loss == rows[-2]["train/loss"]
    assert not any("val/loss" in r for r in read_metrics(run_dir))  # no validation of a diverged model
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    assert f"diverged at step {result.diverged_at_step}" in capsys.readouterr().out


def test_a_loss_above_the_bound_counts_as_diverged(tiny_cfg):
    from scaling import train

    result = train(tiny_cfg("train.max_loss=5.5"))  # the first loss is ~ln(512) = 6.2
    assert result.status == "diverged" and result.diverged_at_step == 1 and result.last_good_loss is None


def test_resuming_from_a_checkpoint_of_another_model_shape_is_a_one_line_error(tiny_corpus, tmp_path):
    from scaling import load_config, train
    from scaling.config_loading import to_yaml

    trained, run_dir = tmp_path / "trained", tmp_path / "run"
    train(load_config([], tiny_overrides(tiny_corpus, trained, "train.tokens=1024")))
    # A run dir of the narrower model holding the wider model's checkpoint: the checkpoint answers.
    args = tiny_overrides(tiny_corpus, run_dir, "train.tokens=1024", "model.d_model=32", "run.resume=auto")
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(load_config([], args)))
    shutil.copy(trained / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")
    proc = run_cli("train", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    # Lightning's own start-up lines may precede it; the error itself is one line, no traceback.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "checkpoint does not fit this model" in errors[0] and "d_model=64" in errors[0]
    assert read_result(run_dir) is None
