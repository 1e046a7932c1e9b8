"""The local launcher: runs a sweep's unfinished runs in subprocesses on this machine.

``workers`` runs go at once. With GPUs each worker gets one through ``CUDA_VISIBLE_DEVICES``
(round-robin when there are more workers than GPUs); the CPU threads are divided among workers.
With several workers the runs start longest first (:func:`expected_cost`): started in plan order, a
sweep whose long runs come last leaves one worker idle at its end while the other finishes them.
A cooldown branch starts only after its trunk has finished. Several launchers may work on one
sweep dir at once: each run's lock makes sure only one of them trains it. With ``preload`` the
trainers are forked from one process that imported them once (:mod:`sweeps.preloaded`), which saves
seconds of start-up per run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

from scaling.errors import ScalingError
from sweeps.execute import allow_starts, execute_run, kill_all
from sweeps.locks import STALE_AFTER_S, Heartbeat
from sweeps.store import SweepStore

_NOT_STARTED = ("finished", "skipped-failed", "busy", "blocked")
# Work per trained token beyond the model's FLOPs, in FLOPs: data, the optimizer step, Python per step.
# On a 2-core CPU a 4k-86k-parameter model's run takes the time of its FLOPs plus ~8e5 FLOPs per token;
# a large model's own FLOPs per token (6N) dwarf it. Only the order of runs depends on it.
PER_TOKEN_OVERHEAD_FLOPS = 1e6


def visible_gpus() -> list[str]:
    """GPU indices this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def positive_count(name: str, value: object) -> int | None:
    """``value`` when it is None or a whole number >= 1; anything else is a one-line error naming ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ScalingError(f"{name}={value!r} must be a whole number >= 1")
    return value


def worker_slots(workers: int, threads: int | None = None) -> list[tuple[dict[str, str], int]]:
    """Per worker: extra environment (its GPU) and its CPU thread count."""
    gpus = visible_gpus()
    per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
    return [
        ({"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if gpus else {}, per_worker) for i in range(workers)
    ]


@contextmanager
def ctrl_c_as_flag() -> Iterator[threading.Event]:
    """Within the block, Ctrl-C (SIGINT) only sets the event it yields, for the caller to act on at a
    point of its choosing. A KeyboardInterrupt raised wherever the main thread happens to be can land
    inside a ``with lock:`` of ``concurrent.futures`` between the acquire and the block, leaving a
    future's lock held: the worker that finishes that future then waits on it forever, and so does the
    pool's shutdown. Outside the main thread (where no handler can be set) the event never sets and
    Ctrl-C acts as before; an ignored SIGINT (a job a shell started in the background) stays ignored."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
            signal.SIG_IGN, None):
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def expected_cost(run: dict) -> float:
    """A planned run's training time up to a constant factor (plan.json entry): its FLOPs plus
    :data:`PER_TOKEN_OVERHEAD_FLOPS` per token it trains itself (a branch not its trunk's)."""
    start = (run.get("overrides") or {}).get("run.branch_at_tokens") or 0
    own_tokens = max(float(run.get("tokens") or 0) - float(start), 0.0)
    return float(run.get("flops") or 0) + PER_TOKEN_OVERHEAD_FLOPS * own_tokens


def longest_first(run_ids: list[str], plan_runs: list[dict]) -> list[str]:
    """``run_ids`` by :func:`expected_cost`, longest first (ties in the given order). A trunk, which
    trains longer than any branch of it, still comes first."""
    cost = {r["run_id"]: expected_cost(r) for r in plan_runs}
    return sorted(run_ids, key=lambda rid: -cost.get(rid, 0.0))


def run_local(sweep_dir: str | Path, run_ids: list[str], *, workers: int = 1, threads: int | None = None,
              train_cmd: list[str] | None = None, retry_failed: bool = False,
              stale_after_s: float = STALE_AFTER_S, poll_s: float = 0.5, preload: bool = False,
              echo=print) -> dict[str, str]:
    """Run ``run_ids`` (a trunk before its branches; with several workers longest first); returns run id
    -> outcome."""
    positive_count("workers", workers)
    positive_count("threads", threads)
    store = SweepStore(sweep_dir)
    plan_runs = store.plan()["runs"]
    deps = {r["run_id"]: r.get("depends_on") for r in plan_runs}
    todo = longest_first(list(run_ids), plan_runs) if workers > 1 else list(run_ids)
    free = list(enumerate(worker_slots(workers, threads)))
    running: dict[Future, tuple[str, tuple]] = {}
    outcomes: dict[str, str] = {}
    heartbeat = Heartbeat()
    allow_starts()
    # Not a `with` block: its exit would wait for the running trainers before an interrupt could kill them.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep-worker")
    with ctrl_c_as_flag() as interrupted:
        try:
            while todo or running:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                for rid in list(todo):
                    if not free:
                        break
                    dep = deps.get(rid)
                    if dep and not store.is_finished(dep):
                        if dep in todo or any(r == dep for r, _ in running.values()):
                            continue  # its trunk is ours and still to come
                        if store.state(dep, stale_after_s=stale_after_s).state == "running":
                            continue  # its trunk is being trained by another launcher
                        todo.remove(rid)
                        outcomes[rid] = "blocked"
                        echo(f"{rid}: blocked (its trunk {dep} did not finish)")
                        continue
                    slot = free.pop(0)
                    env, n_threads = slot[1]
                    todo.remove(rid)
                    future = pool.submit(execute_run, store.root, rid, train_cmd=train_cmd, threads=n_threads,
                                         env=env, launcher="local", retry_failed=retry_failed,
                                         heartbeat=heartbeat, stale_after_s=stale_after_s, preload=preload)
                    running[future] = (rid, slot)
                if not running:
                    if todo:
                        interrupted.wait(poll_s)  # only waiting on other launchers' trunks
                    continue
                finished, _ = wait(list(running), timeout=poll_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    rid, slot = running.pop(future)
                    free.append(slot)
                    outcomes[rid] = future.result()
                    if outcomes[rid] not in _NOT_STARTED or outcomes[rid] == "busy":
                        echo(f"{rid}: {outcomes[rid]}")
        except BaseException:  # Ctrl-C: stop the trainers now (they resume next time), let the threads end
            kill_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            heartbeat.stop()
    return outcomes
