"""``scaling eval --harness``: lm-evaluation-harness tasks from a local task YAML + JSONL, offline."""

from __future__ import annotations

import json
import math

import pytest

from scaling.errors import ScalingError
from tests.helpers.runs import run_cli

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (the 'eval' extra)")
pytest.importorskip("transformers", reason="the harness scores the exported transformers model")

# contexts end without whitespace (the harness would move it into every choice) and choices start with a
# newline, so tokenizing context + choice together (the harness) gives the tokens of each apart (our scorer)
LINES = [("def add(a, b):", ["\nreturn a + b", "\nb return + a", "\npass"]),
         ("for item in items:", ["\nprint(item)", "\nitem(print)", "\nbreak"]),
         ("import os", ["\npath = os.getcwd()", "\nos = getcwd.path()", "\nx"]),
         ("class A:", ["\npass", "\ndef __init__(self):", "\nA"])]


def _task(folder, name: str):
    """A harness task YAML ``name`` reading items.jsonl beside it (by absolute path); returns the JSONL."""
    folder.mkdir(exist_ok=True)
    data = folder / "items.jsonl"
    items = [{"context": c, "choices": ch, "label": i % len(ch)} for i, (c, ch) in enumerate(LINES * 3)]
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n"
        f"  data_files:\n    test: {data}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: label\ntarget_delimiter: ''\nmetric_list:\n"
        "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return data


@pytest.fixture
def trained_run(tiny_cfg, tmp_path):
    from scaling.training.train import train

    train(tiny_cfg("train.tokens=4096", run_dir=tmp_path / "run"))
    return tmp_path / "run"


def test_the_harness_scores_a_local_task_with_our_models_log_likelihoods(trained_run, tmp_path):
    import torch
    import torch.nn.functional as F

    from scaling.evaluation.harness import harness_metric_row, run_harness
    from scaling.evaluation.tasks import load_task
    from scaling.trained import load_trained

    _task(tmp_path / "tasks", "tiny_mc")
    out = run_harness(trained_run, ["tiny_mc"], include_path=[tmp_path / "tasks"], log_samples=True)
    trained = load_trained(trained_run)
    task = load_task(tmp_path / "tasks" / "items.jsonl")
    samples = sorted(out["samples"]["tiny_mc"], key=lambda s: s["doc_id"])
    assert len(samples) == len(task.items) == 12
    correct = 0
    for sample, item in zip(samples, task.items, strict=True):
        ours = []
        for choice in item.choices:
            ctx = [trained.eos_id] + trained.tokenizer.encode(item.context).ids
            cont = trained.tokenizer.encode(choice).ids
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = F.log_softmax(trained.model(ids[:, :-1])[0].float(), -1)[0]
            ours.append(float(logp[len(ctx) - 1:].gather(-1, ids[0, len(ctx):, None]).sum()))
        theirs = [float(r[0]) for r in sample["filtered_resps"]]
        assert theirs == pytest.approx(ours, abs=1e-3)
        correct += int(max(range(len(ours)), key=ours.__getitem__) == item.label)
    row = harness_metric_row(out)
    assert row["eval/tiny_mc/acc"] == pytest.approx(correct / 12)
    assert set(row) == {"eval/tiny_mc/acc", "eval/tiny_mc/acc_norm"}
    with pytest.raises(ScalingError, match="knows no task 'nope'; write a task YAML"):
        run_harness(trained_run, ["nope"], include_path=[tmp_path / "tasks"])


@pytest.mark.slow
def test_scaling_eval_harness_gives_the_same_accuracy_as_our_scorer_on_the_same_file(trained_run, tmp_path):
    data = _task(tmp_path / "tasks", "tiny_mc_harness")
    proc = run_cli("eval", str(trained_run), "--tasks", str(data), "--harness", "tiny_mc_harness",
                   "--include-path", str(tmp_path / "tasks"), "--json", str(tmp_path / "s.json"), timeout=900,
                   env={"HF_HOME": str(tmp_path / "hf-home")})  # an empty cache: nothing can come from it
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "harness:tiny_mc_harness" in proc.stdout
    scores = json.loads((tmp_path / "s.json").read_text())[str(trained_run)]
    assert math.isfinite(scores["eval/items/bpb"])  # our scorer's row (the file's stem) ...
    for metric in ("acc", "acc_norm"):  # ... and the harness's agree on the same items
        assert scores[f"eval/tiny_mc_harness/{metric}"] == pytest.approx(scores[f"eval/items/{metric}"])


def test_harness_arguments_are_checked_before_any_work(tmp_path, capsys):
    from scaling.cli.main import main

    assert main(["eval", str(tmp_path), "--include-path", str(tmp_path)]) == 2
    assert "nothing to score" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--tasks", "stdlib-nextline", "--include-path", str(tmp_path)]) == 2
    assert "--include-path is for --harness tasks" in capsys.readouterr().err
