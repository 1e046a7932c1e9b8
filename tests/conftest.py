"""Shared fixtures: one tiny prepared corpus per session, tiny run configs, hermetic W&B.

Tests run with one torch thread (two cores are shared with other test runs; FACTS.md) and W&B
writes only under a temp folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_WANDB_HOME = tempfile.mkdtemp(prefix="wandb-tests-")
for _var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
    os.environ[_var] = _WANDB_HOME
os.environ["WANDB_SILENT"] = "true"

REPO = Path(__file__).resolve().parents[1]

# A 2-layer, 64-wide model on a 512-token vocabulary: ~0.14M parameters, ~20 ms per step on one thread.
TINY_MODEL = ["model.n_layer=2", "model.d_model=64", "model.n_head=2", "model.vocab_size=512",
              "model.max_seq_len=64"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared dataset of ~0.3M tokens (vocab 512) from the standard library, made once per session."""
    from data_pipelines import prepare, stdlib_sources

    out = tmp_path_factory.mktemp("corpus") / "stdlib-tiny"
    prepare(stdlib_sources(max_bytes=600_000), out, vocab_size=512, workers=1, progress=False, val_fraction=0.1)
    return out


def tiny_overrides(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """Overrides of a tiny CPU run: 64-token windows, 8 per batch (512 tokens per step), no W&B."""
    return [*TINY_MODEL, f"data.path={data}", f"run.dir={run_dir}", "train.seq_len=64",
            "train.micro_batch_size=8", "train.tokens=10240", "train.val_every_tokens=5120",
            "train.log_every_steps=1", "train.threads=1", "data.val_tokens=4096", "logging.wandb=disabled",
            "train.accelerator=cpu", *extra]


@pytest.fixture
def tiny_cfg(tiny_corpus, tmp_path):
    """``tiny_cfg(*overrides, run_dir=...)`` → a loaded tiny run config (run dir under tmp_path)."""
    from scaling.config_loading import load_config

    def make(*extra: str, run_dir: Path | None = None):
        return load_config([], tiny_overrides(tiny_corpus, run_dir or tmp_path / "run", *extra))

    return make


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m scaling ARGS`` in a subprocess (one torch thread) and return the finished process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "scaling", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
