"""Downstream metrics in the fit: the two-step accuracy prediction and ``scaling fit --metric eval/...``, on
synthetic runs with a known task-bpb law and a known accuracy sigmoid."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.downstream import SigmoidFit, fit_accuracy_sigmoid, predict_accuracy
from scaling.fit.parametric import ParametricFit
from scaling.fit.pipeline import fit_runs
from tests.helpers.synthetic import write_csv, write_runs

TRUE_LAW = {"E": 0.6, "A": 40.0, "B": 60.0, "alpha": 0.3, "beta": 0.3}
TRUE_SIGMOID = SigmoidFit(floor=0.25, ceiling=0.9, k=6.0, x0=1.4)
LAW_FOR_VAL = ParametricFit.from_constants(E=1.5, A=30.0, B=300.0, alpha=0.3, beta=0.3)  # validation loss


def _true_bpb(n, d):
    return TRUE_LAW["E"] + TRUE_LAW["A"] / n ** TRUE_LAW["alpha"] + TRUE_LAW["B"] / d ** TRUE_LAW["beta"]


def _ladder(noise_bpb: float, noise_acc: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(3e5, 3e7, 6)
    n = np.repeat(sizes, 3)
    d = n * np.tile([10.0, 20.0, 40.0], sizes.size)
    bpb = _true_bpb(n, d) * np.exp(rng.normal(0, noise_bpb, n.size))
    acc = TRUE_SIGMOID.predict(bpb) + rng.normal(0, noise_acc, n.size)
    return n, d, bpb, acc


def test_sigmoid_recovers_known_parameters_with_the_floor_at_chance():
    bpb = np.linspace(0.6, 1.8, 25)
    fit = fit_accuracy_sigmoid(bpb, TRUE_SIGMOID.predict(bpb), chance=0.25)
    assert fit.floor == 0.25
    assert fit.ceiling == pytest.approx(0.9, abs=1e-3)
    assert fit.k == pytest.approx(6.0, rel=1e-2)
    assert fit.x0 == pytest.approx(TRUE_SIGMOID.x0, abs=1e-3)


def test_two_step_prediction_recovers_the_true_accuracy_at_a_larger_target_inside_its_interval():
    n, d, bpb, acc = _ladder(noise_bpb=0.005, noise_acc=0.01)
    target_n, target_d = 6e7, 1.2e9  # 2x the largest size, its predicted bpb below every run's
    truth_bpb = float(_true_bpb(target_n, target_d))
    truth_acc = float(TRUE_SIGMOID.predict(truth_bpb))
    pred = predict_accuracy(n, d, bpb, acc, target_n, target_d, chance=0.25, n_boot=30, seed=1)
    assert pred.bpb == pytest.approx(truth_bpb, rel=0.01)
    assert pred.acc == pytest.approx(truth_acc, abs=0.015)
    assert pred.bpb_ci[0] <= truth_bpb <= pred.bpb_ci[1]
    assert pred.acc_ci[0] <= truth_acc <= pred.acc_ci[1]
    assert pred.acc_ci[1] - pred.acc_ci[0] < 0.08
    assert pred.n_boot >= 25
    assert "below every fitted run" in pred.notes[0]  # the target lies past the fitted bpb range


@pytest.mark.slow
def test_noisier_runs_give_a_wider_accuracy_interval():
    target = (6e7, 1.2e9)
    quiet = predict_accuracy(*_ladder(0.002, 0.005), *target, chance=0.25, n_boot=20, seed=2)
    noisy = predict_accuracy(*_ladder(0.02, 0.04), *target, chance=0.25, n_boot=20, seed=2)
    assert noisy.acc_ci[1] - noisy.acc_ci[0] > quiet.acc_ci[1] - quiet.acc_ci[0]


def test_too_few_points_for_the_sigmoid_is_a_one_line_error():
    with pytest.raises(ScalingError, match="at least 3"):
        fit_accuracy_sigmoid([1.0, 1.2], [0.5, 0.4], chance=0.25)


# --- the fit on downstream metrics: run dirs and CSVs whose task scores follow a known truth ---

TASK_LAW = {"E": 0.8, "A": 30.0, "B": 40.0, "alpha": 0.3, "beta": 0.3}
TASK_SIGMOID = SigmoidFit(floor=0.2, ceiling=0.85, k=5.0, x0=1.7)  # five choices: chance 0.2


def _task_bpb(n, d):
    return TASK_LAW["E"] + TASK_LAW["A"] / n ** TASK_LAW["alpha"] + TASK_LAW["B"] / d ** TASK_LAW["beta"]


def _task_file(path):
    items = [{"context": f"q{i}", "choices": ["a", "b", "c", "d", "e"], "label": i % 5} for i in range(10)]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def _runs_with_task_scores(root, task_file=None, in_metrics_only=(0, 4)):
    """15 run dirs (5 sizes x 3 budgets) whose quiz scores follow TASK_LAW and TASK_SIGMOID; the runs
    ``in_metrics_only`` have their scores only in metrics.jsonl (as a run cut short leaves them)."""
    config = {"eval.tasks": f"[{task_file}]"} if task_file else {}
    specs = [{"n_layer": n_layer, "tokens": tokens, "lr": 1e-3, "seed": 0, "config": config}
             for n_layer in (2, 3, 4, 6, 8) for tokens in (1e6, 3e6, 1e7)]
    runs = write_runs(root, LAW_FOR_VAL, specs)
    rng = np.random.default_rng(0)
    for k, run in enumerate(runs):
        result = json.loads((run / "result.json").read_text())
        bpb = float(
            _task_bpb(result["params_non_embedding"], result["tokens"]) * np.exp(rng.normal(0, 0.003))
        )
        scores = {
            "eval/quiz/bpb": bpb,
            "eval/quiz/acc": float(TASK_SIGMOID.predict(bpb) + rng.normal(0, 0.005)),
        }
        if k in in_metrics_only:
            with (run / "metrics.jsonl").open("a") as f:
                f.write(json.dumps({"step": 10, "train/tokens": result["tokens"], **scores}) + "\n")
        else:
            (run / "result.json").write_text(json.dumps({**result, **scores}))
    return runs


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    """The run dirs of :func:`_runs_with_task_scores`, their configs naming the quiz's task file."""
    root = tmp_path_factory.mktemp("task-runs")
    _runs_with_task_scores(root / "runs", task_file=_task_file(root / "quiz.jsonl"))
    return root


