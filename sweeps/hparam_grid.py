"""The ``hparams:`` sweep generator: an LR x batch grid in log steps around a centre, per (model, budget).

What the hyperparameter laws of ``scaling fit`` need: several sizes, several token budgets per size,
and at each a small grid of learning rates and batch sizes around where the optimum is expected::

    hparams:
      models: [s330k, s800k, s1.5m]
      tokens_per_param: [10, 40]     # or tokens: [absolute]
      fit: ../fit/fit.json           # centre = that fit's LR and batch laws at each (N, D) ...
      lr: 3.0e-3                     # ... or a given centre (else the base config's optim.lr)
      batch: 65536                   # tokens per step (else the base config's batch)
      lr_points: 5                   # values per axis around the centre, which is one of them
      lr_step: 2.0                   # factor between neighbouring values
      batch_points: 4                # an even count: the extra value above the centre
      batch_step: 2.0

A given ``lr``/``batch`` wins over ``fit``. The batch becomes ``train.micro_batch_size`` and
``train.grad_accum`` at the run's ``train.seq_len`` (one device), rounded as ``scaling fit`` rounds the
large run's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

SECTION_KEYS = (
    "models",
    "tokens",
    "tokens_per_param",
    "count",
    "fit",
    "lr",
    "batch",
    "lr_points",
    "lr_step",
    "batch_points",
    "batch_step",
)
SETS_KEYS = ("model", "train.tokens", "optim.lr", "train.micro_batch_size", "train.grad_accum")


def _number(section: dict, key: str, default: float, kind=float) -> Any:
    value = section.get(key, default)
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ScalingError(f"hparams.{key}={value!r} is not a number") from None
    if not out > 0 or (kind is float and not math.isfinite(out)):
        raise ScalingError(f"hparams.{key}={value!r} must be positive")
    return out


def log_steps(center: float, points: int, step: float) -> list[float]:
    """``points`` values spaced by the factor ``step`` in log around ``center``, which is one of them: an
    odd count is centred on it, an even one has its extra value above (a larger batch runs fewer steps,
    and a bowl's steep side is what shows a quadratic cannot describe it)."""
    return [center * step ** (i - (points - 1) // 2) for i in range(points)]


def _fit_laws(path: str | Path) -> tuple[dict, str]:
    """The LR and batch law entries of a fit.json, and its parameter convention."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ScalingError(
            f"hparams.fit: cannot read {path} ({e}); give the fit.json of `scaling fit`"
        ) from None
    return result.get("hparams") or {}, result.get("inputs", {}).get("params_kind", "non-embedding")


def _law_value(entry: dict | None, n: float, d: float) -> float | None:
    """A fit.json law (``hparams.<name>.law``) at size ``n`` and budget ``d``."""
    from scaling.fit.hparam_laws import OptimumLaw

    law = (entry or {}).get("law")
    return float(OptimumLaw.from_dict(law)(n, d)[0]) if law else None


def hparam_points(section: dict, resolve: Callable[[dict], Any], base_dir: str | Path = ".") -> list[dict]:
    """The runs of the generator: per model and budget, ``lr_points`` x ``batch_points`` settings.

    ``resolve(overrides)`` gives the validated run config of the base plus ``overrides``.
    """
    from scaling.counting import count_params
    from scaling.fit.recommend import round_batch

    models = section.get("models")
    if not isinstance(models, list) or not models:
        raise ScalingError("hparams.models is empty; list model presets such as s330k, s800k")
    if ("tokens" in section) == ("tokens_per_param" in section):
        raise ScalingError("hparams needs exactly one of tokens (absolute) or tokens_per_param (multiples)")
    laws, kind = _fit_laws(Path(base_dir) / section["fit"]) if section.get("fit") else ({}, None)
    count = section.get("count", "non_embedding" if kind in (None, "non-embedding") else "total")
    if count not in ("total", "non_embedding"):
        raise ScalingError(f"hparams.count={count!r} is not one of total, non_embedding")
    budgets = section.get("tokens", section.get("tokens_per_param"))
    budgets = budgets if isinstance(budgets, list) else [budgets]
    budgets = [_number({"x": b}, "x", 0.0) for b in budgets]
    shape = {
        axis: (
            _number(section, f"{axis}_points", 5 if axis == "lr" else 4, int),
            _number(section, f"{axis}_step", 2.0),
        )
        for axis in ("lr", "batch")
    }
    out = []
    for model in (str(m) for m in models):
        cfg = resolve({"model": model})
        counts = count_params(cfg.model)
        params = counts.total if count == "total" else counts.non_embedding
        seq_len = int(cfg.train.seq_len)
        train = {"micro_batch_size": cfg.train.micro_batch_size, "devices": 1}
        for budget in budgets:
            tokens = budget if "tokens" in section else budget * params
            lr = (
                _number(section, "lr", 0.0)
                if "lr" in section
                else _law_value(laws.get("lr"), params, tokens) or float(cfg.optim.lr)
            )
            batch = (
                _number(section, "batch", 0.0)
                if "batch" in section
                else _law_value(laws.get("batch_size"), params, tokens)
                or float(seq_len * cfg.train.micro_batch_size * cfg.train.grad_accum)
            )
            for b in log_steps(batch, *shape["batch"]):
                rounding = round_batch(b, train, seq_len)
                if rounding["used"] > tokens:
                    raise ScalingError(
                        f"hparams: a batch of {rounding['used']} tokens is more than {model}'s "
                        f"{tokens:.0f}-token budget; raise the budget or lower hparams.batch"
                    )
                for value in log_steps(lr, *shape["lr"]):
                    out.append(
                        {
                            "model": model,
                            "train.tokens": float(round(tokens)),
                            "optim.lr": float(f"{value:.4g}"),
                            "train.micro_batch_size": rounding["micro_batch_size"],
                            "train.grad_accum": rounding["grad_accum"],
                        }
                    )
    return out
