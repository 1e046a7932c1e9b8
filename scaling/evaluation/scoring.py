"""Scoring multiple-choice tasks by the log-likelihood a model gives each choice.

For every item the context (after an EOS, as every training document starts) and each choice are
tokenized apart and concatenated; the model's summed log-probability of the choice's tokens ranks
the choices. Three numbers per task:

- ``acc``: the right choice has the highest log-likelihood;
- ``acc_norm``: the same with the log-likelihood divided by the choice's UTF-8 bytes (fair to long
  choices; lm-evaluation-harness normalises by characters);
- ``bpb``: bits per UTF-8 byte of the right choice, over all items (a smooth task loss that scaling
  laws can fit where accuracy is still at chance).

Inputs longer than the model's context are cut from the left, so the choice is always scored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scaling.evaluation.tasks import Item, Task


def _choice_logprobs(model, tokenizer, item: Item, eos_id: int, max_len: int, device) -> list[float]:
    context = [eos_id] + tokenizer.encode(item.context).ids
    rows, n_scored = [], []
    for choice in item.choices:
        cont = tokenizer.encode(choice).ids
        seq = (context + cont)[-(max_len + 1):]
        rows.append(seq)
        n_scored.append(min(len(cont), len(seq) - 1))
    width = max(len(r) for r in rows)
    batch = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = torch.tensor(r)
    batch = batch.to(device)
    logits = model(batch[:, :-1])[0].float()
    logprobs = F.log_softmax(logits, dim=-1).gather(-1, batch[:, 1:, None]).squeeze(-1)
    out = []
    for i, r in enumerate(rows):
        end = len(r) - 1  # positions 0..end-1 predict tokens 1..end
        out.append(float(logprobs[i, end - n_scored[i]: end].sum()))
    return out


@torch.no_grad()
def score_task(model, tokenizer, task: Task, eos_id: int) -> dict[str, float]:
    """``acc``, ``acc_norm``, ``bpb`` and ``items`` of ``model`` (a :class:`scaling.model.Transformer`)
    on ``task``. The model is put in eval mode for the call and restored afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    max_len = model.cfg.max_seq_len
    correct = correct_norm = 0
    nats = 0.0
    nbytes = 0
    try:
        for item in task.items:
            lps = _choice_logprobs(model, tokenizer, item, eos_id, max_len, device)
            sizes = [max(len(c.encode("utf-8")), 1) for c in item.choices]
            correct += int(max(range(len(lps)), key=lambda i: lps[i]) == item.label)
            correct_norm += int(max(range(len(lps)), key=lambda i: lps[i] / sizes[i]) == item.label)
            nats -= lps[item.label]
            nbytes += sizes[item.label]
    finally:
        model.train(was_training)
    n = len(task.items)
    return {"acc": correct / n, "acc_norm": correct_norm / n, "bpb": nats / math.log(2) / nbytes, "items": n}


def evaluate(trained, tasks: list[Task]) -> dict[str, dict[str, float]]:
    """Scores of a :class:`~scaling.trained.TrainedModel` on each task, by task name."""
    return {t.name: score_task(trained.model, trained.tokenizer, t, trained.eos_id) for t in tasks}


def metric_row(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Scores as metric names: ``eval/<task>/acc``, ``eval/<task>/acc_norm``, ``eval/<task>/bpb``."""
    return {
        f"eval/{task}/{key}": value
        for task, s in scores.items()
        for key, value in s.items()
        if key != "items"
    }
