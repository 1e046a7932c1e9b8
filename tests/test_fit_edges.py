"""The edges of ``scaling fit`` a user hits: what large_run.yaml inherits from the sweep, where the fit logs,
which output folders it may write into, and damaged inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from scaling.cli import main
from scaling.errors import ScalingError
from scaling.fit import FitOptions, fit_runs, load_points
from scaling.fit.parametric import ParametricFit
from tests.helpers.synthetic import ladder_grid, write_csv, write_runs

LAW = ParametricFit.from_constants(E=1.8, A=900.0, B=2000.0, alpha=0.40, beta=0.33)
TINY_LAW = ParametricFit.from_constants(E=1.5, A=30.0, B=300.0, alpha=0.3, beta=0.3)


def quick(**changes) -> FitOptions:
    """Options of a fast fit: no bootstrap, plots or W&B unless ``changes`` say otherwise."""
    return FitOptions(**{"n_boot": 0, "plots": False, "wandb": "disabled", **changes})


def _cli_error(capsys, *argv) -> str:
    assert main(["fit", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@pytest.fixture
def ladder_csv(tmp_path):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 5), np.logspace(8.5, 10.5, 4), noise=0.01, seed=7)
    return write_csv(tmp_path / "runs.csv", n, d, loss)


def _sweep_runs(root: Path, **config) -> list[Path]:
    """Six run dirs as a sweep launcher leaves them (its group, tags, threads), with extra ``config`` keys."""
    config = {"train.threads": 1, "logging.tags": "[ladder]", **config}
    specs = [{"n_layer": k, "tokens": t, "lr": 1e-3, "seed": 0, "config": config}
             for k in (2, 3, 4) for t in (1e6, 3e6)]
    return write_runs(root, TINY_LAW, specs, group="my-ladder")


# large_run.yaml


def test_large_run_yaml_drops_the_sweeps_plumbing_and_resolves_paths_as_the_runs_saw_them(tmp_path,
                                                                                         monkeypatch):
    launched_from = tmp_path / "project"
    (launched_from / "data" / "mine").mkdir(parents=True)
    monkeypatch.chdir(launched_from)
    _sweep_runs(tmp_path / "sweep", **{"data.path": "data/mine", "logging.project": "walk"})
    result = fit_runs([tmp_path / "sweep"], tmp_path / "fit", quick())
    large = yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())
    assert large["data"]["path"] == str(launched_from / "data" / "mine")
    assert large["train"]["threads"] is None and large["run"]["dir"] is None
    assert (large["logging"]["group"], large["logging"]["tags"]) == ("large-run", ["large-run"])
    assert large["logging"]["project"] == "walk"  # the study's project, not the sweep's group
    (note,) = [w for w in result["warnings"] if w.startswith("large_run.yaml:")]
    assert "data.path 'data/mine' is relative" in note and "current one" in note
    assert "does not exist" not in note


def test_a_relative_path_that_is_not_there_is_flagged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mix = "[{path: a, weight: 1}, {path: /abs/b, weight: 2}]"
    _sweep_runs(tmp_path / "sweep", **{"data.mixture": mix})
    result = fit_runs([tmp_path / "sweep"], tmp_path / "fit", quick())
    large = yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())
    assert [m["path"] for m in large["data"]["mixture"]] == [str(tmp_path / "a"), "/abs/b"]
    (note,) = [w for w in result["warnings"] if w.startswith("large_run.yaml:")]
    assert "data.mixture[0].path 'a'" in note and "does not exist there" in note


def test_a_csv_large_run_says_it_is_the_framework_defaults_until_given_a_base_config(ladder_csv, tmp_path):
    result = fit_runs([ladder_csv], tmp_path / "fit", quick())
    rec = result["recommendation"]
    (note,) = [w for w in result["warnings"] if w.startswith("large_run.yaml:")]
    assert "no run config" in note and "--base-config" in note and "data.path 'data/stdlib'" in note
    assert rec["lr_source"] == rec["batch_source"] == "framework default (not swept)"

    (tmp_path / "mine").mkdir()
    base = tmp_path / "mine.yaml"
    base.write_text(f"data: {{path: {tmp_path / 'mine'}}}\nmodel: {{max_seq_len: 512}}\n"
                    "train: {seq_len: 512, micro_batch_size: 4, grad_accum: 8}\noptim: {lr: 0.002}\n")
    result = fit_runs([ladder_csv], tmp_path / "fit2", quick(base_config=str(base)))
    large = yaml.safe_load((tmp_path / "fit2" / "large_run.yaml").read_text())
    assert large["data"]["path"] == str(tmp_path / "mine") and large["optim"]["lr"] == 0.002
    assert (large["train"]["seq_len"], large["train"]["micro_batch_size"], large["train"]["grad_accum"]) == \
        (512, 4, 8)
    assert large["train"]["tokens"] == pytest.approx(result["recommendation"]["tokens"], rel=1e-9)
    assert not [w for w in result["warnings"] if w.startswith("large_run.yaml:")]
    rec = result["recommendation"]
    assert (rec["lr_source"], rec["batch_tokens"]) == ("base config (not swept)", 512 * 4 * 8)


def test_an_unswept_learning_rate_reaches_the_large_run_as_the_runs_set_it(tmp_path):
    """Runs trained at a per-size rule (no LR grid): the large run gets the rule at its size, not the
    framework's default nor the largest run's rate, which is several times too high for a run 10x larger."""
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 5), np.logspace(8.5, 10.5, 4), noise=0.01, seed=7)
    rule = write_csv(tmp_path / "rule.csv", n, d, loss, lr=0.5 * n ** -0.4)
    rec = fit_runs([rule], tmp_path / "fit", quick(target_flops=1e21))["recommendation"]
    assert rec["lr"] == pytest.approx(0.5 * rec["params"] ** -0.4, rel=1e-6)
    assert rec["lr_source"] == "the runs' rule, learning rate ∝ N^-0.4, at the target's N (not swept)"
    large = yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())
    assert large["optim"]["lr"] == pytest.approx(rec["lr"])
    irregular = write_csv(tmp_path / "irregular.csv", n, d, loss, lr=np.resize([1e-3, 3e-3, 2e-3], n.size))
    rec = fit_runs([irregular], tmp_path / "fit2", quick(target_flops=1e21))["recommendation"]
    largest = int(np.argmax(n * d))
    assert rec["lr"] == np.resize([1e-3, 3e-3, 2e-3], n.size)[largest]
    assert rec["lr_source"] == "the largest run's learning rate (not swept)"
    # swept, but every cell's best rate is the grid's largest: no law, and the best rate tried is a bound
    grid = np.array([1e-4, 3e-4, 1e-3])
    edge = write_csv(tmp_path / "edge.csv", np.repeat(n, 3), np.repeat(d, 3),
                     np.repeat(loss, 3) + np.tile([0.1, 0.05, 0.0], n.size), lr=np.tile(grid, n.size))
    rec = fit_runs([edge], tmp_path / "fit3", quick(target_flops=1e21))["recommendation"]
    assert rec["lr"] == 1e-3 and rec["lr_source"].startswith("the largest run's best learning rate (every")


def test_a_missing_or_invalid_base_config_is_a_one_line_error_before_any_work(ladder_csv, tmp_path, capsys):
    err = _cli_error(capsys, str(ladder_csv), "--out", str(tmp_path / "fit"), "--base-config",
                     str(tmp_path / "nope.yaml"))
    assert "--base-config" in err and "not found" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {seqlen: 512}\n")
    err = _cli_error(capsys, str(ladder_csv), "--out", str(tmp_path / "fit"), "--base-config", str(bad))
    assert "train.seq_len" in err
    assert not (tmp_path / "fit").exists()


# W&B project and group of the fit run


def test_the_fit_logs_to_the_runs_project_and_group_unless_told_otherwise(tmp_path):
    from tests.helpers.wandb_records import find_wandb_files, read_wandb_file

    _sweep_runs(tmp_path / "sweep", **{"logging.project": "walk"})
    fit_runs([tmp_path / "sweep"], tmp_path / "fit", quick(wandb="offline"))
    run = read_wandb_file(*find_wandb_files(tmp_path / "fit"))
    assert (run.project, run.group, run.job_type) == ("walk", "my-ladder", "fit")
    fit_runs([tmp_path / "sweep"], tmp_path / "fit2",
             quick(wandb="offline", wandb_project="p", wandb_group="g"))
    run = read_wandb_file(*find_wandb_files(tmp_path / "fit2"))
    assert (run.project, run.group) == ("p", "g")


# the output folder


def _fit_cli(csv, out, *extra) -> int:
    return main(["fit", str(csv), "--out", str(out), "--bootstrap", "0", "--no-plots", "--wandb", "disabled",
                 *extra])


def test_a_folder_with_someone_elses_files_is_refused_and_left_as_it_was(ladder_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    out.mkdir()
    (out / "report.md").write_text("my notes")
    (out / "large_run.yaml").write_text("mine: true\n")
    err = _cli_error(capsys, str(ladder_csv), "--out", str(out))
    assert "is not empty (large_run.yaml, report.md)" in err and "--overwrite" in err
    assert (out / "report.md").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == \
        ["large_run.yaml", "report.md"]


def test_overwrite_replaces_only_the_files_a_fit_writes(ladder_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    out.mkdir()
    (out / "report.md").write_text("old")
    (out / "notes.txt").write_text("keep me")
    assert _fit_cli(ladder_csv, out, "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "report.md").read_text().startswith("# Scaling-law fit")


def test_a_fit_may_write_again_into_its_own_folder_and_clears_its_stale_files(ladder_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    assert _fit_cli(ladder_csv, out) == 0
    (out / "knob_7.png").write_bytes(b"a plot of a knob no longer swept")
    assert _fit_cli(ladder_csv, out) == 0  # a fit's own folder: no --overwrite needed
    assert not (out / "knob_7.png").exists()
    assert {p.name for p in out.iterdir()} == {"fit.json", "report.md", "large_run.yaml"}
    (out / "notes.txt").write_text("mine")
    assert "is not empty (notes.txt)" in _cli_error(capsys, str(ladder_csv), "--out", str(out))


def test_an_unwritable_out_folder_is_a_one_line_error(ladder_csv, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through file modes; a read-only file system stops it
        out = Path("/sys/scaling-fit-test")
        try:
            out.mkdir()
        except OSError:
            pass
        else:
            out.rmdir()
            pytest.skip("no read-only folder to try")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "fit"
    err = _cli_error(capsys, str(ladder_csv), "--out", str(out), "--bootstrap", "0", "--no-plots",
                     "--wandb", "disabled")
    assert "cannot write into" in err and "--out" in err
    assert not out.exists()


# damaged inputs


def test_a_csv_with_a_repeated_column_is_refused(tmp_path, capsys):
    csv = tmp_path / "dup.csv"
    csv.write_text("params,tokens,loss,loss\n1e7,1e9,4.88,5.88\n2e7,1e9,4.5,5.5\n")
    err = _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    assert "column 'loss' appears 2 times" in err
    csv.write_text("params,tokens,loss,Loss\n1e7,1e9,4.88,5.88\n")  # the same column in another case
    assert "column 'loss' appears 2 times" in _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))


def test_the_columns_the_fit_reads_match_in_any_case_and_knob_columns_keep_theirs(tmp_path):
    csv = tmp_path / "caps.csv"
    csv.write_text("Params,TOKENS,Loss,FLOPs,LR,Arch\n1e7,1e9,4.88,7e16,1e-3,A\n1e7,1e9,4.9,7e16,1e-3,B\n")
    points = load_points([csv])
    assert list(points.flops) == [7e16, 7e16] and list(points.lr) == [1e-3, 1e-3]
    assert list(points.knobs) == ["Arch"]


def test_a_column_under_another_common_name_is_read_as_the_column_it_names(tmp_path, capsys):
    """Published tables and W&B exports say learning_rate, val_loss, parameter_count: left as knobs, the LR
    law would go unfitted and every learning rate would count as a setting of some knob."""
    csv = tmp_path / "renamed.csv"
    csv.write_text("parameter_count,D,val_loss,optimizer.learning_rate,Batch_Tokens,arch\n"
                   "1e7,1e9,4.88,1e-3,4096,A\n1e7,1e9,4.90,2e-3,8192,A\n1e7,1e9,4.95,1e-3,4096,B\n")
    points = load_points([csv])
    assert list(points.params) == [1e7] * 3 and list(points.loss) == [4.88, 4.90, 4.95]
    assert list(points.lr) == [1e-3, 2e-3, 1e-3] and list(points.batch_size) == [4096, 8192, 4096]
    assert set(points.knobs) == {"lr", "batch_size", "arch"}
    assert any("column 'optimizer.learning_rate' read as the lr column" in n for n in points.notes)
    # beside the column itself an alias is left out, not made a knob
    csv.write_text("params,tokens,loss,lr,learning_rate\n1e7,1e9,4.88,1e-3,1e-3\n1e7,1e9,4.9,2e-3,2e-3\n")
    points = load_points([csv])
    assert set(points.knobs) == {"lr"} and any("'learning_rate' left out" in n for n in points.notes)
    csv.write_text("params,tokens,loss,optim.lr,train.seed\n1e7,1e9,4.88,1e-3,0\n1e7,1e9,4.9,2e-3,1\n")
    points = load_points([csv])  # a W&B export names the config keys
    assert list(points.lr) == [1e-3, 2e-3] and list(points.seed) == [0, 1] and set(points.knobs) == {"lr"}
    # a W&B runs-table export: State, config keys, summary metrics named with "/"
    csv.write_text("Name,State,params,tokens,val/loss,train/loss,optim.lr\nr1,finished,1e7,1e9,4.0,3.9,1e-3\n"
                   "r2,crashed,1e7,1e9,4.2,4.1,2e-3\nr3,finished,2e7,1e9,3.8,3.7,1e-3\n"
                   "r4,finished,2e7,1e9,3.85,3.75,2e-3\n")
    points = load_points([csv])
    assert list(points.loss) == [4.0, 3.8, 3.85] and set(points.knobs) == {"lr"}
    assert any("column 'State' read as the status column" in n for n in points.notes)
    csv.write_text("n_params,parameters,tokens,loss\n1e7,1e7,1e9,4.88\n")
    assert "both name the params column" in _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    # a batch counted in sequences is not guessed into tokens
    csv.write_text("params,tokens,loss,trainer.train_batch_size\n1e7,1e9,4.88,64\n2e7,1e9,4.5,64\n")
    err = _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    assert "'trainer.train_batch_size' looks like a batch size" in err and "tokens" in err
    assert not (tmp_path / "fit").exists()
    # with the sequence length beside it, a batch in sequences becomes tokens
    csv.write_text("params,tokens,loss,bs,seq_len\n1e7,1e9,4.88,256,2048\n2e7,1e9,4.5,512,2048\n")
    points = load_points([csv])
    assert list(points.batch_size) == [256 * 2048, 512 * 2048]
    assert any("batch_size = 'bs' x 'seq_len'" in n for n in points.notes)


def test_a_compute_column_with_one_count_gives_the_other(tmp_path, capsys):
    """Published IsoFLOP tables list a budget and a size (Chinchilla's figures) or a budget and a token
    count (Llama 3's): the other count is the budget over 6 x the one given."""
    csv = tmp_path / "isoflops.csv"
    csv.write_text("budget,params,loss\n6e18,1e8,3.1\n6e18,2e8,3.0\n6e18,4e8,3.05\n")
    points = load_points([csv])
    assert list(points.tokens) == pytest.approx([1e10, 5e9, 2.5e9]) and list(points.flops) == [6e18] * 3
    assert any("tokens = flops / (6 x params)" in n for n in points.notes)
    csv.write_text("compute,tokens,loss\n6e18,1e10,3.1\n6e18,5e9,3.0\n")
    assert list(load_points([csv]).params) == pytest.approx([1e8, 2e8])
    csv.write_text("budget,loss\n6e18,3.1\n")  # neither count: nothing to derive from
    assert "missing column(s) params, tokens" in _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))


