"""Lightning set-up resolved from a run config: accelerator, precision, strategy, device count,
cluster plugins, and the Lightning advice that does not apply to this trainer, silenced per call."""

from __future__ import annotations

import contextlib
import importlib.util
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


SHARDED_STRATEGIES = ("fsdp", "deepspeed_stage_2", "deepspeed_stage_3")  # a checkpoint is a folder
DEEPSPEED_STAGES = {"deepspeed_stage_2": 2, "deepspeed_stage_3": 3}


def check_strategy(setting: str, accelerator: str) -> None:
    """Refuse in one line, before anything starts, a ``train.strategy`` this machine cannot run: fsdp and
    deepspeed need GPUs, and deepspeed needs the ``deepspeed`` package (the ``deepspeed`` extra)."""
    if setting not in SHARDED_STRATEGIES:
        return
    if accelerator != "gpu":
        raise ScalingError(f"train.strategy={setting} needs GPUs (Lightning runs it on CUDA only); "
                           "use train.strategy=ddp on CPUs")
    if setting in DEEPSPEED_STAGES and importlib.util.find_spec("deepspeed") is None:
        raise ScalingError(f"train.strategy={setting} needs the deepspeed package, which is not installed; "
                           "pip install 'scaling[deepspeed]', or use train.strategy=fsdp")


def strategy_arguments(setting: str) -> dict:
    """Keyword arguments of the Lightning strategy for a sharded ``train.strategy``: fsdp shards every
    transformer block (one FSDP unit each, so a block's weights are gathered only while it runs) and
    saves sharded checkpoints (each rank writes its own shard: nothing is gathered on one rank);
    deepspeed runs ZeRO stage 2 or 3."""
    if setting == "fsdp":
        from scaling.model import Block

        return {"auto_wrap_policy": {Block}, "state_dict_type": "sharded"}
    return {"stage": DEEPSPEED_STAGES[setting]}


def build_strategy(setting: str, accelerator: str):
    """``train.strategy`` for Lightning: a strategy object for the sharded ones (see
    :func:`strategy_arguments`, checked by :func:`check_strategy`); others pass through as names."""
    if setting not in SHARDED_STRATEGIES:
        return setting
    check_strategy(setting, accelerator)
    if setting == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        return FSDPStrategy(**strategy_arguments(setting))
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(**strategy_arguments(setting))


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
                     r".*defined a `validation_step` but have no `val_dataloader`.*",
                     r".*DeepSpeed handles gradient clipping internally.*")  # given optim.grad_clip already


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
