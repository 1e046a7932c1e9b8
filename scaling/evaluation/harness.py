"""lm-evaluation-harness tasks on a trained run, from local task files only.

The run is exported to a temporary transformers folder (:func:`scaling.export.writer.export_run`) and
scored by the harness's ``hf`` model. Nothing is downloaded: the Hugging Face hub and ``datasets`` are
put offline before the harness is imported, so a task runs only when its data is a local file (a task
YAML with ``dataset_path: json`` and ``dataset_kwargs: {data_files: ...}``, found through
``include_path``) or already in the local Hugging Face cache. The harness is an optional dependency
(``pip install 'scaling[eval]'``).

Each sequence starts with the end-of-document token, as every training document does and as
:mod:`scaling.evaluation.scoring` scores it (the exported tokenizer's BOS token is that EOS).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scaling.errors import ScalingError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _harness():
    """The harness's ``simple_evaluate`` and ``TaskManager``, with the hub and datasets offline."""
    os.environ.update(OFFLINE_ENV)  # read when huggingface_hub and datasets are first imported
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise ScalingError(f"--harness needs lm-evaluation-harness ({e.msg}); install it with "
                           f"pip install 'scaling[eval]'") from None
    return simple_evaluate, TaskManager


def run_harness(run_dir: str | Path, tasks: list[str], *, include_path: list[str | Path] | None = None,
                checkpoint: str | Path | None = None, limit: int | None = None, batch_size: int = 8,
                log_samples: bool = False) -> dict:
    """Run the harness ``tasks`` on a run and return the harness's result dict (``results`` per task).

    ``include_path``: folders of task YAMLs, besides the harness's own; ``limit`` scores only the first
    N documents of each task; ``log_samples`` keeps each document's scores under ``samples``.
    """
    simple_evaluate, TaskManager = _harness()
    for path in include_path or []:
        if not Path(path).is_dir():
            raise ScalingError(
                f"--include-path {path}: no such folder; give the folder of your task YAML files"
            )
    manager = TaskManager(include_path=[str(p) for p in include_path] if include_path else None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ScalingError(
            f"lm-evaluation-harness knows no task {unknown[0]!r}; write a task YAML for it and "
            f"pass its folder with --include-path"
        )
    import torch

    from scaling.export.writer import export_run

    with tempfile.TemporaryDirectory(prefix="scaling-harness-") as tmp:
        model_dir = export_run(run_dir, Path(tmp) / "model", checkpoint)
        return simple_evaluate(
            model="hf", model_args={"pretrained": str(model_dir), "dtype": "float32", "add_bos_token": True},
            tasks=list(tasks), task_manager=manager, limit=limit, batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu", log_samples=log_samples, bootstrap_iters=0)


def harness_metric_row(results: dict) -> dict[str, float]:
    """The harness's scores as this framework's metric names: ``eval/<task>/<metric>`` (``acc``,
    ``acc_norm``, ...); standard errors and non-numbers are left out."""
    row = {}
    for task, scores in results["results"].items():
        for key, value in scores.items():
            metric, _, _filter = key.partition(",")
            if _filter and not metric.endswith("_stderr") and isinstance(value, (int, float)):
                row[f"eval/{task}/{metric}"] = float(value)
    return row