def test_counts_in_other_units_are_refused_in_one_line(tmp_path, capsys):
    """Published tables give sizes in millions, tokens in billions and batches in sequences; read as
    counts they gave a law in the wrong units and a large run of a few hundred parameters."""
    csv = tmp_path / "units.csv"
    csv.write_text("params,tokens,loss\n70,1.4e9,3.1\n400,8e9,2.8\n")  # params in millions
    err = _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    assert "every params value is below 10000 (the largest is 400)" in err and "7e7" in err
    assert "params (M)" in err
    csv.write_text("params,tokens,loss\n7e7,1.4,3.1\n4e8,8,2.8\n")  # tokens in billions
    assert "every tokens value is below" in _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    csv.write_text("params,tokens,loss,batch_size\n7e7,1.4e9,3.1,64\n4e8,8e9,2.8,128\n")  # sequences
    err = _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    assert "the runs take 4.22e+07 steps (median)" in err and "sequence length" in err
    assert not (tmp_path / "fit").exists()
    csv.write_text("params,tokens,loss,batch_size\n7e7,1.4e9,3.1,131072\n4e8,8e9,2.8,262144\n")
    points = load_points([csv])
    assert list(points.batch_size) == [131072, 262144] and not any("small for" in n for n in points.notes)
    # short runs: sequences are possible as tokens, but small for such models: a note, not a refusal
    csv.write_text("params,tokens,loss,batch_size\n7e7,1e8,3.1,256\n4e8,2e8,2.8,512\n")
    points = load_points([csv])
    assert list(points.batch_size) == [256, 512]
    assert any("its median 384 is small for models of 2.35e+08 parameters" in n for n in points.notes)


