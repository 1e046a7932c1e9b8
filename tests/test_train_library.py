"""The README's library example: our LightningModule and DataModule inside the user's own Trainer."""

import math
from pathlib import Path

import pytest

from scaling.training.run_files import read_metrics, train_rows

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
# The python block of the README's "Using the trainer as a library" section, run as it is.
README_EXAMPLE = README.split("## Using the trainer as a library", 1)[1].split("```python", 1)[1]
README_EXAMPLE = README_EXAMPLE.split("```", 1)[0]


def test_readme_library_example_trains_inside_a_users_own_trainer(tiny_corpus, tmp_path, capsys):
    example = README_EXAMPLE.replace('"data/mine"', repr(str(tiny_corpus)), 1)
    example = example.replace('"runs/library-demo"', repr(str(tmp_path / "run")), 1)
    assert example.count(str(tiny_corpus)) == 1 and example.count(str(tmp_path)) == 1  # both folders replaced
    namespace: dict = {}
    exec(compile(example, "README example", "exec"), namespace)
    trainer, model = namespace["trainer"], namespace["model"]
    assert trainer.global_step == 60
    rows = read_metrics(tmp_path / "run")  # the callbacks as shown wrote the run's files
    assert [r["step"] for r in train_rows(rows)] == [10, 20, 30, 40, 50, 60]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    val = float(trainer.callback_metrics["val/loss"])
    assert val < math.log(512) - 0.8  # learned: chance is ln(vocab)
    # the schedule ends at max_steps
    assert model.last_lr == pytest.approx(model.cfg.optim.lr * model.cfg.schedule.final_lr_fraction)
    assert "bits/byte" in capsys.readouterr().out
    bpb = float(trainer.callback_metrics["val/bpb"])  # the data module's bytes per token reached the module
    assert 0 < bpb < val / math.log(2)  # BPE packs more than one byte into a token


def _library_trainer(max_steps: int, callbacks=(), accumulate_grad_batches: int = 1):
    import lightning as L

    return L.Trainer(max_steps=max_steps, max_epochs=-1, accelerator="cpu", logger=False,
                     accumulate_grad_batches=accumulate_grad_batches,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, callbacks=list(callbacks))


def test_the_schedule_spans_max_steps_when_given_else_train_tokens_over_the_batch(tiny_cfg):
    from scaling import LanguageModel

    model = LanguageModel(tiny_cfg("train.tokens=10240"))
    model.trainer = _library_trainer(max_steps=-1, accumulate_grad_batches=2)  # 8 × 64 × 2 = 1024 a step
    assert model.total_steps() == 10
    model.trainer = _library_trainer(max_steps=7)
    assert model.total_steps() == 7


def test_resuming_with_another_schedule_length_is_refused(tiny_cfg, tmp_path):
    from scaling import LanguageModel, ScalingError, TokenCheckpoints, TokenDataModule

    cfg = tiny_cfg()
    _library_trainer(4, [TokenCheckpoints(tmp_path, every_tokens=2048)]).fit(
        LanguageModel(cfg), datamodule=TokenDataModule.from_config(cfg))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ScalingError, match="LR schedule spans 4 steps but this run's spans 6"):
        _library_trainer(6).fit(LanguageModel(cfg), datamodule=TokenDataModule.from_config(cfg),
                                ckpt_path=ckpt, weights_only=True)
    resumed = _library_trainer(4)  # the same length resumes
    resumed.fit(LanguageModel(cfg), datamodule=TokenDataModule.from_config(cfg), ckpt_path=ckpt,
                weights_only=True)
    assert resumed.global_step == 4
