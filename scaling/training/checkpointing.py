"""``TokenCheckpoints``: resumable checkpoints by token count, with RNG state, written atomically.

``checkpoints/last.ckpt`` is rewritten every ``every_tokens`` training tokens and at the end; a
``tokens-<N>.ckpt`` is kept the first time training reaches each of ``at_tokens`` (the branch
points of cooldowns). A checkpoint holds what an exact resume needs: model, optimiser, scheduler,
loop counters (Lightning), the data streams of every rank (:class:`TokenDataModule`), the
callbacks' state and the RNG states of every rank (here). Nothing is saved after a divergence.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from scaling.errors import ScalingError
from scaling.training.callbacks_common import StepEndCallback, batch_tokens, gather_from_ranks
from scaling.training.run_files import (
    LAST_CHECKPOINT,
    checkpoint_dir,
    token_checkpoint_name,
    token_checkpoints,
)


def rng_state() -> dict:
    """Every random generator a training step may draw from, on this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TokenCheckpoints(StepEndCallback):
    """Saves ``last.ckpt`` every ``every_tokens`` tokens and at the end, and ``tokens-<N>.ckpt`` at ``at_tokens``.

    ``skip_if`` (a :class:`DivergenceMonitor`) suppresses saving once the run has diverged.
    """

    def __init__(self, run_dir: str | Path, every_tokens: float, at_tokens=(), skip_if=None):
        super().__init__()
        self.dir = checkpoint_dir(run_dir)
        self.every_tokens, self.at_tokens = float(every_tokens), sorted(float(t) for t in at_tokens)
        self.skip_if = skip_if
        self._pending_rng: dict | None = None

    def on_step_end(self, trainer, pl_module) -> None:
        if self.skip_if is not None and self.skip_if.diverged:
            return
        per_step = batch_tokens(trainer, pl_module)
        tokens = trainer.global_step * per_step
        previous = tokens - per_step
        keep = [t for t in self.at_tokens if previous < t <= tokens]
        crossed_interval = int(tokens // self.every_tokens) > int(previous // self.every_tokens)
        last_step = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if keep or crossed_interval or last_step:
            self.save(trainer, self.dir / LAST_CHECKPOINT)
            for target in keep:
                if trainer.is_global_zero:
                    tmp = self.dir / f".{token_checkpoint_name(target)}.tmp"
                    shutil.copyfile(self.dir / LAST_CHECKPOINT, tmp)
                    os.replace(tmp, self.dir / token_checkpoint_name(target))

    def save(self, trainer, path: Path) -> None:
        """Save a full checkpoint to ``path`` atomically (temp file, then rename on rank 0)."""
        tmp = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # all ranks take part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, path)
        trainer.strategy.barrier("TokenCheckpoints.save")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["rng_states"] = gather_from_ranks(rng_state())
        checkpoint.setdefault("scaling", {}).update(
            step=trainer.global_step, tokens=trainer.global_step * batch_tokens(trainer, pl_module),
            batch_tokens=batch_tokens(trainer, pl_module))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            self._pending_rng = states[trainer.global_rank] if len(states) > trainer.global_rank else states[0]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Restored right before the first step after a resume, when nothing else will draw first.
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None


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
