"""Where ``prepare`` may write: only into a new or empty folder, or into one it made itself.

A folder is prepare's own when it holds a ``manifest.json`` that prepare wrote, or the state file of
an unfinished prepare (written first, before the tokenizer). Anything else, and a dataset prepared
with other settings, is refused in one line unless ``overwrite``; ``overwrite`` then removes only the
files prepare writes (its manifest, tokenizer, shards, state and their temporary files), never other
files, and never a ``manifest.json`` prepare did not write.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_pipelines.dataset import PreparedDataset
from data_pipelines.errors import DataError, UserError
from data_pipelines.format import MANIFEST, SPLITS, STATE, TOKENIZER, sha256_file

_SHARD = rf"(?:{'|'.join(SPLITS)})-\d{{5}}\.(?:bin|idx)"
_OWN_FILE = re.compile(rf"{_SHARD}|{re.escape(MANIFEST)}|{re.escape(TOKENIZER)}|{re.escape(STATE)}")
# an atomic write's temporary file: "." + the file's name + a unique suffix + ".tmp"
_OWN_TEMP = re.compile(rf"\.(?:{_OWN_FILE.pattern})\..+\.tmp")
_NAMED = 3  # files named in a refusal


def claim(out: Path, settings: dict, overwrite: bool) -> dict | None:
    """Make ``out`` ready for a prepare with ``settings``, or refuse with a one-line :class:`DataError`.

    Returns the manifest when ``out`` already holds a complete, intact dataset with these settings
    (nothing to do), else None: the folder is new, empty, an unfinished prepare with these settings
    (to resume), or, with ``overwrite``, cleared of the files prepare writes."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; pass a folder for the prepared dataset")
    if not out.is_dir():
        return None
    manifest, state = _read_json(out / MANIFEST), _read_json(out / STATE)
    key = settings["settings_key"]
    if _settings_of(manifest).get("settings_key") == key:
        try:
            PreparedDataset.open(out, verify="fast")
            return manifest
        except DataError:  # damaged since (a truncated or deleted shard): prepare it again
            (out / MANIFEST).unlink()
            return None
    if state is not None and state.get("settings_key") == key:
        return None  # an unfinished prepare of the same data: resume it
    others = sorted(p.name for p in out.iterdir() if not _OWN_TEMP.fullmatch(p.name))
    if not others:
        return None
    if (out / MANIFEST).exists() and manifest is None:
        raise DataError(f"{out / MANIFEST} was not written by `scaling prepare`; move it away or choose "
                        "another --out")
    recorded = _settings_of(manifest) if manifest is not None else (state or {}).get("settings", {})
    if not overwrite:
        if manifest is not None or state is not None:
            what = ("already holds a dataset prepared" if manifest is not None
                    else "holds an unfinished prepare")
            raise DataError(f"{out} {what} with other settings ({differences(recorded, settings)}); "
                            "choose another --out or pass --overwrite to replace it")
        more = len(others) - _NAMED
        named = ", ".join(others[:_NAMED]) + (f" and {more} more" if more > 0 else "")
        raise DataError(f"{out} is not empty ({named}) and was not made by `scaling prepare`; choose a new "
                        "or empty --out, or pass --overwrite to replace only the files prepare writes")
    for path in out.iterdir():
        if _OWN_FILE.fullmatch(path.name) or _OWN_TEMP.fullmatch(path.name):
            path.unlink()
    return None


def _read_json(path: Path) -> dict | None:
    """The object in a JSON file prepare wrote there (one with ``format_version`` or a settings key)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and ("settings_key" in data or "prepare" in data) else None


def _settings_of(manifest: dict | None) -> dict:
    settings = (manifest or {}).get("prepare")
    return settings if isinstance(settings, dict) else {}


def differences(old: dict, new: dict) -> str:
    """The settings that differ, old and new value, e.g. ``vocab_size: 1024 there, 600 now``."""
    if not old:
        return "its settings were not recorded"
    parts = []
    for key in new:
        if key == "settings_key" or old.get(key) == new[key]:
            continue
        if key == "source_fingerprint":
            if old.get("sources") == new["sources"] and old.get("files") == new["files"]:
                parts.append("the source files changed (sizes or modification times)")
        else:
            parts.append(f"{key}: {_short(old.get(key))} there, {_short(new[key])} now")
    return "; ".join(parts) or "settings recorded by another version of prepare"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def remove_temp_files(out: Path) -> None:
    """Remove what a crash inside an atomic write of prepare's files left behind."""
    for path in out.iterdir():
        if _OWN_TEMP.fullmatch(path.name):
            path.unlink()


def load_state(out: Path, key: str) -> dict | None:
    """The progress of an unfinished prepare with the settings ``key``, if its shards are intact."""
    state = _read_json(out / STATE)
    if state is None or state.get("settings_key") != key:
        return None
    for shards in state.get("splits", {}).values():
        for s in shards:
            for name, digest in ((s["file"], s["sha256"]), (s["index"], s["index_sha256"])):
                if not (out / name).is_file() or sha256_file(out / name) != digest:
                    return None
    return state


def remove_stale_shards(out: Path, split: str, keep: int) -> None:
    """Remove the shards of ``split`` from number ``keep`` on (left by a run that did not finish)."""
    for path in out.glob(f"{split}-*.*"):
        if _OWN_FILE.fullmatch(path.name) and int(path.stem[len(split) + 1:]) >= keep:
            path.unlink()


@contextmanager
def removed_on_user_error(out: Path) -> Iterator[None]:
    """On a :class:`UserError` inside the block, remove what it created: ``out`` (and any parent folders
    made for it) when it did not exist, else only the entries of ``out`` that were not there before.

    Other exceptions (an interruption, a crash, a full disk) leave everything in place for a resume."""
    top = None  # the outermost folder this call creates
    for folder in (out, *out.parents):
        if folder.exists():
            break
        top = folder
    before = None if top is not None else set(out.iterdir())
    try:
        yield
    except UserError:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        elif out.is_dir():
            for path in set(out.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


@contextmanager
def write_errors(out: Path) -> Iterator[None]:
    """Turn an error of the file system inside the block (no space, no permission) into a one-line
    :class:`DataError`; what was written stays, so the same command resumes once the cause is fixed."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"no space left on the device of {out}; free some space and run the same command "
                            "again: it resumes after the last finished shard") from e
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise DataError(f"cannot write into {out}: {e.strerror}; choose another --out or make it "
                            "writable") from e
        raise DataError(f"cannot write into {out}: {e}; check the output folder and run the same command "
                        "again") from e
