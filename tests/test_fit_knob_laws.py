"""Knob laws on synthetic ladders with a known truth: multipliers, crossovers, verdicts, false positives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scaling.fit.data import Points
from scaling.fit.knob_effects import carried_levels, knob_effects
from scaling.fit.knob_laws import compute_multiplier, crossover_flops, knob_data, separate_fittable
from tests.helpers.knob_ladders import TARGET, crossing_at, ladder, law, worth


def test_a_level_worth_a_constant_compute_multiplier_is_recovered_within_its_interval():
    pts = ladder({"gelu": law(), "swiglu": worth(1.5)}, np.random.default_rng(0))
    effects, by_knob, _ = knob_effects(pts, TARGET, [(1e8, 2e9)], n_boot=100)
    e = effects["model.activation"]
    assert e["best"] == "swiglu" and e["verdict"] == "carry"
    m = e["multiplier"]["gelu"]
    assert m["lo"] <= 1.5 <= m["hi"] and abs(m["value"] - 1.5) < 0.25
    assert e["multiplier"]["swiglu"]["value"] == pytest.approx(1.0)
    # the difference to the best is positive for the loser and its interval excludes 0
    assert e["difference"]["gelu"]["lo"] > 0
    # a prediction point gets each level's loss (within 2% of the truth) and its interval
    at = by_knob[1]["model.activation"]["gelu"]
    assert at["lo"] <= at["loss"] <= at["hi"] and at["loss"] == pytest.approx(
        float(law().predict(1e8, 2e9)), rel=0.02
    )
    assert carried_levels(effects) == {"model.activation": "swiglu"}


def test_the_multiplier_of_a_known_pair_of_laws_is_exact():
    assert compute_multiplier(law(), *TARGET, float(worth(2.0).predict(*TARGET))) == pytest.approx(
        2.0, rel=1e-6
    )
    assert compute_multiplier(law(), *TARGET, 1.0) == float("inf")  # below E: never reached


def test_two_levels_whose_laws_cross_give_the_crossover_within_a_factor_two_typically():
    narrow = crossing_at(3e8, 0.25)
    truth = crossover_flops(narrow, law(), *TARGET, (1e10, 1e26))
    assert truth == pytest.approx(6 * 3e8 * 20 * 3e8, rel=1e-6)  # beyond the runs (2.4e18), before the target
    # one draw says little: the crossing of two fitted laws beyond the runs moves by 2x or more in about a
    # third of draws, so the claim is about the typical draw
    misses = []
    for draw in range(10):
        pts = ladder({"narrow": narrow, "wide": law()}, np.random.default_rng(draw), noise=0.005)
        e = knob_effects(pts, TARGET, n_boot=0)[0]["model.activation"]
        assert e["law"] == "separate"  # the levels scale differently, and held-out error says so
        found = e["crossover_flops"]["narrow"]
        misses.append(abs(np.log10(found / truth)) if found else np.inf)
    assert sum(np.isfinite(misses)) >= 8
    assert np.median(misses) < np.log10(2), misses


def test_a_level_that_wins_small_and_loses_at_the_target_reverses():
    pts = ladder({"narrow": crossing_at(2e8, 0.20), "wide": law()}, np.random.default_rng(2), noise=0.003)
    e = knob_effects(pts, (3e9, 6e10), n_boot=40)[0]["model.activation"]
    assert e["best_at_largest_size"] == "narrow" and e["best"] == "wide"
    assert e["verdict"] == "reverses" and e["difference"]["narrow"]["lo"] > 0
    assert carried_levels({"model.activation": e}) == {"model.activation": "wide"}


def test_other_knobs_are_held_at_their_usual_level_and_the_best_lr_per_cell_is_used():
    def extra(rows):
        # a second knob at its usual level except for a few runs that would skew the comparison
        return {"model.qk_norm": [i % 10 == 0 for i in range(len(rows))],
                "lr": [1e-3 if i % 3 else 3e-3 for i in range(len(rows))]}

    pts = ladder({"gelu": law(), "swiglu": law()}, np.random.default_rng(3), extra=extra)
    data = knob_data(pts, "model.activation")
    assert data.fixed == {"model.qk_norm": "false"}
    assert not any(pts.knobs["model.qk_norm"][i] for i in range(len(pts)) if pts.loss[i] in data.loss)
    assert set(data.levels) == {"gelu", "swiglu"}


@pytest.mark.slow
@pytest.mark.timeout(2400)  # 100 draws of a full knob judgement: a few minutes on a quiet 2-core box
def test_a_null_knob_is_carried_no_more_often_than_the_nominal_rate():
    verdicts = []
    for draw in range(100):
        pts = ladder({"a": law(), "b": law()}, np.random.default_rng(1000 + draw), seeds=1)
        verdicts.append(knob_effects(pts, TARGET, n_boot=60, seed=draw)[0]["model.activation"]["verdict"])
    false_positives = sum(v != "undecided" for v in verdicts) / len(verdicts)
    assert false_positives <= 0.10, verdicts


def _write_csv(tmp_path, pts):
    """The ladder as a CSV of runs with a ``model.activation`` column."""
    csv = tmp_path / "runs.csv"
    lines = ["params,tokens,loss,seed,model.activation"]
    lines += [f"{n:g},{d:g},{lo:.6f},{int(s)},{k}" for n, d, lo, s, k in
              zip(pts.params, pts.tokens, pts.loss, pts.seed, pts.knobs["model.activation"], strict=True)]
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_scaling_fit_on_a_csv_with_a_knob_column_prints_the_verdict_and_carries_it(tmp_path, capsys):
    import json

    import yaml

    from scaling.cli.main import main

    pts = ladder({"gelu": law(), "swiglu": worth(1.5)}, np.random.default_rng(5), noise=0.005)
    csv = _write_csv(tmp_path, pts)
    out = tmp_path / "fit"
    assert (
        main(
            [
                "fit",
                str(csv),
                "--out",
                str(out),
                "--bootstrap",
                "60",
                "--predict",
                "1e9:2e10",
                "--wandb",
                "disabled",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "knob:   model.activation: carry, large run takes swiglu; gelu needs" in printed
    result = json.loads((out / "fit.json").read_text())
    e = result["knob_effects"]["model.activation"]
    assert e["verdict"] == "carry" and e["best"] == "swiglu" and set(e["levels"]) == {"gelu", "swiglu"}
    assert e["multiplier"]["gelu"]["lo"] <= 1.5 <= e["multiplier"]["gelu"]["hi"]
    assert all(set(p["by_knob"]["model.activation"]) == {"gelu", "swiglu"} for p in result["predictions"])
    assert yaml.safe_load((out / "large_run.yaml").read_text())["model"]["activation"] == "swiglu"
    report = (out / "report.md").read_text()
    assert "### model.activation: **carry** -> swiglu" in report and (out / "knob_0.png").is_file()


def test_an_undecided_knob_keeps_the_level_most_runs_used_and_on_a_tie_the_default_configs():
    from scaling.fit.recommend import knob_levels

    def undecided(n_true: int, n_false: int) -> dict:
        return {"model.parallel_residual": {
            "verdict": "undecided", "values": {"true": True, "false": False},
            "levels": {"true": {"n_runs": n_true}, "false": {"n_runs": n_false}}}}

    tree = {"model": {"parallel_residual": False}}
    # a study whose base runs (and LR grid) used parallel residual keeps it
    kept = knob_levels(undecided(23, 5), tree)["model.parallel_residual"]
    assert kept["value"] is True and "most runs" in kept["why"]
    # an even knob sweep falls back to the default config's level (sequential)
    tie = knob_levels(undecided(10, 10), tree)["model.parallel_residual"]
    assert tie["value"] is False and "default config" in tie["why"]


def _on_one_budget(pts: Points, level: str, truth, flops: float) -> Points:
    """``pts`` with ``level``'s runs moved onto one compute budget (each size at tokens = flops / (6 N)),
    their losses ``truth``'s there."""
    moved = np.array(pts.knobs["model.activation"]) == level
    tokens = np.where(moved, flops / (6 * pts.params), pts.tokens)
    loss = np.where(moved, truth.predict(pts.params, tokens), pts.loss)
    return dataclasses.replace(pts, tokens=tokens, loss=loss, flops=6 * pts.params * tokens)


