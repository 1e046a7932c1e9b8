"""``fit_runs`` and ``scaling fit`` end to end: CSV and run dirs in; fit.json, report, plots,
large_run.yaml and a W&B fit run out; bad input as one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from scaling.cli import main
from scaling.fit import FitOptions, fit_runs, load_points
from scaling.fit.parametric import ParametricFit
from tests.helpers.synthetic import demo_like_runs, ladder_grid, write_csv, write_runs

LAW = ParametricFit.from_constants(E=1.8, A=900.0, B=2000.0, alpha=0.40, beta=0.33)
TINY_LAW = ParametricFit.from_constants(E=1.5, A=30.0, B=300.0, alpha=0.3, beta=0.3)


def quick(**changes) -> FitOptions:
    """Options of a fast fit: no bootstrap, plots or W&B unless ``changes`` say otherwise."""
    return FitOptions(**{"n_boot": 0, "plots": False, "wandb": "disabled", **changes})


@pytest.fixture
def ladder_csv(tmp_path):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 5), np.logspace(8.5, 10.5, 4), noise=0.01, seed=7)
    return write_csv(tmp_path / "runs.csv", n, d, loss)


def test_csv_fit_writes_everything_and_fit_json_round_trips(ladder_csv, tmp_path):
    from scaling.config_loading import load_config

    out = tmp_path / "fit"
    options = quick(target_flops=1e21, predict=["1e9:2e10"], n_boot=40, plots=True)
    result = fit_runs([ladder_csv], out, options)
    assert json.loads((out / "fit.json").read_text()) == result
    for key in (
        "parametric",
        "isoflop",
        "hparams",
        "knobs",
        "predictions",
        "backtest",
        "recommendation",
        "warnings",
    ):
        assert key in result
    for key in ("E", "A", "B", "alpha", "beta", "a", "b", "objective", "grad_norm", "ci"):
        assert key in result["parametric"]
    assert (
        result["parametric"]["ci"]["a"][0] <= result["parametric"]["a"] <= result["parametric"]["ci"]["a"][1]
    )
    first = result["predictions"][0]
    assert (first["params"], first["tokens"]) == (1e9, 2e10)
    assert first["lo"] < first["loss"] < first["hi"]
    assert first["loss"] == pytest.approx(float(LAW.predict(1e9, 2e10)), rel=0.02)
    rec = result["recommendation"]
    assert rec["flops"] == pytest.approx(
        1e21, rel=1e-6
    )  # tokens chosen to spend the budget on the real shape
    assert rec["lo"] < rec["loss"] < rec["hi"]
    cfg = load_config([out / "large_run.yaml"])  # what `scaling train --config` does first
    assert cfg.model.n_layer == rec["n_layer"] and cfg.train.tokens == pytest.approx(rec["tokens"], rel=1e-6)
    for name in ("report.md", "loss_vs_compute.png", "residuals.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "## Recommendation" in report and "poorly determined" in report


def test_recommended_size_follows_the_law_at_large_compute(ladder_csv, tmp_path):
    result = fit_runs([ladder_csv], tmp_path / "fit", quick(target_flops=5.76e23))
    rec = result["recommendation"]
    # with the real FLOP accounting of a ladder shape at this size, 6N is within a few percent
    assert rec["params"] == pytest.approx(result["parametric"]["n_opt_closed_form"], rel=0.15)
    assert any("orders of magnitude" in w for w in result["warnings"])


@pytest.mark.slow
def test_demo_like_run_dirs_give_lr_law_knobs_and_a_wandb_fit_run(tmp_path):
    from tests.helpers.wandb_records import find_wandb_files, read_wandb_file

    sweep = tmp_path / "sweep"
    demo_like_runs(sweep, TINY_LAW, noise=0.005)
    write_runs(
        sweep / "extra",
        TINY_LAW,
        [{"n_layer": 4, "tokens": 1e6, "lr": 0.01, "seed": 0, "status": "diverged"}],
    )
    out = tmp_path / "fit"
    result = fit_runs([sweep], out, FitOptions(n_boot=10, wandb="offline"))
    assert result["inputs"]["n_rows"] == 25 and result["inputs"]["group"] == "synthetic"
    assert any("1 diverged" in w for w in result["warnings"])
    assert any("tokens per parameter, outside the fitted" in w for w in result["warnings"])  # ~2000 vs <= 100
    lr = result["hparams"]["lr"]
    assert lr["law"]["exponent"] == pytest.approx(-0.3, abs=0.1)  # synthetic runs use lr_opt = 0.02·N^-0.3
    rec = result["recommendation"]
    assert (
        rec["lr"] == pytest.approx(0.02 * rec["params"] ** -0.3, rel=0.3)
        and rec["lr_source"] == "power law in N"
    )
    assert "lr" in result["knobs"]["knobs"]
    assert (out / "lr_vs_loss.png").exists()
    files = find_wandb_files(out)
    assert len(files) == 1
    run = read_wandb_file(files[0])
    assert run.job_type == "fit" and run.group == "synthetic"
    assert run.summary["fit/a"] == pytest.approx(result["parametric"]["a"])
    for key in ("A", "B"):  # shown only with their intervals
        assert [run.summary[f"fit/{key}_lo"], run.summary[f"fit/{key}_hi"]] == \
            pytest.approx(result["parametric"]["ci"][key])


def test_wandb_fit_run_has_job_type_fit_group_and_tables(ladder_csv, tmp_path):
    from tests.helpers.wandb_records import find_wandb_files, read_wandb_file

    out = tmp_path / "fit"
    result = fit_runs([ladder_csv], out, quick(wandb="offline", wandb_group="study-1"))
    (path,) = find_wandb_files(out)
    run = read_wandb_file(path)
    assert (run.job_type, run.group, run.project) == ("fit", "study-1", "scaling")
    assert run.summary["recommendation/params"] == pytest.approx(result["recommendation"]["params"])
    (row,) = run.history
    assert row["fit/runs/_type"] == "table-file" and row["fit/runs/nrows"] == 20  # one row per input run
    assert row["fit/predictions/nrows"] == len(result["predictions"])


def test_total_and_non_embedding_params_are_read_from_result_json(tmp_path):
    write_runs(tmp_path / "s", TINY_LAW, [{"n_layer": 2, "tokens": 1e6, "lr": 1e-3, "seed": 0}])
    total = load_points([tmp_path / "s"], params="total").params[0]
    non_emb = load_points([tmp_path / "s"], params="non-embedding").params[0]
    assert total - non_emb == 512 * 64  # the tied 512 × 64 embedding


def test_validation_curves_are_read_and_a_cut_last_line_is_tolerated(tmp_path):
    (run,) = write_runs(tmp_path / "s", TINY_LAW, [{"n_layer": 3, "tokens": 2e6, "lr": 1e-3, "seed": 0}],
                        curve_points=5)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"train/tokens": 2000000, "val/lo')  # a crash mid-write
    (curve,) = load_points([tmp_path / "s"]).curves
    assert curve.tokens.tolist() == [4e5, 8e5, 1.2e6, 1.6e6, 2e6]
    assert np.all(np.diff(curve.loss) < 0)  # the law's curve falls with tokens (noise is small)
    result = json.loads((run / "result.json").read_text())
    assert curve.flops_per_token == pytest.approx(result["flops"] / result["tokens"])


def test_target_tokens_gives_the_size_the_law_pairs_with_them(ladder_csv, tmp_path):
    result = fit_runs([ladder_csv], tmp_path / "fit", quick(target_tokens=1e12))
    rec, par = result["recommendation"], result["parametric"]
    law = ParametricFit.from_constants(*(par[k] for k in ("E", "A", "B", "alpha", "beta")))
    c6 = (1e12 * law.G) ** (1 / law.b)  # C/6 at which D_opt = 1e12
    assert rec["tokens"] == 1e12
    assert rec["params"] == pytest.approx(c6 / 1e12, rel=0.15)  # nearest ladder shape


def test_nan_rows_are_excluded_with_a_warning(tmp_path):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 4), np.logspace(8.5, 10.5, 3), seed=1)
    loss[3] = math.nan  # written as "nan": a run that diverged
    csv = write_csv(tmp_path / "r.csv", n, d, loss)
    csv.write_text(csv.read_text() + f"{n[0]:g},{d[0]:g},\n")  # an empty loss: a missing value
    result = fit_runs([csv], tmp_path / "fit", quick())
    assert result["inputs"]["n_rows"] == 11
    assert any("excluded 1 diverged run(s)" in w for w in result["warnings"])
    assert any("1 row(s) with a missing or NaN" in w for w in result["warnings"])


def _cli_error(capsys, *argv) -> str:
    assert main(["fit", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_cli_bad_inputs_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "fit")
    (tmp_path / "missing.csv").write_text("params,tokens\n1e6,1e8\n")
    assert "missing column(s) loss" in _cli_error(capsys, str(tmp_path / "missing.csv"), "--out", out)
    (tmp_path / "neg.csv").write_text("params,tokens,loss\n1e6,1e8,3\n-2e6,1e8,3\n")
    assert "must be positive" in _cli_error(capsys, str(tmp_path / "neg.csv"), "--out", out)
    one = "params,tokens,loss\n" + "".join(
        f"1e6,{t},3.{i}\n" for i, t in enumerate((1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9))
    )
    (tmp_path / "one.csv").write_text(one)
    assert "at least 2 model sizes" in _cli_error(capsys, str(tmp_path / "one.csv"), "--out", out)
    (tmp_path / "few.csv").write_text("params,tokens,loss\n1e6,1e8,3\n2e6,2e8,2.9\n")
    assert "at least 5 points" in _cli_error(capsys, str(tmp_path / "few.csv"), "--out", out)
    assert "no such file" in _cli_error(capsys, str(tmp_path / "nope"), "--out", out)


def test_cli_prints_the_recommendation(ladder_csv, tmp_path, capsys):
    assert main(["fit", str(ladder_csv), "--out", str(tmp_path / "fit"), "--target-params", "1e9",
                 "--bootstrap", "0", "--no-plots", "--wandb", "disabled", "--gpu-throughput", "4e14"]) == 0
    text = capsys.readouterr().out
    assert "GPU-hours" in text and "report:" in text
    rec = json.loads((tmp_path / "fit" / "fit.json").read_text())["recommendation"]
    assert rec["params"] == pytest.approx(1e9, rel=0.2)
    assert rec["gpu_hours"] == pytest.approx(rec["flops"] / 4e14 / 3600)
    assert "PARAMS:TOKENS" in _cli_error(
        capsys, str(ladder_csv), "--out", str(tmp_path / "f2"), "--predict", "1e9"
    )


def test_loader_reads_run_dirs_written_by_the_real_trainer(tiny_cfg, tmp_path):
    from scaling import train
    from scaling.counting import count_params

    for lr in ("1e-3", "3e-3"):
        cfg = tiny_cfg(f"optim.lr={lr}", run_dir=tmp_path / "sweep" / f"lr{lr}")
        assert train(cfg).status == "done"
    points = load_points([tmp_path / "sweep"])
    counts = count_params(cfg.model)
    assert points.params.tolist() == [counts.non_embedding] * 2
    assert sorted(points.lr.tolist()) == [1e-3, 3e-3]
    assert list(points.knobs) == ["lr"]  # the only setting that differs at equal size and tokens
    assert np.all(points.flops > 6 * points.params * points.tokens)  # the real count includes the head
    assert len(points.curves) == 2 and all(c.tokens.size >= 2 for c in points.curves)


def test_a_prediction_far_outside_the_fitted_runs_is_flagged(ladder_csv, tmp_path):
    result = fit_runs([ladder_csv], tmp_path / "fit", quick(predict=["1e9:2e10", "7e11:1.4e13"], plots=True))
    far = [w for w in result["warnings"] if w.startswith("--predict")]
    assert len(far) == 1 and far[0].startswith("--predict 7e+11:1.4e+13 is ")
    assert "x the largest fitted compute" in far[0] and "N 7e+11 against fitted" in far[0]


def test_online_wandb_without_a_login_is_refused_before_any_work(ladder_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    out = tmp_path / "fit"
    assert "--wandb=online but W&B is not logged in" in _cli_error(capsys, str(ladder_csv), "--out", str(out),
                                                                   "--wandb", "online")
    assert not out.exists()


def test_a_failing_wandb_upload_keeps_the_fit_and_says_so(ladder_csv, tmp_path, capsys, monkeypatch):
    import scaling.fit.wandb_log

    def broken(*args, **kwargs):
        raise ConnectionError("api.wandb.ai unreachable\nretrying...")

    monkeypatch.setattr(scaling.fit.wandb_log, "log_fit", broken)
    result = fit_runs([ladder_csv], tmp_path / "fit", quick(wandb="offline"))
    assert result["outputs"]["wandb"] == {"mode": "offline", "error": "api.wandb.ai unreachable"}
    assert json.loads((tmp_path / "fit" / "fit.json").read_text()) == result
    assert "logging it to W&B failed: api.wandb.ai unreachable" in capsys.readouterr().err


def _tokenizer_study(root, with_bpb: bool = True):
    """Run dirs of a tokenizer sweep: vocab 1024 packs 4 bytes per token, vocab 256 packs 2, so the
    larger vocabulary has the higher nats/token but the lower (better) bits per byte."""
    bytes_per_token = {256: 2.0, 1024: 4.0}
    bpb_of = {256: 1.30, 1024: 1.20}
    i = 0
    for n in (1e6, 4e6):
        for d in (1e7, 4e7):
            for vocab, per_token in bytes_per_token.items():
                for seed in (0, 1):
                    bpb = bpb_of[vocab] - 0.05 * np.log10(n * d / 1e13) + 0.002 * seed
                    run = root / f"r{i}"
                    run.mkdir(parents=True)
                    result = {
                        "status": "done",
                        "run_id": f"r{i}",
                        "params": n + vocab * 64,
                        "params_non_embedding": n,
                        "tokens": d,
                        "final_val_loss": bpb * per_token * np.log(2),
                        "seed": seed,
                        "lr": 1e-3,
                    }
                    if with_bpb:
                        result["val_bpb"] = bpb
                    (run / "result.json").write_text(json.dumps(result))
                    (run / "config.yaml").write_text(
                        yaml.safe_dump(
                            {
                                "model": {"vocab_size": vocab},
                                "data": {"path": f"data/v{vocab}"},
                                "run": {"seed": seed},
                                "optim": {"lr": 1e-3},
                            }
                        )
                    )
                    i += 1
    return root


def test_runs_with_different_tokenizers_are_compared_in_bits_per_byte(tmp_path):
    from scaling.fit.data import load_points
    from scaling.fit.knobs import analyze_knobs

    root = _tokenizer_study(tmp_path / "runs")
    auto = load_points([root])
    assert auto.metric == "bpb" and any("bits per byte" in n for n in auto.notes)
    # the dataset and the vocabulary change together: one knob, compared as a whole
    vocab = analyze_knobs(auto)["knobs"]["data.path + model.vocab_size"]
    assert {c["best"] for c in vocab["comparisons"]} == {"data/v1024 / 1024"} and vocab["verdict"] == "real"
    per_token = load_points([root], metric="loss")  # what a nats/token comparison would conclude
    per_token_vocab = analyze_knobs(per_token)["knobs"]["data.path + model.vocab_size"]
    assert {c["best"] for c in per_token_vocab["comparisons"]} == {"data/v256 / 256"}

    result = fit_runs([root], tmp_path / "fit", quick())
    assert result["inputs"]["metric"] == "bpb"
    assert "Fitted metric: validation bits per byte" in (tmp_path / "fit" / "report.md").read_text()
    large_run = yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())
    assert large_run["model"]["vocab_size"] == 1024
    assert large_run["data"]["path"] == str(Path("data/v1024").resolve())  # as the runs saw it


def test_bits_per_byte_cannot_be_fitted_without_it(tmp_path, capsys):
    from scaling.fit.data import load_points

    root = _tokenizer_study(tmp_path / "runs", with_bpb=False)
    points = load_points([root])  # auto falls back to nats/token and says why
    assert points.metric == "loss" and any("lack val_bpb" in n for n in points.notes)
    assert "no validation bits per byte" in _cli_error(capsys, str(root), "--out", str(tmp_path / "fit"),
                                                        "--metric", "bpb")


def test_isoflop_uses_the_best_setting_per_point_not_an_lr_sweeps_worse_runs(tmp_path):
    from scaling.fit.parametric import CHINCHILLA

    law = ParametricFit.from_constants(**CHINCHILLA)
    rows = []
    for c in np.logspace(18, 20, 3):
        for n in np.logspace(7, 9.5, 11):
            d = c / (6 * n)
            for lr, penalty in ((1e-3, 0.0), (3e-3, 0.04), (1e-2, 0.12)):  # bad LRs hurt big models more
                rows.append((n, d, float(law.predict(n, d)) + penalty * np.log10(n / 1e6), lr))
    n, d, loss, lr = (list(x) for x in zip(*rows, strict=True))
    result = fit_runs([write_csv(tmp_path / "runs.csv", n, d, loss, lr=lr)], tmp_path / "fit", quick())
    assert result["isoflop"]["a"] == pytest.approx(law.a, abs=0.02)


def test_planned_runs_without_a_result_are_named_not_silently_dropped(tmp_path):
    root = tmp_path / "sweep"
    dirs = write_runs(
        root / "runs", TINY_LAW, [{"n_layer": k, "tokens": 1e6, "lr": 1e-3, "seed": 0} for k in (2, 3)]
    )
    planned = [p.name for p in dirs] + ["feedc0ffee00"]  # a run still queued
    (root / "plan.json").write_text(json.dumps({"name": "s", "runs": [{"run_id": r} for r in planned]}))
    points = load_points([root])
    assert len(points) == 2
    assert any("1 of 3 planned run(s)" in n and "feedc0ffee00" in n for n in points.notes)


def test_csv_encodings_and_an_out_path_that_is_a_file(tmp_path, capsys):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 4), np.logspace(8.5, 10, 3), noise=0.005, seed=1)
    text = write_csv(tmp_path / "runs.csv", n, d, loss).read_text()
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")  # as Excel saves it
    assert len(load_points([tmp_path / "bom.csv"])) == len(n)
    (tmp_path / "latin.csv").write_bytes(
        text.replace("\n", ",x\n", 1).replace("\n", ",caf\xe9\n").encode("latin-1")
    )
    assert "not UTF-8 text" in _cli_error(capsys, str(tmp_path / "latin.csv"), "--out", str(tmp_path / "f"))
    (tmp_path / "taken").write_text("")
    assert "is a file" in _cli_error(capsys, str(tmp_path / "runs.csv"), "--out", str(tmp_path / "taken"))


@pytest.mark.parametrize(("shape", "expected"), [
    ("five", "only 5 tuned runs for a 5-parameter law"),
    ("rising", "the final loss hardly falls with compute"),
    ("flat", "the final loss hardly falls with compute"),
])
def test_inputs_the_law_cannot_describe_are_flagged(tmp_path, shape, expected):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 4), np.logspace(8.5, 10, 3), noise=0.005, seed=2)
    if shape == "five":
        n, d, loss = n[:5], d[:5], loss[:5]
    elif shape == "rising":
        loss = 10.0 - np.asarray(loss)
    else:
        loss = np.full(len(loss), 3.0)
    result = fit_runs(
        [write_csv(tmp_path / "runs.csv", n, d, loss)], tmp_path / "fit", quick(target_params=1e9)
    )
    assert any(w.startswith(expected) for w in result["warnings"]), result["warnings"]
    if shape != "five":
        assert not any("tuned runs for a" in w for w in result["warnings"])


def test_a_well_behaved_ladder_gets_neither_degenerate_warning(ladder_csv, tmp_path):
    result = fit_runs([ladder_csv], tmp_path / "fit", quick())
    assert not any(w.startswith(("only ", "the final loss hardly")) for w in result["warnings"])


def test_large_run_yaml_batch_tags_and_a_csvs_shared_batch_size(tmp_path):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 5), np.logspace(8.5, 10.5, 4), noise=0.01, seed=7)
    csv = write_csv(tmp_path / "runs.csv", n, d, loss, batch_size=[65536] * len(n))
    result = fit_runs([csv], tmp_path / "fit", quick(target_flops=1e21))
    rec = result["recommendation"]
    assert rec["batch_tokens"] == 65536 and rec["batch_source"] == "the runs' batch size (not swept)"
    text = (tmp_path / "fit" / "large_run.yaml").read_text()
    assert "divide\n# train.grad_accum by N" in text
    train, logging = yaml.safe_load(text)["train"], yaml.safe_load(text)["logging"]
    assert train["micro_batch_size"] * train["grad_accum"] * train["seq_len"] == 65536
    assert train["micro_batch_size"] <= 16 and logging["tags"] == ["large-run"]


def test_a_target_below_the_ladder_is_refused_before_anything_is_written(ladder_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    err = _cli_error(capsys, str(ladder_csv), "--out", str(out), "--target-params", "10")
    assert "--target-params 10 is below the smallest ladder shape" in err
    assert not out.exists()
    tiny = fit_runs([ladder_csv], out, quick(target_flops=1e6))
    assert any(w.startswith("the best shape for the target is the smallest") for w in tiny["warnings"])


def test_the_cli_builds_the_same_options_as_the_python_api():
    import argparse

    from scaling.cli.fit import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from_args(parser.parse_args(["runs.csv", "--out", "fit"])) == FitOptions()
    args = parser.parse_args(
        [
            "runs.csv",
            "--out",
            "fit",
            "--target-tokens",
            "1e12",
            "--predict",
            "1e9:2e10",
            "--params",
            "total",
            "--bootstrap",
            "7",
            "--no-exclude-diverged",
            "--ci",
            "0.9",
            "--gpu-throughput",
            "4e14",
            "--isoflop-window",
            "0.5",
            "--metric",
            "bpb",
            "--seed",
            "3",
            "--no-plots",
            "--wandb",
            "disabled",
            "--project",
            "p",
            "--group",
            "g",
        ]
    )
    assert options_from_args(args) == FitOptions(
        target_tokens=1e12, predict=("1e9:2e10",), params="total", n_boot=7, exclude_diverged=False, ci=0.9,
        gpu_throughput=4e14, isoflop_window_dex=0.5, metric="bpb", seed=3, plots=False, wandb="disabled",
        wandb_project="p", wandb_group="g")


def test_fit_warnings_are_the_rules_in_order_and_a_new_rule_is_one_function(ladder_csv, tmp_path):
    from scaling.fit.checks import WARNING_RULES, far_predictions, isoflop_skipped, run_checks
    from scaling.fit.pipeline import fit_context

    options = quick(predict=["7e11:1.4e13"])
    ctx = fit_context([ladder_csv], options)
    (far,), (skipped,) = far_predictions(ctx), isoflop_skipped(ctx)
    assert far.startswith("--predict 7e+11:1.4e+13 is") and skipped.startswith("IsoFLOP: 1 budget(s)")
    by_keywords = fit_runs([ladder_csv], tmp_path / "fit", predict=["7e11:1.4e13"], n_boot=0, plots=False,
                           wandb="disabled")  # keywords replace fields of the default FitOptions
    assert by_keywords["warnings"] == run_checks(ctx)
    assert run_checks(ctx)[-2:] == [far, skipped]  # the order of WARNING_RULES
    assert run_checks(ctx, [*WARNING_RULES, lambda c: [f"{len(c.tuned)} tuned runs"]])[-1] == "20 tuned runs"


def test_an_offline_fit_says_in_one_wandb_line_where_its_run_is(ladder_csv, tmp_path):
    from tests.helpers.runs import run_cli

    out = tmp_path / "fit"
    proc = run_cli(
        "fit",
        str(ladder_csv),
        "--out",
        str(out),
        "--bootstrap",
        "0",
        "--no-plots",
        "--wandb",
        "offline",
        env={"WANDB_SILENT": "false"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("wandb")]
    assert (
        len(lines) == 1
        and lines[0].startswith(f"wandb: offline fit run in {out}")
        and "wandb sync" in lines[0]
    )


def test_an_irreducible_loss_at_its_lower_bound_is_a_warning_that_points_to_approach_2():
    from types import SimpleNamespace

    import numpy as np

    from scaling.fit.checks import irreducible_loss_at_bound
    from scaling.fit.parametric import E_FLOOR

    def ctx(E, a2):
        return SimpleNamespace(law=SimpleNamespace(E=E), isoflop=SimpleNamespace(a=a2),
                               tuned=SimpleNamespace(loss=np.array([3.2, 3.9])))

    (warning,) = irreducible_loss_at_bound(ctx(E_FLOOR, 0.644))
    assert "lower bound" in warning and "3.2–3.9" in warning and "approach 2's a (0.644)" in warning
    assert irreducible_loss_at_bound(ctx(1.7, 0.644)) == []  # a fitted E says nothing
    assert irreducible_loss_at_bound(ctx(E_FLOOR, None))[0].endswith("compare approach 2's a")


def test_approaches_apart_are_told_apart_by_their_intervals():
    import math
    from types import SimpleNamespace

    from scaling.fit.checks import approaches_disagree, combined_half_width

    def ctx(a3, a3_ci, a2, a2_ci):
        law = SimpleNamespace(a=a3)
        return SimpleNamespace(law=law, uncertainty=SimpleNamespace(cis={"a": a3_ci}),
                               isoflop=SimpleNamespace(a=a2, a_ci=a2_ci), envelope=SimpleNamespace(a=None),
                               target=SimpleNamespace(allocation=SimpleNamespace(approach="approach 2")))

    # the sides facing each other: 0.48 below approach 3, 0.05 above approach 2
    assert combined_half_width(0.57, [0.09, 0.87], 0.47, [0.31, 0.52]) == pytest.approx(math.hypot(.48, .05))
    assert combined_half_width(0.47, [0.31, 0.52], 0.57, None) is None
    (wide,) = approaches_disagree(ctx(0.60, [0.09, 0.88], 0.47, [0.31, 0.53]))
    assert "within their combined intervals" in wide and "approach 3's is wide" in wide
    assert wide.endswith("the large run's size follows approach 2")
    # the demo's runs at another seed: approach 2's interval is the wide one, and the warning says so
    (wide,) = approaches_disagree(ctx(0.581, [0.525, 0.659], 0.435, [-0.97, 1.84]))
    assert "approach 2's is wide" in wide and "more budgets" in wide
    (apart,) = approaches_disagree(ctx(0.65, [0.60, 0.70], 0.47, [0.44, 0.50]))
    assert apart.endswith("the approaches disagree beyond their intervals")
    assert approaches_disagree(ctx(0.52, [0.4, 0.6], 0.47, [0.44, 0.50])) == []  # within 0.1: no warning


def test_error_bars_of_a_point_just_outside_its_interval_are_empty_not_negative():
    from scaling.fit.plots import error_bars

    bars = error_bars([2.8e-16, 0.5], [3.3e-16, 0.4], [4e-16, 0.7])  # a rounding error below its interval
    assert bars.shape == (2, 2) and (bars >= 0).all()
    assert bars[:, 1].tolist() == pytest.approx([0.1, 0.2]) and bars[0, 0] == 0


def test_seed_noise_measured_only_on_much_longer_runs_is_a_warning():
    from types import SimpleNamespace

    import numpy as np

    from scaling.fit.checks import seed_noise_from_longer_runs

    def ctx(settings, steps):
        tuned = SimpleNamespace(tokens=np.asarray(steps, float) * 1024,
                                batch_size=np.full(len(steps), 1024.0))
        return SimpleNamespace(knobs={"seed_std": 0.015, "settings": settings}, tuned=tuned)

    long_only = [{"n": 5, "steps": 644.0}, {"n": 1, "steps": 95.0}]
    (warning,) = seed_noise_from_longer_runs(ctx(long_only, [95, 160, 300, 644, 2500]))
    assert "644 optimizer steps" in warning and "2 fitted run(s) train for only 95–160 steps" in warning
    assert seed_noise_from_longer_runs(ctx(long_only, [300, 644, 2500])) == []  # none under a third
    with_short = [*long_only, {"n": 3, "steps": 142.0}]  # a repeated short setting: the noise covers them
    assert seed_noise_from_longer_runs(ctx(with_short, [95, 160, 300, 644])) == []
    no_seeds = SimpleNamespace(knobs={"seed_std": None, "settings": long_only},
                               tuned=ctx(long_only, [95]).tuned)
    assert seed_noise_from_longer_runs(no_seeds) == []
