"""`scaling sweep` on the command line: plan prints what would run, bad input is one line and exit 2
before anything is launched, status and wait report the sweep dir."""

from __future__ import annotations

import json

import pytest

from scaling.cli import main
from sweeps.launch import run_sweep


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_prints_every_run_and_writes_nothing(tmp_path, capsys, write_spec, tiny):
    spec = write_spec(f"name: p\noverrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, 3.0e-3]}}\n")
    code, out, _ = _run(
        capsys, "sweep", "plan", str(spec), "--out", str(tmp_path / "sweep"), "--skip-data-check"
    )
    assert (
        code == 0 and "optim.lr=0.003" in out and out.strip().splitlines()[-1].startswith("sweep p: 2 runs")
    )
    code, out, _ = _run(capsys, "sweep", "plan", str(spec), "--dir", str(tmp_path / "sweep"), "--json",
                        "--skip-data-check")
    assert [r["swept"]["optim.lr"] for r in json.loads(out)] == [1e-3, 3e-3]
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "body, launcher, message",
    [
        ("grid: {optim.lrr: [1.0e-3]}", "local", "unknown config key 'optim.lrr'; did you mean optim.lr?"),
        ("grdi: {optim.lr: [1.0e-3]}", "local", "unknown key 'grdi'; did you mean grid?"),
        ("grid: {optim.lr: []}", "local", "grid.optim.lr is empty"),
        (
            "grid: {optim.lr: [1.0e-3]}\nrandom: {n: 2, params: {optim.lr: {values: [1, 2]}}}",
            "local",
            "conflicting overrides: optim.lr is set by both grid and random",
        ),
        (
            "ladder: {models: [s100k], tokens: [1.0e5]}\ngrid: {train.tokens: [1.0e5, 2.0e5]}",
            "local",
            "conflicting overrides: train.tokens is set by both ladder and grid",
        ),
        (
            "grid: {optim.lr: [1.0e-3]}\ngrid: {optim.lr: [2.0e-3]}",
            "local",
            "duplicate key 'grid' (lines 2 and 3)",
        ),
        ("seeds: 2", "lsf", "unknown launcher 'lsf'"),
        ("seeds: 2\nlauncher: {slurm: {partiton: gpu}}", "slurm", "unknown key 'partiton'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_is_launched(
        tmp_path, capsys, write_spec, tiny, fake_train, body, launcher, message, fake_slurm):
    if launcher == "slurm":
        fake_slurm()  # pretend SLURM exists (and no controller answers): the spec error must come first
    spec = write_spec(f"overrides: {tiny}\n{body}\n")
    code, out, err = _run(capsys, "sweep", "run", str(spec), "--dir", str(tmp_path / "sweep"),
                          "--launcher", launcher, "--train-cmd", " ".join(fake_train))
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "sweep").exists() and not fake_train.log_path.exists()


@pytest.mark.parametrize(
    "body, extra, message",
    [
        ("", ["--workers", "-1"], "--workers=-1 must be a whole number >= 1"),
        ("", ["--workers", "0"], "--workers=0 must be a whole number >= 1"),
        ("", ["--threads", "0"], "--threads=0 must be a whole number >= 1"),
        ("launcher: {local: {workers: 0}}", [], "launcher.local.workers=0 must be a whole number >= 1"),
        ("launcher: {local: {threads: two}}", [], "launcher.local.threads='two' must be a whole number >= 1"),
        (
            "",
            ["--train-cmd", "/nonexistent/train --fast"],
            "train command: '/nonexistent/train' is not an executable file",
        ),
        (
            "",
            ["--train-cmd", "no-such-trainer-here"],
            "train command: 'no-such-trainer-here' is not found on PATH",
        ),
    ],
)
def test_bad_launch_options_are_one_line_and_exit_2_before_anything_is_written(
        tmp_path, capsys, write_spec, tiny, fake_train, body, extra, message):
    spec = write_spec(f"overrides: {tiny}\nseeds: 2\n{body}\n")
    code, _, err = _run(capsys, "sweep", "run", str(spec), "--dir", str(tmp_path / "sweep"),
                        "--train-cmd", " ".join(fake_train), *extra)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "sweep").exists() and not fake_train.log_path.exists()


def test_status_and_wait_report_the_sweep(tmp_path, capsys, write_spec, tiny, fake_train):
    spec = write_spec(f"name: st\noverrides: {tiny}\nseeds: [0, 13]\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=lambda *_: None)
    code, out, _ = _run(capsys, "sweep", "status", str(root))
    assert code == 0 and out.splitlines()[0] == "sweep st: 2 runs — 1 done, 1 failed"
    assert "boom" in out
    code, out, _ = _run(capsys, "sweep", "status", str(root), "--json")
    runs = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert {r["state"] for r in runs.values()} == {"done", "failed"}
    done = next(r for r in runs.values() if r["state"] == "done")
    assert done["tokens"] == 2e5 and done["loss"] is not None
    code, _, _ = _run(capsys, "sweep", "wait", str(root), "--timeout", "5", "--poll", "0.1")
    assert code == 1  # everything ended, but one run failed
    code, _, err = _run(capsys, "sweep", "status", str(tmp_path / "nothing"))
    assert code == 2 and "not a sweep dir" in err


def test_branches_of_a_failed_trunk_show_as_failed_not_pending(
    tmp_path, capsys, write_spec, tiny, fake_train
):
    spec = write_spec(f"name: cd\noverrides: {tiny}\nseeds: [13]\n"  # seed 13: the stand-in trainer crashes
                      "cooldowns: {models: [s100k], tokens: [2.0e5, 4.0e5]}\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=lambda *_: None)
    assert sorted(outcomes.values()).count("blocked") == 2
    code, out, _ = _run(capsys, "sweep", "status", str(root), "--json")
    states = json.loads(out)["runs"]
    branches = [r for r in states if r["run_id"] != states[0]["run_id"]]
    assert states[0]["state"] == "failed"
    assert [r["state"] for r in branches] == ["failed", "failed"]
    assert all(f"its trunk {states[0]['run_id']} failed" in r["error"] for r in branches)


def test_wait_gives_up_when_no_launcher_works_on_the_sweep(tmp_path, write_spec, tiny):
    from scaling.errors import ScalingError
    from sweeps.launch import plan
    from sweeps.status import wait_for
    from sweeps.store import SweepStore

    spec, root, runs = plan(write_spec(f"name: idle\noverrides: {tiny}\nseeds: 2\n"), tmp_path / "sweep")
    SweepStore(root).write_plan(spec.name, spec.raw, runs)  # planned, never launched
    with pytest.raises(ScalingError, match=r"2 run\(s\) .* none has been running or queued"):
        wait_for(root, poll_s=0.05, idle_give_up_s=0.3)
