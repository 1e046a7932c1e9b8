"""scaling: small-base-model scaling experiments.

Public API (heavy imports are deferred until first use, so the CLI starts fast):

- configs: :func:`load_config`, :class:`Config` and its groups, :func:`run_id`
- model: :class:`Transformer`, :func:`build_model`
- counting: :func:`count_params`, :func:`flops_per_token`, :func:`peak_flops`, :func:`mfu`
- training: :func:`train` (config → run dir → :class:`RunResult`), :class:`LanguageModel` (the
  LightningModule), :class:`TokenDataModule` (the LightningDataModule), the callbacks
  :class:`MetricsLogger`, :class:`DivergenceMonitor`, :class:`TokenCheckpoints`, LR :class:`Schedule`,
  and the run-dir readers :func:`read_result`, :func:`read_metrics`
- errors: :class:`ScalingError`
"""

from __future__ import annotations

from data_pipelines.lazy import lazy_exports
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
    "train": "scaling.training.train",
    "RunResult": "scaling.training.run_files",
    "read_result": "scaling.training.run_files",
    "read_metrics": "scaling.training.run_files",
    "LanguageModel": "scaling.training.lightning_module",
    "TokenDataModule": "scaling.training.data_module",
    "MetricsLogger": "scaling.training.metrics",
    "DivergenceMonitor": "scaling.training.divergence",
    "TokenCheckpoints": "scaling.training.checkpointing",
    "Schedule": "scaling.training.schedules",
}

__all__ = ["ScalingError", "ConfigError", "DataError", *_EXPORTS]


__getattr__ = lazy_exports(__name__, _EXPORTS)
