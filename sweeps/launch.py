"""Planning and launching a whole sweep: the functions behind ``scaling sweep plan`` and ``run``."""

from __future__ import annotations

from pathlib import Path

from scaling.errors import ScalingError
from sweeps.execute import check_train_cmd
from sweeps.local import positive_count
from sweeps.locks import STALE_AFTER_S
from sweeps.plan import PlannedRun, plan_sweep
from sweeps.spec import MAX_RUNS, Spec, load_spec
from sweeps.store import SweepStore

LAUNCHERS = ("local", "slurm")


def default_dir(spec: Spec) -> Path:
    """Where a sweep's runs go when no ``--dir`` is given."""
    return Path("runs") / "sweeps" / spec.name


def plan(spec_path: str | Path, sweep_dir: str | Path | None = None, *, max_runs: int | None = MAX_RUNS,
         check_data: bool = False) -> tuple[Spec, Path, list[PlannedRun]]:
    """Read, check and expand a spec (refused above ``max_runs`` runs; data checked on ``check_data``); nothing is written."""
    spec = load_spec(spec_path, max_runs=max_runs)
    root = Path(sweep_dir) if sweep_dir else default_dir(spec)
    return spec, root, plan_sweep(spec, root, check_data=check_data)


def to_launch(store: SweepStore, runs: list[PlannedRun], retry_failed: bool) -> tuple[list[str], list[str]]:
    """Ids of the runs a launch should start (not finished, running or queued; failed only on retry),
    and the ids of failed runs it leaves alone."""
    from sweeps.status import sweep_status

    _, states = sweep_status(store.root)
    by_id = {s.run_id: s for s in states}
    ids, failed = [], []
    for r in runs:
        state = by_id[r.run_id].state
        if state in ("done", "diverged", "running", "queued"):
            continue
        if state == "failed":
            if not retry_failed:
                failed.append(r.run_id)
                continue
            store.reset_failed(r.run_id)
        ids.append(r.run_id)
    return ids, failed


def launch_line(name: str, total: int, ids: list[str], failed: list[str], launcher: str, root: Path) -> str:
    """What a launch says it does: how many runs are left alone and why, how many it starts."""
    skipped = total - len(ids) - len(failed)
    line = f"sweep {name}: {total} runs, {skipped} finished or in progress, "
    if failed:
        line += f"{len(failed)} failed (not relaunched; add --retry-failed to relaunch them), "
    return line + f"launching {len(ids)} ({launcher}) in {root}"


def run_sweep(spec_path: str | Path, sweep_dir: str | Path | None = None, *, launcher: str = "local",
              workers: int | None = None, threads: int | None = None, retry_failed: bool = False,
              slurm: dict | None = None, train_cmd: list[str] | None = None,
              stale_after_s: float = STALE_AFTER_S, max_runs: int | None = MAX_RUNS,
              check_data: bool | None = None, echo=print) -> tuple[Path, dict[str, str]]:
    """Plan a sweep, write its dir, and launch its unfinished runs.

    Returns the sweep dir and, per launched run, its outcome (local) or SLURM job id.

    Everything that can be wrong with the spec or the launcher is checked before anything starts;
    ``check_data`` (default: when the trainer is the default one, not a ``train_cmd`` such as a
    container that may see other paths) also checks each run's prepared data.
    """
    if launcher not in LAUNCHERS:
        raise ScalingError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    check_data = train_cmd is None if check_data is None else check_data
    spec, root, runs = plan(spec_path, sweep_dir, max_runs=max_runs)
    local = dict(spec.launcher.get("local") or {})
    unknown = [k for k in local if k not in ("workers", "threads")]
    if unknown:
        raise ScalingError(f"launcher.local: unknown key {unknown[0]!r}; valid keys: workers, threads")
    workers = positive_count("--workers", workers) or positive_count("launcher.local.workers", local.get("workers", 1))
    threads = positive_count("--threads", threads) or positive_count("launcher.local.threads", local.get("threads"))
    check_train_cmd(train_cmd)
    settings = None
    if launcher == "slurm":
        from sweeps.slurm import SlurmSettings, check_available

        settings = SlurmSettings.from_dict({**(spec.launcher.get("slurm") or {}), **(slurm or {})})
        check_available()  # after the spec's own checks: a spec error is reported first
    if check_data:
        from sweeps.plan_checks import check_run_data

        check_run_data(runs)
    if any(r.tree["logging"]["wandb"] == "online" for r in runs):
        from scaling.wandb_online import require_wandb_login

        require_wandb_login("online", "logging.wandb")  # else every run would fail on its own
    store = SweepStore(root)
    store.write_plan(spec.name, spec.raw, runs)
    ids, failed = to_launch(store, runs, retry_failed)
    echo(launch_line(spec.name, len(runs), ids, failed, launcher, store.root))
    if not ids:
        return store.root, {}
    if launcher == "slurm":
        from sweeps.slurm import submit

        jobs = submit(store, ids, settings, train_cmd, echo=echo)
        arrays = sorted({j.split("_")[0] for j in jobs.values()})
        echo(f"submitted {len(jobs)} runs as SLURM job array(s) {', '.join(arrays)}; "
             f"watch with `scaling sweep status {store.root}`")
        return store.root, jobs
    from sweeps.local import run_local

    return store.root, run_local(store.root, ids, workers=workers, threads=threads, train_cmd=train_cmd,
                                 retry_failed=False, stale_after_s=stale_after_s, echo=echo)

