"""One tiny run end to end: it learns, and its run dir keeps the contract sweeps and fits rely on."""

import json
import math
import socket

import pytest
import torch
import yaml

from scaling.cli import main
from scaling.config_loading import load_config, run_id
from scaling.counting import count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.training.metrics import throughput
from scaling.training.run_files import read_metrics, train_rows, val_rows

RESULT_KEYS = {
    "status",
    "run_id",
    "params",
    "params_non_embedding",
    "tokens",
    "flops",
    "final_val_loss",
    "best_val_loss",
    "val_bpb",
    "final_train_loss",
    "tokens_per_sec",
    "mfu",
    "wall_time_s",
    "hardware",
    "seed",
    "git_sha",
    "steps",
    "lr",
    "batch_tokens",
    "seq_len",
    "model",
    "diverged_at_step",
    "last_good_loss",
    "parent",
    "error",
    "num_nodes",
    "world_size",
    "hosts",
}
TRAIN_KEYS = {"step", "train/loss", "train/lr", "train/tokens", "train/grad_norm", "perf/tokens_per_sec",
              "perf/mfu", "perf/step_time"}


@pytest.fixture(scope="module")
def learned(tiny_corpus, tmp_path_factory):
    """60 steps of 512 tokens, validation every 20 steps, cosine to 0.1 of the peak."""
    from scaling import train
    from tests.helpers.runs import tiny_overrides

    run_dir = tmp_path_factory.mktemp("learned") / "run"
    cfg = load_config(
        [], tiny_overrides(tiny_corpus, run_dir, "train.tokens=30720", "train.val_every_tokens=10240")
    )
    return cfg, train(cfg), run_dir


def test_a_tiny_model_learns_well_below_chance(learned):
    _, result, run_dir = learned
    vals = val_rows(read_metrics(run_dir))
    assert result.status == "done"
    assert [r["step"] for r in vals] == [20, 40, 60]
    assert result.final_val_loss < math.log(512) - 1.0  # chance is ln(vocab) = 6.24 nats
    assert vals[0]["val/loss"] > result.final_val_loss
    assert result.best_val_loss == min(r["val/loss"] for r in vals)


def test_metrics_have_one_row_per_step_with_the_contract_keys(learned):
    cfg, result, run_dir = learned
    rows = train_rows(read_metrics(run_dir))
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert all(set(r) == TRAIN_KEYS for r in rows)
    assert all(r["train/tokens"] == 512 * r["step"] for r in rows)
    assert rows[-1]["train/lr"] == pytest.approx(0.1 * cfg.optim.lr)  # cosine ends at the final fraction
    assert max(r["train/lr"] for r in rows) == pytest.approx(cfg.optim.lr)
    for r in rows:  # tokens/s is the batch over the step time; no known peak on a CPU
        assert r["perf/tokens_per_sec"] * r["perf/step_time"] == pytest.approx(512)
        assert r["perf/mfu"] is None and r["train/grad_norm"] > 0


def test_val_bpb_converts_nats_per_token_with_the_manifests_byte_count(learned, tiny_corpus):
    _, result, run_dir = learned
    val = json.loads((tiny_corpus / "manifest.json").read_text())["splits"]["val"]
    expected = result.final_val_loss * val["tokens"] / val["bytes"] / math.log(2)
    assert result.val_bpb == pytest.approx(expected)
    assert val_rows(read_metrics(run_dir))[-1]["val/bpb"] == pytest.approx(expected)


def test_result_json_holds_the_contract(learned):
    cfg, result, run_dir = learned
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert RESULT_KEYS <= set(on_disk)
    counts = count_params(cfg.model)
    assert on_disk["params"] == counts.total and on_disk["params_non_embedding"] == counts.non_embedding
    assert on_disk["tokens"] == 30720 and on_disk["steps"] == 60 and on_disk["batch_tokens"] == 512
    assert (on_disk["num_nodes"], on_disk["world_size"], on_disk["hosts"]) == (1, 1, [socket.gethostname()])
    assert on_disk["flops"] == pytest.approx(flops_per_token(cfg.model, 64) * 30720)
    assert on_disk["run_id"] == run_id(cfg) and on_disk["parent"] is None and on_disk["mfu"] is None
    assert on_disk["final_train_loss"] == train_rows(read_metrics(run_dir))[-1]["train/loss"]
    assert on_disk["tokens_per_sec"] > 0 and on_disk["hardware"].startswith("1x cpu")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_config_yaml_is_the_resolved_config_of_the_same_run(learned):
    cfg, _, run_dir = learned
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["train"]["tokens"] == 30720 and saved["model"]["d_model"] == 64
    assert run_id(load_config([run_dir / "config.yaml"])) == run_id(cfg)


