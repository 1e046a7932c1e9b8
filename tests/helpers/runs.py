"""Helpers shared by tests that train: tiny run configs and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A 2-layer, 64-wide model on a 512-token vocabulary: ~0.14M parameters, ~20 ms per step on one thread.
TINY_MODEL = ["model.n_layer=2", "model.d_model=64", "model.n_head=2", "model.vocab_size=512",
              "model.max_seq_len=64"]


def tiny_overrides(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """Overrides of a tiny CPU run: 64-token windows, 8 per batch (512 tokens per step), no W&B."""
    return [*TINY_MODEL, f"data.path={data}", f"run.dir={run_dir}", "train.seq_len=64",
            "train.micro_batch_size=8", "train.tokens=10240", "train.val_every_tokens=5120",
            "train.log_every_steps=1", "train.threads=1", "data.val_tokens=4096", "logging.wandb=disabled",
            "train.accelerator=cpu", *extra]


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m scaling ARGS`` in a subprocess (one torch thread) and return the finished process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "scaling", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
