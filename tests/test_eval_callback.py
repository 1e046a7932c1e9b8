"""The training callback scores downstream tasks at token intervals and at the end of a Lightning fit."""

from __future__ import annotations

import pytest

from scaling.training.run_files import read_metrics


def test_downstream_eval_logs_task_metrics_every_interval_and_at_the_end(tiny_cfg, tiny_corpus, tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from data_pipelines import PreparedDataset
    from scaling import LanguageModel, TokenDataModule
    from scaling.evaluation import load_task, score_task
    from scaling.training.eval_callback import DownstreamEval

    cfg = tiny_cfg()
    dataset = PreparedDataset.open(tiny_corpus)
    task = load_task("stdlib-nextline", limit=24)
    callback = DownstreamEval([task], every_tokens=2048, tokenizer=dataset.tokenizer(), eos_id=dataset.eos_id,
                              run_dir=tmp_path / "run")
    model = LanguageModel(cfg)
    logger = CSVLogger(tmp_path / "csv", name="", version="")
    trainer = L.Trainer(max_steps=10, accelerator="cpu", logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, callbacks=[callback])
    trainer.fit(model, datamodule=TokenDataModule.from_config(cfg))

    rows = [r for r in read_metrics(tmp_path / "run") if "eval/stdlib-nextline/acc" in r]
    # 512 tokens per step: 2048-token intervals end at steps 4 and 8, and the run ends at step 10
    assert [r["step"] for r in rows] == [4, 8, 10]
    assert [r["train/tokens"] for r in rows] == [2048, 4096, 5120]
    assert set(rows[-1]) == {
        "step",
        "train/tokens",
        "eval/stdlib-nextline/acc",
        "eval/stdlib-nextline/acc_norm",
        "eval/stdlib-nextline/bpb",
    }
    expected = score_task(model.model, dataset.tokenizer(), task, dataset.eos_id)
    assert rows[-1]["eval/stdlib-nextline/bpb"] == pytest.approx(expected["bpb"], rel=1e-6)
    assert rows[-1]["eval/stdlib-nextline/acc"] == pytest.approx(expected["acc"])
    assert callback.final == {k: v for k, v in rows[-1].items() if k.startswith("eval/")}
    assert model.model.training  # restored to training mode after each scoring
    logged = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "eval/stdlib-nextline/bpb" in logged


def test_the_callback_is_built_from_an_eval_group_and_absent_without_tasks(tiny_cfg, tiny_corpus):
    from omegaconf import OmegaConf

    from data_pipelines import PreparedDataset
    from scaling import TokenDataModule
    from scaling.training.eval_callback import DownstreamEval

    data = TokenDataModule.from_config(tiny_cfg())
    off = OmegaConf.create({"eval": {"tasks": [], "every_tokens": 1e6, "limit": None}})
    assert DownstreamEval.from_config(off, data, None) is None
    on = OmegaConf.create({"eval": {"tasks": ["stdlib-nextline"], "every_tokens": 4096, "limit": 5}})
    callback = DownstreamEval.from_config(on, data, "run")
    assert [t.name for t in callback.tasks] == ["stdlib-nextline"] and len(callback.tasks[0].items) == 5
    assert callback.every_tokens == 4096 and callback.eos_id == PreparedDataset.open(tiny_corpus).eos_id
