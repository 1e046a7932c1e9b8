"""``LanguageModel``: the LightningModule around :class:`scaling.model.Transformer`.

It owns the forward/backward, the optimiser (AdamW groups from :mod:`scaling.training.optim`), the
LR schedule (:mod:`scaling.training.schedules`, over :meth:`LanguageModel.total_steps` steps: the
Trainer's ``max_steps`` when set, else ``train.tokens`` over the global batch; a resume that would
change that length is refused), gradient clipping with the pre-clip norm kept for
logging, and the validation loss. Everything else a run does (metrics files, throughput, divergence,
checkpoints) lives in callbacks, so ``training_step`` stays short and the module drops into any
``lightning.Trainer``. Batches are int64 token windows of shape (batch, seq_len + 1).
"""

from __future__ import annotations

import contextlib
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from scaling.config import Config
from scaling.errors import ScalingError
from scaling.model import build_model
from scaling.training.optim import build_optimizer, clip_gradients
from scaling.training.schedules import DecaySchedule, Schedule


def as_config(cfg) -> DictConfig:
    """A typed config from a :class:`~scaling.config.Config`, a dict or a DictConfig."""
    if isinstance(cfg, DictConfig):
        return cfg
    return OmegaConf.merge(OmegaConf.structured(Config), cfg)


def attention_kernel(setting: str):
    """A context restricting ``scaled_dot_product_attention`` to ``train.attention``'s kernel
    (``auto``: no restriction, PyTorch picks per call)."""
    if setting == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[setting]
    return sdpa_kernel(backend)


def check_attention_kernel(setting: str, device_type: str, precision: str, device_index: int = 0) -> None:
    """Refuse in one line a ``train.attention`` kernel this device and precision do not have
    (e.g. ``efficient`` on a CPU, ``flash`` in fp32 on a GPU), by trying it on a tiny input on
    CUDA device ``device_index`` (or the CPU)."""
    if setting == "auto":
        return
    dtype = next((d for prefix, d in (("bf16", torch.bfloat16), ("16", torch.float16), ("64", torch.float64))
                  if precision.startswith(prefix)), torch.float32)
    device = f"cuda:{device_index}" if device_type in ("gpu", "cuda") else "cpu"
    q = torch.zeros(1, 1, 8, 64, dtype=dtype, device=device)
    try:
        with attention_kernel(setting):
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
    except RuntimeError:
        raise ScalingError(f"train.attention={setting} has no kernel for {precision} on this {device_type}; "
                           "use train.attention=auto (or math)") from None


def resolve_compile(setting: str, device_type: str) -> bool:
    """``train.compile``: ``auto`` compiles on CUDA only."""
    setting = str(setting).lower()
    return device_type == "cuda" if setting == "auto" else setting == "true"