def test_a_unit_in_a_count_columns_name_scales_it_and_spaced_names_read_as_their_columns(tmp_path):
    """Published tables name their units in the header (Epoch AI's Chinchilla table: Model Size,
    Training Tokens, Training FLOP; others: params (M), tokens_B): the same study read either way."""
    plain = tmp_path / "plain.csv"
    plain.write_text("params,tokens,flops,loss\n7e7,1.4e9,5.88e17,3.1\n4e8,8e9,1.92e19,2.8\n")
    expected = load_points([plain])
    for header, scale in (("Model Size,Training Tokens,Training FLOP,Loss", (1, 1, 1)),
                          ("params (M),tokens [B],FLOPs (1e18),loss", (1e6, 1e9, 1e18)),
                          ("n_params_M,Training Tokens (billions),compute (x 1e18),val_loss",
                           (1e6, 1e9, 1e18))):
        csv = tmp_path / "units.csv"
        rows = [(7e7, 1.4e9, 5.88e17, 3.1), (4e8, 8e9, 1.92e19, 2.8)]
        csv.write_text(header + "\n" + "".join(f"{n / scale[0]:g},{d / scale[1]:g},{c / scale[2]:g},{loss}\n"
                                                for n, d, c, loss in rows))
        points = load_points([csv])
        for column in ("params", "tokens", "flops", "loss"):
            assert getattr(points, column) == pytest.approx(getattr(expected, column)), (header, column)
        assert not points.knobs
        if scale[0] != 1:
            assert any("read as the params column times 1e+06, the unit its name gives" in n
                       for n in points.notes)
    # a unit on a column that is no count is no unit: a knob (or mixture column) keeps its name
    csv.write_text("params,tokens,loss,width (M)\n7e7,1.4e9,3.1,1\n4e8,8e9,2.8,1\n7e7,1.4e9,3.2,2\n"
                   "4e8,8e9,2.9,2\n")
    points = load_points([csv])
    assert set(points.knobs) == {"width (M)"} and list(points.params) == [7e7, 4e8, 7e7, 4e8]