def test_a_task_bpb_metric_is_fitted_like_the_validation_loss_from_result_json_and_metrics(
    task_runs, tmp_path
):
    result = fit_runs([task_runs / "runs"], tmp_path / "fit", n_boot=0, plots=False, wandb="disabled",
                      metric="eval/quiz/bpb")
    assert result["inputs"]["n_fitted"] == 15  # the two runs with scores only in metrics.jsonl count too
    assert result["inputs"]["metric"] == "eval/quiz/bpb" and result["downstream"] is None
    law = result["parametric"]
    assert law["E"] == pytest.approx(TASK_LAW["E"], abs=0.1)  # the task's law, not the validation loss's
    assert law["alpha"] == pytest.approx(TASK_LAW["alpha"], abs=0.05)
    report = (tmp_path / "fit" / "report.md").read_text()
    assert "quiz task bits per byte of the right answers (eval/quiz/bpb)" in report
    assert any("not to the validation loss" in w for w in result["warnings"])


def test_an_accuracy_metric_is_predicted_in_two_steps_with_chance_from_the_task_file(task_runs, tmp_path):
    task = task_runs / "quiz.jsonl"
    out = tmp_path / "fit"
    result = fit_runs(
        [task_runs / "runs"],
        out,
        n_boot=40,
        plots=False,
        wandb="disabled",
        metric="eval/quiz/acc",
        predict=("2e7:4e8",),
    )
    ds = result["downstream"]
    assert ds["metric"] == "eval/quiz/acc" and ds["bpb_metric"] == "eval/quiz/bpb"
    assert ds["chance"] == pytest.approx(0.2) and str(task) in ds["chance_source"]
    assert ds["acc_law"]["floor"] == pytest.approx(0.2)
    assert ds["acc_law"]["x0"] == pytest.approx(TASK_SIGMOID.x0, abs=0.05)
    assert ds["bpb_law"]["alpha"] == pytest.approx(TASK_LAW["alpha"], abs=0.05)
    assert result["inputs"]["metric"] == "eval/quiz/bpb"  # the scaling laws fit the task's bpb
    for p in ds["predictions"]:
        truth = float(TASK_SIGMOID.predict(_task_bpb(p["params"], p["tokens"])))
        assert p["acc"] == pytest.approx(truth, abs=0.03)
        assert p["lo"] <= truth <= p["hi"]
    rec = result["recommendation"]
    assert ds["predictions"][-1]["recommended"]
    assert (rec["params"], rec["tokens"]) == pytest.approx((ds["predictions"][-1]["params"],
                                                            ds["predictions"][-1]["tokens"]))
    assert rec["acc_metric"] == "eval/quiz/acc" and rec["acc"] == ds["predictions"][-1]["acc"]
    report = (out / "report.md").read_text()
    assert "## Downstream: eval/quiz/acc in two steps" in report
    assert "1. **Task bpb from N and D**" in report and "2. **Accuracy from task bpb**" in report
    assert "| predicted eval/quiz/acc" in report


