"""Package exports that load on first use, so importing a package (as every CLI start does) stays cheap.

Each package ``__init__`` lists ``{public name: defining module}`` and sets
``__getattr__ = lazy_exports(__name__, _EXPORTS)``. It lives here, at the bottom of the package
flow, so that ``data_pipelines``, ``scaling`` and ``sweeps`` can all use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that imports ``exports[name]`` and returns its ``name``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