def test_a_finished_run_is_returned_without_training_again(learned):
    from scaling import train

    cfg, result, run_dir = learned
    before = (run_dir / "metrics.jsonl").stat().st_mtime_ns
    cfg.run.resume = "auto"
    again = train(cfg)
    cfg.run.resume = "never"
    assert again.to_json() == result.to_json() | {"wall_time_s": again.wall_time_s}
    assert (run_dir / "metrics.jsonl").stat().st_mtime_ns == before
    with pytest.raises(ScalingError, match="already holds a finished run"):
        train(cfg)


def test_a_run_dir_holding_another_runs_config_is_refused(learned, tiny_cfg):
    from scaling import train

    _, _, run_dir = learned
    other = tiny_cfg("optim.lr=1e-3", "run.resume=auto", run_dir=run_dir)
    with pytest.raises(ScalingError, match=r"holds run \w{12} .* not this config's run \w{12}"):
        train(other)


def test_throughput_and_mfu_arithmetic_on_a_known_case():
    tps, util = throughput(batch_tokens=32 * 1024, steps=10, seconds=0.5, flops_per_tok=1e9,
                           device="NVIDIA H100 80GB HBM3", n_devices=2)
    assert tps == pytest.approx(655360.0)
    assert util == pytest.approx(655360.0 * 1e9 / (2 * 989e12))
    assert throughput(512, 3, 0.1, 1e6, None, 1) == (pytest.approx(15360.0), None)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_data_path_is_a_one_line_user_error(tiny_corpus, tmp_path, capsys):
    from tests.helpers.runs import tiny_overrides

    assert main(["train", *tiny_overrides(tmp_path / "nowhere", tmp_path / "r")]) == 2
    assert "scaling prepare" in one_line_error(capsys)


def test_unprepared_data_path_is_a_one_line_user_error(tiny_corpus, tmp_path, capsys):
    from tests.helpers.runs import tiny_overrides

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("text, not shards")
    assert main(["train", *tiny_overrides(tmp_path / "raw", tmp_path / "r")]) == 2
    assert "not a prepared dataset" in one_line_error(capsys)


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


@pytest.mark.parametrize(("override", "message"), [
    ("train.seq_len=128", "train.seq_len=128 is longer than model.max_seq_len=64"),
    ("train.strategy=fsdp", "train.strategy=fsdp needs GPUs"),
    pytest.param("train.accelerator=gpu", "train.accelerator=gpu but no CUDA GPU is visible", marks=NO_GPU),
    ("train.devices=[0,1]", "e.g. train.devices=0,1"),  # a list gets a hint to write it as a string
])
def test_bad_train_settings_are_one_line_user_errors_before_anything_is_written(
        tiny_corpus, tmp_path, capsys, override, message):
    from tests.helpers.runs import tiny_overrides

    assert main(["train", *tiny_overrides(tiny_corpus, tmp_path / "r", override)]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_online_wandb_without_a_login_is_a_one_line_user_error(tiny_corpus, tmp_path, capsys, monkeypatch):
    from tests.helpers.runs import tiny_overrides

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # an offline run first, in the same process: W&B keeps its mode, and its login then checks nothing
    offline = tiny_overrides(tiny_corpus, tmp_path / "offline", "logging.wandb=offline", "train.tokens=1024")
    assert main(["train", "--progress-every", "0", *offline]) == 0
    capsys.readouterr()
    assert main(["train", *tiny_overrides(tiny_corpus, tmp_path / "r", "logging.wandb=online")]) == 2
    assert "logging.wandb=online but W&B is not logged in" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()
