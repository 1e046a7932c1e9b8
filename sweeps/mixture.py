"""The ``mixture:`` part of a sweep spec: runs that differ only in the weights of their data domains.

::

    mixture:
      domains: [data/code, data/tests, data/docs]   # prepared datasets (same tokenizer)
      step: 0.25                                    # every weight vector on the simplex grid of this step
      # or: dirichlet: {n: 8, concentration: 10, seed: 0, center: natural}
      #     (center: natural | uniform | [w, ...])
      natural: true                                 # add the mixture in proportion to each domain's tokens
      uniform: true                                 # add the equal mixture

Each weight vector becomes one point ``{"data.mixture": [{path, weight}, ...], "data.eval": [...]}``:
domains of weight 0 are left out of ``data.mixture`` (weights must be positive), while ``data.eval``
names every domain, so each run reports a loss on each domain's validation split and the mixture law
sees every evaluation set in every run. Weights are rounded to 6 decimals, so the same spec plans the
same runs (and run ids) again. The part crosses with ``ladder:``, ``grid:`` and ``seeds:`` like any other.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError

MIXTURE_KEYS = ("domains", "step", "dirichlet", "natural", "uniform", "eval_tokens")
DIRICHLET_KEYS = ("n", "concentration", "seed", "center")
DECIMALS = 6


def simplex_grid(k: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector over ``k`` domains whose weights are multiples of ``step`` and sum to 1."""
    m = round(1 / step)
    if not (0 < step <= 1) or abs(m * step - 1) > 1e-9:
        raise ScalingError(f"mixture.step={step} must divide 1 (e.g. 0.5, 0.25, 0.2, 0.1)")
    return [
        tuple(c / m for c in combo) for combo in itertools.product(range(m + 1), repeat=k) if sum(combo) == m
    ]


def _natural(paths: list[str], base_dir: Path) -> np.ndarray:
    """Each domain's share of the training tokens, from its manifest.json."""
    tokens = []
    for p in paths:
        for where in (Path(p), base_dir / p):
            try:
                tokens.append(
                    float(json.loads((where / "manifest.json").read_text())["splits"]["train"]["tokens"])
                )
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
        else:
            raise ScalingError(
                f"mixture: no manifest.json in {p}; prepare the dataset first (scaling prepare), "
                "or set natural: false and a dirichlet center other than natural"
            )
    t = np.array(tokens)
    return t / t.sum()


def _dirichlet(section: Any, k: int, natural) -> list[tuple[float, ...]]:
    if not isinstance(section, dict):
        raise ScalingError(f"mixture.dirichlet must be a mapping with keys {', '.join(DIRICHLET_KEYS)}")
    for key in section:
        if key not in DIRICHLET_KEYS:
            raise ScalingError(
                f"mixture.dirichlet: unknown key {key!r}; valid keys: {', '.join(DIRICHLET_KEYS)}"
            )
    n, alpha = int(section.get("n", 0)), float(section.get("concentration", 1.0))
    if n < 1 or not alpha > 0:
        raise ScalingError("mixture.dirichlet needs n >= 1 and concentration > 0")
    center = section.get("center", "natural")
    if center == "natural":
        c = natural()
    elif center == "uniform":
        c = np.full(k, 1.0 / k)
    else:
        c = np.asarray(center, dtype=float) if isinstance(center, list) and len(center) == k else None
        if c is None or np.any(c <= 0):
            raise ScalingError(f"mixture.dirichlet.center must be natural, uniform or {k} positive weights")
        c = c / c.sum()
    rng = np.random.default_rng(int(section.get("seed", 0)))
    # concentration × center: a larger concentration keeps the samples nearer the center
    return [tuple(v) for v in rng.dirichlet(alpha * k * c, size=n)]


def mixture_points(section: Any, base_dir: str | Path = ".") -> list[dict[str, Any]]:
    """The ``mixture:`` section as sweep points (see the module docs)."""
    if not isinstance(section, dict):
        raise ScalingError(f"mixture must be a mapping with keys {', '.join(MIXTURE_KEYS)}")
    for key in section:
        if key not in MIXTURE_KEYS:
            raise ScalingError(f"mixture: unknown key {key!r}; valid keys: {', '.join(MIXTURE_KEYS)}")
    paths = section.get("domains")
    if not isinstance(paths, list) or len(paths) < 2 or len({Path(str(p)).name for p in paths}) != len(paths):
        raise ScalingError(
            "mixture.domains must list two or more prepared datasets with distinct folder names"
        )
    paths = [str(p) for p in paths]
    if ("step" in section) == ("dirichlet" in section):
        raise ScalingError("mixture needs exactly one of step (a simplex grid) or dirichlet (random samples)")
    k, base = len(paths), Path(base_dir)
    vectors = simplex_grid(k, float(section["step"])) if "step" in section else _dirichlet(
        section["dirichlet"], k, lambda: _natural(paths, base))
    if section.get("natural", True):
        vectors.append(tuple(_natural(paths, base)))
    if section.get("uniform", True):
        vectors.append(tuple([1.0 / k] * k))
    evals = [{"name": Path(p).name, "path": p} for p in paths]
    if "eval_tokens" in section:
        evals = [{**e, "tokens": float(section["eval_tokens"])} for e in evals]
    points, seen = [], set()
    for v in vectors:
        w = np.round(np.asarray(v, dtype=float) / sum(v), DECIMALS)
        key = tuple(w.tolist())
        if key in seen or not w.sum() > 0:
            continue
        seen.add(key)
        mixture = [{"path": p, "weight": float(x)} for p, x in zip(paths, w, strict=True) if x > 0]
        points.append({"data.mixture": mixture, "data.eval": evals})
    return points
