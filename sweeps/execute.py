"""Executing one run of a sweep: take its lock, run the trainer in a subprocess, record the attempt.

Both launchers call :func:`execute_run` (the local one in a thread per worker, the SLURM one inside
the job). The trainer is ``python -m scaling train`` with ``run.resume=auto``, so a run that was
killed continues from its last checkpoint and a finished one is never trained again. The command
is a parameter so tests can put a small stand-in trainer in its place; with ``preload`` the same
trainer is forked from a process that has imported it already (:mod:`sweeps.preloaded`).

The trainer runs in its own session (Ctrl-C on the launcher does not reach it; the launcher kills it
with :func:`kill_all` instead, at once, and it resumes next time) and dies with the
launcher thread that started it (``PR_SET_PDEATHSIG`` on Linux), so a SIGKILLed launcher leaves no
orphan training behind and its stale lock is reclaimed by the next launcher.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from scaling.errors import EXIT_DIVERGED, EXIT_STOPPED, ScalingError
from sweeps.locks import (
    STALE_AFTER_S,
    Heartbeat,
    is_stale,
    new_owner,
    read_lock,
    release,
    run_mutex,
    write_lock,
)
from sweeps.store import LAUNCH_FILE, LOG_FILE, SweepStore

_LIVE: set = set()  # trainers started by this process, for kill_all()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set by kill_all(): a trainer started after it is killed at once

try:
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec: keep it tiny
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def train_command() -> list[str]:
    """The trainer, run with this interpreter (so SLURM jobs use the same virtual environment)."""
    return [sys.executable, "-m", "scaling", "train"]


def check_train_cmd(train_cmd: list[str] | None) -> None:
    """Refuse, in one line, a trainer command whose program is not an executable file or on PATH."""
    if not train_cmd or shutil.which(train_cmd[0]) is not None:
        return
    where = "is not an executable file" if os.sep in train_cmd[0] else "is not found on PATH"
    raise ScalingError(f"train command: {train_cmd[0]!r} {where}; give a program that exists (e.g. "
                       f"--train-cmd '{sys.executable} -m scaling train')")


def train_args(store: SweepStore, entry: dict, group: str, threads: int | None) -> list[str]:
    """Arguments after the train command for one planned run."""
    run_dir = store.run_dir(entry["run_id"])
    args = ["--config", str(run_dir / LAUNCH_FILE), f"run.dir={run_dir}", "run.resume=auto",
            f"logging.group={group}", f"logging.tags={json.dumps(entry.get('tags', []))}"]
    if threads:
        args.append(f"train.threads={threads}")
    return args


def _outcome(store: SweepStore, run_id: str, code: int) -> str:
    result = store.result(run_id) or {}
    if code < 0 or code == EXIT_STOPPED:
        return "interrupted"  # killed or stopped by a signal: preemption, scancel, a SIGKILL; resumable
    if code == 0 and result.get("status") == "done":
        return "done"
    if code == EXIT_DIVERGED or result.get("status") == "diverged":
        return "diverged"
    return "failed"


def execute_run(sweep_dir: str | Path, run_id: str, *, train_cmd: list[str] | None = None,
                threads: int | None = None, env: dict[str, str] | None = None, launcher: str = "local",
                retry_failed: bool = False, heartbeat: Heartbeat | None = None,
                stale_after_s: float = STALE_AFTER_S, preload: bool = False) -> str:
    """Run one planned run to its end unless it is finished, failed, running elsewhere or blocked.

    ``preload`` forks the built-in trainer from a preloaded process instead of starting
    ``train_cmd`` (see :mod:`sweeps.preloaded`).

    Returns what happened: done | diverged | failed | interrupted (this attempt; ``requeued`` is
    recorded when submitit requeues the job), or
    finished | skipped-failed | busy | blocked (nothing was started).
    """
    store = SweepStore(sweep_dir)
    plan = store.plan()
    entry = next(r for r in plan["runs"] if r["run_id"] == run_id)
    if entry.get("depends_on") and not store.is_finished(entry["depends_on"]):
        return "blocked"
    if retry_failed and store.failure(run_id):
        store.reset_failed(run_id)
    run_dir = store.run_dir(run_id)
    with run_mutex(run_dir):
        if store.is_finished(run_id):
            return "finished"
        store.set_aside_stopped_failure(run_id)
        if store.failure(run_id):
            return "skipped-failed"
        lock = read_lock(run_dir)
        if lock and not is_stale(lock, stale_after_s):
            return "busy"
        owner = new_owner(launcher)
        write_lock(run_dir, owner)
        attempt = sum(e.get("event") == "start" for e in store.attempts(run_id)) + 1
        store.record(run_id, {"event": "start", "attempt": attempt, "host": owner["host"],
                              "pid": owner["pid"], "launcher": launcher})
    prune_empty_wandb_runs(run_dir)  # left by an attempt killed with its job (e.g. scancel), before it logged
    own_heartbeat = heartbeat is None
    heartbeat = heartbeat or Heartbeat()
    heartbeat.add(run_dir, owner)
    args = train_args(store, entry, plan["name"], threads)
    cmd = ["(preloaded)", "scaling", "train", *args] if preload else [*(train_cmd or train_command()), *args]
    extra_env = dict(env or {})
    if threads and "OMP_NUM_THREADS" not in os.environ:
        extra_env.setdefault("OMP_NUM_THREADS", str(threads))
    started = time.time()
    outcome, code = "interrupted", None
    try:
        with open(run_dir / LOG_FILE, "ab") as log:
            log.write(f"\n== attempt {attempt} by {launcher} on {owner['host']}: {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                if preload:
                    from sweeps.preloaded import ForkedTrainer

                    proc = ForkedTrainer(args, run_dir / LOG_FILE, extra_env)
                else:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **extra_env}, start_new_session=True,
                                            preexec_fn=_die_with_parent)
            except OSError as e:  # the trainer cannot start here (missing on this node, not executable)
                log.write(f"cannot start the trainer: {e}\n".encode())
                outcome = "failed"
                return outcome
        with _LIVE_LOCK:
            _LIVE.add(proc)
            if _STOPPING.is_set():  # Ctrl-C came while this trainer was starting
                _kill_group(proc, wait=False)
        try:
            code = proc.wait()
        except SystemExit:  # submitit requeued the job (preemption or time-out) and exits
            outcome = "requeued"
            _kill_group(proc)
            raise
        except BaseException:  # Ctrl-C
            _kill_group(proc)
            raise
        finally:
            _LIVE.discard(proc)
        outcome = _outcome(store, run_id, code)
    finally:
        # a stopped attempt may have started W&B without logging; one that ended by itself finished its
        # W&B run, whose file W&B's service may still be writing
        if outcome in ("interrupted", "requeued"):
            prune_empty_wandb_runs(run_dir)
        heartbeat.remove(run_dir)
        if own_heartbeat:
            heartbeat.stop()
        with run_mutex(run_dir):
            store.record(run_id, {"event": "end", "attempt": attempt, "outcome": outcome, "exit_code": code,
                                  "elapsed_s": round(time.time() - started, 3), "launcher": launcher})
        release(run_dir, owner)
    return outcome


def kill_all() -> int:
    """SIGKILL every trainer this process started, and any it starts from now until :func:`allow_starts`
    (they resume from their checkpoints next time); returns how many were running."""
    with _LIVE_LOCK:
        _STOPPING.set()
        live = list(_LIVE)
    for proc in live:
        _kill_group(proc, wait=False)
    return len(live)


def allow_starts() -> None:
    """Let trainers run again after :func:`kill_all` (a launcher calls it when it starts)."""
    _STOPPING.clear()


WANDB_HEADER_BYTES = 7  # a .wandb file this small holds the header and no record


def prune_empty_wandb_runs(run_dir: Path) -> list[Path]:
    """Remove the offline W&B folders of attempts that logged nothing (a run killed while W&B started),
    so ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads only attempts with data; returns what it removed."""
    removed = []
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        files = list(folder.glob("*.wandb"))
        if files and all(f.stat().st_size <= WANDB_HEADER_BYTES for f in files):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _kill_group(proc, wait: bool = True) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # not yet the leader of its own group (a forked trainer before setsid)
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if wait:
        proc.wait()
