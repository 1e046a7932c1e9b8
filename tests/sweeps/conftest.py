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
            return [(e, rid, int(step)) for e, rid, step, _ in (ln.split() for ln in log.read_text().splitlines())]

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
