"""sweeps: many runs from one spec, launched locally or on SLURM, never trained twice.

Public API:

- specs and plans: :func:`load_spec`, :func:`parse_spec`, :func:`plan_sweep`, :func:`format_plan`
- launching: :func:`run_sweep` (local or SLURM), :func:`execute_run` (one run, with its lock)
- the sweep dir: :class:`SweepStore`, :func:`sweep_status`, :func:`wait_for`
"""

from __future__ import annotations

from data_pipelines.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Spec": "sweeps.spec",
    "load_spec": "sweeps.spec",
    "parse_spec": "sweeps.spec",
    "PlannedRun": "sweeps.plan",
    "plan_sweep": "sweeps.plan",
    "format_plan": "sweeps.plan",
    "run_sweep": "sweeps.launch",
    "execute_run": "sweeps.execute",
    "SweepStore": "sweeps.store",
    "sweep_status": "sweeps.status",
    "format_status": "sweeps.status",
    "wait_for": "sweeps.status",
    "SlurmSettings": "sweeps.slurm",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
