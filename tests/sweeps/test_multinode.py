"""Runs of several ranks on SLURM: the job shape from launcher.slurm and the runs' configs, and, on a real
cluster of two nodes (SLURM_LOCAL_NODES=2 scripts/slurm_local.sh start), a CPU DDP job across both nodes
that matches two processes on one node and resumes exactly after a requeue."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from scaling.cli import main
from scaling.config_loading import load_config, to_yaml
from scaling.errors import ScalingError
from scaling.training.run_files import read_metrics, read_result, train_rows
from sweeps.launch import config_spec, plan, run_sweep
from sweeps.slurm import SlurmRun, SlurmSettings, sbatch_params
from sweeps.status import wait_for
from sweeps.store import SweepStore
from tests.helpers.polling import quiet as _quiet
from tests.helpers.polling import wait_until
from tests.helpers.runs import run_cli, tiny_overrides


def _ddp_overrides(corpus, run_dir, *extra: str) -> list[str]:
    """A tiny CPU DDP run whose global batch is 512 tokens on two ranks (4 windows of 64 each)."""
    return tiny_overrides(corpus, run_dir, "train.micro_batch_size=4", "train.strategy=ddp", *extra)


def _run_config(tmp_path, corpus, *extra: str):
    """A run config file of the tiny DDP run (the launcher sets its run dir)."""
    cfg = load_config(
        [], [o for o in _ddp_overrides(corpus, tmp_path, *extra) if not o.startswith("run.dir=")]
    )
    path = tmp_path / "run.yaml"
    path.write_text(to_yaml(cfg))
    return path


def test_nodes_and_tasks_per_node_become_the_runs_num_nodes_and_devices_and_the_job_shape(
    tmp_path, write_spec, tiny
):
    from submitit.slurm.slurm import _make_sbatch_string

    spec = write_spec(
        f"overrides: {tiny}\ngrid: {{train.num_nodes: [1, 4]}}\nlauncher: {{slurm: {{nodes: 2}}}}\n"
    )
    settings = SlurmSettings.from_dict({"nodes": 2, "gpus_per_node": 4})
    assert settings.ranks_per_node() == 4 and SlurmSettings().ranks_per_node() == 1
    # the grid's own train.num_nodes wins over launcher.slurm.nodes: one sweep mixes job shapes
    from sweeps.launch import with_job_shape
    from sweeps.plan import plan_sweep
    from sweeps.slurm import run_shape

    runs = plan_sweep(with_job_shape(plan(spec)[0], settings), tmp_path / "sweep")
    assert [(r.config.train.num_nodes, r.config.train.devices) for r in runs] == [(1, "4"), (4, "4")]
    assert [run_shape(r.run_id, r.config.train, settings) for r in runs] == [(1, 4), (4, 4)]
    text = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=2,
                               **sbatch_params(settings, "big", shape=(2, 4)))
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--signal=B:USR2@90"):
        assert f"#SBATCH {line}\n" in text, line
    assert "srun" not in text  # the batch step runs the launcher once; it starts the ranks itself
    one = _make_sbatch_string(
        command="python -m x", folder=tmp_path, **sbatch_params(SlurmSettings(), "small")
    )
    assert "#SBATCH --nodes=1\n" in one and "#SBATCH --signal=USR2@90\n" in one and "srun --unbuffered" in one
    ranks = SlurmRun(["trainer"], threads=2, shape=(2, 4)).trainer_command()
    assert ranks == ["srun", "--kill-on-bad-exit=1", "--nodes=2", "--ntasks=8", "--ntasks-per-node=4",
                     "--cpus-per-task=2", "trainer"]
    assert SlurmRun(["trainer"], threads=2).trainer_command() == ["trainer"]


def test_a_job_shape_the_runs_cannot_have_is_refused_in_one_line_before_anything_is_written(
        tmp_path, write_spec, tiny, fake_slurm):
    fake_slurm("echo idle")
    conflicting = write_spec(f"overrides: {tiny[:-1]}, train.num_nodes=3]\n", name="conflict.yaml")
    with pytest.raises(
        ScalingError,
        match=r"spec's overrides set train.num_nodes=3 but launcher.slurm asks for 2 "
        r"\(nodes\); keep one of them",
    ):
        run_sweep(conflicting, tmp_path / "a", launcher="slurm", slurm={"nodes": 2}, echo=_quiet)
    too_many = write_spec(f"overrides: {tiny}\ngrid: {{train.devices: [4]}}\n", name="devices.yaml")
    with pytest.raises(
        ScalingError, match=r"4 ranks per node \(train.devices=4\) but launcher.slurm.gpus_per_node=2"
    ):
        run_sweep(too_many, tmp_path / "b", launcher="slurm", slurm={"gpus_per_node": 2}, echo=_quiet)
    with pytest.raises(ScalingError, match=r"launcher.slurm.nodes=0 is not a whole number of at least 1"):
        run_sweep(too_many, tmp_path / "c", launcher="slurm", slurm={"nodes": 0}, echo=_quiet)
    with pytest.raises(
        ScalingError, match=r"has train.num_nodes=3: runs on several nodes need --launcher slurm"
    ):
        run_sweep(conflicting, tmp_path / "d", launcher="local", echo=_quiet)
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_a_run_config_file_is_a_sweep_of_one_run_named_after_it(tmp_path, tiny_corpus, capsys):
    config = _run_config(tmp_path, tiny_corpus)
    spec = config_spec(config, ["optim.lr=0.002"])
    _, root, (run,) = plan(spec)
    assert spec.name == "run" and str(root) == os.path.join("runs", "sweeps", "run")
    assert run.config.optim.lr == 0.002 and run.config.train.micro_batch_size == 4
    assert (
        main(["sweep", "run", "--config", str(tmp_path / "missing.yaml"), "--dir", str(tmp_path / "s")]) == 2
    )
    assert "run config" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["sweep", "run", "a.yaml", "b.yaml"]) == 2
    assert "give one sweep spec YAML, or --config RUN.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trainer_stopped_by_sigterm_leaves_no_failed_result_and_its_attempt_is_interrupted(
    tmp_path, tiny_corpus
):
    import signal
    import sys

    from scaling.errors import EXIT_STOPPED
    from sweeps.execute import _outcome

    store = SweepStore(tmp_path)
    run_dir = store.run_dir("r1")
    args = tiny_overrides(tiny_corpus, run_dir, "train.tokens=1e6", "train.checkpoint_every_tokens=1024")
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait_until(lambda: len(read_metrics(run_dir)) >= 3, timeout=120, what="training")
        proc.send_signal(signal.SIGTERM)  # what SLURM sends every process of a job it preempts or requeues
        assert proc.wait(timeout=60) == EXIT_STOPPED, proc.stderr.read().decode()[-2000:]
    finally:
        proc.kill()
    assert read_result(run_dir) is None and (run_dir / "checkpoints" / "last.ckpt").exists()
    # a sweep counts the attempt as interrupted (resumable), not failed
    assert _outcome(store, "r1", EXIT_STOPPED) == "interrupted" and store.failure("r1") is None


@pytest.fixture
def two_nodes(slurm_cluster):
    """The cluster has at least two idle nodes (SLURM_LOCAL_NODES=2 scripts/slurm_local.sh start)."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True).stdout.split(
        "\n"
    )
    nodes = {
        line.split()[0] for line in out if line.strip() and not line.split()[1].startswith(("down", "drain"))
    }
    if len(nodes) < 2:
        skip = pytest.fail if os.environ.get("SWEEPS_REQUIRE_SLURM") else pytest.skip
        skip(
            f"the SLURM cluster has {len(nodes)} node(s); "
            "start two: SLURM_LOCAL_NODES=2 scripts/slurm_local.sh start"
        )
    return sorted(nodes)