def test_a_csvs_status_column_reads_wandbs_run_states_and_refuses_unknown_words(tmp_path, capsys):
    """A W&B export says finished, crashed, killed, running: a crashed or running run's loss is partial,
    and was fitted as a finished run's."""
    csv = tmp_path / "states.csv"
    csv.write_text("params,tokens,loss,Status\n1e7,1e9,4.88,finished\n2e7,1e9,4.5,Crashed\n"
                   "4e7,1e9,4.9,running\n8e7,1e9,4.2,\n1.6e8,1e9,9.9,diverged\n3.2e8,1e9,4.0,killed\n")
    points = load_points([csv])
    assert list(points.params) == [1e7, 8e7]
    assert "excluded 2 failed run(s)" in points.notes
    assert any(n.startswith("excluded 1 diverged run(s)") for n in points.notes)
    assert any(n.startswith("excluded 1 unfinished run(s)") for n in points.notes)
    csv.write_text("params,tokens,loss,status\n1e7,1e9,4.88,maybe\n")
    err = _cli_error(capsys, str(csv), "--out", str(tmp_path / "fit"))
    assert "states.csv:2: status 'maybe' is not one the fit knows" in err


def test_per_run_columns_are_not_knobs_and_leave_the_study_as_it_was(tmp_path):
    """A run name or a train-loss column differs in every row: read as knobs they made each run its own
    setting, so the five seeds of the demo's runs no longer measured the noise and the knob lost its pairs."""
    fixture = Path(__file__).parent / "data_fixtures" / "demo_study.csv"
    lines = fixture.read_text().splitlines()
    extra = tmp_path / "with_extra_columns.csv"
    extra.write_text("\n".join([lines[0] + ",name,train_loss,n_layers"] + [
        f"{line},run-{i},{3.5 + 0.01 * i:.3f},1" for i, line in enumerate(lines[1:])]) + "\n")
    plain, with_extra = load_points([fixture]), load_points([extra])
    assert set(with_extra.knobs) == set(plain.knobs) == {"lr", "parallel_residual"}
    assert any("'train_loss' left out of the knobs: 38 different values in 38 rows" in n
               for n in with_extra.notes)
    assert any("'name' left out of the knobs" in n for n in with_extra.notes)
    results = [fit_runs(p, tmp_path / f"fit{i}", quick()) for i, p in enumerate((plain, with_extra))]
    assert results[1]["knobs"]["seed_std"] == pytest.approx(results[0]["knobs"]["seed_std"])
    assert results[1]["knobs"]["seed_dof"] == results[0]["knobs"]["seed_dof"] == 4
    assert results[1]["parametric"]["a"] == pytest.approx(results[0]["parametric"]["a"])


