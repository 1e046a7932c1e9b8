"""Downstream tasks scored during training: `eval.tasks` in a run config reaches metrics.jsonl and
result.json."""

from __future__ import annotations

import json

from scaling.config_loading import run_id
from scaling.training.train import train


def test_eval_tasks_in_the_config_are_scored_during_training_without_changing_the_run_id(tiny_cfg, tmp_path):
    cfg = tiny_cfg("eval.tasks=[stdlib-nextline]", "eval.every_tokens=5120", "eval.limit=12")
    assert run_id(cfg) == run_id(tiny_cfg())  # scoring a run does not change what it trains
    result = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "eval/stdlib-nextline/acc" in r]
    assert [r["train/tokens"] for r in scored] == [5120, 10240]
    assert all(
        0.0 <= r["eval/stdlib-nextline/acc"] <= 1.0 and r["eval/stdlib-nextline/bpb"] > 0 for r in scored
    )
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["eval/stdlib-nextline/acc"] == scored[-1]["eval/stdlib-nextline/acc"]
    assert result.extra["eval/stdlib-nextline/bpb"] == scored[-1]["eval/stdlib-nextline/bpb"]
