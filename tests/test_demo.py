"""`scaling demo --quick` end to end: real corpus, real sweeps, a real fit and a recommendation."""

from __future__ import annotations

import argparse
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


def test_demo_ran_the_isoflop_grid_the_knob_the_lr_grid_and_repeated_seeds(demo):
    def results(sweep):
        return [json.loads(p.read_text()) for p in demo.glob(f"sweeps/{sweep}/runs/*/result.json")]

    def configs(sweep):
        return [yaml.safe_load(p.read_text()) for p in demo.glob(f"sweeps/{sweep}/runs/*/config.yaml")]

    everything = [r for s in ("demo-isoflop", "demo-knob", "demo-lr", "demo-seeds") for r in results(s)]
    assert len(everything) == 15 and all(r["status"] == "done" for r in everything)
    iso = results("demo-isoflop")
    assert len({r["model"] for r in iso}) == 4 and len(iso) == 8  # QUICK: 4 sizes x 2 budgets
    for budget in (2e10, 4e10):  # every size of a budget gets its tokens from the same compute
        near = [r["flops"] for r in iso if abs(r["flops"] / budget - 1) < 0.1]
        assert near == pytest.approx([budget] * 4, rel=0.1)
    assert {c["model"]["parallel_residual"] for c in configs("demo-knob")} == {True}
    assert {c["model"]["parallel_residual"] for c in configs("demo-isoflop")} == {False}
    assert {r["seed"] for r in everything} == {0, 1}
    # each size trains at its own learning rate, smaller sizes faster; the LR grid tries another one
    lr_by_width = {c["model"]["d_model"] * c["model"]["n_layer"]: c["optim"]["lr"]
                   for c in configs("demo-isoflop")}
    assert [lr_by_width[k] for k in sorted(lr_by_width)] == sorted(lr_by_width.values(), reverse=True)
    assert len({c["optim"]["lr"] for c in configs("demo-lr")}) == 2
    assert not {c["optim"]["lr"] for c in configs("demo-lr")} & set(lr_by_width.values())
    curves = [sum("val/loss" in ln for ln in p.read_text().splitlines())
              for p in demo.glob("sweeps/demo-isoflop/runs/*/metrics.jsonl")]
    assert min(curves) >= 2  # validated during the run as well as at its end: the envelope reads the curves


def test_demo_fit_judges_the_knob_and_reports_the_seed_noise(demo):
    fit = json.loads((demo / "fit" / "fit.json").read_text())
    effect = fit["knob_effects"]["model.parallel_residual"]
    assert effect["verdict"] in ("carry", "reverses", "undecided")
    assert set(effect["multiplier"]) == {"false", "true"}
    assert effect["multiplier"][effect["best"]]["value"] == pytest.approx(1.0)
    assert fit["knobs"]["seed_std"] is not None and fit["knobs"]["seed_std"] >= 0


def test_demo_logs_every_run_and_the_fit_to_offline_wandb(demo):
    n_runs = len(list(demo.glob("sweeps/*/runs/*/result.json")))
    assert len(list(demo.glob("sweeps/*/runs/*/wandb/offline-run-*/*.wandb"))) == n_runs
    assert len(list(demo.glob("fit/wandb/offline-run-*/*.wandb"))) == 1


def test_a_second_demo_reuses_every_finished_run(demo, capsys):
    before = {p: p.stat().st_mtime_ns for p in demo.glob("sweeps/*/runs/*/result.json")}
    assert main(["demo", "--quick", "--out", str(demo), "--wandb", "disabled"]) == 0
    out = capsys.readouterr().out
    assert "launching 0" in out
    for line in ("Recommendation for", "  model:", "  tokens:", "  size set by:", "  predicted loss:",
                 "  learning rate:",
                 "  law:", "  a by approach:  1 (envelope)", "  knob model.parallel_residual:",
                 "  seed noise:"):
        assert line in out
    assert {p: p.stat().st_mtime_ns for p in demo.glob("sweeps/*/runs/*/result.json")} == before
    fit = json.loads((demo / "fit" / "fit.json").read_text())
    taken = fit["recommendation"]["knobs"]["model.parallel_residual"]["level"]
    assert f"large run takes {taken} (" in out  # the level large_run.yaml sets, not only the predicted best


