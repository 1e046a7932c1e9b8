"""Run locks: a live owner keeps its run, a gone owner's lock is reclaimed, heartbeats move."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from sweeps.execute import execute_run
from sweeps.launch import run_sweep
from sweeps.locks import Heartbeat, is_stale, new_owner, read_lock, write_lock


def test_a_lock_is_stale_exactly_when_its_owner_is_gone():
    mine = new_owner("local")
    assert not is_stale(mine)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert is_stale({**mine, "pid": dead.pid})
    assert is_stale({**mine, "pid_start": mine["pid_start"] - 100})  # a recycled pid is not the owner
    remote = {**mine, "host": socket.gethostname() + "-elsewhere"}
    assert not is_stale({**remote, "heartbeat": time.time() - 10}, stale_after_s=60)
    assert is_stale({**remote, "heartbeat": time.time() - 120}, stale_after_s=60)


def test_a_run_locked_by_a_live_owner_is_not_started_and_a_dead_owners_lock_is_reclaimed(
        tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=[sys.executable, "-c", "pass"],
                               echo=lambda *_: None)
    (rid,) = outcomes
    run_dir = root / "runs" / rid
    (run_dir / "attempts.jsonl").unlink()  # forget the no-op attempt
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**new_owner("local"), "pid": holder.pid}
        owner["pid_start"] = __import__("psutil").Process(holder.pid).create_time()
        write_lock(run_dir, owner)
        assert execute_run(root, rid, train_cmd=fake_train) == "busy"
        assert fake_train.events() == []
    finally:
        holder.kill()
        holder.wait()
    assert execute_run(root, rid, train_cmd=fake_train) == "done"
    assert fake_train.count("finish") == {rid: 1}
    assert read_lock(run_dir) is None  # released at the end


def test_the_heartbeat_refreshes_only_locks_still_owned(tmp_path):
    ours, taken = tmp_path / "a", tmp_path / "b"
    owner_a, owner_b = new_owner("local"), new_owner("local")
    for d, o in ((ours, owner_a), (taken, owner_b)):
        d.mkdir()
        write_lock(d, {**o, "heartbeat": 0.0})
    write_lock(taken, {**new_owner("other"), "heartbeat": 0.0})  # someone else took b meanwhile
    beat = Heartbeat(interval_s=3600)
    beat.add(ours, owner_a)
    beat.add(taken, owner_b)
    beat.beat()
    beat.stop()
    assert read_lock(ours)["heartbeat"] > 0
    assert read_lock(taken)["heartbeat"] == 0.0 and read_lock(taken)["launcher"] == "other"


def test_a_trainer_that_cannot_start_on_the_node_is_a_failed_attempt(tmp_path, write_spec, tiny):
    from sweeps.status import sweep_status
    from sweeps.store import SweepStore

    spec = write_spec(f"overrides: {tiny}\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=[sys.executable, "-c", "pass"],
                               echo=lambda *_: None)
    (rid,) = outcomes
    (root / "runs" / rid / "attempts.jsonl").unlink()  # forget the no-op attempt
    # as when the program exists where the sweep was launched but not on the compute node
    assert execute_run(root, rid, train_cmd=[str(tmp_path / "missing-trainer")]) == "failed"
    ends = [e for e in SweepStore(root).attempts(rid) if e["event"] == "end"]
    assert [e["outcome"] for e in ends] == ["failed"]
    assert "cannot start the trainer" in (root / "runs" / rid / "train.log").read_text()
    assert sweep_status(root)[1][0].state == "failed"
    assert not (root / "runs" / rid / "lock.json").exists()