class LanguageModel(pl.LightningModule):
    """A decoder-only LM trained with AdamW and the configured LR schedule.

    ``cfg`` is the whole run config (the model, optim, schedule and train groups are used).
    ``branch`` makes the LR schedule a cooldown: ``(start_step, start_lr)`` from a trunk checkpoint.
    ``log_to_loggers`` sends ``train/loss`` and ``val/loss``/``val/bpb`` through ``self.log`` for a
    user's own loggers; :func:`scaling.train` turns it off because its metrics callback writes them.
    """

    def __init__(self, cfg, branch: tuple[int, float] | None = None, log_to_loggers: bool = True):
        super().__init__()
        self.cfg = as_config(cfg)
        self.save_hyperparameters({"config": OmegaConf.to_container(self.cfg, resolve=True)})
        self.model = build_model(self.cfg.model)
        self.branch = branch
        self.log_to_loggers = log_to_loggers
        self.last_grad_norm: torch.Tensor | None = None  # pre-clip global norm of the last step
        self.last_lr: float | None = None  # LR the last optimiser step used (first param group)
        self.last_loss: torch.Tensor | None = None  # mean train loss of the last optimiser step
        self._micro_losses: list[torch.Tensor] = []
        self._compiled = None
        self._schedule = None  # built with the optimiser, once the Trainer is known
        self._val_sum = self._val_count = None

    # --- forward -----------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        with attention_kernel(self.cfg.train.attention):
            return self._model_call()(idx, targets)

    def _model_call(self):
        # The compiled wrapper is kept out of the module tree so state_dict keys stay plain.
        if self._compiled is None:
            call = self.model
            if resolve_compile(self.cfg.train.compile, self.device.type):
                call = torch.compile(self.model)
            object.__setattr__(self, "_compiled", call)  # not a registered submodule
        return self._compiled

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        _, loss = self(batch[:, :-1], batch[:, 1:])
        self._micro_losses.append(loss.detach())
        if self.log_to_loggers:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    # --- validation: an exact token-weighted mean over the fixed subset, across ranks ----------
    def _eval_names(self) -> list[str]:
        """Named evaluation sets of the data module (its validation dataloaders after the default one)."""
        return list(getattr(self.trainer.datamodule, "eval_names", None) or [])

    def on_validation_epoch_start(self) -> None:
        n = 1 + len(self._eval_names())  # the default set, then each named set
        self._val_sum = torch.zeros(n, dtype=torch.float64, device=self.device)
        self._val_count = torch.zeros(n, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: torch.Tensor, batch_idx: int, dataloader_idx: int = 0) -> None:
        logits, _ = self(batch[:, :-1])
        targets = batch[:, 1:]
        # Plain cross-entropy (no z-loss), so val loss is comparable across z-loss settings.
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
        )
        self._val_sum[dataloader_idx] += loss.double()
        self._val_count[dataloader_idx] += targets.numel()

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(self._val_sum, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._val_count, reduce_op="sum")
        losses = (total / count.clamp(min=1)).tolist()
        self.val_loss = float(losses[0])
        self.val_losses = dict(
            zip(self._eval_names(), map(float, losses[1:]), strict=True)
        )  # val/<name>/loss
        if self.log_to_loggers and not self.trainer.sanity_checking:
            self.log("val/loss", self.val_loss, sync_dist=False, rank_zero_only=True)
            bpb = val_bpb(self.val_loss, getattr(self.trainer.datamodule, "val_tokens_per_byte", None))
            if bpb is not None:
                self.log("val/bpb", bpb, sync_dist=False, rank_zero_only=True)
            for name, value in self.val_losses.items():
                self.log(f"val/{name}/loss", value, sync_dist=False, rank_zero_only=True)

    # --- optimisation --------------------------------------------------------------------------
    def total_steps(self) -> int:
        """Optimiser steps the LR schedule spans: the Trainer's ``max_steps`` when it has one, else
        ``train.tokens`` over the global batch (micro-batch × seq_len × accumulation × world size)."""
        if self.trainer.max_steps and self.trainer.max_steps > 0:
            return int(self.trainer.max_steps)
        train = self.cfg.train
        per_step = (train.micro_batch_size * train.seq_len * self.trainer.accumulate_grad_batches
                    * self.trainer.world_size)
        return max(1, math.ceil(train.tokens / per_step))

    def lr_schedule(self):
        """The LR factor (of ``optim.lr``) as a function of the 0-based optimiser step."""
        if self.branch is not None:
            start_step, start_lr = self.branch
            return DecaySchedule(start_step=start_step, total_steps=self.total_steps(),
                                 start_factor=start_lr / self.cfg.optim.lr,
                                 final_lr_fraction=self.cfg.schedule.final_lr_fraction,
                                 decay_shape=self.cfg.schedule.decay_shape)
        return Schedule.from_config(self.cfg.schedule, self.total_steps())

    def configure_optimizers(self):
        # No LR scheduler object: optimizer_step sets each step's LR from the step count, so a
        # checkpoint holds no schedule state and a resume or a cooldown branch follows this run's
        # own schedule from the step it starts at.
        self._schedule = self.lr_schedule()
        return build_optimizer(self.model, self.cfg.optim, self.device)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        if self._schedule is None:
            self._schedule = self.lr_schedule()
        lr = self.cfg.optim.lr * self._schedule(self.global_step)
        for group in optimizer.param_groups:  # µP gives each group a multiplier of the peak LR
            group["lr"] = lr * group.get("lr_mult", 1.0)
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)  # runs the last micro-batch
        # The step is complete: its loss is the mean over its micro-batches, for the callbacks.
        self.last_loss = torch.stack(self._micro_losses).mean()
        self._micro_losses.clear()
        self.last_lr = lr

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Clip to optim.grad_clip (the Trainer's own gradient_clip_val is not used) and keep the
        # pre-clip norm: one pass over the gradients gives both.
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        # The Trainer's wrapped model (the FSDP root under strategy=fsdp), else the plain model.
        wrapped = self.trainer.model if self.trainer.model is not None else self.model
        self.last_grad_norm = clip_gradients(wrapped, max_norm)

    # --- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from scaling.config_loading import run_id

        checkpoint.setdefault("scaling", {}).update(
            run_id=run_id(self.cfg), model=OmegaConf.to_container(self.cfg.model, resolve=True),
            schedule_steps=self.total_steps(), branch=list(self.branch) if self.branch is not None else None,
            strategy=self.cfg.train.strategy,
            next_lr=self.cfg.optim.lr * self.lr_schedule()(self.global_step))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from scaling.config_loading import run_id

        meta = checkpoint.get("scaling", {})
        if "state_dict" in checkpoint:  # a sharded checkpoint's strategy has loaded (and checked) its shards
            check_shapes(checkpoint["state_dict"], self.state_dict(), meta.get("model"))
        other_run = meta.get("run_id") != run_id(self.cfg)
        if other_run:
            # Another run's checkpoint (a cooldown branch of a trunk): take its weights, optimiser,
            # data stream and RNG, but start this run's own metrics summary.
            checkpoint.pop("callbacks", None)
        if other_run and self.branch is not None:
            return  # a branch decays on its own schedule from the trunk's step
        saved_steps = meta.get("schedule_steps")
        if saved_steps is not None and saved_steps != self.total_steps():
            raise ScalingError(
                f"the checkpoint's LR schedule spans {saved_steps} steps but this run's spans "
                f"{self.total_steps()} (train.tokens over the global batch, or the Trainer's max_steps); "
                "resume with the same length")

def check_shapes(saved: dict, expected: dict, saved_model: dict | None = None) -> None:
    """Raise a one-line :class:`ScalingError` when a checkpoint's tensors do not fit this model."""
    for key, tensor in expected.items():
        other = saved.get(key)
        if other is None or tuple(other.shape) != tuple(tensor.shape):
            found = "missing" if other is None else f"shape {tuple(other.shape)}"
            shape = ""
            if saved_model:
                shape = " (checkpoint model: " + ", ".join(
                    f"{k}={saved_model.get(k)}" for k in ("n_layer", "d_model", "n_head", "vocab_size")) + ")"
            raise ScalingError(
                f"checkpoint does not fit this model: {key} is {found} in the checkpoint, "
                f"{tuple(tensor.shape)} here{shape}; use the same model config or another run.dir"
            )
    extra = sorted(set(saved) - set(expected))
    if extra:
        raise ScalingError(f"checkpoint does not fit this model: it has {extra[0]} which this model lacks; "
                           "use the same model config or another run.dir")


def val_bpb(val_loss: float | None, tokens_per_byte: float | None) -> float | None:
    """Bits per byte: val loss (nats per token) × tokens per byte / ln 2; None when unknown."""
    if val_loss is None or tokens_per_byte is None:
        return None
    return val_loss * tokens_per_byte / math.log(2)
