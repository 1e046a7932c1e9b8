"""max_concurrent counts the whole sweep: a relaunch's new array gets only what the sweep's live jobs leave
(SLURM caps each array on its own), and the launch says so. Uses stand-in squeue/sacct tools."""

from __future__ import annotations

import json
import os

from sweeps.launch import plan
from sweeps.slurm import SlurmSettings, array_cap, live_jobs, sbatch_params
from sweeps.store import SweepStore


def test_a_new_array_gets_the_cap_less_the_sweeps_live_jobs():
    assert array_cap(8, 0) == 8
    assert array_cap(8, 5) == 3
    assert array_cap(8, 12) == 1  # SLURM needs at least one; the warning at launch says why it is low
    assert sbatch_params(SlurmSettings(max_concurrent=8), "s", cap=3)["array_parallelism"] == 3
    assert sbatch_params(SlurmSettings(max_concurrent=8), "s")["array_parallelism"] == 8


def test_live_jobs_counts_the_sweeps_queued_and_running_jobs(tmp_path, write_spec, tiny, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "squeue").write_text("#!/bin/sh\nprintf '41_0|RUNNING\\n41_1|PENDING\\n41_2|COMPLETED\\n'\n")
    (tools / "sacct").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("squeue", "sacct"):
        (tools / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    spec, root, runs = plan(write_spec(f"name: cap\noverrides: {tiny}\nseeds: 4\n"), tmp_path / "sweep")
    store = SweepStore(root)
    store.write_plan(spec.name, spec.raw, runs)
    ids = [r.run_id for r in runs]
    (root / "slurm_jobs.json").write_text(
        json.dumps({rid: {"job_id": f"41_{i}"} for i, rid in enumerate(ids[:3])})
    )
    assert live_jobs(store, excluding=[ids[3]]) == 2  # 41_0 running, 41_1 pending, 41_2 ended
    assert live_jobs(store, excluding=ids[:2]) == 0  # the runs being relaunched do not count
