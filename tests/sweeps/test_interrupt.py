"""Stopping a local sweep: Ctrl-C kills the trainers at once, says so in one line and exits 130; the next
launch resumes them. Attempts that logged nothing to W&B leave no empty offline folder behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.execute import WANDB_HEADER_BYTES, prune_empty_wandb_runs
from sweeps.local import ctrl_c_as_flag

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_ctrl_c_stops_the_trainers_at_once_and_exits_130(tmp_path, write_spec, tiny, fake_train):
    spec = write_spec(f"name: stop\noverrides: {tiny}\nseeds: 2\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_STEP_S": "0.2", "FAKE_TOKENS_PER_STEP": "1000"}
    cmd = [sys.executable, "-m", "scaling", "sweep", "run", str(spec), "--out", str(tmp_path / "sweep"),
           "--workers", "2", "--train-cmd", " ".join(fake_train)]
    # Ctrl-C at its default in the launcher, whatever pytest inherited (a shell's background job, as CI
    # may start it, ignores SIGINT, and so would every process it starts)
    launcher = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(fake_train.events()) < 2:  # both trainers (200 steps of 0.2 s each) have started
        assert time.monotonic() < deadline and launcher.poll() is None, launcher.communicate()
        time.sleep(0.1)
    trainers = [int(line.split()[3]) for line in fake_train.log_path.read_text().splitlines()]
    time.sleep(1.0)
    sent = time.monotonic()
    launcher.send_signal(signal.SIGINT)
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 130 and time.monotonic() - sent < 15
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("interrupted: trainers stopped")
    assert not any(_alive(pid) for pid in trainers)
    assert fake_train.count("finish") == {}
    # the next launch resumes both from their checkpoints instead of starting over
    env["FAKE_STEP_S"] = "0.001"
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    restarts = [step for event, _, step in fake_train.events()[2:] if event == "start"]
    assert len(restarts) == 2 and all(step > 0 for step in restarts)


def test_after_an_attempt_only_a_stopped_ones_empty_wandb_folder_is_removed(tmp_path, fake_train, write_spec,
                                                                              tiny, monkeypatch):
    """A trainer that ended by itself finished its W&B run, whose file W&B's service may still be writing:
    its folder stays however small the file is then. A killed one's header-only folder goes."""
    from sweeps.launch import run_sweep
    from sweeps.store import SweepStore

    monkeypatch.setenv("FAKE_WANDB_HEADER", "1")
    spec = write_spec(f"name: kept\noverrides: {tiny}\n")
    root, outcomes = run_sweep(spec, tmp_path / "kept", train_cmd=fake_train, echo=lambda *_: None)
    assert list(outcomes.values()) == ["done"]
    assert len(list((SweepStore(root).run_dir(next(iter(outcomes))) / "wandb").glob("offline-run-*"))) == 1
    monkeypatch.setenv("FAKE_SELF_KILL", "1")
    spec = write_spec(f"name: killed\noverrides: {tiny}\n", "killed.yaml")
    root, outcomes = run_sweep(spec, tmp_path / "killed", train_cmd=fake_train, echo=lambda *_: None)
    assert list(outcomes.values()) == ["interrupted"]
    assert not list((SweepStore(root).run_dir(next(iter(outcomes))) / "wandb").glob("offline-run-*"))


def test_offline_folders_of_attempts_that_logged_nothing_are_removed(tmp_path):
    wandb_dir = tmp_path / "wandb"
    empty = wandb_dir / "offline-run-20261130_100000-abc"
    full = wandb_dir / "offline-run-20261130_090000-abc"
    for folder, size in ((empty, WANDB_HEADER_BYTES), (full, 4096)):
        folder.mkdir(parents=True)
        (folder / "run-abc.wandb").write_bytes(b"x" * size)
    assert prune_empty_wandb_runs(tmp_path) == [empty]
    assert sorted(p.name for p in wandb_dir.iterdir()) == [full.name]


def test_within_the_launcher_ctrl_c_only_sets_a_flag_and_afterwards_interrupts_again():
    # a KeyboardInterrupt raised anywhere in the launcher's loop could leave a future's lock held and the
    # pool's shutdown waiting forever; the loop raises it itself, at the top of an iteration
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever pytest inherited
    try:
        with ctrl_c_as_flag() as interrupted:
            os.kill(os.getpid(), signal.SIGINT)
            assert interrupted.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        # an ignored SIGINT (a shell's background job) stays ignored, in the block and after it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with ctrl_c_as_flag() as interrupted:
            os.kill(os.getpid(), signal.SIGINT)
            assert not interrupted.wait(0.5)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
