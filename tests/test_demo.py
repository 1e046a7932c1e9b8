"""`scaling demo --quick` end to end: real corpus, real sweeps, a real fit and a recommendation."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from scaling.cli import main
from scaling.config_loading import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out), "--wandb", "offline"]) == 0
    return out


def test_demo_writes_fit_report_and_a_runnable_large_run_config(demo, capsys):
    fit = json.loads((demo / "fit" / "fit.json").read_text())
    rec = fit["recommendation"]
    largest = max(json.loads(p.read_text())["flops"] for p in demo.glob("sweeps/*/runs/*/result.json"))
    assert rec["flops"] == pytest.approx(100 * largest, rel=0.05)
    assert rec["params"] > 0 and rec["tokens"] > 0
    assert rec["lo"] <= rec["loss"] <= rec["hi"] and math.isfinite(rec["loss"])
    report = (demo / "fit" / "report.md").read_text()
    assert "## Backtest: leave the largest size out" in report and "mean |error|" in report
    large = yaml.safe_load((demo / "fit" / "large_run.yaml").read_text())
    cfg = load_config([demo / "fit" / "large_run.yaml"])
    assert cfg.model.d_model == large["model"]["d_model"] == rec["d_model"]


def test_demo_ran_the_ladder_lr_sweep_and_a_second_seed(demo):
    results = [json.loads(p.read_text()) for p in demo.glob("sweeps/*/runs/*/result.json")]
    assert all(r["status"] == "done" for r in results)
    ladder = [json.loads(p.read_text()) for p in demo.glob("sweeps/demo-ladder/runs/*/result.json")]
    assert len({r["model"] for r in ladder}) == 3 and len(ladder) == 6  # QUICK: 3 sizes x 2 budgets
    assert {r["seed"] for r in results} == {0, 1}
    lrs = {json.loads(p.read_text())["lr"] for p in demo.glob("sweeps/demo-lr/runs/*/result.json")}
    assert len(lrs) >= 1 and 3e-3 not in lrs  # the ladder run supplies the base rate


def test_demo_logs_every_run_and_the_fit_to_offline_wandb(demo):
    n_runs = len(list(demo.glob("sweeps/*/runs/*/result.json")))
    assert len(list(demo.glob("sweeps/*/runs/*/wandb/offline-run-*/*.wandb"))) == n_runs
    assert len(list(demo.glob("fit/wandb/offline-run-*/*.wandb"))) == 1


def test_a_second_demo_reuses_every_finished_run(demo, capsys):
    before = {p: p.stat().st_mtime_ns for p in demo.glob("sweeps/*/runs/*/result.json")}
    assert main(["demo", "--quick", "--out", str(demo), "--wandb", "disabled"]) == 0
    out = capsys.readouterr().out
    assert "launching 0" in out
    for line in ("Recommendation for", "  model:", "  tokens:", "  predicted loss:", "  learning rate:", "  law:"):
        assert line in out
    assert {p: p.stat().st_mtime_ns for p in demo.glob("sweeps/*/runs/*/result.json")} == before


def test_the_full_demo_plans_17_runs_in_three_sweeps(tmp_path):
    from sweeps.demo import FULL, demo_specs
    from sweeps.launch import plan

    planned = {}
    for name, spec in demo_specs(FULL, tmp_path / "data").items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        planned[name] = plan(tmp_path / f"{name}.yaml", tmp_path / "sweeps" / name)[2]
    assert {k: len(v) for k, v in planned.items()} == {"demo-ladder": 12, "demo-lr": 4, "demo-seeds": 1}
    ladder = {(r.overrides["model"], r.overrides["optim.lr"]) for r in planned["demo-ladder"]}
    assert ladder == set(zip(FULL.sizes, FULL.lrs, strict=True))
    lr = sorted((r.overrides["model"], r.overrides["optim.lr"]) for r in planned["demo-lr"])
    assert lr == sorted((s, FULL.lr_of(s) * f) for s in FULL.lr_sizes for f in FULL.lr_factors)
    assert planned["demo-seeds"][0].overrides["run.seed"] == 1