def test_a_csv_with_task_columns_and_chance_on_the_command_line(tmp_path, capsys):
    from scaling.cli.main import main

    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e5, 6e6, 5), [1e6, 3e6, 1e7], indexing="ij"))
    bpb = _task_bpb(n, d)
    acc = SigmoidFit(0.25, 0.85, 5.0, 1.7).predict(bpb)
    csv = write_csv(tmp_path / "ladder.csv", n, d, bpb + 1.0, **{"eval/quiz/bpb": bpb, "eval/quiz/acc": acc})
    code = main(
        [
            "fit",
            str(csv),
            "--out",
            str(tmp_path / "fit"),
            "--metric",
            "eval/quiz/acc",
            "--chance",
            "0.25",
            "--bootstrap",
            "0",
            "--no-plots",
            "--wandb",
            "disabled",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "(eval/quiz/bpb)" in printed and "eval/quiz/acc (two steps" in printed
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["downstream"]["chance_source"] == "--chance" and fit["downstream"]["acc_law"]["floor"] == 0.25
    assert fit["parametric"]["E"] == pytest.approx(
        TASK_LAW["E"], abs=0.05
    )  # the csv's loss column is not fitted
    assert "eval/quiz/acc" not in fit["knobs"]["knobs"]


@pytest.mark.parametrize("metric, chance, message", [
    ("eval/quiz/f1", None, "eval/<task>/<key> with a key among bpb, acc, acc_norm"),
    ("eval/other/acc", None, "no run has eval/other/bpb and eval/other/acc; train with eval.tasks=[other]"),
    ("eval/quiz/bpb", 0.25, "--chance is the floor of an accuracy metric"),
])
def test_an_unknown_or_missing_task_metric_is_a_one_line_error(task_runs, tmp_path, metric, chance, message):
    with pytest.raises(ScalingError, match=re.escape(message)):
        fit_runs(
            [task_runs / "runs"],
            tmp_path / "fit",
            n_boot=0,
            plots=False,
            wandb="disabled",
            metric=metric,
            chance=chance,
        )


@pytest.mark.slow
def test_fit_predicts_the_shipped_tasks_accuracy_from_a_tiny_real_ladder_in_two_steps(tiny_cfg, tmp_path):
    from scaling.training.train import train
    from tests.helpers.runs import run_cli

    sweep = tmp_path / "sweep"
    for width in (32, 64, 96):  # 3 sizes x 2 budgets: approach 3 fits 5 constants
        for tokens in (5120, 10240):
            train(tiny_cfg(f"model.d_model={width}", f"train.tokens={tokens}", "eval.tasks=[stdlib-nextline]",
                           "eval.every_tokens=5120", "eval.limit=80", run_dir=sweep / f"w{width}-t{tokens}"))
    out = tmp_path / "fit"
    proc = run_cli(
        "fit",
        str(sweep),
        "--out",
        str(out),
        "--metric",
        "eval/stdlib-nextline/acc",
        "--bootstrap",
        "20",
        "--no-plots",
        "--wandb",
        "disabled",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "eval/stdlib-nextline/acc (two steps" in proc.stdout
    fit = json.loads((out / "fit.json").read_text())
    ds = fit["downstream"]
    assert ds["n_runs"] == 6 and ds["chance"] == pytest.approx(
        0.25
    )  # four choices, read from the shipped file
    assert "task file" in ds["chance_source"] and ds["acc_law"]["floor"] == pytest.approx(0.25)
    runs = {(r["params"], r["tokens"]): r for r in ds["runs"]}
    for run in sorted((tmp_path / "sweep").iterdir()):
        result = json.loads((run / "result.json").read_text())
        row = runs[(result["params_non_embedding"], result["tokens"])]
        assert row["bpb"] == pytest.approx(result["eval/stdlib-nextline/bpb"])  # the final scores are fitted
        assert row["acc"] == pytest.approx(result["eval/stdlib-nextline/acc"])
    assert fit["parametric"]["n_points"] == 6 and fit["inputs"]["metric"] == "eval/stdlib-nextline/bpb"
    rec = ds["predictions"][-1]
    assert rec["recommended"] and 0.25 <= rec["acc"] <= 1.0 and rec["bpb"] > 0
    report = (out / "report.md").read_text()
    assert "1. **Task bpb from N and D**" in report and "2. **Accuracy from task bpb**" in report
