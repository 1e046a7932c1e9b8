"""Checking a run dir before training: is it ours, writable, finished, resumable?

The trainer writes only into a folder that is new, holds none of the trainer's files, or holds its
``config.yaml`` of the same run (written by an earlier attempt or a sweep launcher). A folder with
the trainer's file names in it but no ``config.yaml`` (someone else's ``metrics.jsonl``) is refused
unless ``overwrite`` is given, and overwriting removes only the files the trainer writes
(:func:`remove_trainer_files`); other files in the folder stay.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from scaling.config_loading import load_config, run_id
from scaling.errors import ScalingError
from scaling.training.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    PREVIOUS_CHECKPOINT,
    RESULT_FILE,
    RunResult,
    checkpoint_dir,
    read_result,
)

WANDB_DIR = "wandb"  # W&B's offline runs, when logging.wandb_dir is not set
TRAINER_FILES = (CONFIG_FILE, METRICS_FILE, RESULT_FILE, CHECKPOINT_DIR)


def check_writable_dir(run_dir: Path) -> None:
    """Refuse in one line a ``run.dir`` that is a file, or that cannot be written (read-only folder)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ScalingError(f"run.dir {str(run_dir)!r} is a file, not a folder; choose another run.dir")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ScalingError(f"run.dir {str(run_dir)!r} is below {str(existing)!r}, which is a file; "
                           "choose another run.dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ScalingError(f"cannot write to {str(existing)!r} (read-only or no permission); "
                           "choose a writable run.dir")


def check_same_run(run_dir: Path, rid: str) -> None:
    """An existing ``config.yaml`` (e.g. written by a sweep launcher) must describe the same run."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        existing = run_id(load_config([path]))
    except ScalingError as e:
        raise ScalingError(f"{path} is not a valid run config ({e}); remove it or choose another "
                           "run.dir") from None
    if existing != rid:
        raise ScalingError(f"run dir {str(run_dir)!r} holds run {existing} (its config.yaml), not this "
                           f"config's run {rid}; choose another run.dir, or pass --overwrite to replace it")


def check_ours(run_dir: Path) -> None:
    """Refuse a folder holding files the trainer would write or replace but no ``config.yaml`` of its own."""
    if not run_dir.is_dir() or (run_dir / CONFIG_FILE).is_file():
        return
    found = [name for name in (METRICS_FILE, RESULT_FILE, CHECKPOINT_DIR) if (run_dir / name).exists()]
    if found:
        raise ScalingError(f"run dir {str(run_dir)!r} holds {found[0]} but was not made by scaling train (no "
                           f"{CONFIG_FILE}); choose another run.dir, or pass --overwrite to replace the "
                           "trainer's files in it")


def remove_trainer_files(run_dir: Path) -> None:
    """Remove what the trainer writes in ``run_dir`` (config, metrics, result, its checkpoints, its W&B
    offline runs); any other file stays."""
    for name in (CONFIG_FILE, METRICS_FILE, RESULT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            ours = path.name in (LAST_CHECKPOINT, PREVIOUS_CHECKPOINT) or path.name.startswith("tokens-") \
                or (path.name.startswith(".") and path.name.endswith(".tmp"))
            if ours and path.is_file():
                path.unlink()
            elif ours and path.is_dir() and not path.is_symlink():  # a sharded checkpoint
                shutil.rmtree(path)
        _remove_if_empty(folder)
    wandb_dir = run_dir / WANDB_DIR
    if wandb_dir.is_dir():
        for path in wandb_dir.iterdir():
            if path.name.startswith(("offline-run-", "run-")) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.name == "latest-run" and path.is_symlink():
                path.unlink()
        _remove_if_empty(wandb_dir)


def _remove_if_empty(folder: Path) -> None:
    if not any(folder.iterdir()):
        folder.rmdir()


def previous_result(run_dir: Path) -> RunResult | None:
    """The run's ``result.json``; a damaged one (cut short, not JSON) is reported in one line on stderr
    and counts as no result, so the run is trained (or resumed) again."""
    try:
        return read_result(run_dir)
    except (ValueError, TypeError, AttributeError) as e:  # a JSONDecodeError is a ValueError
        reason = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        print(f"notice: {run_dir / RESULT_FILE} is damaged ({reason}); the run counts as not finished",
              file=sys.stderr)
        return None
