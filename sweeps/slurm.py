"""The SLURM launcher: submits a sweep's unfinished runs as job arrays through submitit.

Submission returns at once. Each array task runs :func:`sweeps.execute.execute_run` for one run,
so the same locks, attempt records and ``run.resume=auto`` apply as with the local launcher.
When SLURM signals a preemption or time-out (USR2, ``signal_delay_s`` before the end) submitit
requeues the task; the trainer, killed with the job, resumes from its last checkpoint in the next
attempt. submitit owns requeueing: nothing else in the job requeues.

A run of several ranks (``launcher.slurm.nodes`` × ``tasks_per_node``, or its own ``train.num_nodes``
× ``train.devices``) is one job of that many nodes and tasks. Its batch step alone runs
:func:`~sweeps.execute.execute_run` (one lock, one attempt record), which starts the trainer's ranks
with ``srun``; Lightning's SLURM environment gives each its global rank, and only global rank 0
writes the run's files. The batch step gets the USR2 signal (``--signal=B:USR2``) and requeues the
whole job: every rank is stopped with it, and all resume from the last checkpoint, same world size.

A cooldown branch is submitted with ``--dependency=afterok:<its trunk's job>`` when the trunk is
still to run, and ``--kill-on-invalid-dep=yes``: when the trunk fails SLURM cancels the branch jobs
rather than keeping them queued forever. Every submission gets a fresh submitit folder under
``SWEEP_DIR/slurm/`` because a
restarted SLURM may hand out the same job ids again, and submitit would read an old result.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from scaling.errors import ScalingError
from sweeps.store import SweepStore

Shape = tuple[int, int]  # (nodes, tasks per node) of one run's job

ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING")


@dataclass
class SlurmSettings:
    """Resources and submission options of every job of a sweep (``launcher.slurm`` in the spec)."""

    partition: str | None = None  # sbatch --partition
    account: str | None = None  # sbatch --account
    qos: str | None = None  # sbatch --qos
    gpus_per_node: int | None = None  # GPUs per node of a run
    nodes: int = 1  # nodes per run (the runs' train.num_nodes; a run that sets it itself keeps its own)
    tasks_per_node: int | None = None  # ranks per node (train.devices); None = gpus_per_node, else 1
    cpus_per_task: int = 1  # CPU cores per rank; also the trainer's train.threads
    mem_gb: float | None = None  # memory per node of a run in GB; None = the partition's default
    time_min: int = 60  # time limit per attempt in minutes; a time-out requeues and resumes
    max_concurrent: int = (
        64  # runs of the sweep at once: a new array's cap (--array=...%N) less its live jobs
    )
    max_requeues: int = 3  # time-outs a run may requeue after (preemptions do not count)
    signal_delay_s: int = 90  # USR2 this long before the time limit, so the job can requeue itself
    setup: list[str] = field(default_factory=list)  # shell lines run before the job (module load ...)
    additional: dict = field(default_factory=dict)  # other sbatch options, e.g. {constraint: a100}
    python: str | None = None  # python command of the jobs; None = this interpreter (same venv)

    @classmethod
    def from_dict(cls, values: dict) -> SlurmSettings:
        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                import difflib

                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; valid keys: {', '.join(names)}"
                raise ScalingError(f"launcher.slurm: unknown key {key!r}{hint}")
        for key in ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task"):
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ScalingError(f"launcher.slurm.{key}={value!r} is not a whole number of at least 1")
        return cls(**values)

    def ranks_per_node(self) -> int:
        """Tasks (ranks) per node: ``tasks_per_node``, else one per GPU, else one."""
        return self.tasks_per_node or self.gpus_per_node or 1


def job_overrides(settings: SlurmSettings) -> dict:
    """``train.num_nodes``/``train.devices`` the runs of a sweep get from ``launcher.slurm`` (none for one
    rank)."""
    nodes, tasks = settings.nodes, settings.ranks_per_node()
    return {} if nodes * tasks == 1 else {"train.num_nodes": nodes, "train.devices": tasks}


def run_shape(run_id: str, train, settings: SlurmSettings) -> Shape:
    """The job of one run, from its ``train.num_nodes`` and ``train.devices`` (``auto``: the launcher's
    tasks per node); a run that wants more ranks per node than its node has GPUs is refused in one line."""
    from scaling.config import parse_devices

    devices = parse_devices(train.devices)
    if devices == "auto":
        tasks = settings.ranks_per_node()
    elif isinstance(devices, list):
        tasks = len(devices)
    else:
        tasks = devices if devices > 0 else settings.ranks_per_node()  # -1: every device of the node
    if settings.gpus_per_node and tasks > settings.gpus_per_node:
        raise ScalingError(f"run {run_id}: {tasks} ranks per node (train.devices={train.devices}) but "
                           f"launcher.slurm.gpus_per_node={settings.gpus_per_node}; give each rank a GPU")
    return int(train.num_nodes), tasks


CONTROLLER_TIMEOUT_S = 15.0  # how long `sinfo` may take to reach the controller
_NO_SLURM_HINT = "use --launcher local, or start a one-machine test cluster with scripts/slurm_local.sh start"


def controller_problem() -> str:
    """Why the SLURM controller cannot be reached (``sinfo``'s first line of stderr), or "" when it
    answers."""
    timeout_s = CONTROLLER_TIMEOUT_S
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"`sinfo` got no answer in {timeout_s:g} s"
    except OSError as e:
        return f"`sinfo` did not start ({e.strerror or e})"
    if proc.returncode == 0 and proc.stdout.strip():
        return ""
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    if lines:
        return lines[0][:300]
    return f"`sinfo` exited with {proc.returncode}" if proc.returncode else "`sinfo` lists no nodes"


def check_available() -> None:
    """Refuse, in one line, when this machine cannot submit SLURM jobs (no tools, or no controller
    answers)."""
    missing = [tool for tool in ("sbatch", "srun", "squeue", "sinfo") if shutil.which(tool) is None]
    if missing:
        raise ScalingError(
            f"the slurm launcher is not available: no `{missing[0]}` on PATH; {_NO_SLURM_HINT}"
        )
    problem = controller_problem()
    if problem:
        raise ScalingError(
            f"no SLURM controller answers: {problem}; check SLURM_CONF and that slurmctld runs, "
            f"or {_NO_SLURM_HINT}"
        )


class SlurmRun:
    """The callable each array task runs (pickled by submitit; made checkpointable below)."""

    def __init__(self, train_cmd: list[str] | None, threads: int | None, shape: Shape = (1, 1)):
        self.train_cmd = train_cmd
        self.threads = threads
        self.shape = shape

    def trainer_command(self) -> list[str] | None:
        """The trainer; for several ranks, started once per task by ``srun`` across the job's nodes."""
        nodes, tasks = self.shape
        if nodes * tasks == 1:
            return self.train_cmd
        from sweeps.execute import train_command

        return ["srun", "--kill-on-bad-exit=1", f"--nodes={nodes}", f"--ntasks={nodes * tasks}",
                f"--ntasks-per-node={tasks}", f"--cpus-per-task={self.threads or 1}",
                *(self.train_cmd or train_command())]

    def __call__(self, sweep_dir: str, run_id: str) -> str:
        from sweeps.execute import execute_run

        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID", "?")
        outcome = execute_run(sweep_dir, run_id, train_cmd=self.trainer_command(), threads=self.threads,
                              launcher=f"slurm:{job}")
        if outcome == "failed":  # a failed job keeps `afterok` dependants (cooldown branches) from starting
            raise RuntimeError(f"run {run_id} failed; see {Path(sweep_dir) / 'runs' / run_id / 'train.log'}")
        return outcome

    def checkpoint(self, sweep_dir: str, run_id: str):
        """Called by submitit on preemption or time-out: requeue the same run (it resumes from its
        checkpoint)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, sweep_dir, run_id)


def sbatch_params(settings: SlurmSettings, name: str, dependency: str | None = None,
                  cap: int | None = None, shape: Shape = (1, 1)) -> dict:
    """submitit's SlurmExecutor parameters for a sweep's jobs of one shape (nodes, tasks per node);
    ``cap``: the array's concurrency (default ``max_concurrent``)."""
    params = {"job_name": f"sweep-{name}", "time": settings.time_min, "cpus_per_task": settings.cpus_per_task,
              "array_parallelism": cap or settings.max_concurrent, "signal_delay_s": settings.signal_delay_s,
              "setup": list(settings.setup), "additional_parameters": dict(settings.additional),
              "stderr_to_stdout": True, "dependency": dependency}
    for key in ("partition", "account", "qos", "gpus_per_node"):
        params[key] = getattr(settings, key)
    if settings.mem_gb is not None:
        params["mem"] = f"{int(settings.mem_gb * 1024)}M"
    if dependency is not None:  # SLURM cancels the job when its trunk fails, instead of holding it forever
        params["additional_parameters"].setdefault("kill_on_invalid_dep", "yes")
    nodes, tasks = shape
    if nodes * tasks > 1:  # the batch step runs the launcher once; it starts the ranks with srun
        params.update(nodes=nodes, ntasks_per_node=tasks, use_srun=False)
        params["additional_parameters"].setdefault("signal", f"B:USR2@{settings.signal_delay_s}")
    return {k: v for k, v in params.items() if v is not None}


def _executor(folder: Path, settings: SlurmSettings, name: str, dependency: str | None, cap: int,
              shape: Shape):
    import submitit

    python = settings.python or shlex.quote(sys.executable)
    if shape[0] * shape[1] > 1:  # the batch shell becomes python, so the USR2 sent to it reaches submitit
        python = f"exec {python}"
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=settings.max_requeues, python=python)
    executor.update_parameters(**sbatch_params(settings, name, dependency, cap, shape))
    return executor


