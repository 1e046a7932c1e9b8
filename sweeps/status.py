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
        st.name = run.get("name")
        trunk = by_id.get(run.get("depends_on") or "")
        if trunk is not None and trunk.state in ("failed", "diverged") and st.state in ("pending", "queued"):
            # A branch of a trunk that ended without its checkpoints can never start (on SLURM its
            # afterok dependency would keep it queued forever): it has failed too.
            st.state, st.error = (
                "failed",
                f"its trunk {trunk.run_id} {trunk.state}; fix it, then --retry-failed",
            )
        by_id[rid] = st
    return plan, list(by_id.values())


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _elapsed(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


STATE_ORDER = ("done", "diverged", "failed", "damaged", "running", "queued", "interrupted", "pending")
_COLUMNS = ("id", "name", "state", "tokens", "loss", "elapsed", "job", "error")


def counts_line(states: list[RunState]) -> str:
    """``3 done, 1 failed, 2 pending``: how many runs are in each state, in a fixed order."""
    counts = Counter(s.state for s in states)
    return ", ".join(f"{counts[k]} {k}" for k in STATE_ORDER if counts[k])


def _rows(states: list[RunState]) -> list[tuple[str, ...]]:
    return [
        (
            s.run_id,
            s.name or "-",
            s.state,
            _num(s.tokens, ".4g"),
            _num(s.loss, ".4f"),
            _elapsed(s.elapsed_s),
            s.job_id or "-",
            (s.error or "")[-120:],
        )
        for s in states
    ]


def format_status(name: str, states: list[RunState]) -> str:
    """Counts, then one row per run, as plain text (what ``scaling sweep status`` prints to a pipe or
    file)."""
    lines = [f"sweep {name}: {len(states)} runs — {counts_line(states)}"]
    rows = [_COLUMNS, *_rows(states)]
    last = len(_COLUMNS) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(r[:last], widths, strict=True)) + "  " + r[last] for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


_STYLES = {"done": "green", "diverged": "yellow", "failed": "red", "damaged": "red", "running": "cyan",
           "queued": "blue", "interrupted": "magenta"}


def print_status(name: str, states: list[RunState], file=None) -> None:
    """Print the status: a rich table on a terminal, :func:`format_status`'s plain text anywhere else."""
    import sys

    file = file or sys.stdout
    if not file.isatty():
        print(format_status(name, states), file=file)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sweep {name}: {len(states)} runs — {counts_line(states)}", title_justify="left")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", justify="right" if column in ("tokens", "loss") else "left")
    for row in _rows(states):
        style = _STYLES.get(row[2])
        table.add_row(*row[:2], f"[{style}]{row[2]}[/]" if style else row[2], *row[3:])
    Console(file=file).print(table)


IDLE_GIVE_UP_S = 60.0  # wait_for stops when runs are left but none has been running or queued this long


def done_fraction(plan: dict, states: list[RunState]) -> float:
    """The share of the sweep's planned tokens trained so far (an ended run counts in full)."""
    planned = {r["run_id"]: float(r.get("tokens") or 0) for r in plan["runs"]}
    total = sum(planned.values())
    if total <= 0:
        return sum(s.state in ENDED for s in states) / max(1, len(states))
    trained = sum(
        planned[s.run_id] if s.state in ENDED else min(planned[s.run_id], s.tokens or 0.0) for s in states
    )
    return trained / total


class ProgressReporter:
    """Turns successive sweep states into one line every ``every_s`` seconds: counts, share done, ETA."""

    def __init__(self, every_s: float, echo, clock=time.monotonic):
        self.every_s, self.echo, self.clock = every_s, echo, clock
        self.start = self.last = clock()
        self.first: float | None = None  # done fraction at the start

    def line(self, plan: dict, states: list[RunState]) -> str:
        """``2 done, 1 running, 3 pending; 41% of tokens; ETA 0:03:10`` (ETA from the rate since the
        start)."""
        frac = done_fraction(plan, states)
        if self.first is None:
            self.first = frac
        elapsed = self.clock() - self.start
        eta = ""
        if frac > self.first and elapsed > 0:
            eta = f"; ETA {_elapsed(elapsed * (1 - frac) / (frac - self.first))}"
        return f"{counts_line(states)}; {100 * frac:.0f}% of tokens{eta} ({_elapsed(elapsed)} waited)"

    def __call__(self, plan: dict, states: list[RunState]) -> None:
        line = self.line(plan, states)  # also records the starting fraction on the first call
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self.echo(line)


def wait_for(sweep_dir: str | Path, poll_s: float = 10.0, timeout_s: float | None = None,
             idle_give_up_s: float = IDLE_GIVE_UP_S, on_poll=None) -> list[RunState] | None:
    """Block until every run is done, diverged or failed; None when ``timeout_s`` passed first.

    ``on_poll(plan, states)`` is called after every check (e.g. a :class:`ProgressReporter`).
    Raises :class:`ScalingError` when runs are left but nothing has been running or queued for
    ``idle_give_up_s`` seconds: no launcher is working on them, so waiting longer cannot help.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    active_at = time.monotonic()
    while True:
        plan, states = sweep_status(sweep_dir)
        if all(s.state in ENDED for s in states):
            return states
        if on_poll is not None:
            on_poll(plan, states)
        now = time.monotonic()
        if any(s.state in ("running", "queued") for s in states):
            active_at = now
        elif now - active_at > idle_give_up_s:
            left = sum(s.state not in ENDED for s in states)
            raise ScalingError(
                f"{left} run(s) of {sweep_dir} are unfinished and none has been running or queued "
                f"for {idle_give_up_s:.0f} s; launch them with `scaling sweep run SPEC --out {sweep_dir}`"
            )
        if deadline is not None and now > deadline:
            return None
        time.sleep(poll_s)
