"""What ``scaling train`` prints: progress lines when stderr is not a terminal, and one W&B line."""

from __future__ import annotations

import re

from scaling.cli import main
from scaling.training.progress import format_eta, progress_line
from tests.helpers.runs import run_cli, tiny_overrides

PROGRESS = re.compile(r"^step (\d+)/20, [\d,]+/10,240 tokens \(\d+%\), loss \d+\.\d{4}, "
                      r"[\d,]+ tok/s, ETA \d+s$")


def test_a_progress_line_has_tokens_loss_speed_and_eta():
    line = progress_line(step=120, total_steps=586, per_step=512, loss=4.12345, tokens_per_sec=1000.0)
    assert line == "step 120/586, 61,440/300,032 tokens (20%), loss 4.1235, 1,000 tok/s, ETA 3m59s"
    assert format_eta(3725) == "1h02m" and format_eta(42.4) == "42s"


def test_train_prints_progress_lines_when_stderr_is_not_a_terminal(tiny_corpus, tmp_path, capsys):
    args = tiny_overrides(tiny_corpus, tmp_path / "run")
    assert main(["train", "--progress-every", "1e-9", *args]) == 0  # a line after every step
    lines = [m for m in map(PROGRESS.match, capsys.readouterr().err.splitlines()) if m]
    assert [int(m.group(1)) for m in lines] == list(range(1, 21))


def test_progress_every_zero_prints_none(tiny_corpus, tmp_path, capsys):
    assert main(["train", "--progress-every", "0", *tiny_overrides(tiny_corpus, tmp_path / "run")]) == 0
    assert not any(line.startswith("step ") for line in capsys.readouterr().err.splitlines())


def test_wandb_says_one_line_where_the_offline_run_is_and_how_to_sync(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    args = tiny_overrides(tiny_corpus, run_dir, "logging.wandb=offline", "train.tokens=1024")
    proc = run_cli("train", *args, env={"WANDB_SILENT": "false"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = (proc.stdout + proc.stderr).splitlines()
    wandb_lines = [line for line in output if line.lower().startswith("wandb")]
    assert len(wandb_lines) == 1, wandb_lines
    folder = next((run_dir / "wandb").glob("offline-run-*"))
    assert wandb_lines[0] == f"wandb: offline run in {folder}; sync with: wandb sync {folder}"
    assert (folder / "logs" / "debug.log").is_file()  # the rest of W&B's output is in its log


def test_a_run_lists_its_packages_for_wandb_unless_told_not_to(tiny_corpus, tmp_path):
    for save, name in ((True, "listed"), (False, "unlisted")):
        run_dir = tmp_path / name
        args = tiny_overrides(tiny_corpus, run_dir, "logging.wandb=offline", "train.tokens=1024",
                              f"logging.save_requirements={str(save).lower()}")
        assert main(["train", "--progress-every", "0", *args]) == 0
        folder = next((run_dir / "wandb").glob("offline-run-*"))
        assert (folder / "files" / "requirements.txt").is_file() == save
        if save:
            assert "torch==2.13.0" in (folder / "files" / "requirements.txt").read_text()
