"""Sharded checkpoints (``train.strategy=fsdp``) and DeepSpeed (``deepspeed_stage_2|3``).

A sharded checkpoint is a folder: ``last.ckpt``, ``previous.ckpt`` and ``tokens-<N>.ckpt`` are kept,
replaced, copied, found, recovered from and removed as folders, with their plain values (step, tokens,
schedule, RNG and data-stream states) readable from ``scaling-meta.pt`` without the model. On CPU this
is checked with a Lightning strategy that writes folders; FSDP and DeepSpeed themselves need CUDA and
run in the tests marked ``gpu`` at the end (skipped without one).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from scaling.errors import ScalingError
from scaling.training.run_files import (
    CHECKPOINT_META,
    last_checkpoint,
    read_metrics,
    token_checkpoints,
    train_rows,
)
from tests.test_train_run_dir import one_line_error


class FolderStrategy(SingleDeviceStrategy):
    """One CPU device whose checkpoints are folders (tensors in one file, the rest in another), as a
    sharded strategy writes them."""

    def save_checkpoint(self, checkpoint, filepath, storage_options=None) -> None:
        path = Path(filepath)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {key: checkpoint.pop(key) for key in ("state_dict", "optimizer_states")}
        torch.save(tensors, path / "shard-0.pt")
        torch.save(checkpoint, path / "rest.pt")

    def load_checkpoint(self, checkpoint_path, weights_only=None) -> dict:
        path = Path(checkpoint_path)
        return {
            **torch.load(path / "rest.pt", weights_only=True),
            **torch.load(path / "shard-0.pt", weights_only=True),
        }


def _fit(cfg, run_dir: Path, ckpt_path: Path | None = None):
    """4 steps of 512 tokens on a folder-writing strategy, a checkpoint every 2 steps and at 1024 tokens."""
    import lightning as L

    from scaling import LanguageModel, TokenCheckpoints, TokenDataModule

    trainer = L.Trainer(
        max_steps=4,
        max_epochs=-1,
        accelerator="cpu",
        strategy=FolderStrategy(torch.device("cpu")),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[TokenCheckpoints(run_dir, every_tokens=1024, at_tokens=[1024])],
    )
    model = LanguageModel(cfg)
    trainer.fit(model, datamodule=TokenDataModule.from_config(cfg), ckpt_path=ckpt_path, weights_only=True)
    return model


def _fake_sharded(path: Path, step: int, strategy: str = "fsdp") -> Path:
    """A sharded checkpoint folder as the trainer leaves it: a shard and ``scaling-meta.pt``."""
    path.mkdir(parents=True)
    torch.save({"model.w": torch.zeros(2)}, path / "__0_0.distcp")
    torch.save({"global_step": step, "scaling": {"step": step, "strategy": strategy}}, path / CHECKPOINT_META)
    return path


def test_folder_checkpoints_rotate_keep_branch_points_and_carry_their_plain_values(tiny_cfg, tmp_path):
    from scaling.training.checkpointing import branch_checkpoint, load_checkpoint

    _fit(tiny_cfg(), tmp_path)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "previous.ckpt", "tokens-1024.ckpt"]
    assert all(p.is_dir() for p in folder.iterdir())  # no temp folder left behind
    last, previous, kept = (load_checkpoint(folder / name) for name in ("last.ckpt", "previous.ckpt",
                                                                         "tokens-1024.ckpt"))
    assert (last["global_step"], previous["global_step"], kept["global_step"]) == (4, 2, 2)
    assert "state_dict" not in last and "optimizer_states" not in last  # the tensors stay in the shards
    # the callback's values and the LightningModule's (added after the callback's hook) are both there
    assert last["scaling"]["tokens"] == 2048 and last["scaling"]["schedule_steps"] == 4
    assert last["scaling"]["strategy"] == "auto" and len(last["rng_states"]) == 1
    assert any("TokenDataModule" in key for key in last)  # the data stream's position
    assert last_checkpoint(tmp_path) == folder / "last.ckpt"
    assert token_checkpoints(tmp_path) == {1024: folder / "tokens-1024.ckpt"}
    assert branch_checkpoint(tmp_path, 1024) == folder / "tokens-1024.ckpt"
    assert (folder / "tokens-1024.ckpt" / "shard-0.pt").read_bytes() == \
        (folder / "previous.ckpt" / "shard-0.pt").read_bytes()  # a copy of the checkpoint of step 2


def test_a_folder_checkpoint_resumes_to_the_weights_of_the_uninterrupted_run(tiny_cfg, tmp_path):
    straight = _fit(tiny_cfg(), tmp_path / "straight")
    resumed = _fit(
        tiny_cfg(), tmp_path / "resumed", ckpt_path=tmp_path / "straight/checkpoints/previous.ckpt"
    )
    assert resumed.global_step == 4
    # it trained steps 3 and 4 only: one save at step 4, none at the branch point of step 2
    assert [p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()] == ["last.ckpt"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)


def test_a_damaged_last_folder_resumes_from_the_previous_one_and_two_say_how_to_restart(tmp_path, capsys):
    from scaling.training.checkpointing import resume_checkpoint

    folder = tmp_path / "checkpoints"
    _fake_sharded(folder / "previous.ckpt", step=3)
    _fake_sharded(folder / "last.ckpt", step=6)
    path, meta = resume_checkpoint(tmp_path)
    assert path == folder / "last.ckpt" and meta["global_step"] == 6

    (folder / "last.ckpt" / CHECKPOINT_META).unlink()  # shards written, the save cut short before the rest
    path, meta = resume_checkpoint(tmp_path)
    assert path == folder / "previous.ckpt" and meta["global_step"] == 3
    err = capsys.readouterr().err
    assert "last.ckpt is damaged" in err and "previous.ckpt (step 3)" in err

    (folder / "previous.ckpt" / CHECKPOINT_META).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ScalingError, match="nothing to resume from: run again with --overwrite"):
        resume_checkpoint(tmp_path)


def test_folders_replace_and_copy_over_folders_and_files(tmp_path):
    from scaling.training.checkpointing import copy_checkpoint, load_checkpoint, replace_checkpoint

    new, old = (
        _fake_sharded(tmp_path / ".last.ckpt.tmp", step=8),
        _fake_sharded(tmp_path / "last.ckpt", step=4),
    )
    (old / "__1_0.distcp").write_bytes(b"a shard of a larger world")
    replace_checkpoint(new, old)
    assert not new.exists() and sorted(p.name for p in old.iterdir()) == ["__0_0.distcp", CHECKPOINT_META]
    assert load_checkpoint(old)["global_step"] == 8

    single = tmp_path / "tokens-5.ckpt"
    single.write_bytes(b"a file checkpoint of an earlier strategy")
    copy_checkpoint(old, tmp_path / ".copy.tmp")
    replace_checkpoint(tmp_path / ".copy.tmp", single)
    assert single.is_dir() and load_checkpoint(single)["global_step"] == 8

    stale = _fake_sharded(tmp_path / ".again.tmp", step=1)  # a copy cut short by a kill
    copy_checkpoint(old, stale)
    assert load_checkpoint(stale)["global_step"] == 8


def test_overwrite_removes_sharded_folders_and_keeps_other_files(tmp_path):
    from scaling.training.run_dir import remove_trainer_files

    folder = tmp_path / "checkpoints"
    for name in ("last.ckpt", "previous.ckpt", "tokens-100.ckpt", ".last.ckpt.tmp"):
        _fake_sharded(folder / name, step=1)
    (folder / "notes").mkdir()
    remove_trainer_files(tmp_path)
    assert [p.name for p in folder.iterdir()] == ["notes"]


def test_a_sharded_checkpoint_loads_only_under_the_strategy_that_wrote_it(tmp_path):
    from scaling.training.checkpointing import check_strategy_reads, load_checkpoint

    sharded = _fake_sharded(tmp_path / "last.ckpt", step=2, strategy="fsdp")
    check_strategy_reads(sharded, load_checkpoint(sharded), "fsdp")
    with pytest.raises(
        ScalingError, match="sharded by train.strategy=fsdp; load it with train.strategy=fsdp, not ddp"
    ):
        check_strategy_reads(sharded, load_checkpoint(sharded), "ddp")
    single = tmp_path / "one.ckpt"
    torch.save({"global_step": 2, "scaling": {"strategy": "ddp"}}, single)
    check_strategy_reads(single, load_checkpoint(single), "fsdp")  # FSDP reads a full checkpoint
    with pytest.raises(ScalingError, match="train.strategy=deepspeed_stage_2 loads only its own"):
        check_strategy_reads(single, load_checkpoint(single), "deepspeed_stage_2")


def test_resuming_a_sharded_checkpoint_with_another_strategy_is_a_one_line_error(
    tiny_corpus, tmp_path, capsys
):
    from scaling.cli import main
    from tests.helpers.runs import tiny_overrides

    args = tiny_overrides(
        tiny_corpus, tmp_path / "run", "train.tokens=2048", "train.checkpoint_every_tokens=1024"
    )
    assert main(["train", *args]) == 0
    (tmp_path / "run" / "result.json").unlink()  # as if stopped after its last checkpoint
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.unlink()
    _fake_sharded(last, step=4, strategy="fsdp")
    assert main(["train", *args, "run.resume=auto"]) == 2
    assert "sharded by train.strategy=fsdp" in one_line_error(capsys)
    assert last.is_dir() and (last / CHECKPOINT_META).is_file()  # left as it was


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_stage_2", "deepspeed_stage_3"])
def test_sharded_strategies_on_cpus_are_refused_before_anything_is_written(
    tiny_corpus, tmp_path, capsys, strategy
):
    from scaling.cli import main
    from tests.helpers.runs import tiny_overrides

    run_dir = tmp_path / "run"
    assert main(["train", *tiny_overrides(tiny_corpus, run_dir, f"train.strategy={strategy}")]) == 2
    assert f"train.strategy={strategy} needs GPUs" in one_line_error(capsys)
    assert not run_dir.exists()


def test_deepspeed_without_the_package_is_a_one_line_error(monkeypatch):
    from scaling.training import lightning_setup
    from scaling.training.lightning_setup import check_strategy

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(lightning_setup.importlib.util, "find_spec",
                        lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    for stage in (2, 3):
        with pytest.raises(ScalingError, match=rf"train.strategy=deepspeed_stage_{stage} needs the deepspeed "
                                               r"package.*pip install 'scaling\[deepspeed\]'") as error:
            check_strategy(f"deepspeed_stage_{stage}", "gpu")
        assert "\n" not in str(error.value)
    check_strategy("fsdp", "gpu")  # FSDP comes with torch
    check_strategy("ddp", "cpu")


def test_strategy_arguments_shard_each_block_with_sharded_checkpoints_and_pick_the_zero_stage():
    from lightning.pytorch.strategies import FSDPStrategy

    from scaling.model import Block
    from scaling.training.lightning_setup import build_strategy, strategy_arguments

    assert strategy_arguments("fsdp") == {"auto_wrap_policy": {Block}, "state_dict_type": "sharded"}
    assert isinstance(build_strategy("fsdp", "gpu"), FSDPStrategy)
    assert strategy_arguments("deepspeed_stage_2") == {"stage": 2}
    assert strategy_arguments("deepspeed_stage_3") == {"stage": 3}
    assert build_strategy("ddp", "cpu") == "ddp" and build_strategy("auto", "gpu") == "auto"


# --- on a CUDA GPU --------------------------------------------------------------------------------------

needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="needs deepspeed (pip install 'scaling[deepspeed]')")
# fp32 and eager, so a resumed run can be compared with an uninterrupted one step by step
_EXACT = ("train.accelerator=gpu", "train.devices=1", "train.precision=32-true", "train.compile=false",
          "optim.fused=false", "train.tokens=6144", "train.checkpoint_every_tokens=3072", "run.resume=auto")


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in train_rows(read_metrics(run_dir))}


def _straight_then_resumed(tiny_cfg, tmp_path, strategy: str):
    """An uninterrupted run, and one resumed from its checkpoint at the half (a copy of the straight run's
    folder cut back to that checkpoint)."""
    import shutil

    from scaling import train
    from scaling.training.checkpointing import load_checkpoint

    extra = (*_EXACT, f"train.strategy={strategy}")
    straight = train(tiny_cfg(*extra, run_dir=tmp_path / "straight"))
    assert straight.status == "done" and straight.steps == 12
    folder = tmp_path / "straight" / "checkpoints"
    assert (folder / "last.ckpt").is_dir() and (folder / "previous.ckpt").is_dir()
    meta = load_checkpoint(folder / "last.ckpt")  # read without gathering the model
    assert meta["global_step"] == 12 and "state_dict" not in meta and meta["scaling"]["strategy"] == strategy

    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "result.json").unlink()
    shutil.rmtree(resumed_dir / "checkpoints" / "last.ckpt")  # resume from previous.ckpt (step 6)
    resumed = train(tiny_cfg(*extra, run_dir=resumed_dir))
    assert resumed.status == "done" and resumed.steps == 12
    return straight, resumed


@pytest.mark.parametrize("strategy", [
    pytest.param("fsdp", marks=needs_gpu),
    pytest.param("deepspeed_stage_2", marks=[*needs_gpu, needs_deepspeed]),
    pytest.param("deepspeed_stage_3", marks=[*needs_gpu, needs_deepspeed]),
])
def test_a_sharded_run_resumes_from_its_folder_checkpoint_exactly(tiny_cfg, tmp_path, strategy):
    straight, resumed = _straight_then_resumed(tiny_cfg, tmp_path, strategy)
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert sorted(b) == list(range(1, 13))
    for step in range(7, 13):
        assert b[step] == pytest.approx(a[step], abs=1e-4), step
    assert resumed.final_val_loss == pytest.approx(straight.final_val_loss, abs=1e-4)
    assert straight.final_val_loss < math.log(512)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cooldown_branches_from_a_sharded_trunk_under_fsdp_only(tiny_cfg, tmp_path):
    from scaling import train

    trunk = train(tiny_cfg(*_EXACT, "train.strategy=fsdp", "schedule.kind=wsd",
                           "train.checkpoint_at_tokens=[3072]", run_dir=tmp_path / "trunk"))
    assert trunk.status == "done" and (tmp_path / "trunk/checkpoints/tokens-3072.ckpt").is_dir()
    branch = ("run.branch_from=" + str(tmp_path / "trunk"), "run.branch_at_tokens=3072", "train.tokens=4608")
    done = train(tiny_cfg(*_EXACT[:-3], "train.strategy=fsdp", "schedule.kind=wsd", *branch,
                          run_dir=tmp_path / "branch"))
    assert done.status == "done" and done.steps == 9 and sorted(_losses(tmp_path / "branch")) == [7, 8, 9]
    with pytest.raises(ScalingError, match="sharded by train.strategy=fsdp"):
        train(tiny_cfg(*_EXACT[:-3], "train.strategy=ddp", "schedule.kind=wsd", *branch,
                       run_dir=tmp_path / "ddp-branch"))
