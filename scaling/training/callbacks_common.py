"""Small helpers the training callbacks share: batch size in tokens, device names, step detection."""

from __future__ import annotations

import platform
import socket

import lightning.pytorch as pl
import torch

from scaling.counting import global_batch_tokens


def batch_tokens(trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
    """Global batch in tokens: micro-batch × seq_len × accumulation × world size."""
    return global_batch_tokens(pl_module.cfg, trainer.world_size, trainer.accumulate_grad_batches)


def gather_from_ranks(obj) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` outside a distributed run)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        out = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(out, obj)
        return out
    return [obj]


class RankHosts(pl.Callback):
    """The hostname of every rank, in rank order, gathered once when fitting starts (for ``result.json``)."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.hosts = gather_from_ranks(socket.gethostname())


def device_name(device: torch.device) -> str | None:
    """The accelerator's marketing name (``NVIDIA H100 80GB HBM3``), None for a CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return None


def hardware(device: torch.device, world_size: int) -> str:
    """A one-line description of what trained the run (``2x NVIDIA H100 ...``, ``cpu x86_64 (2 threads)``)."""
    name = device_name(device)
    if name is None:
        name = f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"
    return f"{world_size}x {name}"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock times mean something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepEndCallback(pl.Callback):
    """Calls :meth:`on_step_end` once per optimiser step (after its last micro-batch)."""

    def __init__(self) -> None:
        self._seen_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._seen_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self._seen_step:
            self._seen_step = trainer.global_step
            self.on_step_end(trainer, pl_module)

    def on_step_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError
