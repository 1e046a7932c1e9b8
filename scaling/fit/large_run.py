"""The large run's config, cleared of the sweep's plumbing: absolute paths, no launcher-only keys, its own
W&B group and tags.

The large run starts from a small run's resolved config, which also holds what the sweep launcher set
for that run (``train.threads``, the sweep's ``logging.group`` and tags, ``run.dir``) and paths as the
run saw them. A relative path in a run's config is relative to the folder the run was launched from;
the runs do not record that folder, so it is taken to be the current one, and the fit says so.
"""

from __future__ import annotations

import copy
from pathlib import Path

LARGE_RUN_GROUP = "large-run"
"""W&B group and tag of the large run: apart from the sweeps that led to it."""


def _is_task_file(task: str) -> bool:
    """Whether an ``eval.tasks`` entry is a file path (a shipped task is a bare name)."""
    from scaling.evaluation.tasks import SHIPPED_TASKS

    return task not in SHIPPED_TASKS


def relative_paths(tree: dict) -> list[tuple[str, str]]:
    """The (dotted key, value) of every relative path in a config tree: the dataset, the mixture's datasets,
    the W&B folder and downstream task files."""
    found = []
    data, logging, evaluation = tree.get("data") or {}, tree.get("logging") or {}, tree.get("eval") or {}
    if data.get("mixture"):
        found += [(f"data.mixture[{i}].path", m.get("path")) for i, m in enumerate(data["mixture"])]
    else:
        found.append(("data.path", data.get("path")))
    found.append(("logging.wandb_dir", logging.get("wandb_dir")))
    found += [(f"eval.tasks[{i}]", t) for i, t in enumerate(evaluation.get("tasks") or [])
              if isinstance(t, str) and _is_task_file(t)]
    return [(key, value) for key, value in found if isinstance(value, str) and value and
            not Path(value).expanduser().is_absolute()]


def _absolute(value: str, base: Path) -> str:
    return str((base / Path(value).expanduser()).resolve())


def clean_large_run(tree: dict, base: Path | None = None) -> dict:
    """A copy of ``tree`` fit for the large run: relative paths resolved against ``base`` (default: the
    current folder), no launcher-only settings, W&B group and tags of its own."""
    base = Path.cwd() if base is None else base
    out = copy.deepcopy(tree)
    data, logging = out.setdefault("data", {}), out.setdefault("logging", {})
    if data.get("mixture"):
        for m in data["mixture"]:
            if isinstance(m.get("path"), str):
                m["path"] = _absolute(m["path"], base)
    if isinstance(data.get("path"), str):
        data["path"] = _absolute(data["path"], base)
    if isinstance(logging.get("wandb_dir"), str):
        logging["wandb_dir"] = _absolute(logging["wandb_dir"], base)
    evaluation = out.get("eval") or {}
    if evaluation.get("tasks"):
        evaluation["tasks"] = [_absolute(t, base) if isinstance(t, str) and _is_task_file(t) else t
                               for t in evaluation["tasks"]]
    out.setdefault("train", {})["threads"] = None  # the launcher's share of a shared machine
    out.setdefault("run", {})["dir"] = None
    logging.update(group=LARGE_RUN_GROUP, tags=[LARGE_RUN_GROUP], job_type="train")
    return out


def path_notes(tree: dict, base: Path | None = None, whose: str = "the runs'") -> list[str]:
    """What :func:`clean_large_run` assumed about the relative paths of ``tree`` (``whose`` config it is),
    in words."""
    base = Path.cwd() if base is None else base
    notes = []
    for key, value in relative_paths(tree):
        absolute = _absolute(value, base)
        missing = "" if Path(absolute).exists() else " (it does not exist there: fix it before training)"
        notes.append(f"large_run.yaml: {whose} {key} {value!r} is relative; the config does not record the "
                     f"folder it was written for, so it was resolved against the current one: "
                     f"{absolute}{missing}")
    return notes
