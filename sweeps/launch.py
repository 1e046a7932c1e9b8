"""Planning and launching a whole sweep: the functions behind ``scaling sweep plan`` and ``run``."""

from __future__ import annotations

from pathlib import Path

from scaling.errors import ScalingError
from sweeps.execute import check_train_cmd
from sweeps.local import positive_count
from sweeps.locks import STALE_AFTER_S
from sweeps.plan import PlannedRun, plan_sweep
from sweeps.spec import MAX_RUNS, Spec, load_spec, parse_spec
from sweeps.store import SweepStore

LAUNCHERS = ("local", "slurm")


def default_dir(spec: Spec) -> Path:
    """Where a sweep's runs go when no ``--dir`` is given."""
    return Path("runs") / "sweeps" / spec.name


def config_spec(config: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """A sweep of one run: a run config file (e.g. a fit's ``large_run.yaml``) and dotlist overrides,
    named after the file."""
    path = Path(config)
    if not path.is_file():
        raise ScalingError(
            f"run config {str(path)!r} not found; give the YAML file `scaling fit` or you wrote"
        )
    return parse_spec(
        {"name": path.stem, "base": [path.name], "overrides": list(overrides)},
        source=str(path),
        base_dir=path.parent,
    )


def _spec(spec: str | Path | Spec, max_runs: int | None) -> Spec:
    return spec if isinstance(spec, Spec) else load_spec(spec, max_runs=max_runs)


def plan(
    spec_path: str | Path | Spec,
    sweep_dir: str | Path | None = None,
    *,
    max_runs: int | None = MAX_RUNS,
    check_data: bool = False,
) -> tuple[Spec, Path, list[PlannedRun]]:
    """Read, check and expand a spec (a file, or a :class:`Spec` such as :func:`config_spec`'s; refused above
    ``max_runs`` runs; data checked on ``check_data``); nothing is written."""
    spec = _spec(spec_path, max_runs)
    root = Path(sweep_dir) if sweep_dir else default_dir(spec)
    return spec, root, plan_sweep(spec, root, check_data=check_data)


def with_job_shape(spec: Spec, settings) -> Spec:
    """The spec with ``launcher.slurm``'s nodes and tasks per node as the runs' ``train.num_nodes`` and
    ``train.devices``; a grid or other part that sets them keeps its own values (a sweep may mix shapes)."""
    from dataclasses import replace

    from sweeps.slurm import job_overrides

    shape = job_overrides(settings)
    for key, value in shape.items():
        if key in spec.overrides and str(spec.overrides[key]) != str(value):
            raise ScalingError(
                f"the spec's overrides set {key}={spec.overrides[key]} but launcher.slurm asks for "
                f"{value} ({'nodes' if key == 'train.num_nodes' else 'tasks_per_node'}); "
                "keep one of them"
            )
    return replace(spec, overrides={**shape, **spec.overrides}) if shape else spec


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


def run_sweep(spec_path: str | Path | Spec, sweep_dir: str | Path | None = None, *, launcher: str = "local",
              workers: int | None = None, threads: int | None = None, retry_failed: bool = False,
              slurm: dict | None = None, train_cmd: list[str] | None = None,
              stale_after_s: float = STALE_AFTER_S, max_runs: int | None = MAX_RUNS,
              check_data: bool | None = None, preload: bool | None = None,
              echo=print) -> tuple[Path, dict[str, str]]:
    """Plan a sweep, write its dir, and launch its unfinished runs.

    Returns the sweep dir and, per launched run, its outcome (local) or SLURM job id.

    Everything that can be wrong with the spec or the launcher is checked before anything starts;
    ``check_data`` (default: when the trainer is the default one, not a ``train_cmd`` such as a
    container that may see other paths) also checks each run's prepared data. ``preload`` (default:
    the spec's ``launcher.local.preload``, else off) forks local trainers from a preloaded process.
    """
    if launcher not in LAUNCHERS:
        raise ScalingError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    check_data = train_cmd is None if check_data is None else check_data
    spec = _spec(spec_path, max_runs)
    root = Path(sweep_dir) if sweep_dir else default_dir(spec)
    local = dict(spec.launcher.get("local") or {})
    unknown = [k for k in local if k not in ("workers", "threads", "preload")]
    if unknown:
        raise ScalingError(f"launcher.local: unknown key {unknown[0]!r}; "
                           "valid keys: workers, threads, preload")
    preload = local.get("preload", False) if preload is None else preload
    if not isinstance(preload, bool):
        raise ScalingError(f"launcher.local.preload={preload!r} must be true or false")
    if preload and train_cmd is not None:
        raise ScalingError("preload forks the built-in trainer; drop it or the train command")
    workers = positive_count("--workers", workers) or positive_count(
        "launcher.local.workers", local.get("workers", 1)
    )
    threads = positive_count("--threads", threads) or positive_count(
        "launcher.local.threads", local.get("threads")
    )
    check_train_cmd(train_cmd)
    settings, shapes = None, None
    if launcher == "slurm":
        from sweeps.slurm import SlurmSettings, check_available, run_shape

        settings = SlurmSettings.from_dict({**(spec.launcher.get("slurm") or {}), **(slurm or {})})
        runs = plan_sweep(with_job_shape(spec, settings), root)
        shapes = {r.run_id: run_shape(r.run_id, r.config.train, settings) for r in runs}
        check_available()  # after the spec's own checks: a spec error is reported first
    else:
        runs = plan_sweep(spec, root)
        several = next((r for r in runs if r.tree["train"]["num_nodes"] > 1), None)
        if several is not None:
            raise ScalingError(
                f"run {several.run_id} has train.num_nodes={several.tree['train']['num_nodes']}: "
                "runs on several nodes need --launcher slurm"
            )
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

        jobs = submit(store, ids, settings, train_cmd, shapes, echo=echo)
        arrays = sorted({j.split("_")[0] for j in jobs.values()})
        echo(f"submitted {len(jobs)} runs as SLURM job array(s) {', '.join(arrays)}; "
             f"watch with `scaling sweep status {store.root}`")
        return store.root, jobs
    from sweeps.local import run_local

    return store.root, run_local(store.root, ids, workers=workers, threads=threads, train_cmd=train_cmd,
                                 retry_failed=False, stale_after_s=stale_after_s, preload=preload, echo=echo)

