"""Downstream evaluation: task files, log-likelihood scoring, the shipped task and ``scaling eval``."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from scaling.errors import DataError
from scaling.evaluation import SHIPPED_TASKS, Item, Task, load_task, score_task
from scaling.evaluation.stdlib_task import build_items
from tests.helpers.runs import run_cli


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" if not isinstance(x, str) else x + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"bad\.jsonl:2: not JSON"),
        (
            {"context": "a", "choices": ["x"], "label": 0},
            r"bad\.jsonl:2: 'choices' must be a list of at least two",
        ),
        ({"context": "a", "choices": ["x", "y"], "label": 2}, r"bad\.jsonl:2: 'label' must be an index"),
        ({"choices": ["x", "y"], "label": 0}, r"bad\.jsonl:2: 'context' must be a string"),
    ],
)
def test_a_malformed_task_line_is_a_one_line_error_naming_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", [{"context": "a", "choices": ["x", "y"], "label": 1}, line])
    with pytest.raises(DataError, match=message):
        load_task(path)


def test_a_task_is_named_by_its_file_stem_or_shipped_name(tmp_path):
    path = _write(tmp_path / "hellaswag.jsonl", [{"context": "a", "choices": ["x", "y"], "label": 1}] * 3)
    assert load_task(path).name == "hellaswag" and len(load_task(path, limit=2).items) == 2
    assert load_task("stdlib-nextline").name == "stdlib-nextline"
    with pytest.raises(DataError, match="stdlib-nextline"):
        load_task(tmp_path / "missing.jsonl")


class _Bigram(torch.nn.Module):
    """A fixed next-token table: logits depend only on the previous token (exact reference values)."""

    def __init__(self, vocab: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g))
        self.cfg = type("Cfg", (), {"max_seq_len": 64})()

    def forward(self, idx):
        return self.table[idx], None


def _reference_logprob(model, tok, eos, context, choice):
    ids = [eos] + tok.encode(context).ids
    cont = tok.encode(choice).ids
    logp = F.log_softmax(model.table, dim=-1)
    seq = ids + cont
    return sum(float(logp[seq[i - 1], seq[i]]) for i in range(len(ids), len(seq)))


def test_scores_are_the_choices_log_likelihoods(tiny_corpus):
    from data_pipelines.tokenizer import eos_id, load_tokenizer

    tok = load_tokenizer(tiny_corpus / "tokenizer.json")
    eos = eos_id(tok)[1]
    model = _Bigram(tok.get_vocab_size()).eval()
    context, choices = (
        "def add(a, b):\n",
        ["    return a + b\n", "    x = 1\n", "    pass  # a much longer line\n"],
    )
    lps = [_reference_logprob(model, tok, eos, context, c) for c in choices]
    best = max(range(3), key=lambda i: lps[i])
    best_norm = max(range(3), key=lambda i: lps[i] / len(choices[i].encode()))
    items = tuple(Item(context, tuple(choices), label) for label in range(3))
    scores = score_task(model, tok, Task("t", items, tiny_corpus), eos)
    assert scores["acc"] == pytest.approx(1 / 3) and scores["acc_norm"] == pytest.approx(1 / 3)
    right = score_task(model, tok, Task("t", (Item(context, tuple(choices), best),), tiny_corpus), eos)
    assert right["acc"] == 1.0
    assert right["bpb"] == pytest.approx(-lps[best] / math.log(2) / len(choices[best].encode()), rel=1e-5)
    right_norm = score_task(
        model, tok, Task("t", (Item(context, tuple(choices), best_norm),), tiny_corpus), eos
    )
    assert right_norm["acc_norm"] == 1.0
    expected_bpb = -sum(lps) / math.log(2) / sum(len(c.encode()) for c in choices)
    assert scores["bpb"] == pytest.approx(expected_bpb, rel=1e-5)


def test_the_shipped_task_offers_reorderings_of_the_right_line_at_balanced_positions():
    task = load_task("stdlib-nextline")
    assert len(task.items) == 300 and set(SHIPPED_TASKS) == {"stdlib-nextline"}
    counts = [0] * 4
    for item in task.items:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4
        right = item.choices[item.label]
        indent = len(right) - len(right.lstrip(" "))
        for choice in item.choices:  # same bytes, same words, same indentation: only the order differs
            assert (
                sorted(choice.strip().split(" ")) == sorted(right.strip().split(" ")) and choice[-1] == "\n"
            )
            assert len(choice) - len(choice.lstrip(" ")) == indent
        counts[item.label] += 1
    assert all(45 <= c <= 105 for c in counts), counts


def test_the_task_builder_is_deterministic_and_takes_the_real_next_line():
    from data_pipelines import stdlib_sources

    files = stdlib_sources(max_files=40)
    items = build_items(files, 30, seed=3)
    assert items == build_items(files, 30, seed=3)
    assert items != build_items(files, 30, seed=4)
    sources = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    for item in items:
        assert item["context"] + item["choices"][item["label"]] in sources + "\n"


def test_scaling_eval_prints_and_writes_the_scores_of_a_run(tiny_cfg, tmp_path):
    from scaling.evaluation import evaluate
    from scaling.trained import load_trained
    from scaling.training.train import train

    train(tiny_cfg("train.tokens=2048", run_dir=tmp_path / "run"))
    proc = run_cli("eval", str(tmp_path / "run"), "--tasks", "stdlib-nextline", "--limit", "20",
                   "--json", str(tmp_path / "scores.json"))
    assert proc.returncode == 0, proc.stderr
    assert "stdlib-nextline" in proc.stdout
    written = json.loads((tmp_path / "scores.json").read_text())[str(tmp_path / "run")]
    expected = evaluate(load_trained(tmp_path / "run"), [load_task("stdlib-nextline", limit=20)])[
        "stdlib-nextline"
    ]
    assert written["eval/stdlib-nextline/bpb"] == pytest.approx(expected["bpb"], rel=1e-6)
    assert written["eval/stdlib-nextline/acc"] == pytest.approx(expected["acc"])

    bad = run_cli("eval", str(tmp_path / "run"), "--tasks", str(tmp_path / "nope.jsonl"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: no task file")


@pytest.mark.slow
def test_accuracy_on_the_shipped_task_rises_with_model_size_and_training(tiny_cfg, tmp_path):
    from scaling.training.train import train

    small = tmp_path / "small"  # 2x64, 10k tokens: val loss ~5.4
    big = tmp_path / "big"  # 2x96, 120k tokens: val loss ~4.4
    train(tiny_cfg(run_dir=small))
    train(tiny_cfg("model.d_model=96", "train.micro_batch_size=16", "train.tokens=120000",
                   "train.val_every_tokens=120000", run_dir=big))
    proc = run_cli(
        "eval",
        str(small),
        str(big),
        "--tasks",
        "stdlib-nextline",
        "--json",
        str(tmp_path / "s.json"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    acc = [scores[str(d)]["eval/stdlib-nextline/acc"] for d in (small, big)]
    bpb = [scores[str(d)]["eval/stdlib-nextline/bpb"] for d in (small, big)]
    assert acc[1] >= acc[0] + 0.1, acc  # measured 0.51 -> 0.76 (300 items: standard error ~0.03)
    assert bpb[1] < bpb[0], bpb
