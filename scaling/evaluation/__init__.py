"""Downstream evaluation: multiple-choice tasks scored by log-likelihood (accuracy and bits per byte)."""

from scaling.evaluation.scoring import evaluate, metric_row, score_task
from scaling.evaluation.tasks import SHIPPED_TASKS, Item, Task, load_task, read_items

__all__ = ["SHIPPED_TASKS", "Item", "Task", "evaluate", "load_task", "metric_row", "read_items", "score_task"]
