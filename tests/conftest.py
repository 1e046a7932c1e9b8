"""Shared fixtures: one tiny prepared corpus per session, tiny run configs, hermetic W&B.

Tests run with one torch thread (the cores are shared with other test runs, and OpenMP spin-waits
slow every thread when they are) and W&B writes only under a temp folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers.runs import tiny_overrides

_WANDB_HOME = tempfile.mkdtemp(prefix="wandb-tests-")
for _var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
    os.environ[_var] = _WANDB_HOME
os.environ["WANDB_SILENT"] = "true"


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared dataset of ~0.3M tokens (vocab 512) from the standard library, made once per session."""
    from data_pipelines import prepare, stdlib_sources

    out = tmp_path_factory.mktemp("corpus") / "stdlib-tiny"
    prepare(
        stdlib_sources(max_bytes=600_000), out, vocab_size=512, workers=1, progress=False, val_fraction=0.1
    )
    return out


@pytest.fixture
def tiny_cfg(tiny_corpus, tmp_path):
    """``tiny_cfg(*overrides, run_dir=...)`` → a loaded tiny run config (run dir under tmp_path)."""
    from scaling.config_loading import load_config

    def make(*extra: str, run_dir: Path | None = None):
        return load_config([], tiny_overrides(tiny_corpus, run_dir or tmp_path / "run", *extra))

    return make
