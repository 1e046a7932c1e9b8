"""Sweeps with the real trainer: the ids plan prints are the ids the trainer writes, W&B gets the
sweep's group, job type and tags, and a cooldown branch trains from its trunk's checkpoint."""

from __future__ import annotations

import json

import pytest

from sweeps.launch import plan, run_sweep
from sweeps.status import sweep_status
from sweeps.store import SweepStore
from tests.helpers.wandb_records import find_wandb_files, read_wandb_file


@pytest.mark.slow
def test_real_runs_write_the_planned_ids_and_the_sweep_wandb_group_and_tags(tmp_path, real_spec):
    spec = real_spec("name: real\ngrid: {optim.lr: [1.0e-3, 3.0e-3]}\n", wandb="offline")
    _, _, planned = plan(spec, tmp_path / "sweep")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", threads=1, echo=lambda *_: None)
    assert outcomes == {r.run_id: "done" for r in planned}
    store = SweepStore(root)
    for r in planned:
        result = store.result(r.run_id)
        assert result["run_id"] == r.run_id and result["status"] == "done"
        assert result["params"] == r.params and result["tokens"] == r.tokens
        (wandb_file,) = find_wandb_files(store.run_dir(r.run_id))
        record = read_wandb_file(wandb_file)
        assert (record.group, record.job_type, record.tags) == ("real", "train", r.tags)
    states = sweep_status(root)[1]
    assert all(s.state == "done" and s.loss is not None and s.tokens == 10240 for s in states)


@pytest.mark.slow
def test_a_real_cooldown_sweep_branches_from_its_trunk(tmp_path, real_spec):
    spec = real_spec("cooldowns: {models: [s100k], tokens: [5120, 10240], decay_fraction: 0.5}\n",)
    _, _, planned = plan(spec, tmp_path / "sweep")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", threads=1, echo=lambda *_: None)
    assert set(outcomes.values()) == {"done"}
    store = SweepStore(root)
    trunk, *branches = planned
    assert store.result(trunk.run_id)["tokens"] == 5120  # the trunk stops at the last branch point
    for b in branches:
        result = store.result(b.run_id)
        assert result["tokens"] == b.tokens
        assert result["parent"] == {"run_dir": str(store.run_dir(trunk.run_id)),
                                    "tokens": b.config.run.branch_at_tokens}
        rows = [json.loads(x) for x in (store.run_dir(b.run_id) / "metrics.jsonl").read_text().splitlines()]
        assert min(r["train/tokens"] for r in rows if "train/tokens" in r) > b.config.run.branch_at_tokens