def test_how_the_batch_is_split_into_micro_batches_is_no_knob(tmp_path):
    """An LR x batch sweep sets its batches through train.micro_batch_size and train.grad_accum: read as
    knobs, the fit gave them verdicts and carried a micro-batch to the large run beside the batch law."""
    specs = [{"n_layer": k, "tokens": t, "lr": 1e-3, "seed": 0,
              "config": {"train.micro_batch_size": mb, "train.grad_accum": 8 // mb}}
             for k in (2, 3, 4) for t in (1e6, 3e6) for mb in (2, 8)]
    points = load_points(write_runs(tmp_path / "runs", TINY_LAW, specs))
    assert not [k for k in points.knobs if "micro_batch_size" in k or "grad_accum" in k], points.knobs


def test_a_run_dir_that_diverged_keeps_the_cell_it_was_planned_for(tmp_path):
    """A diverged run's result counts the tokens trained before it stopped; the hyperparameter surfaces
    place its learning rate in the cell of its planned budget."""
    specs = [{"n_layer": 2, "tokens": 1e6, "lr": lr, "seed": 0} for lr in (1e-3, 2e-3, 4e-3)]
    specs.append({"n_layer": 2, "tokens": 1e6, "lr": 8e-3, "seed": 0, "status": "diverged"})
    runs = write_runs(tmp_path / "runs", TINY_LAW, specs)
    result = json.loads((runs[-1] / "result.json").read_text())
    (runs[-1] / "result.json").write_text(json.dumps({**result, "tokens": 1.2e5}))
    points = load_points(runs)
    assert len(points) == 3 and points.diverged.shape == (1, 4)
    assert points.diverged[0, 1:3].tolist() == [1e6, 8e-3]


def test_a_damaged_metrics_file_costs_that_run_its_curve_not_the_fit(tmp_path):
    runs = _sweep_runs(tmp_path / "sweep")
    with (runs[1] / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"train/tokens": 1e6, "val/loss": "abc"}) + "\n")
    with (runs[2] / "metrics.jsonl").open("ab") as f:
        f.write(b'{"train/tokens": 1e6, "val/loss": 3.1\xff}\n')
    points = load_points([tmp_path / "sweep"])
    assert len(points) == 6 and len(points.curves) == 4  # every final loss, four curves
    (note,) = [n for n in points.notes if "metrics.jsonl is damaged" in n]
    assert "2 run(s)" in note and "val/loss 'abc' is not a number" in note and "is not UTF-8" in note
    result = fit_runs([tmp_path / "sweep"], tmp_path / "fit", quick())
    assert any("metrics.jsonl is damaged" in w for w in result["warnings"])
    (runs[3] / "result.json").write_bytes(b'{"status": "done\xff"}')  # the run's result itself: refuse
    with pytest.raises(ScalingError, match="result.json: unreadable"):
        load_points([tmp_path / "sweep"])


