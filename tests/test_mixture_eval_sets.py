"""Named evaluation sets in training: a mixture run reports a loss per source by default, ``data.eval``
names its own sets, and the values reach metrics.jsonl, result.json and the fit's mixture loader."""

from __future__ import annotations

import json
import shutil

import pytest

from scaling.errors import ScalingError
from scaling.fit.mixture_data import named_losses
from scaling.training.run_files import read_metrics, val_rows


def test_a_mixture_run_evaluates_each_source_and_writes_it_everywhere(tiny_corpus, tiny_cfg, tmp_path):
    from scaling import train

    other = tmp_path / "second"
    shutil.copytree(tiny_corpus, other)
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(f"data.mixture=[{{path: {tiny_corpus}, weight: 3}}, {{path: {other}, weight: 1}}]",
                   "train.tokens=5120", run_dir=run_dir)
    result = train(cfg)
    last = val_rows(read_metrics(run_dir))[-1]
    first = tiny_corpus.name
    # the default set is the first source's fixed subset: the same windows, the same loss
    assert last[f"val/{first}/loss"] == pytest.approx(last["val/loss"], rel=1e-6)
    assert last["val/second/loss"] == pytest.approx(last["val/loss"], rel=1e-6)  # a copy of the same data
    assert last["val/second/bpb"] == pytest.approx(last["val/bpb"], rel=1e-6)
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["val/second/loss"] == pytest.approx(last["val/second/loss"])
    assert named_losses(saved, []) == {first: pytest.approx(last["val/loss"], rel=1e-6),
                                       "second": pytest.approx(last["val/loss"], rel=1e-6)}
    assert result.status == "done"


def test_data_eval_names_its_own_sets_with_their_own_size(tiny_corpus, tiny_cfg, tmp_path):
    from scaling import train

    run_dir = tmp_path / "run"
    cfg = tiny_cfg(f"data.eval=[{{name: small, path: {tiny_corpus}, tokens: 1024}}]", "train.tokens=5120",
                   run_dir=run_dir)
    train(cfg)
    last = val_rows(read_metrics(run_dir))[-1]
    assert set(k for k in last if k.startswith("val/")) == {
        "val/loss",
        "val/bpb",
        "val/small/loss",
        "val/small/bpb",
    }
    # a quarter of the default subset: a different sample of the same text, a different (nearby) loss
    assert last["val/small/loss"] != last["val/loss"]
    assert last["val/small/loss"] == pytest.approx(last["val/loss"], rel=0.2)


def test_evaluation_set_names_must_differ(tiny_cfg, tiny_corpus):
    with pytest.raises(ScalingError, match="data.eval"):
        tiny_cfg(f"data.eval=[{{name: a, path: {tiny_corpus}}}, {{name: a, path: {tiny_corpus}}}]")
