"""Where a sweep stands: per-run state, progress and errors, and waiting until every run has ended."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

from scaling.errors import ScalingError
from sweeps.store import FINISHED, RunState, SweepStore

ENDED = (*FINISHED, "failed")  # states that will not change without a new launch


def sweep_status(sweep_dir: str | Path) -> tuple[dict, list[RunState]]:
    """The plan and the state of every planned run, in plan order."""
    store = SweepStore(sweep_dir)
    plan = store.plan()
    jobs = store.slurm_jobs()
    ids = [r["run_id"] for r in plan["runs"]]
    waiting = {rid: jobs[rid]["job_id"] for rid in ids if rid in jobs and not store.is_finished(rid)}
    job_state: dict[str, str] = {}
    if waiting and shutil.which("squeue"):
        from sweeps.slurm import job_states

        by_job = job_states(list(waiting.values()))
        job_state = {rid: by_job[jid] for rid, jid in waiting.items()}
    by_id: dict[str, RunState] = {}
    for run in plan["runs"]:
        rid = run["run_id"]
        st = store.state(rid, job_state.get(rid))
        st.job_id = jobs.get(rid, {}).get("job_id")
        trunk = by_id.get(run.get("depends_on") or "")
        if trunk is not None and trunk.state in ("failed", "diverged") and st.state in ("pending", "queued"):
            # A branch of a trunk that ended without its checkpoints can never start (on SLURM its
            # afterok dependency would keep it queued forever): it has failed too.
            st.state, st.error = "failed", f"its trunk {trunk.run_id} {trunk.state}; fix it, then --retry-failed"
        by_id[rid] = st
    return plan, list(by_id.values())


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _elapsed(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_status(name: str, states: list[RunState]) -> str:
    """Counts, then one row per run (what ``scaling sweep status`` prints)."""
    counts = Counter(s.state for s in states)
    order = ("done", "diverged", "failed", "running", "queued", "interrupted", "pending")
    lines = [f"sweep {name}: {len(states)} runs — " + ", ".join(f"{counts[k]} {k}" for k in order if counts[k])]
    rows = [("id", "state", "tokens", "loss", "elapsed", "job", "error")]
    for s in states:
        rows.append((s.run_id, s.state, _num(s.tokens, ".4g"), _num(s.loss, ".4f"), _elapsed(s.elapsed_s),
                     s.job_id or "-", (s.error or "")[-120:]))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6] for r in rows]
    return "\n".join(line.rstrip() for line in lines)


IDLE_GIVE_UP_S = 60.0  # wait_for stops when runs are left but none has been running or queued this long


def wait_for(sweep_dir: str | Path, poll_s: float = 10.0, timeout_s: float | None = None,
             idle_give_up_s: float = IDLE_GIVE_UP_S) -> list[RunState] | None:
    """Block until every run is done, diverged or failed; None when ``timeout_s`` passed first.

    Raises :class:`ScalingError` when runs are left but nothing has been running or queued for
    ``idle_give_up_s`` seconds: no launcher is working on them, so waiting longer cannot help.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    active_at = time.monotonic()
    while True:
        _, states = sweep_status(sweep_dir)
        if all(s.state in ENDED for s in states):
            return states
        now = time.monotonic()
        if any(s.state in ("running", "queued") for s in states):
            active_at = now
        elif now - active_at > idle_give_up_s:
            left = sum(s.state not in ENDED for s in states)
            raise ScalingError(f"{left} run(s) of {sweep_dir} are unfinished and none has been running or queued "
                               f"for {idle_give_up_s:.0f} s; launch them with `scaling sweep run SPEC --dir {sweep_dir}`")
        if deadline is not None and now > deadline:
            return None
        time.sleep(poll_s)
