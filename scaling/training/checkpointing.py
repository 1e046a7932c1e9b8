"""``TokenCheckpoints``: resumable checkpoints by token count, with RNG state, written atomically.

``checkpoints/last.ckpt`` is rewritten every ``every_tokens`` training tokens and at the end; a
``tokens-<N>.ckpt`` is kept the first time training reaches each of ``at_tokens`` (the branch
points of cooldowns); the ``last.ckpt`` it replaces stays as ``previous.ckpt``, so a damaged last
checkpoint (a disk filled up, a copy cut short) still leaves one to resume from. A checkpoint holds what
an exact resume needs: model, optimiser, scheduler, loop counters (Lightning), the data streams of every
rank (:class:`TokenDataModule`), the callbacks' state and the RNG states of every rank (here). Nothing is
saved after a divergence.

Under a sharded strategy (fsdp, deepspeed) a checkpoint is a folder of the same name in which each rank
writes its own shard; everything but the model and optimiser tensors is also written beside the shards
as ``scaling-meta.pt`` (last, by rank 0), so its step, tokens, schedule, RNG and data-stream states are
read without gathering the model, and a folder without it counts as damaged.

Every value in a checkpoint is a tensor or a plain Python value (RNG states included), so
:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``: a file from elsewhere
cannot run code when it is read, it is refused.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from scaling.errors import ScalingError
from scaling.training.callbacks_common import StepEndCallback, batch_tokens, gather_from_ranks
from scaling.training.run_files import (
    CHECKPOINT_META,
    LAST_CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    checkpoint_dir,
    token_checkpoint_name,
    token_checkpoints,
)


class DamagedCheckpoint(ScalingError):
    """A checkpoint file that cannot be read as one (truncated, empty, not a torch file)."""


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, read without running any code from the file.

    A file holding other objects than tensors and plain values is refused with a one-line
    :class:`ScalingError`; an unreadable one raises :class:`DamagedCheckpoint`. For a sharded checkpoint
    (a folder) this is its ``scaling-meta.pt``: everything but the model and optimiser tensors.
    """
    source = Path(path) / CHECKPOINT_META if Path(path).is_dir() else path
    try:
        return torch.load(source, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Unsupported global" not in str(e):
            raise DamagedCheckpoint(f"checkpoint {path} is damaged ({_first_line(e)})") from None
        raise ScalingError(f"refusing checkpoint {path}: it holds objects other than tensors and plain "
                           "values (loading it could run code); use a checkpoint written by "
                           "scaling train") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise DamagedCheckpoint(f"checkpoint {path} is damaged ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def resume_checkpoint(run_dir: str | Path) -> tuple[Path, dict] | None:
    """The checkpoint a ``run.resume=auto`` continues from and its contents, None without one.

    ``last.ckpt`` first; when it is damaged, ``previous.ckpt`` with a one-line notice on stderr.
    Both damaged (or only a damaged one): a one-line :class:`ScalingError` saying how to restart.
    """
    folder = checkpoint_dir(run_dir)
    names = (LAST_CHECKPOINT, PREVIOUS_CHECKPOINT)
    candidates = [folder / name for name in names if (folder / name).exists()]
    damage = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except DamagedCheckpoint as e:
            damage.append(str(e))
            continue
        if damage:
            step = int(ckpt["global_step"])
            print(f"notice: {damage[0]}; resuming from {path} (step {step})", file=sys.stderr)
        return path, ckpt
    if damage:
        raise ScalingError(f"{'; '.join(damage)}; nothing to resume from: run again with --overwrite "
                           "(or train(..., overwrite=True)) to start the run from the beginning")
    return None


def rng_state() -> dict:
    """Every random generator a training step may draw from, on this process, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["kind"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TokenCheckpoints(StepEndCallback):
    """Saves ``last.ckpt`` every ``every_tokens`` tokens and at the end, and ``tokens-<N>.ckpt`` at
    ``at_tokens``.

    ``skip_if`` (a :class:`DivergenceMonitor`) suppresses saving once the run has diverged: it is asked
    (:meth:`DivergenceMonitor.diverged_now`) only on the steps that would save.
    """

    def __init__(self, run_dir: str | Path, every_tokens: float, at_tokens=(), skip_if=None):
        super().__init__()
        self.dir = checkpoint_dir(run_dir)
        self.every_tokens, self.at_tokens = float(every_tokens), sorted(float(t) for t in at_tokens)
        self.skip_if = skip_if
        self._pending_rng: dict | None = None
        self._saved: dict | None = None  # the checkpoint being saved, for a sharded one's scaling-meta.pt

    def on_step_end(self, trainer, pl_module) -> None:
        per_step = batch_tokens(trainer, pl_module)
        tokens = trainer.global_step * per_step
        previous = tokens - per_step
        keep = [t for t in self.at_tokens if previous < t <= tokens]
        crossed_interval = int(tokens // self.every_tokens) > int(previous // self.every_tokens)
        last_step = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if not (keep or crossed_interval or last_step):
            return
        if self.skip_if is not None and self.skip_if.diverged_now(trainer):
            return  # weights of a diverged run are not worth keeping
        self.save(trainer, self.dir / LAST_CHECKPOINT)
        for target in keep:
            if trainer.is_global_zero:
                tmp = self.dir / f".{token_checkpoint_name(target)}.tmp"
                copy_checkpoint(self.dir / LAST_CHECKPOINT, tmp)
                replace_checkpoint(tmp, self.dir / token_checkpoint_name(target))

    def save(self, trainer, path: Path) -> None:
        """Save a full checkpoint to ``path`` atomically (temp file or folder, then rename on rank 0); a
        ``last.ckpt`` it replaces becomes ``previous.ckpt``."""
        tmp = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # all ranks take part (and wait for each other)
        if trainer.is_global_zero:
            if tmp.is_dir():  # sharded: the plain values beside the shards, written last
                torch.save(plain_values(self._saved), tmp / CHECKPOINT_META)
            if path.name == LAST_CHECKPOINT and path.exists():
                replace_checkpoint(path, path.with_name(PREVIOUS_CHECKPOINT))
            replace_checkpoint(tmp, path)
        self._saved = None
        trainer.strategy.barrier("TokenCheckpoints.save")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._saved = checkpoint  # the LightningModule's own values are added after this hook
        checkpoint["rng_states"] = gather_from_ranks(rng_state())
        checkpoint.setdefault("scaling", {}).update(
            step=trainer.global_step, tokens=trainer.global_step * batch_tokens(trainer, pl_module),
            batch_tokens=batch_tokens(trainer, pl_module))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            self._pending_rng = (
                states[trainer.global_rank] if len(states) > trainer.global_rank else states[0]
            )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Restored right before the first step after a resume, when nothing else will draw first.
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None


def plain_values(checkpoint: dict) -> dict:
    """A checkpoint without its model and optimiser tensors (what a sharded checkpoint's shards hold)."""
    return {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer_states")}


def replace_checkpoint(src: Path, dst: Path) -> None:
    """Rename checkpoint ``src`` (a file, or a sharded folder) to ``dst``, replacing what is there."""
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)  # a folder cannot be renamed over another one
    elif src.is_dir():
        dst.unlink(missing_ok=True)
    os.replace(src, dst)


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Copy checkpoint ``src`` (a file, or a sharded folder) to ``dst``, replacing what is there."""
    if not src.is_dir():
        shutil.copyfile(src, dst)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)  # left by a copy cut short
    shutil.copytree(src, dst)


def check_strategy_reads(path: Path, checkpoint: dict, strategy: str) -> None:
    """Refuse in one line a checkpoint that ``train.strategy=strategy`` cannot load: a sharded one
    (a folder) only under the strategy that wrote it, and a deepspeed run only from a deepspeed one."""
    written = checkpoint.get("scaling", {}).get("strategy")
    if Path(path).is_dir() and written != strategy:
        raise ScalingError(f"checkpoint {path} is sharded by train.strategy={written}; load it with "
                           f"train.strategy={written}, not {strategy}")
    if not Path(path).is_dir() and strategy.startswith("deepspeed"):
        raise ScalingError(f"checkpoint {path} is one file; train.strategy={strategy} loads only its own "
                           "sharded checkpoints (use train.strategy=fsdp or ddp to start from it)")


def branch_checkpoint(parent_dir: str | Path, tokens: float) -> Path:
    """The parent run's checkpoint kept at ``tokens``; a one-line error listing the available ones."""
    parent_dir = Path(parent_dir)
    if not parent_dir.is_dir():
        raise ScalingError(f"run.branch_from {str(parent_dir)!r} is not a run dir")
    available = token_checkpoints(parent_dir)
    path = available.get(int(round(tokens)))
    if path is None:
        listing = ", ".join(f"{t:g}" for t in sorted(available)) or "none"
        raise ScalingError(
            f"run {str(parent_dir)!r} has no checkpoint at {tokens:g} tokens (available: {listing}); "
            "set train.checkpoint_at_tokens in the parent run to keep one")
    return path
