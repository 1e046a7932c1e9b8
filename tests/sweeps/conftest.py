"""Fixtures for the sweep tests: a scripted stand-in trainer and spec files in a temp dir."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

FAKE_TRAIN = Path(__file__).with_name("fake_train.py")


@pytest.fixture
def tiny() -> str:
    """Base overrides of a tiny run (YAML flow list) for specs."""
    return "[model=s100k, model.vocab_size=512, train.seq_len=64, train.micro_batch_size=4, train.tokens=2e5]"


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """The stand-in trainer's command; its start/finish log is ``fake_train.log_path``."""
    log = tmp_path / "fake_train.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    monkeypatch.setenv("FAKE_STEP_S", "0.02")

    class Fake(list):
        log_path = log

        def events(self) -> list[tuple[str, str, int]]:
            if not log.exists():
                return []
            return [
                (e, rid, int(step)) for e, rid, step, _ in (ln.split() for ln in log.read_text().splitlines())
            ]

        def count(self, event: str) -> Counter:
            return Counter(rid for e, rid, _ in self.events() if e == event)

    return Fake([sys.executable, str(FAKE_TRAIN)])


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec YAML into the temp dir and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def real_spec(tiny_corpus, write_spec):
    """``real_spec(body, **extra)`` writes a spec of tiny real runs (the session's tiny corpus, 1 thread)."""

    def make(
        body: str, extra: str = "", name: str = "spec.yaml", wandb: str = "disabled", tokens: int = 10240
    ) -> Path:
        overrides = (
            "[model.n_layer=2, model.d_model=64, model.n_head=2, model.vocab_size=512, model.max_seq_len=64, "
            f"data.path={tiny_corpus}, train.seq_len=64, train.micro_batch_size=8, train.tokens={tokens}, "
            "train.val_every_tokens=5120, train.log_every_steps=1, data.val_tokens=4096, "
            f"train.accelerator=cpu, logging.wandb={wandb}{extra}]"
        )
        return write_spec(f"overrides: {overrides}\n{body}", name)

    return make


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``fake_slurm(sinfo)`` puts stand-in SLURM tools first on PATH: ``sinfo`` runs the given shell lines,
    ``sbatch``, ``srun`` and ``squeue`` append their name to ``calls.log`` in the tools' dir and exit 1."""
    import os

    tools = tmp_path / "fake-slurm"

    def make(sinfo: str = "exit 1") -> Path:
        tools.mkdir(exist_ok=True)
        for tool in ("sbatch", "srun", "squeue"):
            (tools / tool).write_text(f"#!/bin/sh\necho {tool} >> '{tools}/calls.log'\nexit 1\n")
        (tools / "sinfo").write_text(f"#!/bin/sh\n{sinfo}\n")
        for tool in ("sbatch", "srun", "squeue", "sinfo"):
            (tools / tool).chmod(0o755)
        monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
        return tools

    return make


def _slurm_conf() -> str | None:
    import os

    conf = (
        os.environ.get("SLURM_CONF") or f"{os.environ.get('SLURM_LOCAL_DIR', '/tmp/slurm-local')}/slurm.conf"
    )
    return conf if Path(conf).is_file() else None


@pytest.fixture
def slurm_cluster(monkeypatch):
    """A reachable SLURM cluster (scripts/slurm_local.sh start), or the test is skipped."""
    import os
    import shutil

    skip = pytest.fail if os.environ.get("SWEEPS_REQUIRE_SLURM") else pytest.skip  # .ci/run starts a cluster
    conf = _slurm_conf()
    if conf is None or shutil.which("sbatch") is None:
        skip("no SLURM cluster: run scripts/slurm_local.sh start")
    monkeypatch.setenv("SLURM_CONF", conf)
    if conf not in _REACHABLE:  # asked once per session: an unreachable controller takes seconds to say so
        from sweeps.slurm import controller_problem

        _REACHABLE[conf] = controller_problem()
    if _REACHABLE[conf]:
        skip(f"SLURM cluster not reachable: {_REACHABLE[conf]}")
    return conf


_REACHABLE: dict[str, str] = {}  # slurm.conf -> "" when reachable, else why not