def test_the_full_demo_plans_an_isoflop_grid_a_knob_an_lr_grid_and_seeds(tmp_path):
    from scaling.counting import global_batch_tokens
    from sweeps.demo import FULL, demo_specs
    from sweeps.launch import plan

    planned = {}
    for name, spec in demo_specs(FULL, tmp_path / "data").items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        planned[name] = plan(tmp_path / f"{name}.yaml", tmp_path / "sweeps" / name)[2]
    iso = [r for name, runs in planned.items() if name.startswith("demo-isoflop") for r in runs]
    budgets: dict[float, set] = {}
    for r in iso:
        budgets.setdefault(round(math.log10(r.flops), 1), set()).add(r.overrides["model"])
    assert len(budgets) >= 3 and all(len(sizes) >= 4 for sizes in budgets.values())  # >= 3 x >= 4 sizes
    # the learning rate falls with size, and the LR grid brackets each of its sizes' grid LR
    lr_of = {(r.overrides["model"], r.tokens): r.config.optim.lr for r in iso}
    assert len({r.config.optim.lr for r in iso}) == len({r.overrides["model"] for r in iso})
    # the knob's other level in its own sweep, at its own learning rate; every other run at the base level
    other, base = FULL.knob_level == "true", FULL.knob_base_level == "true"
    assert {r.config.model.parallel_residual for r in planned["demo-knob"]} == {other} != {base}
    assert {r.config.model.parallel_residual for name, runs in planned.items() if name != "demo-knob"
            for r in runs} == {base}
    grid_lr = {model: lr for (model, _), lr in lr_of.items()}
    knob_lr = {r.overrides["model"]: r.config.optim.lr for r in planned["demo-knob"]}
    ratio = FULL.knob_lr / FULL.lr
    assert len(knob_lr) >= 4 and all(
        lr / grid_lr[model] == pytest.approx(ratio, rel=1e-2) for model, lr in knob_lr.items())
    lr = planned["demo-lr"]
    assert len({r.overrides["model"] for r in lr}) >= 3
    for r in lr:
        others = sorted(x.config.optim.lr for x in lr if x.overrides["model"] == r.overrides["model"])
        assert others[0] < lr_of[(r.overrides["model"], r.tokens)] < others[-1]
    assert sorted(r.config.run.seed for r in planned["demo-seeds"]) == [1, 2, 3, 4]
    # the seeds are repeated at two lengths, the second among the shortest runs, so that the fit gives each
    # run the noise of its own length (a law in steps needs lengths 2x apart or more)
    lengths = [r.tokens / global_batch_tokens(r.config) for name in ("demo-seeds", "demo-seeds-short")
               for r in planned[name][:1]]
    assert sorted(r.config.run.seed for r in planned["demo-seeds-short"]) == [1, 2, 3, 4]
    shortest = min(r.tokens / global_batch_tokens(r.config) for runs in planned.values() for r in runs)
    assert lengths[0] >= 2 * lengths[1] and lengths[1] <= 3 * shortest
    # every run leaves the early plateau (90+ steps: the smallest budget's largest sizes; half the runs
    # 300+), and every budget trains at one batch (approach 3's L(N, D) has no batch term)
    runs = [r for runs in planned.values() for r in runs]
    steps = sorted(r.tokens / global_batch_tokens(r.config) for r in runs)
    assert steps[0] >= 90 and steps[len(steps) // 2] >= 300
    # each budget has 10+ sizes spanning some 0.7 decades of N: approach 3 separates N's term from D's over
    # them, and only many sizes average out each size's quirks
    sizes_at: dict[float, list] = {}
    for r in iso:
        sizes_at.setdefault(round(math.log10(r.flops), 1), []).append(r.params)
    spans = {c: math.log10(max(sizes) / min(sizes)) for c, sizes in sizes_at.items()}
    assert min(spans.values()) >= 0.6 and min(len(sizes) for sizes in sizes_at.values()) >= 10, sizes_at
    assert len({global_batch_tokens(r.config) for r in runs}) == 1


def test_the_demo_at_another_seed_plans_new_runs_and_keeps_its_repeats_apart(tmp_path):
    from sweeps.demo import FULL, add_arguments, demo_specs
    from sweeps.launch import plan

    def planned(seed):
        runs = {}
        for name, spec in demo_specs(FULL, tmp_path / "data", seed=seed).items():
            (tmp_path / f"{name}-{seed}.yaml").write_text(yaml.safe_dump(spec))
            runs[name] = plan(tmp_path / f"{name}-{seed}.yaml", tmp_path / "sweeps" / f"{name}-{seed}")[2]
        return runs

    default, other = planned(0), planned(7)
    # at 0 no override: the config's default seed, so the recorded study's run ids stay what they were
    assert all("run.seed=0" not in spec["overrides"] for spec in demo_specs(FULL, tmp_path / "data").values())
    assert {r.config.run.seed for r in default["demo-isoflop"]} == {0}
    assert sorted(r.config.run.seed for r in default["demo-seeds"]) == [1, 2, 3, 4]
    repeats = ("demo-seeds", "demo-seeds-short")
    assert {r.config.run.seed for name, runs in other.items() if name not in repeats for r in runs} == {7}
    assert all(sorted(r.config.run.seed for r in other[name]) == [8, 9, 10, 11] for name in repeats)
    ids = [{r.run_id for runs in p.values() for r in runs} for p in (default, other)]
    assert not ids[0] & ids[1] and len(ids[1]) == sum(len(runs) for runs in other.values())
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--seed", "7"]).seed == 7
    for bad in ("-1", "x"):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["--seed", bad])
        assert stop.value.code == 2