# the report and the terminal


def test_knob_differences_share_one_sign_and_a_one_size_lr_sweep_reads_as_a_sentence(tmp_path):
    n, d, loss = ladder_grid(LAW, np.logspace(7, 9, 4), np.logspace(8.5, 10, 3), noise=0.002, seed=3)
    rows = len(n)
    # norm "rms" is better than "layer" in every cell; two learning rates at the smallest size only
    n, d = np.concatenate([n, n]), np.concatenate([d, d])
    loss = np.concatenate([loss + 0.02, loss])
    norm = ["layer"] * rows + ["rms"] * rows
    lr = [0.003] * (2 * rows)
    n, d, loss = np.append(n, n[0]), np.append(d, d[0]), np.append(loss, loss[rows] + 0.05)
    norm, lr = norm + ["rms"], lr + [0.01]
    csv = write_csv(tmp_path / "runs.csv", n, d, loss, lr=lr, norm=norm)
    result = fit_runs([csv], tmp_path / "fit", quick(plots=True))
    report = (tmp_path / "fit" / "report.md").read_text()
    assert "Differences are other level minus best level: positive = worse" in report
    (row,) = [line for line in report.splitlines() if line.startswith("| norm |")]
    assert "layer − rms: +0.02" in row
    (across,) = [line for line in report.splitlines() if line.startswith("norm across")]
    assert "layer − rms = +0.02" in across  # before: rms − layer = −0.02, the other sign
    (lr_line,) = [line for line in report.splitlines() if line.startswith("- **lr**")]
    assert lr_line == ("- **lr**: swept, but no cell has 3 or more values of it; no law, the large run keeps "
                       f"the base config's lr ({result['recommendation']['lr']:.3g}).")
    assert "- `lr_vs_loss.png` was not made: no learning-rate sweep" in report
    assert not (tmp_path / "fit" / "lr_vs_loss.png").exists()


