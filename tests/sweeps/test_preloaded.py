"""``launcher.local.preload``: trainers forked from a process that imported them once write the same run
dirs (lock released, attempts, result.json, log, W&B) and the same losses as trainers started as commands,
and a launcher interrupt kills them like any other trainer."""

from __future__ import annotations

import json
import time

import pytest

from scaling.errors import ScalingError
from sweeps.execute import kill_all
from sweeps.launch import plan, run_sweep
from sweeps.store import SweepStore
from tests.helpers.wandb_records import find_wandb_files


@pytest.mark.slow
def test_preloaded_trainers_write_the_same_runs_as_trainer_commands(tmp_path, real_spec):
    spec = real_spec("name: pre\nlauncher: {local: {preload: true}}\nseeds: [0, 1]\n", wandb="offline")
    _, _, planned = plan(spec, tmp_path / "pre")
    root, outcomes = run_sweep(spec, tmp_path / "pre", workers=2, threads=1, echo=lambda *_: None)
    assert outcomes == {r.run_id: "done" for r in planned}
    _, plain = run_sweep(spec, tmp_path / "plain", workers=2, threads=1, preload=False, echo=lambda *_: None)
    assert plain == outcomes
    store, other = SweepStore(root), SweepStore(tmp_path / "plain")
    for r in planned:
        result = store.result(r.run_id)
        assert result["status"] == "done" and result["tokens"] == r.tokens
        assert result["final_val_loss"] == other.result(r.run_id)["final_val_loss"]  # same batches, same RNG
        assert [e["event"] for e in store.attempts(r.run_id)] == ["start", "end"]
        assert store.attempts(r.run_id)[-1]["exit_code"] == 0
        assert not (store.run_dir(r.run_id) / "lock.json").exists()
        assert "(preloaded) scaling train" in (store.run_dir(r.run_id) / "train.log").read_text()
        assert "done: run " + r.run_id in (store.run_dir(r.run_id) / "train.log").read_text()
        assert len(find_wandb_files(store.run_dir(r.run_id))) == 1
        assert [json.loads(ln)["train/tokens"] for ln in (store.run_dir(r.run_id) / "metrics.jsonl")
                .read_text().splitlines() if "train/tokens" in ln][-1] == r.tokens


@pytest.mark.slow
def test_kill_all_stops_a_preloaded_trainer_and_the_run_resumes_later(tmp_path, real_spec):
    import threading

    spec = real_spec("name: killed\nlauncher: {local: {preload: true}}\n", tokens=400_000)
    out = {}
    thread = threading.Thread(target=lambda: out.update(run_sweep(spec, tmp_path / "s", threads=1,
                                                                  echo=lambda *_: None)[1]))
    thread.start()
    store = SweepStore(tmp_path / "s")
    deadline = time.time() + 240
    while time.time() < deadline and not any(store.run_dir(r).joinpath("metrics.jsonl").exists()
                                             for r in ([p["run_id"] for p in store.plan()["runs"]]
                                                       if (tmp_path / "s" / "plan.json").exists() else [])):
        time.sleep(0.5)
    assert kill_all() == 1
    thread.join(timeout=60)
    assert not thread.is_alive() and list(out.values()) == ["interrupted"]


def test_preload_refuses_a_train_command(tmp_path, real_spec):
    spec = real_spec("name: pre\nlauncher: {local: {preload: true}}\n")
    with pytest.raises(ScalingError, match="preload forks the built-in trainer"):
        run_sweep(spec, tmp_path / "s", train_cmd=["python", "-m", "scaling", "train"], echo=lambda *_: None)


def test_preload_must_be_true_or_false(tmp_path, real_spec):
    spec = real_spec("name: pre\nlauncher: {local: {preload: sometimes}}\n")
    with pytest.raises(ScalingError, match="launcher.local.preload='sometimes' must be true or false"):
        run_sweep(spec, tmp_path / "s", echo=lambda *_: None)


@pytest.mark.slow
def test_a_killed_launcher_leaves_no_preloaded_trainer_behind(tmp_path, real_spec):
    import os
    import subprocess
    import sys
    from pathlib import Path

    psutil = pytest.importorskip("psutil")
    spec = real_spec("name: orphan\nlauncher: {local: {preload: true}}\n", tokens=4_000_000)
    root = Path(__file__).resolve().parents[2]
    launcher = subprocess.Popen([sys.executable, "-m", "scaling", "sweep", "run", str(spec), "--dir",
                                 str(tmp_path / "s"), "--threads", "1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "s").glob("runs/*/metrics.jsonl")):
        time.sleep(0.5)
    forked = psutil.Process(launcher.pid).children(recursive=True)
    assert len(forked) >= 2  # the forkserver and the trainer it forked
    launcher.kill()
    launcher.wait()
    _, alive = psutil.wait_procs(forked, timeout=60)
    assert alive == []