def live_jobs(store: SweepStore, excluding: list[str]) -> int:
    """How many of the sweep's earlier SLURM jobs (runs not in ``excluding``) are still queued or running."""
    jobs = store.slurm_jobs()
    ids = [j["job_id"] for rid, j in jobs.items() if rid not in excluding and not store.is_finished(rid)]
    return sum(state in ACTIVE for state in job_states(ids).values())


def array_cap(max_concurrent: int, live: int) -> int:
    """A new array's concurrency so that the sweep stays within ``max_concurrent`` runs at once.

    SLURM caps each array on its own, so the new one gets what its earlier arrays leave (at least 1,
    and the cap stays fixed while those earlier jobs end).
    """
    return max(1, max_concurrent - live)


def submit(store: SweepStore, run_ids: list[str], settings: SlurmSettings,
           train_cmd: list[str] | None = None, shapes: dict[str, Shape] | None = None,
           echo=print) -> dict[str, str]:
    """Submit ``run_ids`` as job arrays; returns run id -> SLURM job id (``<array>_<task>``).

    ``shapes`` gives a run's (nodes, tasks per node) (see :func:`run_shape`); one node, one task otherwise.
    """
    check_available()
    deps = {r["run_id"]: r.get("depends_on") for r in store.plan()["runs"]}
    known = store.slurm_jobs()
    live = live_jobs(store, run_ids)
    cap = array_cap(settings.max_concurrent, live)
    if live:
        echo(f"warning: {live} job(s) of this sweep are still queued or running; the new array runs at most "
             f"{cap} at once (max_concurrent={settings.max_concurrent} counts the whole sweep)")
    folder = store.root / "slurm" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    submitted: dict[str, str] = {}
    # one array per job shape for the runs that can start now, then per trunk for branches waiting on it
    groups: dict[tuple[str | None, Shape], list[str]] = {}
    for rid in run_ids:
        dep = deps.get(rid)
        wait_for = dep if dep and not store.is_finished(dep) and (dep in run_ids or dep in known) else None
        groups.setdefault((wait_for, (shapes or {}).get(rid, (1, 1))), []).append(rid)
    for (wait_for, shape), ids in sorted(groups.items(), key=lambda kv: (kv[0][0] is not None, kv[0][1])):
        dependency = None
        if wait_for is not None:
            trunk_job = submitted.get(wait_for) or known[wait_for]["job_id"]
            dependency = f"afterok:{trunk_job}"
        executor = _executor(folder, settings, store.plan()["name"], dependency, cap, shape)
        job = SlurmRun(train_cmd, settings.cpus_per_task, shape)
        with executor.batch():
            jobs = [executor.submit(job, str(store.root), rid) for rid in ids]
        submitted.update({rid: j.job_id for rid, j in zip(ids, jobs, strict=True)})
    now = time.time()
    store.record_slurm_jobs({rid: {"job_id": jid, "folder": str(folder), "submitted": now}
                             for rid, jid in submitted.items()})
    for rid, jid in submitted.items():
        with open(store.run_dir(rid) / "attempts.jsonl", "a") as f:
            f.write(f'{{"event": "submitted", "job_id": "{jid}", "time": {now}}}\n')
    return submitted


def _expand(job_id: str) -> list[str]:
    """``12_[1-3,5%2]`` → ``12_1 12_2 12_3 12_5``; other ids unchanged."""
    m = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _query(cmd: list[str]) -> dict[str, str] | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        for jid in _expand(job_id):
            states[jid] = state.split()[0] if state.split() else "UNKNOWN"
    return states


def job_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM state of each job id: from sacct when accounting is on, else from squeue; GONE if neither
    knows it."""
    if not job_ids:
        return {}
    states: dict[str, str] = {}
    if shutil.which("sacct"):
        states = _query(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)]) or {}
    if shutil.which("squeue"):
        queue = _query(["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T"]) or {}
        states = {**states, **queue}  # the controller's view is the most recent one
    return {jid: states.get(jid, "GONE") for jid in job_ids}

