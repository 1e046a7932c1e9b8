"""The local launcher: sweeps complete, a killed launcher's sweep resumes without paying twice,
concurrent launchers never train one run twice, divergence and failure are recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scaling.errors import ScalingError
from sweeps.launch import plan, run_sweep
from sweeps.status import sweep_status
from sweeps.store import SweepStore


def _quiet(*_):
    pass


def _states(sweep_dir) -> dict[str, str]:
    return {s.run_id: s.state for s in sweep_status(sweep_dir)[1]}


def _wait_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_a_six_run_sweep_completes_and_runs_what_plan_printed(tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"name: six\noverrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, 3.0e-3]}}\nseeds: 3\n")
    _, _, planned = plan(spec, tmp_path / "sweep")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, workers=2, echo=_quiet)
    assert outcomes == {r.run_id: "done" for r in planned}
    assert fake_train.count("finish") == {r.run_id: 1 for r in planned}
    store = SweepStore(root)
    for r in planned:
        args = json.loads((store.run_dir(r.run_id) / "args.json").read_text())
        assert f"run.dir={store.run_dir(r.run_id)}" in args and "run.resume=auto" in args
        assert "logging.group=six" in args
        assert f"logging.tags={json.dumps(r.tags)}" in args
        assert "train.threads=" + str(max(1, (os.cpu_count() or 1) // 2)) in args
        launched = (store.run_dir(r.run_id) / "launch.yaml").read_text()
        assert f"lr: {r.swept['optim.lr']}" in launched and f"seed: {r.swept['run.seed']}" in launched
    assert set(_states(root).values()) == {"done"}
    # a second launch finds everything finished and starts nothing
    assert run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)[1] == {}
    assert sum(fake_train.count("start").values()) == 6


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\ngrid: {{optim.lr: [2.0, 1.0e-3, 3.0e-3]}}\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)
    assert sorted(outcomes.values()) == ["diverged", "done", "done"]
    assert sorted(_states(root).values()) == ["diverged", "done", "done"]
    assert run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)[1] == {}


def test_a_failed_run_is_retried_only_with_retry_failed(tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\nseeds: [0, 13]\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)
    failed = next(rid for rid, o in outcomes.items() if o == "failed")
    status = {s.run_id: s for s in sweep_status(root)[1]}
    assert status[failed].state == "failed" and status[failed].error == "boom"
    assert run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)[1] == {}
    assert run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, retry_failed=True, echo=_quiet)[1] == {
        failed: "failed"}
    assert fake_train.count("start")[failed] == 2
    assert (SweepStore(root).run_dir(failed) / "result.failed-0.json").exists()


def test_a_crash_without_result_json_is_a_failure_with_the_log_tail(tmp_path, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\n")
    crash = [sys.executable, "-c", "import sys; print('CUDA error: out of memory'); sys.exit(1)"]
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=crash, echo=_quiet)
    assert list(outcomes.values()) == ["failed"]
    (state,) = sweep_status(root)[1]
    assert state.state == "failed" and state.error == "exit code 1: CUDA error: out of memory"


def _launch_cli(spec, sweep_dir, fake_train, *extra):
    cmd = [sys.executable, "-m", "scaling", "sweep", "run", str(spec), "--dir", str(sweep_dir),
           "--train-cmd", " ".join(fake_train), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.slow
def test_sigkill_of_the_launcher_then_relaunch_finishes_every_run_exactly_once(
        tmp_path, fake_train, write_spec, tiny, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    spec = write_spec(
        f"overrides: {tiny.replace('2e5', '2e6')}\ngrid: {{optim.lr: [1.0e-3, 2.0e-3, 3.0e-3]}}\n"
    )
    _, _, planned = plan(spec, tmp_path / "sweep")
    first, second = planned[0].run_id, planned[1].run_id
    launcher = _launch_cli(spec, tmp_path / "sweep", fake_train)
    ckpt = tmp_path / "sweep" / "runs" / second / "checkpoints" / "last.ckpt"
    _wait_until(lambda: ckpt.exists() and json.loads(ckpt.read_text())["step"] >= 3)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    killed_trainer = next(int(pid) for e, rid, _, pid in
                          (ln.split() for ln in fake_train.log_path.read_text().splitlines())
                          if e == "start" and rid == second)
    _wait_until(lambda: not _alive(killed_trainer), timeout=10)  # the trainer died with its launcher
    assert _states(tmp_path / "sweep")[second] == "interrupted"
    _, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)
    assert outcomes == {second: "done", planned[2].run_id: "done"}  # the finished run was not launched
    assert fake_train.count("finish") == {r.run_id: 1 for r in planned}
    starts = [(rid, step) for e, rid, step in fake_train.events() if e == "start"]
    assert [s for rid, s in starts if rid == first] == [0]
    resumed = [s for rid, s in starts if rid == second]
    assert len(resumed) == 2 and resumed[0] == 0 and resumed[1] >= 3  # continued from its checkpoint
    rows = [
        json.loads(ln)
        for ln in (tmp_path / "sweep" / "runs" / second / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, 21))  # no step trained twice, none skipped


@pytest.mark.slow
def test_two_launchers_started_at_once_never_run_the_same_run_twice(tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3, 5.0e-3]}}\n")
    plan_ids = [r.run_id for r in plan(spec, tmp_path / "sweep")[2]]
    launchers = [_launch_cli(spec, tmp_path / "sweep", fake_train) for _ in range(2)]
    for p in launchers:
        p.wait(timeout=120)
    assert fake_train.count("start") == {rid: 1 for rid in plan_ids}
    assert fake_train.count("finish") == {rid: 1 for rid in plan_ids}
    for rid in plan_ids:
        assert [e["event"] for e in SweepStore(tmp_path / "sweep").attempts(rid)] == ["start", "end"]
    assert set(_states(tmp_path / "sweep").values()) == {"done"}


def test_cooldown_branches_start_after_their_trunk_finished(tmp_path, fake_train, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\ncooldowns: {{models: [s100k], tokens: [2.0e5, 4.0e5]}}\n")
    _, _, planned = plan(spec, tmp_path / "sweep")
    trunk = planned[0].run_id
    run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, workers=3, echo=_quiet)
    events = [(e, rid) for e, rid, _ in fake_train.events()]
    trunk_done = events.index(("finish", trunk))
    assert all(events.index(("start", r.run_id)) > trunk_done for r in planned[1:])
    assert set(_states(tmp_path / "sweep").values()) == {"done"}


def test_each_worker_gets_its_own_gpu_when_gpus_are_visible(
    tmp_path, fake_train, write_spec, tiny, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    spec = write_spec(f"name: gpus\noverrides: {tiny}\nseeds: 4\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, workers=2, echo=_quiet)
    assert set(outcomes.values()) == {"done"}
    store = SweepStore(root)
    gpus = [(store.run_dir(rid) / "gpu.txt").read_text() for rid in outcomes]
    assert sorted(set(gpus)) == ["3", "5"]  # one GPU per worker, never both, never none


def test_an_online_wandb_sweep_without_a_login_is_refused_before_anything_is_written(
        tmp_path, fake_train, write_spec, tiny, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = write_spec(f"overrides: {tiny[:-1]}, logging.wandb=online]\nseeds: 2\n")
    with pytest.raises(ScalingError, match="logging.wandb=online but W&B is not logged in"):
        run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("option", [{"workers": -1}, {"workers": 0}, {"threads": 0}])
def test_run_local_refuses_a_non_positive_worker_or_thread_count_before_starting(tmp_path, option):
    from sweeps.local import run_local

    with pytest.raises(ScalingError, match=rf"^{next(iter(option))}=-?\d must be a whole number >= 1$"):
        run_local(tmp_path / "sweep", ["x"], **option)
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_on_two_workers_starts_its_longest_runs_first(tmp_path, fake_train, write_spec, tiny,
                                                               monkeypatch):
    monkeypatch.setenv("FAKE_TOKENS_PER_STEP", "10000")
    spec = write_spec(f"overrides: {tiny}\ngrid: {{train.tokens: [1.0e5, 4.0e5, 2.0e5]}}\n")  # shortest first
    _, _, planned = plan(spec, tmp_path / "sweep")
    tokens = {r.run_id: r.tokens for r in planned}
    run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, workers=2, echo=_quiet)
    started = [tokens[rid] for e, rid, _ in fake_train.events() if e == "start"]
    assert sorted(started[:2]) == [2e5, 4e5] and started[2] == 1e5  # the shortest waits for a free worker


def test_with_several_workers_the_longest_runs_start_first_and_a_trunk_before_its_branches():
    from sweeps.local import PER_TOKEN_OVERHEAD_FLOPS, expected_cost, longest_first

    runs = [
        # an IsoFLOP budget: equal FLOPs, so the smaller model (more tokens) takes longer
        {"run_id": "big", "flops": 6e11, "tokens": 1e6},
        {"run_id": "small", "flops": 6e11, "tokens": 3e6},
        {"run_id": "short", "flops": 1e11, "tokens": 1e5},
        {"run_id": "trunk", "flops": 8e11, "tokens": 2e6},
        # a branch's FLOPs and its own tokens are those of its decay alone
        {"run_id": "branch", "flops": 2e11, "tokens": 2.5e6, "overrides": {"run.branch_at_tokens": 2e6}},
    ]
    assert expected_cost(runs[4]) == 2e11 + PER_TOKEN_OVERHEAD_FLOPS * 5e5
    assert longest_first(["branch", "short", "big", "trunk", "small"], runs) == [
        "small", "trunk", "big", "branch", "short"]
