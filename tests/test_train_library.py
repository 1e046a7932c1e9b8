"""The README's library example: our LightningModule and DataModule inside the user's own Trainer."""

import math
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
# The python block of the README's "Using the trainer as a library" section, run as it is.
README_EXAMPLE = README.split("## Using the trainer as a library", 1)[1].split("```python", 1)[1].split("```", 1)[0]


def test_readme_library_example_trains_inside_a_users_own_trainer(tiny_corpus, capsys):
    namespace = {"data_dir": str(tiny_corpus)}
    exec(compile(README_EXAMPLE, "README example", "exec"), namespace)
    trainer, model = namespace["trainer"], namespace["model"]
    assert trainer.global_step == 60
    val = float(trainer.callback_metrics["val/loss"])
    assert val < math.log(512) - 0.8  # learned: chance is ln(vocab)
    assert model.last_lr == pytest.approx(model.cfg.optim.lr * model.cfg.schedule.final_lr_fraction)  # schedule ends at max_steps
    assert "bits/byte" in capsys.readouterr().out
    bpb = float(trainer.callback_metrics["val/bpb"])  # the data module's bytes per token reached the module
    assert 0 < bpb < val / math.log(2)  # BPE packs more than one byte into a token
