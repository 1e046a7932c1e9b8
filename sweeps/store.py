"""The sweep dir: the resolved spec, the plan, one run dir per run, and what each run's state is.

Layout::

    SWEEP_DIR/sweep.yaml          the spec as given (plus its name)
    SWEEP_DIR/plan.json           the planned runs (ids, overrides, tags, params, tokens, FLOPs)
    SWEEP_DIR/slurm_jobs.json     run id -> SLURM job id of its latest submission (SLURM launcher)
    SWEEP_DIR/slurm/<stamp>/      submitit's folders, a fresh one per submission
    SWEEP_DIR/runs/<run id>/      launch.yaml (resolved config), attempts.jsonl, train.log, lock.json,
                                  and the trainer's config.yaml, metrics.jsonl, result.json, checkpoints/

A run is *finished* when its result.json says done or diverged; only the trainer writes that file,
atomically, at the end. Everything the launchers know is derived from these files, so any number of
launchers (and ``scaling sweep status``) can look at one sweep dir at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from data_pipelines.atomic import atomic_write_json, atomic_write_text
from scaling.errors import ScalingError
from scaling.training.run_files import read_jsonl
from sweeps.locks import STALE_AFTER_S, is_stale, read_lock, run_mutex

FINISHED = ("done", "diverged")
STOPPED = ("requeued", "interrupted")  # attempt outcomes of a run stopped from outside; it resumes
ATTEMPTS_FILE = "attempts.jsonl"
LAUNCH_FILE = "launch.yaml"
LOG_FILE = "train.log"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def is_damaged(path: Path) -> bool:
    """True when ``path`` exists but does not hold a JSON object (truncated, garbled)."""
    return path.exists() and not isinstance(read_json(path), dict)


def _stopped_from_outside(events: list[dict]) -> bool:
    """Whether the latest attempt event is an end that says the run was stopped from outside."""
    return bool(events) and events[-1].get("event") == "end" and events[-1].get("outcome") in STOPPED


def number(value) -> float | None:
    """``value`` as a float when it is a real number, else None (a string or null in a record)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def failure_reason(error: str) -> str:
    """A failed result's error in plain words: a run stopped by SIGTERM (``scancel``) was cancelled."""
    if error.split(":", 1)[0].strip() == "SIGTERMException":
        return "cancelled (SIGTERM); relaunch with --retry-failed (it resumes from its checkpoint)"
    return error


@dataclass
class RunState:
    """What is known about one run from its files (and, for SLURM, its job's state)."""

    run_id: str
    state: str  # done | diverged | failed | running | queued | interrupted | damaged | pending
    tokens: float | None = None  # last logged train/tokens
    loss: float | None = None  # last logged loss (val/loss if any, else train/loss)
    elapsed_s: float | None = None  # wall time of all attempts (result's wall_time_s when finished)
    error: str | None = None  # a short reason for failures
    attempts: int = 0
    job_id: str | None = None
    name: str | None = None  # the run's display name (``run.name``; W&B shows it)


