"""Run locks: who is running a run right now, with a heartbeat, reclaimed when the owner is gone.

A lock is ``lock.json`` in the run dir: owner host, pid, the pid's start time (so a recycled pid is
not mistaken for the owner), a random token, and a heartbeat time the owner refreshes every few
seconds. Taking or dropping a lock happens inside a short ``flock`` on ``.mutex`` in the run dir,
so two launchers that look at the same run at the same moment cannot both take it. A lock is stale
when its owner is on this host and its process is gone, or, for an owner on another host (a SLURM
node), when its heartbeat is older than ``stale_after_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from data_pipelines.atomic import atomic_write_json

LOCK_FILE = "lock.json"
MUTEX_FILE = ".mutex"
HEARTBEAT_S = 5.0  # how often an owner refreshes its lock
STALE_AFTER_S = 120.0  # a remote owner silent this long is presumed dead


@contextlib.contextmanager
def run_mutex(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the run dir's mutex file (a short critical section)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / MUTEX_FILE, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def read_lock(run_dir: Path) -> dict | None:
    """The lock's content, or None when there is no (readable) lock."""
    try:
        return json.loads((run_dir / LOCK_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_stale(lock: dict, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> bool:
    """Whether a lock's owner is gone (see the module docstring)."""
    if lock.get("host") == socket.gethostname():
        started = _process_start(int(lock.get("pid", -1)))
        return started is None or abs(started - float(lock.get("pid_start", 0))) > 1.0
    return (now or time.time()) - float(lock.get("heartbeat", 0)) > stale_after_s


def new_owner(launcher: str) -> dict:
    """Lock content for this process."""
    pid = os.getpid()
    now = time.time()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid), "launcher": launcher,
            "token": uuid.uuid4().hex, "acquired": now, "heartbeat": now}


def write_lock(run_dir: Path, owner: dict) -> None:
    """Write the lock (call inside :func:`run_mutex` after checking there is no live lock)."""
    atomic_write_json(run_dir / LOCK_FILE, owner)


def release(run_dir: Path, owner: dict) -> None:
    """Remove the lock if it is still ours."""
    with run_mutex(run_dir):
        lock = read_lock(run_dir)
        if lock and lock.get("token") == owner["token"]:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of every lock this process holds."""

    def __init__(self, interval_s: float = HEARTBEAT_S):
        self.interval_s = interval_s
        self._held: dict[Path, dict] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep-heartbeat", daemon=True)
        self._thread.start()

    def add(self, run_dir: Path, owner: dict) -> None:
        with self._guard:
            self._held[run_dir] = owner

    def remove(self, run_dir: Path) -> None:
        with self._guard:
            self._held.pop(run_dir, None)

    def beat(self) -> None:
        """Refresh every held lock now (only where the lock is still ours)."""
        with self._guard:
            held = list(self._held.items())
        for run_dir, owner in held:
            with run_mutex(run_dir):
                lock = read_lock(run_dir)
                if lock and lock.get("token") == owner["token"]:
                    owner["heartbeat"] = time.time()
                    write_lock(run_dir, owner)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