def test_a_level_whose_runs_share_one_compute_budget_gets_no_law_of_its_own():
    # on one IsoFLOP line, D falls as N grows: a law of its own could not tell its N term from its D term
    both = ladder({"gelu": law(), "swiglu": worth(1.5)}, np.random.default_rng(7), noise=0.005)
    assert separate_fittable(knob_data(both, "model.activation"))  # two tokens-per-parameter ratios each
    one = _on_one_budget(both, "swiglu", worth(1.5), 6 * 1e7 * 2e8)
    assert not separate_fittable(knob_data(one, "model.activation"))
    e = knob_effects(one, TARGET, n_boot=20)[0]["model.activation"]
    assert e["law"] == "shared" and "one compute budget" in e["law_choice"]["why"]


def test_a_level_that_never_reaches_the_best_ones_loss_is_said_so_in_the_summary(tmp_path, capsys):
    import json

    from scaling.cli.main import main
    from scaling.fit.parametric import ParametricFit

    # relu levels off at a higher irreducible loss than gelu's loss at the target: no compute is enough
    relu = ParametricFit.from_constants(2.7, 406.4, 410.7, 0.34, 0.28)
    pts = ladder({"gelu": law(), "relu": relu}, np.random.default_rng(3), noise=0.002)
    out = tmp_path / "fit"
    args = ["fit", str(_write_csv(tmp_path, pts)), "--out", str(out), "--bootstrap", "40",
            "--target-params", "1e9", "--target-tokens", "2e10", "--wandb", "disabled", "--no-plots"]
    assert main(args) == 0
    e = json.loads((out / "fit.json").read_text())["knob_effects"]["model.activation"]
    assert e["best"] == "gelu" and e["law"] == "separate" and e["multiplier"]["relu"]["value"] is None
    assert "relu never reaches gelu's loss at any compute" in capsys.readouterr().out
