"""Multiple-choice tasks: JSON-lines files of ``{"context": ..., "choices": [...], "label": i}``.

A task is named by a file path or by the name of a task shipped with the package
(:data:`SHIPPED_TASKS`); its metric names use the name (``eval/<name>/acc``), which for a file is
its stem (``hellaswag.jsonl`` → ``hellaswag``). Each line is checked when read; a bad line raises
:class:`~scaling.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import DataError

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
SHIPPED_TASKS = {"stdlib-nextline": "stdlib-nextline.jsonl"}  # name -> file under SHIPPED_DIR


@dataclass(frozen=True)
class Item:
    """One question: the text so far, the candidate continuations, and the index of the right one."""

    context: str
    choices: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class Task:
    """A named list of :class:`Item`."""

    name: str
    items: tuple[Item, ...]
    path: Path


def _item(obj, where: str) -> Item:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with context, choices, label")
    context, choices, label = obj.get("context"), obj.get("choices"), obj.get("label")
    if not isinstance(context, str):
        raise DataError(f"{where}: 'context' must be a string")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise DataError(f"{where}: 'choices' must be a list of at least two non-empty strings")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(choices):
        raise DataError(f"{where}: 'label' must be an index into choices (0..{len(choices) - 1})")
    return Item(context, tuple(choices), label)


def read_items(path: str | Path) -> list[Item]:
    """Every item of a task file (blank lines skipped); a malformed line raises :class:`DataError`."""
    path = Path(path)
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not JSON ({e.msg})") from None
            items.append(_item(obj, f"{path}:{number}"))
    if not items:
        raise DataError(f"{path} holds no items; write one JSON object per line")
    return items


def load_task(name_or_path: str | Path, limit: int | None = None) -> Task:
    """A shipped task by name, or a task file by path; ``limit`` keeps the first N items."""
    key = str(name_or_path)
    if key in SHIPPED_TASKS:
        path, name = SHIPPED_DIR / SHIPPED_TASKS[key], key
    else:
        path = Path(name_or_path)
        name = path.name.removesuffix(".jsonl").removesuffix(".json")
        if not path.is_file():
            raise DataError(f"no task file {key!r}; pass a JSONL file or one of: {', '.join(SHIPPED_TASKS)}")
    items = read_items(path)
    return Task(name=name, items=tuple(items[:limit] if limit else items), path=path)