class SweepStore:
    """Paths and file reads and writes of one sweep dir."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.runs_dir = self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # -- plan -----------------------------------------------------------------------------------
    def write_plan(self, name: str, raw_spec: dict, runs: list) -> None:
        """Write the spec, the plan and each run's launch.yaml (existing run dirs are kept)."""
        from scaling.config_loading import to_yaml

        atomic_write_text(
            self.root / "sweep.yaml", yaml.safe_dump({**raw_spec, "name": name}, sort_keys=False)
        )
        atomic_write_json(self.root / "plan.json", {"name": name, "runs": [r.to_json() for r in runs]})
        for r in runs:
            launch = self.run_dir(r.run_id) / LAUNCH_FILE
            if not launch.exists():
                atomic_write_text(launch, to_yaml(r.config))

    def plan(self) -> dict:
        """The written plan: ``{"name": ..., "runs": [...]}``."""
        path = self.root / "plan.json"
        plan = read_json(path)
        if isinstance(plan, dict) and isinstance(plan.get("runs"), list):
            return plan
        if path.exists():
            raise ScalingError(
                f"{path} is damaged (not a complete plan); re-run `scaling sweep run SPEC --out "
                f"{self.root}` with the sweep's spec to write it again (finished runs are kept)"
            )
        raise ScalingError(
            f"{self.root} is not a sweep dir (no plan.json); start one with `scaling sweep run SPEC`"
        )

    # -- per-run records --------------------------------------------------------------------------
    def result(self, run_id: str) -> dict | None:
        """The run's result.json, or None when it is missing or not a readable JSON object."""
        result = read_json(self.run_dir(run_id) / "result.json")
        return result if isinstance(result, dict) else None

    def is_finished(self, run_id: str) -> bool:
        result = self.result(run_id)
        return bool(result) and result.get("status") in FINISHED

    def attempts(self, run_id: str) -> list[dict]:
        """The start and end events of every launch of this run, oldest first."""
        return read_jsonl(self.run_dir(run_id) / ATTEMPTS_FILE)

    def record(self, run_id: str, event: dict) -> None:
        """Append one attempt event (callers hold the run's mutex)."""
        with open(self.run_dir(run_id) / ATTEMPTS_FILE, "a") as f:
            f.write(json.dumps({**event, "time": time.time()}) + "\n")

    def failure(self, run_id: str) -> str | None:
        """Why the run failed, or None when its latest attempt did not fail.

        A failed result.json written while the attempt was being stopped from outside (its end says
        requeued or interrupted) is no failure: when one rank of a multi-node job is killed first, rank 0
        sees its peer vanish and records the error before its own signal arrives. The run resumes.
        """
        result, events = self.result(run_id), self.attempts(run_id)
        if result and result.get("status") == "failed" and not _stopped_from_outside(events):
            return failure_reason(str(result.get("error") or "failed"))
        if events and events[-1].get("event") == "end" and events[-1].get("outcome") == "failed":
            return f"exit code {events[-1].get('exit_code')}: {self.log_tail(run_id)}"
        return None

    def set_aside_stopped_failure(self, run_id: str) -> None:
        """Before a new attempt (callers hold the run's mutex): a failed result.json left by an attempt that
        was stopped from outside (see :meth:`failure`) is kept as result.stopped-<n>.json, so the trainer
        resumes from its checkpoint."""
        result = self.result(run_id)
        if result and result.get("status") == "failed" and _stopped_from_outside(self.attempts(run_id)):
            self._keep_result_as(run_id, "stopped")

    def reset_failed(self, run_id: str) -> None:
        """Make a failed run launchable again: its failed result.json is kept as result.failed-<n>.json."""
        run_dir = self.run_dir(run_id)
        with run_mutex(run_dir):
            result = self.result(run_id)
            if result and result.get("status") == "failed":
                self._keep_result_as(run_id, "failed")
            self.record(run_id, {"event": "retry"})

    def _keep_result_as(self, run_id: str, kind: str) -> None:
        run_dir = self.run_dir(run_id)
        n = len(list(run_dir.glob(f"result.{kind}-*.json")))
        (run_dir / "result.json").rename(run_dir / f"result.{kind}-{n}.json")

    def log_tail(self, run_id: str, chars: int = 200) -> str:
        path = self.run_dir(run_id) / LOG_FILE
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        return (lines[-1] if lines else "")[-chars:]

    def slurm_jobs(self) -> dict[str, dict]:
        return read_json(self.root / "slurm_jobs.json") or {}

    def record_slurm_jobs(self, jobs: dict[str, dict]) -> None:
        with run_mutex(self.root):
            atomic_write_json(self.root / "slurm_jobs.json", {**self.slurm_jobs(), **jobs})

    # -- state ------------------------------------------------------------------------------------
    def _progress(self, run_id: str) -> tuple[float | None, float | None]:
        path = self.run_dir(run_id) / "metrics.jsonl"
        if not path.exists():
            return None, None
        tokens = loss = None
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            for line in f.read().decode(errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(row, dict):
                    continue
                tokens = number(row.get("train/tokens")) or tokens
                loss = number(row.get("val/loss", row.get("train/loss"))) or loss
        return tokens, loss

    def state(
        self, run_id: str, job_state: str | None = None, stale_after_s: float = STALE_AFTER_S
    ) -> RunState:
        """The run's state from its files; ``job_state`` is its SLURM job's state when it has one."""
        events = self.attempts(run_id)
        starts = [e for e in events if e.get("event") == "start"]
        elapsed = sum(float(e.get("elapsed_s", 0)) for e in events if e.get("event") == "end")
        tokens, loss = self._progress(run_id)
        st = RunState(run_id, "pending", tokens, loss, elapsed or None, attempts=len(starts))
        result = self.result(run_id)
        lock = read_lock(self.run_dir(run_id))
        if result and result.get("status") in FINISHED:
            st.state = result["status"]
            st.loss = number(result.get("final_val_loss")) if "final_val_loss" in result else st.loss
            st.tokens = number(result.get("tokens")) or st.tokens
            st.elapsed_s = number(result.get("wall_time_s")) or st.elapsed_s
            return st
        if lock and not is_stale(lock, stale_after_s):
            st.state = "running"
            st.elapsed_s = time.time() - float(lock.get("acquired", time.time()))
            return st
        failure = self.failure(run_id)
        if is_damaged(self.run_dir(run_id) / "result.json"):
            st.state = "damaged"
            st.error = (
                "result.json is unreadable (truncated?); the next `scaling sweep run` trains the run again"
            )
        elif failure:
            st.state, st.error = "failed", failure
        elif job_state in ("PENDING", "REQUEUED", "CONFIGURING", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING"):
            st.state = "queued"
        elif job_state in ("RUNNING", "COMPLETING", "SUSPENDED"):
            st.state = "running"  # started, lock not taken yet (or just released before requeue)
        elif job_state is not None:
            st.state, st.error = "failed", f"SLURM job {job_state.lower()} before the run finished"
        elif starts:
            st.state = "interrupted"
        return st
