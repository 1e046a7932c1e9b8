"""W&B offline files written by `scaling train` and read back; DDP with two CPU processes (gloo)."""

import pytest

from scaling.training.run_files import read_metrics, read_result, train_rows
from tests.helpers.runs import run_cli, tiny_overrides
from tests.helpers.wandb_records import find_wandb_files, read_wandb_file


@pytest.mark.slow
def test_scaling_train_writes_an_offline_wandb_run_with_config_group_tags_and_history(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tiny_corpus, run_dir, "train.tokens=5120"), "logging.wandb=offline",
            "logging.group=lr-sweep", "logging.tags=[ladder,seed0]", "logging.job_type=train"]
    proc = run_cli("train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(run_dir)
    [path] = find_wandb_files(run_dir)
    run = read_wandb_file(path)
    assert run.run_id == result.run_id and run.display_name == result.run_id
    assert (run.project, run.group, run.job_type, run.tags) == (
        "scaling",
        "lr-sweep",
        "train",
        ["ladder", "seed0"],
    )
    assert run.config["config"]["model"]["d_model"] == 64 and run.config["config"]["train"]["tokens"] == 5120
    assert run.config["derived"]["batch_tokens"] == 512 and run.config["derived"]["params"] == result.params
    history = [h for h in run.history if "train/loss" in h]
    assert [h["trainer/global_step"] for h in history] == list(range(1, 11))
    on_disk = train_rows(read_metrics(run_dir))
    assert [h["train/loss"] for h in history] == pytest.approx([r["train/loss"] for r in on_disk])
    # every metric of metrics.jsonl (train/*, val/*, perf/*) is in W&B under the same name and value
    logged: dict[int, dict] = {}
    for h in run.history:
        logged.setdefault(h.get("trainer/global_step"), {}).update(h)
    names = set()
    for row in read_metrics(run_dir):
        for key, value in row.items():
            if key != "step" and value is not None:
                names.add(key)
                assert logged[row["step"]][key] == pytest.approx(value), (row["step"], key)
    assert {"val/loss", "val/bpb", "perf/tokens_per_sec", "train/lr", "train/grad_norm"} <= names
    assert run.summary["status"] == "done" and run.summary["final_val_loss"] == pytest.approx(
        result.final_val_loss
    )
    assert run.exit_code == 0


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process_with_the_same_global_batch(tiny_corpus, tmp_path):
    from scaling import load_config, train

    common = ["train.tokens=4096", "train.val_every_tokens=4096"]
    single = train(load_config([], tiny_overrides(tiny_corpus, tmp_path / "one", *common)))
    ddp_dir = tmp_path / "two"
    proc = run_cli("train", *tiny_overrides(tiny_corpus, ddp_dir, *common, "train.micro_batch_size=4",
                                            "train.devices=2", "train.strategy=ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = read_result(ddp_dir)
    assert ddp.status == "done" and ddp.batch_tokens == single.batch_tokens == 512 and ddp.steps == 8
    assert ddp.hardware.startswith("2x cpu")
    one, two = train_rows(read_metrics(tmp_path / "one")), train_rows(read_metrics(ddp_dir))
    # The sampler gives rank r the r-th half of the global batch: the same windows as one process.
    assert [r["train/loss"] for r in two] == pytest.approx([r["train/loss"] for r in one], rel=1e-4)
    assert ddp.final_val_loss == pytest.approx(single.final_val_loss, rel=1e-4)
