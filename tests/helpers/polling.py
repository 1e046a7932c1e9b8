"""Waiting for a real cluster in tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time


def quiet(*_) -> None:
    """An ``echo`` that prints nothing."""


def wait_until(predicate, timeout: float = 120.0, what: str = "condition", poll_s: float = 0.25) -> None:
    """Poll ``predicate`` every ``poll_s`` seconds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(poll_s)
