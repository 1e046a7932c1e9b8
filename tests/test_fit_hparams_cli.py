"""``scaling fit`` on an LR x batch sweep CSV: laws in N and D, their backtest, a fixed (N, D) run."""

from __future__ import annotations

import json

import pytest
import yaml

from scaling.cli import main
from scaling.errors import ScalingError
from scaling.fit.options import FitOptions
from scaling.fit.pipeline import fit_runs
from tests.helpers.hparam_landscape import as_points, batch_star, landscape, lr_star
from tests.helpers.synthetic import write_csv


@pytest.fixture(scope="module")
def sweep_csv(tmp_path_factory):
    cols = landscape(seed=5)
    path = tmp_path_factory.mktemp("hp") / "sweep.csv"
    return write_csv(
        path, cols["params"], cols["tokens"], cols["loss"], lr=cols["lr"], batch_size=cols["batch_size"]
    )


def test_scaling_fit_prints_the_laws_and_backtest_and_large_run_yaml_carries_them(
    sweep_csv, tmp_path, capsys
):
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            str(sweep_csv),
            "--out",
            str(out),
            "--bootstrap",
            "40",
            "--no-plots",
            "--wandb",
            "disabled",
            "--target-params",
            "1e9",
            "--target-tokens",
            "4e10",
            "--predict",
            "2e9:2e10",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lr law: " in printed and "batch_size law: " in printed and "N^" in printed and "D^" in printed
    assert "hparam backtest: held-out cells lose" in printed and "compute-optimal at this compute" in printed
    result = json.loads((out / "fit.json").read_text())
    assert result["hparams"]["backtest"]["mean_penalty"] <= 0.0015
    for p in result["predictions"]:
        assert p["lr"] == pytest.approx(lr_star(p["params"], p["tokens"]), rel=0.2)
        assert p["batch_tokens"] == pytest.approx(batch_star(p["params"], p["tokens"]), rel=0.35)
        assert (
            p["lr_ci"][0] < p["lr"] < p["lr_ci"][1]
            and p["batch_ci"][0] < p["batch_tokens"] < p["batch_ci"][1]
        )
    rec = result["recommendation"]
    assert rec["lr_source"] == "power law in N and D" and rec["tokens"] == 4e10
    assert rec["params"] == pytest.approx(1e9, rel=0.3)  # the nearest ladder shape
    large = yaml.safe_load((out / "large_run.yaml").read_text())
    assert large["optim"]["lr"] == pytest.approx(rec["lr"])
    train = large["train"]
    used = train["micro_batch_size"] * train["grad_accum"] * train["seq_len"]
    assert used == rec["batch_rounding"]["used"] and abs(used / rec["batch_tokens"] - 1) < 0.1
    report = (out / "report.md").read_text()
    assert (
        "Backtest of the hyperparameter laws" in report and "Compute-optimal with the same compute" in report
    )
    assert "Batch in the config:" in report and "rounded to" in report


def test_a_fixed_run_reports_its_distance_from_compute_optimal(sweep_csv, tmp_path):
    opts = FitOptions(n_boot=0, plots=False, wandb="disabled", target_params=1e9, target_tokens=2e11)
    rec = fit_runs(as_points(landscape(seed=5)), tmp_path / "fit", opts)["recommendation"]
    opt = rec["compute_optimal"]
    assert rec["tokens"] == 2e11 and opt["tokens_per_param"] < rec["tokens_per_param"]  # over-trained
    assert opt["loss"] < rec["loss"] and opt["loss_gap"] == pytest.approx(rec["loss"] - opt["loss"])
    assert opt["params"] > rec["params"]  # the same compute is better spent on a larger model
    assert opt["tokens"] * opt["params"] == pytest.approx(rec["tokens"] * rec["params"], rel=0.25)


def test_target_flops_with_a_size_is_refused(tmp_path):
    with pytest.raises(ScalingError, match="--target-flops alone"):
        fit_runs(
            as_points(landscape(seed=5)), tmp_path / "fit", n_boot=0, target_flops=1e21, target_params=1e9
        )