def test_the_terminal_shows_warnings_first_and_the_report_the_same_train_command(ladder_csv, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _fit_cli(ladder_csv, "fit") == 0
    lines = capsys.readouterr().out.splitlines()
    first_other = next(i for i, line in enumerate(lines) if not line.startswith("warning: "))
    assert first_other > 0 and lines[first_other].startswith("model:")
    assert not any(line.startswith("warning: ") for line in lines[first_other:])
    (config,) = [line for line in lines if line.startswith("config: ")]
    assert config == "config: fit/large_run.yaml (train it: scaling train --config fit/large_run.yaml)"
    assert "`scaling train --config fit/large_run.yaml`" in (tmp_path / "fit" / "report.md").read_text()
    header = (tmp_path / "fit" / "large_run.yaml").read_text()
    assert "#   scaling train --config fit/large_run.yaml\n" in header


# plots


def _tick_labels_overlap(fig, axis) -> tuple[int, bool]:
    """How many tick labels ``axis`` shows once drawn, and whether any two overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    ticks = zip([*axis.get_majorticklocs(), *axis.get_minorticklocs()],
                [*axis.get_majorticklabels(), *axis.get_minorticklabels()], strict=True)
    boxes = sorted((label.get_window_extent(renderer) for at, label in ticks
                    if lo <= at <= hi and label.get_text()), key=lambda b: b.x0)
    return len(boxes), any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def test_residual_ticks_stay_readable_over_a_narrow_range_of_tokens_per_parameter(tmp_path):
    import matplotlib.pyplot as plt

    from scaling.fit.parametric import fit_parametric
    from scaling.fit.plots import residuals_figure

    n = np.repeat(np.logspace(7, 8.5, 6), 2)
    d = n * np.tile([0.18, 2.3], 6)  # 0.18 to 2.3 tokens per parameter: labels such as 2×10^-1 crowd
    tuned = load_points([write_csv(tmp_path / "r.csv", n, d, LAW.predict(n, d))])
    fig = residuals_figure(fit_parametric(tuned.params, tuned.tokens, tuned.loss), tuned)
    shown, overlap = _tick_labels_overlap(fig, fig.axes[0].xaxis)
    plt.close(fig)
    assert shown >= 2 and not overlap


def test_skipped_isoflop_budgets_are_grey_and_labelled_and_the_largest_run_line_is_named(tmp_path):
    import matplotlib.pyplot as plt

    from scaling.fit.parametric import CHINCHILLA
    from scaling.fit.plots import isoflop_figure, loss_vs_compute_figure
    from tests.helpers.synthetic import isoflop_grid

    law = ParametricFit.from_constants(**CHINCHILLA)
    n, d, loss, c = isoflop_grid(law, np.logspace(18, 20, 4), seed=4)
    big = c == c.max()  # every size of the largest budget below its optimum: the minimum is at the edge
    n[big] /= 30
    d[big], loss[big] = c[big] / (6 * n[big]), law.predict(n[big], c[big] / (6 * n[big]))
    csv = write_csv(tmp_path / "iso.csv", n, d, loss, flops=c)
    result = fit_runs([csv], tmp_path / "fit", quick(plots=True))
    (skipped,) = result["isoflop"]["skipped"]
    points = load_points([csv])
    fig = isoflop_figure(result, points)
    left = fig.axes[0]
    label = f"C={skipped['flops']:.2g} (skipped)"
    lines = {line.get_label(): line for line in left.get_lines()}
    assert label in [t.get_text() for t in left.get_legend().get_texts()]
    assert lines[label].get_color() == "0.7" and lines[label].get_linestyle() == "None"  # its runs, no curve
    # one curve per fitted budget: the skipped budget's runs get no interpolant through them
    curves = [line for line in left.get_lines() if line.get_linestyle() == "-"]
    assert len(curves) == len(result["isoflop"]["budgets"])
    plt.close(fig)
    fig = loss_vs_compute_figure(result, points)
    assert "largest run" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
