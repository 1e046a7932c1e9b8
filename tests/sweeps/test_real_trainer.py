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


@pytest.mark.slow
def test_a_real_knob_study_goes_from_sweep_run_to_a_verdict_in_the_fit(tmp_path, tiny_corpus, write_spec):
    import yaml

    from scaling.fit import fit_runs
    from scaling.fit.knob_effects import VERDICTS

    spec = write_spec(
        f"name: knob-study\noverrides: [data.path={tiny_corpus}, train.seq_len=64, train.micro_batch_size=8, "
        "train.val_every_tokens=5120, data.val_tokens=4096, train.log_every_steps=10, train.accelerator=cpu, "
        "logging.wandb=disabled, model.max_seq_len=64]\n"
        "ladder: {models: [s100k, s330k, s800k], tokens: [10240, 20480]}\n"
        "knobs: {model.activation: [swiglu, gelu]}\n")
    root, outcomes = run_sweep(spec, tmp_path / "sweep", threads=1, echo=lambda *_: None)
    assert len(outcomes) == 12 and set(outcomes.values()) == {"done"}
    result = fit_runs(root, tmp_path / "fit", n_boot=40, wandb="disabled", plots=False)
    effect = result["knob_effects"]["model.activation"]
    assert effect["verdict"] in VERDICTS and set(effect["levels"]) == {"swiglu", "gelu"}
    assert all(len(level["sizes"]) == 3 and level["n_runs"] == 6 for level in effect["levels"].values())
    carried = result["recommendation"]["knobs"]["model.activation"]["level"]
    assert yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())["model"]["activation"] == carried
