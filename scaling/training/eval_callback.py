"""``DownstreamEval``: scores multiple-choice tasks during training and logs ``eval/<task>/acc|acc_norm|bpb``.

Tasks are scored every ``every_tokens`` training tokens and after the last step, on the model being
trained (put in eval mode for the scoring and restored after). Rows go to ``metrics.jsonl`` (a
separate row with ``step`` and ``train/tokens``, like validation rows) and to the Trainer's loggers
(W&B); the last scores are kept in :attr:`final` for ``result.json``. Every rank scores (a sharded
model needs all ranks in its forward pass); only global rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.evaluation.scoring import metric_row, score_task
from scaling.evaluation.tasks import Task, load_task
from scaling.training.callbacks_common import StepEndCallback, batch_tokens
from scaling.training.run_files import MetricsWriter


class DownstreamEval(StepEndCallback):
    """Evaluate ``tasks`` (names or JSONL paths) every ``every_tokens`` tokens and at the end.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` and ``eos_id`` its end-of-document id (the
    prepared dataset's); ``run_dir`` None sends rows only to the Trainer's loggers.
    """

    def __init__(self, tasks: list[str | Path] | list[Task], every_tokens: float, tokenizer, eos_id: int,
                 run_dir: str | Path | None = None, limit: int | None = None):
        super().__init__()
        self.tasks = [t if isinstance(t, Task) else load_task(t, limit=limit) for t in tasks]
        self.every_tokens = float(every_tokens)
        self.tokenizer, self.eos_id = tokenizer, eos_id
        self.run_dir = run_dir
        self.final: dict[str, float] = {}  # the last scores as metric names, for result.json
        self.last_eval_step: int | None = None

    @classmethod
    def from_config(cls, cfg, datamodule, run_dir: str | Path | None) -> DownstreamEval | None:
        """The callback a run config's ``eval`` group asks for (``eval.tasks``, ``eval.every_tokens``,
        ``eval.limit``), scored with the tokenizer of the run's data; None when no tasks are set."""
        group = cfg.get("eval") if hasattr(cfg, "get") else getattr(cfg, "eval", None)
        if group is None or not group.tasks:
            return None
        dataset = datamodule.datasets[0][0]
        return cls(
            list(group.tasks),
            group.every_tokens,
            dataset.tokenizer(),
            dataset.eos_id,
            run_dir=run_dir,
            limit=group.get("limit"),
        )

    def on_step_end(self, trainer, pl_module) -> None:
        per_step = batch_tokens(trainer, pl_module)
        tokens = trainer.global_step * per_step
        crossed = int(tokens // self.every_tokens) > int((tokens - per_step) // self.every_tokens)
        last = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if crossed or last:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        # a run stopped early (time limit, divergence stop) is still scored once at its last step
        if self.last_eval_step != trainer.global_step and trainer.global_step > 0:
            self.run(trainer, pl_module)

    def run(self, trainer, pl_module) -> dict[str, float]:
        """Score every task now and log the row; returns the metrics."""
        model = pl_module.model
        scores = {t.name: score_task(model, self.tokenizer, t, self.eos_id) for t in self.tasks}
        row = metric_row(scores)
        self.final, self.last_eval_step = row, trainer.global_step
        step = trainer.global_step
        if trainer.is_global_zero:
            if self.run_dir is not None:
                writer = MetricsWriter(self.run_dir)
                try:
                    writer.write(
                        {"step": step, "train/tokens": step * batch_tokens(trainer, pl_module), **row}
                    )
                finally:
                    writer.close()
            for logger in trainer.loggers:
                logger.log_metrics(row, step=step)
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"final": dict(self.final), "last_eval_step": self.last_eval_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.final = dict(state.get("final", {}))
        self.last_eval_step = state.get("last_eval_step")
