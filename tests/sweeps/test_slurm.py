"""The SLURM launcher against a real cluster (scripts/slurm_local.sh start; skipped without one), and
its sbatch parameters and availability checks without one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scaling.errors import ScalingError
from sweeps.launch import plan, run_sweep
from sweeps.slurm import SlurmSettings, _expand, sbatch_params
from sweeps.status import sweep_status, wait_for
from sweeps.store import SweepStore
from tests.helpers.polling import quiet as _quiet
from tests.helpers.polling import wait_until as _wait_until


def test_resources_from_the_spec_become_sbatch_lines(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    settings = SlurmSettings.from_dict(
        {
            "partition": "gpu",
            "account": "lab",
            "qos": "high",
            "gpus_per_node": 1,
            "cpus_per_task": 8,
            "mem_gb": 16,
            "time_min": 240,
            "max_concurrent": 3,
            "setup": ["module load cuda"],
            "additional": {"constraint": "a100"},
        }
    )
    text = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=10,
                               **sbatch_params(settings, "lr", dependency="afterok:12_3"))
    for line in (
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=16384M",
        "--time=240",
        "--array=0-9%3",
        "--constraint=a100",
        "--dependency=afterok:12_3",
        "--job-name=sweep-lr",
        "--signal=USR2@90",
        "--kill-on-invalid-dep=yes",
    ):
        assert f"#SBATCH {line}\n" in text, line
    assert "\nmodule load cuda\n" in text
    with pytest.raises(ScalingError, match="unknown key 'partiton'; did you mean partition"):
        SlurmSettings.from_dict({"partiton": "gpu"})


def test_array_job_ids_in_queue_listings_are_expanded():
    assert _expand("12_[1-3,5%2]") == ["12_1", "12_2", "12_3", "12_5"]
    assert _expand("12_4") == ["12_4"] and _expand("13") == ["13"]


def test_the_slurm_launcher_without_sbatch_is_refused_before_anything_is_written(
        tmp_path, write_spec, tiny, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = write_spec(f"overrides: {tiny}\nseeds: 2\n")
    with pytest.raises(ScalingError, match="slurm launcher is not available: no `sbatch` on PATH"):
        run_sweep(spec, tmp_path / "sweep", launcher="slurm", echo=_quiet)
    assert not (tmp_path / "sweep").exists()


_CONNECT_FAILURE = "sinfo: error: slurm_load_partitions: Unable to contact slurm controller (connect failure)"


@pytest.mark.parametrize("sinfo, why", [
    (f"echo '{_CONNECT_FAILURE}' >&2\necho 'sinfo: error: second line' >&2\nexit 1", _CONNECT_FAILURE + ";"),
    ("exit 0", "`sinfo` lists no nodes;"),
    ("exec sleep 30", "`sinfo` got no answer in 0.5 s;"),
])
def test_the_slurm_launcher_without_a_controller_is_refused_in_one_line_before_anything_is_written(
        tmp_path, capsys, write_spec, tiny, fake_slurm, monkeypatch, sinfo, why):
    from scaling.cli import main

    monkeypatch.setattr("sweeps.slurm.CONTROLLER_TIMEOUT_S", 0.5)
    tools = fake_slurm(sinfo)
    spec = write_spec(f"overrides: {tiny}\nseeds: 2\n")
    code = main(["sweep", "run", str(spec), "--dir", str(tmp_path / "sweep"), "--launcher", "slurm"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: no SLURM controller answers: {why} check SLURM_CONF")
    assert err.count("\n") == 1
    assert not (tmp_path / "sweep").exists() and not (tools / "calls.log").exists()


def test_the_slurm_launcher_refuses_a_slurm_conf_whose_controller_nobody_runs(tmp_path, write_spec, tiny,
                                                                              monkeypatch):
    import shutil

    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.skip("the SLURM client tools are not installed")
    conf = tmp_path / "slurm.conf"  # port 1: nobody listens there
    conf.write_text(
        "ClusterName=nobody\nSlurmctldHost=localhost\nSlurmctldPort=1\nAuthType=auth/none\n"
        "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    spec = write_spec(f"overrides: {tiny}\nseeds: 2\n")
    with pytest.raises(ScalingError) as err:
        run_sweep(spec, tmp_path / "sweep", launcher="slurm", echo=_quiet)
    assert str(err.value).startswith("no SLURM controller answers: ") and "\n" not in str(err.value)
    assert not (tmp_path / "sweep").exists()


def _job(store: SweepStore, run_id: str) -> str:
    return store.slurm_jobs()[run_id]["job_id"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_four_run_sweep_completes_on_slurm_as_one_capped_array(tmp_path, slurm_cluster, real_spec):
    spec = real_spec("name: four\ngrid: {optim.lr: [1.0e-3, 2.0e-3]}\nseeds: 2\n"
                     "launcher: {slurm: {max_concurrent: 2, time_min: 30}}\n")
    _, _, planned = plan(spec, tmp_path / "sweep")
    root, jobs = run_sweep(spec, tmp_path / "sweep", launcher="slurm", echo=_quiet)  # returns at once
    assert set(jobs) == {r.run_id for r in planned}
    arrays = {j.split("_")[0] for j in jobs.values()}
    assert len(arrays) == 1 and sorted(int(j.split("_")[1]) for j in jobs.values()) == [0, 1, 2, 3]
    states = wait_for(root, poll_s=1.0, timeout_s=400)
    assert states is not None, "sweep did not end"
    assert {s.state for s in states} == {"done"}
    store = SweepStore(root)
    (sbatch_file,) = (store.root / "slurm").glob("*/*submission_file*.sh")
    assert "--array=0-3%2" in sbatch_file.read_text()
    assert sys.executable in sbatch_file.read_text()  # jobs use this venv's python
    for r in planned:
        (start,) = [e for e in store.attempts(r.run_id) if e["event"] == "start"]
        assert start["launcher"] == f"slurm:{jobs[r.run_id]}"
        assert store.result(r.run_id)["run_id"] == r.run_id
        assert (
            f"== attempt 1 by slurm:{jobs[r.run_id]}" in (store.run_dir(r.run_id) / "train.log").read_text()
        )
    # relaunching submits nothing
    assert run_sweep(spec, tmp_path / "sweep", launcher="slurm", echo=_quiet)[1] == {}


@pytest.mark.slurm
@pytest.mark.slow
def test_a_requeued_run_resumes_from_its_checkpoint_and_ends_with_the_uninterrupted_loss(
        tmp_path, slurm_cluster, real_spec):
    spec = real_spec("name: requeue\n", tokens=61440, extra=", train.checkpoint_every_tokens=2560")
    root, jobs = run_sweep(spec, tmp_path / "sweep", launcher="slurm", echo=_quiet)
    (rid,) = jobs
    store = SweepStore(root)
    ckpt_dir = store.run_dir(rid) / "checkpoints"
    metrics = store.run_dir(rid) / "metrics.jsonl"

    def trained_steps() -> int:
        rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
        return max((r["step"] for r in rows), default=0)

    _wait_until(lambda: trained_steps() >= 15 and any(ckpt_dir.glob("*.ckpt")), what="training under SLURM")
    job = jobs[rid]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends before a preemption
    _wait_until(lambda: any(e["event"] == "end" for e in store.attempts(rid)), what="the first attempt's end")
    assert [e.get("outcome") for e in store.attempts(rid) if e["event"] == "end"] == ["requeued"]
    # a requeued job waits ~2 minutes before it may start; starting it within the second of its requeue
    # fails it ("Job credential revoked"), so let it start two seconds from now
    _wait_until(lambda: subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now+2"],
                                       capture_output=True).returncode == 0, what="requeued job")
    # the same run trained without interruption, locally, as the reference
    _, local = run_sweep(spec, tmp_path / "reference", threads=1, echo=_quiet)
    assert local == {rid: "done"}
    states = wait_for(root, poll_s=1.0, timeout_s=300)
    assert states is not None and states[0].state == "done"
    # result.json (the trainer's) comes a moment before the launcher records the attempt's end
    _wait_until(lambda: len([e for e in store.attempts(rid) if e["event"] == "end"]) >= 2, what="second end")
    ends = [e for e in store.attempts(rid) if e["event"] == "end"]
    assert [e["outcome"] for e in ends] == ["requeued", "done"]
    second_attempt = (store.run_dir(rid) / "train.log").read_text().split("== attempt 2")[1]
    assert f"Restoring states from the checkpoint path at {ckpt_dir / 'last.ckpt'}" in second_attempt
    reference = SweepStore(tmp_path / "reference").result(rid)
    assert store.result(rid)["final_val_loss"] == reference["final_val_loss"]
    assert store.result(rid)["tokens"] == reference["tokens"] == 61440
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == sorted(set(steps))  # rows of steps trained again after the resume were replaced


@pytest.mark.slurm
@pytest.mark.slow
def test_a_cancelled_job_shows_as_failed_not_running_forever(tmp_path, slurm_cluster, fake_train, write_spec,
                                                              tiny, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.5")
    spec = write_spec(f"overrides: {tiny.replace('2e5', '1e7')}\n")
    root, jobs = run_sweep(spec, tmp_path / "sweep", launcher="slurm", train_cmd=fake_train, echo=_quiet)
    (rid,) = jobs
    _wait_until(lambda: sweep_status(root)[1][0].state == "running" and fake_train.count("start")[rid] == 1,
                what="the job running")
    subprocess.run(["scancel", jobs[rid]], check=True)
    states = wait_for(root, poll_s=0.5, timeout_s=90)
    assert states is not None, "a cancelled run still looks unfinished"
    assert states[0].state == "failed" and "cancelled" in states[0].error
    assert fake_train.count("finish") == {}


@pytest.mark.slurm
@pytest.mark.slow
def test_branch_jobs_of_a_failed_trunk_are_cancelled_by_slurm_not_left_queued(
        tmp_path, slurm_cluster, fake_train, write_spec, tiny):
    # run.seed=13 makes the stand-in trainer crash: the trunk fails, its branches can never start
    spec = write_spec(
        f"overrides: {tiny[:-1]}, run.seed=13]\ncooldowns: {{models: [s100k], tokens: [1.0e5, 1.5e5]}}\n"
    )
    trunk = plan(spec, tmp_path / "sweep")[2][0].run_id
    root, jobs = run_sweep(spec, tmp_path / "sweep", launcher="slurm", train_cmd=fake_train, echo=_quiet)
    assert len(jobs) == 3
    (sbatch_text,) = [p.read_text() for p in (root / "slurm").glob("*/*submission_file*.sh")
                      if "--dependency=afterok:" in p.read_text()]
    assert "--kill-on-invalid-dep=yes" in sbatch_text

    def queued() -> set[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
        return {j for line in out.split() for j in _expand(line)} & set(jobs.values())

    _wait_until(lambda: not queued(), timeout=120, what="the sweep's jobs leaving the queue")
    states = wait_for(root, poll_s=0.5, timeout_s=60)
    assert states is not None and {s.state for s in states} == {"failed"}
    assert fake_train.count("start") == {trunk: 1}  # the branches never ran
