"""Trainers forked from a process that has already imported them, for sweeps of short runs.

Starting ``python -m scaling train`` spends seconds importing Lightning, torch and W&B before the
first step, which dominates runs of under a minute on a CPU. With ``preload`` the local launcher
starts one multiprocessing *forkserver* that imports the trainer once; every run is then a fresh
process forked from it. Each run still gets its own process (its own W&B run, torch state and
environment), its own session (so the launcher can kill its whole group), its output in the run
dir's log, and exits with the code ``scaling train`` would have returned. It watches the launcher
and kills its own process group when the launcher is gone (a forkserver that has imported torch
does not exit while its children run), so a killed launcher leaves no orphan training.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

# imported once by the forkserver: everything `scaling train` imports before its first step and at its
# end; W&B imports its launch API in `wandb.init` (~2.5 s, pydantic models) and pandas, when installed,
# when it writes the summary (~1 s), which a trainer forked without them would pay on every run (the
# forkserver skips a module that is not installed)
PRELOAD = ["scaling.cli.main", "scaling.training.train", "lightning.pytorch", "torch", "wandb",
           "wandb.sdk.launch", "pandas"]
WATCH_EVERY_S = 1.0  # how often a forked trainer checks that its launcher still runs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_launcher(pid: int) -> None:
    while _alive(pid):
        time.sleep(WATCH_EVERY_S)
    os.killpg(0, signal.SIGKILL)  # this trainer and what it started (W&B's service)


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _train_child(args: list[str], log_path: str, env: dict[str, str], launcher: int) -> None:
    """The body of one forked trainer: a new session that dies with ``launcher``, output to the run log,
    then ``scaling train``."""
    os.setsid()
    threading.Thread(target=_watch_launcher, args=(launcher,), name="watch-launcher", daemon=True).start()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the forkserver
    os.environ.update(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from scaling.cli.main import main

    code = main(["train", *args])
    # W&B's own exit hook waits for its service to write the run's file, but a multiprocessing child
    # exits without running exit hooks: a run's offline file could be cut short when the service stops
    import wandb

    wandb.teardown(exit_code=code)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


class ForkedTrainer:
    """One trainer forked from the preloaded forkserver; ``pid`` and ``wait()`` as on ``subprocess.Popen``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]):
        self.process = _context().Process(
            target=_train_child,
            args=(list(args), str(log_path), dict(env), os.getpid()),
            name="scaling-train",
        )
        self.process.start()
        self.pid = self.process.pid

    def wait(self) -> int:
        """Wait for the trainer to end; its exit code (negative: the signal that killed it)."""
        self.process.join()
        return self.process.exitcode
