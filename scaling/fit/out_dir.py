"""Where ``scaling fit`` may write: only into a new or empty folder, or into one a fit made itself.

A folder is a fit's own when it holds a ``fit.json`` that a fit wrote and nothing but files a fit
writes (those fixed names, the plots, its ``wandb/`` folder, and whatever that fit.json lists under
``outputs``). Anything else is refused in one line unless ``overwrite``; ``overwrite`` (and a fit
written again into its own folder) then removes only the files a fit writes, never other files.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scaling.errors import ScalingError

FIT_FILES = ("fit.json", "report.md", "large_run.yaml", "loss_vs_compute.png", "isoflop.png",
             "lr_vs_loss.png", "residuals.png", "mixture.png", "wandb")
"""Names a fit writes into its output folder (plus ``knob_<i>.png`` and what fit.json lists)."""
OUTPUT_KEYS = ("report", "fit_json", "large_run", "plots")
"""Keys of fit.json's ``outputs`` that name files the fit wrote into its folder."""
_OWN = re.compile(r"knob_\d+\.png")
# an atomic write's temporary file: "." + the file's name + a unique suffix + ".tmp"
_TEMP = re.compile(r"\..+\.tmp")
_NAMED = 3  # files named in a refusal


def _previous_outputs(out: Path) -> set[str] | None:
    """Names of the files the fit whose fit.json is in ``out`` wrote; None when no fit wrote one there."""
    try:
        data = json.loads((out / "fit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("outputs"), dict) and "recommendation" in data):
        return None
    names = set()
    for key, value in data["outputs"].items():
        if key not in OUTPUT_KEYS:  # a W&B run's mode, id and folder; why a plot was not made
            continue
        for path in (value.values() if isinstance(value, dict) else [value]):
            if isinstance(path, str) and Path(path).parent.resolve() == out.resolve():
                names.add(Path(path).name)
    return names


def _is_fit_file(name: str, listed: set[str]) -> bool:
    return name in FIT_FILES or name in listed or bool(_OWN.fullmatch(name) or _TEMP.fullmatch(name))


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse, in one line, an ``out`` a fit may not write into (before any work is done).

    Allowed: a folder that does not exist yet (its nearest existing parent must be writable), an empty
    one, one that holds only a previous fit's files, or anything with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ScalingError(f"--out {out} is a file; give a folder for the fit's outputs")
    _check_writable(out)
    if not out.is_dir():
        return
    listed = _previous_outputs(out)
    entries = sorted(p.name for p in out.iterdir())
    others = [name for name in entries if not _is_fit_file(name, listed or set())]
    if overwrite or not entries or (listed is not None and not others):
        return
    if listed is None and not others:
        others = entries  # a fit's file names, but no fit.json of a fit: someone else's files
    more = len(others) - _NAMED
    named = ", ".join(others[:_NAMED]) + (f" and {more} more" if more > 0 else "")
    raise ScalingError(f"--out {out} is not empty ({named}) and was not made by `scaling fit`; choose a "
                       f"new or empty folder, or pass --overwrite to replace only the files a fit writes")


def _check_writable(out: Path) -> None:
    """Refuse an ``out`` (or, for a new one, its nearest existing parent) this process cannot write into."""
    folder = next(p for p in (out, *out.parents) if p.exists())
    if not folder.is_dir():
        raise ScalingError(f"--out {out}: {folder} is a file, not a folder; give another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScalingError(f"cannot write into {folder}: permission denied; choose another --out or make it "
                           f"writable")


def clear_fit_files(out: Path) -> None:
    """Remove what a fit wrote into ``out`` before (a stale ``knob_3.png`` would outlive its knob);
    other files stay."""
    if not out.is_dir():
        return
    listed = _previous_outputs(out) or set()
    for path in out.iterdir():
        if not _is_fit_file(path.name, listed):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextmanager
def write_errors(out: Path) -> Iterator[None]:
    """Turn an error of the file system inside the block (no permission, a read-only or full disk) into
    a one-line :class:`ScalingError`."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ScalingError(f"cannot write into {out}: {e.strerror}; choose another --out or make it "
                               f"writable") from e
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ScalingError(f"no space left on the device of {out}; free some space and run the fit "
                               f"again") from e
        raise ScalingError(f"cannot write into {out}: {e}; check the output folder and run the fit "
                           f"again") from e
