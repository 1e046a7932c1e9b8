"""The embedded default corpus: the running interpreter's standard-library source code.

Every Python installation carries ~12 MB of real, varied, permissively licensed text, so the demo
and the tests need no download. Test folders and site-packages are left out (they are either
generated-looking or not part of the standard library).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

STDLIB_PRESET_PATH = "data/stdlib"  # where `scaling prepare --preset stdlib` writes by default
_EXCLUDED_DIRS = {"test", "tests", "site-packages", "dist-packages", "__pycache__", "idle_test"}


def stdlib_sources(max_files: int | None = None, max_bytes: int | None = None) -> list[Path]:
    """The standard library's ``.py`` files (no tests, no site-packages), sorted by path.

    ``max_files`` keeps only the first N files; ``max_bytes`` keeps files while their total size
    stays within the budget (at least one file), so tests can prepare a ~1 MB corpus in seconds.
    Files are taken in a spread over the whole library, not just the first folders alphabetically,
    so a small corpus still mixes many modules.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        (p for p in root.rglob("*.py") if not _EXCLUDED_DIRS & set(p.relative_to(root).parts[:-1])),
        key=lambda p: str(p.relative_to(root)),
    )
    if max_files is None and max_bytes is None:
        return files
    # Interleave: a fixed stride through the sorted list, so the subset spans the whole library.
    stride = 7
    order = [files[i] for start in range(stride) for i in range(start, len(files), stride)]
    chosen: list[Path] = []
    total = 0
    for p in order:
        if max_files is not None and len(chosen) >= max_files:
            break
        size = p.stat().st_size
        if max_bytes is not None and chosen and total + size > max_bytes:
            continue
        chosen.append(p)
        total += size
    return sorted(chosen, key=lambda p: str(p.relative_to(root)))
