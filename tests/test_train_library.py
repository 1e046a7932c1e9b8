"""The README's library example: our LightningModule and DataModule inside the user's own Trainer."""

import math

import pytest

README_EXAMPLE = '''
import lightning as L
from scaling import LanguageModel, TokenDataModule, load_config

cfg = load_config(overrides=["model=s100k", "model.vocab_size=512", "train.seq_len=64",
                             "train.micro_batch_size=8", "data.val_tokens=4096", f"data.path={data_dir}"])
model = LanguageModel(cfg)                   # AdamW groups, LR schedule, grad clipping, val loss
data = TokenDataModule.from_config(cfg)      # resumable training stream + fixed val subset
trainer = L.Trainer(max_steps=60, accelerator="cpu", val_check_interval=30, check_val_every_n_epoch=None,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(model, datamodule=data)
print(f"val loss {trainer.callback_metrics['val/loss']:.3f}, {trainer.callback_metrics['val/bpb']:.3f} bits/byte")
'''


def test_readme_library_example_trains_inside_a_users_own_trainer(tiny_corpus, capsys):
    namespace = {"data_dir": str(tiny_corpus)}
    exec(compile(README_EXAMPLE, "README example", "exec"), namespace)
    trainer, model = namespace["trainer"], namespace["model"]
    assert trainer.global_step == 60
    val = float(trainer.callback_metrics["val/loss"])
    assert val < math.log(512) - 0.8  # learned: chance is ln(vocab)
    assert model.last_lr == pytest.approx(model.cfg.optim.lr * model.cfg.schedule.final_lr_fraction)  # schedule ends at max_steps
    assert "bits/byte" in capsys.readouterr().out
