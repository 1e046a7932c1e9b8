"""scaling: small-base-model scaling experiments.

Public API (heavy imports are deferred until first use, so the CLI starts fast):

- configs: :func:`load_config`, :class:`Config` and its groups, :func:`run_id`
- model: :class:`Transformer`, :func:`build_model`
- counting: :func:`count_params`, :func:`flops_per_token`, :func:`peak_flops`, :func:`mfu`
- errors: :class:`ScalingError`
"""

from __future__ import annotations

import importlib

from scaling.errors import ConfigError, DataError, ScalingError

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Config": "scaling.config",
    "ModelConfig": "scaling.config",
    "load_config": "scaling.config_loading",
    "run_id": "scaling.config_loading",
    "list_presets": "scaling.config_loading",
    "Transformer": "scaling.model",
    "build_model": "scaling.model",
    "count_params": "scaling.counting",
    "flops_per_token": "scaling.counting",
    "peak_flops": "scaling.counting",
    "mfu": "scaling.counting",
}

__all__ = ["ScalingError", "ConfigError", "DataError", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaling' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