def _reference(tmp_path, corpus, *extra: str):
    """The same training as two processes on this machine (Lightning's own DDP launcher)."""
    ref_dir = tmp_path / "two-processes"
    proc = run_cli("train", *_ddp_overrides(corpus, ref_dir, "train.devices=2", *extra), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ref_dir


@pytest.mark.slurm
@pytest.mark.slow
def test_a_two_node_job_trains_on_both_hosts_and_matches_two_processes_on_one_node(tmp_path, two_nodes,
                                                                                   tiny_corpus):
    common = ("train.tokens=4096", "train.val_every_tokens=4096")
    config = _run_config(tmp_path, tiny_corpus, *common)
    code = main(
        [
            "sweep",
            "run",
            "--config",
            str(config),
            "--dir",
            str(tmp_path / "sweep"),
            "--launcher",
            "slurm",
            "--slurm",
            "nodes=2",
            "--slurm",
            "time_min=30",
        ]
    )
    assert code == 0
    ref_dir = _reference(tmp_path, tiny_corpus, *common)
    states = wait_for(tmp_path / "sweep", poll_s=1.0, timeout_s=600)
    assert states is not None and [s.state for s in states] == ["done"], states
    store = SweepStore(tmp_path / "sweep")
    (rid,) = [s.run_id for s in states]
    result, reference = read_result(store.run_dir(rid)), read_result(ref_dir)
    assert (result.num_nodes, result.world_size) == (2, 2) and (
        reference.num_nodes,
        reference.world_size,
    ) == (1, 2)
    assert len(set(result.hosts)) == 2 and set(result.hosts) <= set(two_nodes)
    assert result.steps == reference.steps == 8 and result.batch_tokens == reference.batch_tokens == 512
    assert result.final_val_loss == pytest.approx(reference.final_val_loss, rel=1e-5)
    ours, theirs = train_rows(read_metrics(store.run_dir(rid))), train_rows(read_metrics(ref_dir))
    assert [r["train/loss"] for r in ours] == pytest.approx([r["train/loss"] for r in theirs], rel=1e-5)
    # one launcher per job: one lock, one attempt record, rank 0's files only
    assert [e["event"] for e in store.attempts(rid)] == ["submitted", "start", "end"]
    assert not (store.run_dir(rid) / "lock.json").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_a_requeued_two_node_job_resumes_from_its_checkpoint_and_ends_with_the_uninterrupted_loss(
        tmp_path, two_nodes, tiny_corpus):
    common = ("train.tokens=30720", "train.val_every_tokens=10240", "train.checkpoint_every_tokens=2560")
    spec = config_spec(_run_config(tmp_path, tiny_corpus, *common))
    root, jobs = run_sweep(spec, tmp_path / "sweep", launcher="slurm", slurm={"nodes": 2, "time_min": 30},
                           echo=_quiet)
    (rid,), (job,) = jobs, jobs.values()
    store = SweepStore(root)
    ckpt_dir, metrics = store.run_dir(rid) / "checkpoints", store.run_dir(rid) / "metrics.jsonl"

    def trained_steps() -> int:
        return max((r["step"] for r in read_metrics(store.run_dir(rid))), default=0)

    _wait_until(
        lambda: trained_steps() >= 15 and (ckpt_dir / "last.ckpt").exists(), what="training on two nodes"
    )
    # what SLURM sends the batch step before a time limit (--signal=B:USR2): it requeues the whole job
    subprocess.run(["scancel", "--batch", "--signal=USR2", job], check=True)
    _wait_until(lambda: any(e["event"] == "end" for e in store.attempts(rid)), what="the first attempt's end")
    assert [e.get("outcome") for e in store.attempts(rid) if e["event"] == "end"] == ["requeued"]
    # a requeued job waits ~2 minutes before it may start again; once it is pending, let it start now+2
    _wait_until(lambda: subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                                       text=True).stdout.strip() == "PENDING", what="the job pending again")
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now+2"], check=True, capture_output=True)
    ref_dir = _reference(tmp_path, tiny_corpus, *common)
    states = wait_for(root, poll_s=1.0, timeout_s=600)
    assert states is not None and states[0].state == "done"
    _wait_until(lambda: len([e for e in store.attempts(rid) if e["event"] == "end"]) >= 2, what="second end")
    assert [e["outcome"] for e in store.attempts(rid) if e["event"] == "end"] == ["requeued", "done"]
    second_attempt = (store.run_dir(rid) / "train.log").read_text().split("== attempt 2")[1]
    assert f"Restoring states from the checkpoint path at {ckpt_dir / 'last.ckpt'}" in second_attempt
    assert "MEMBER: 2/2" in second_attempt  # the same world size as before the requeue
    result, reference = read_result(store.run_dir(rid)), read_result(ref_dir)
    assert result.world_size == 2 and len(set(result.hosts)) == 2
    assert result.tokens == reference.tokens == 30720
    assert result.final_val_loss == pytest.approx(reference.final_val_loss, rel=1e-5)
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines() if "train/loss" in x]
    assert (
        steps == sorted(set(steps)) and steps[-1] == 60
    )  # rows trained again after the resume were replaced


def _wait_until(predicate, timeout=300.0, what="condition"):
    wait_until(predicate, timeout, what, poll_s=0.5)
