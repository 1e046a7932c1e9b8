"""Lightning set-up resolved from a run config: accelerator, precision, strategy, device count,
cluster plugins, and the Lightning advice that does not apply to this trainer, silenced per call."""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch

from scaling.errors import ScalingError


def resolve_accelerator(setting: str) -> str:
    """``train.accelerator``: ``auto`` is ``gpu`` when CUDA is available, else ``cpu``."""
    if setting == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if setting == "cuda" else setting  # Lightning's two names for one thing


def check_accelerator(accelerator: str) -> None:
    """Refuse ``train.accelerator=gpu`` in one line when no CUDA GPU is visible."""
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ScalingError(f"train.accelerator={accelerator} but no CUDA GPU is visible here; "
                           "use train.accelerator=auto or cpu, or run on a GPU machine")


def resolve_precision(setting: str, accelerator: str) -> str:
    """``train.precision``: ``auto`` is ``bf16-mixed`` on GPUs, ``32-true`` on CPUs."""
    if setting == "auto":
        return "bf16-mixed" if accelerator == "gpu" else "32-true"
    return setting


def build_strategy(setting: str, accelerator: str):
    """``train.strategy`` for Lightning: ``fsdp`` shards every transformer block (one FSDP unit each,
    so a block's weights are gathered only while it runs) and needs GPUs; others pass through."""
    if setting != "fsdp":
        return setting
    if accelerator != "gpu":
        raise ScalingError("train.strategy=fsdp needs GPUs (Lightning runs FSDP on CUDA only); "
                           "use train.strategy=ddp on CPUs")
    from lightning.pytorch.strategies import FSDPStrategy

    from scaling.model import Block

    return FSDPStrategy(auto_wrap_policy={Block})


def device_count(accelerator: str, devices) -> int:
    """How many devices of ``accelerator`` Lightning uses for ``devices`` (as :func:`parse_devices` gives)."""
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    kind = CUDAAccelerator if accelerator == "gpu" else CPUAccelerator
    if devices == "auto":
        return kind.auto_device_count()
    parsed = kind.parse_devices(devices)
    return parsed if isinstance(parsed, int) else len(parsed)


def cluster_plugins() -> list:
    """Inside a SLURM job, keep Lightning's cluster environment but not its requeue handler.

    The sweep launcher (submitit) owns preemption: it requeues the job and the run resumes from its
    checkpoint. Two requeue handlers in one process would race.
    """
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


_LIGHTNING_ADVICE = (r".*does not have many workers.*", r".*`weights_only` was not set.*", r".*srun.*",
                     r".*val_check_interval.*", r".*LeafSpec.*", r".*litlogger.*",
                     r".*defined a `validation_step` but have no `val_dataloader`.*")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "litlogger" not in text and "val_check_interval" not in text and "srun" not in text


@contextlib.contextmanager
def quiet_lightning():
    """Within the block, silence Lightning's advice that does not apply to this trainer (one data
    stream, no srun); the warning filters and the log filter are gone again afterwards."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch.utilities.rank_zero",
                                                    "lightning.fabric.utilities.rank_zero")]
    tips = _DropTips()
    with warnings.catch_warnings():
        for pattern in _LIGHTNING_ADVICE:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.addFilter(tips)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(tips)
