"""``scaling sweep plan|run|status|wait``: a thin shell over :mod:`sweeps.launch` and :mod:`sweeps.status`.

Only the standard library is imported at the top; the work happens in ``run``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")
    p = sub.add_parser("plan", help="print the runs of a spec (id, overrides, params, tokens, FLOPs); runs nothing")
    p.add_argument("spec", help="sweep spec YAML (examples in configs/sweeps/)")
    p.add_argument("--dir", help="sweep dir (default runs/sweeps/<name>)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = sub.add_parser("run", help="launch the unfinished runs of a spec, locally or on SLURM")
    p.add_argument("spec", nargs="?", help="sweep spec YAML (or, with --config, the first override)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="with --config: overrides of the run config")
    p.add_argument("--config", help="instead of a spec: one run config (e.g. a fit's large_run.yaml), run as a "
                                    "sweep of one run named after the file")
    p.add_argument("--dir", help="sweep dir (default runs/sweeps/<name>)")
    p.add_argument("--launcher", default="local", help="local (subprocesses here) or slurm (submitit job arrays)")
    p.add_argument("--workers", type=int, help="local: runs at once (one GPU each when there are GPUs)")
    p.add_argument("--threads", type=int, help="local: CPU threads per run (default: cores / workers)")
    p.add_argument("--retry-failed", action="store_true", help="also relaunch runs that failed")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm: override launcher.slurm settings, e.g. --slurm partition=gpu --slurm time_min=240")
    p.add_argument("--wait", action="store_true", help="slurm: block until every run has ended")
    p.add_argument("--train-cmd", help="the trainer command (default: this python -m scaling train); "
                                       "e.g. to wrap it in a container")

    p = sub.add_parser("status", help="counts and a table of a sweep dir's runs")
    p.add_argument("dir", help="sweep dir")
    p.add_argument("--json", action="store_true", help="print the states as JSON")

    p = sub.add_parser("wait", help="block until every run of a sweep dir is done, diverged or failed")
    p.add_argument("dir", help="sweep dir")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between checks")


def _key_values(items: list[str]) -> dict:
    import yaml

    from scaling.errors import ScalingError

    out = {}
    for item in items:
        if "=" not in item:
            raise ScalingError(f"--slurm {item!r} is not KEY=VALUE (e.g. --slurm partition=gpu)")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _spec_of(args: argparse.Namespace):
    """The spec file, or with ``--config`` a one-run spec of that run config and the overrides."""
    from scaling.errors import ScalingError

    if args.config is None:
        if args.spec is None or args.overrides:
            raise ScalingError("give one sweep spec YAML, or --config RUN.yaml [KEY=VALUE ...] for a single run")
        return args.spec
    from sweeps.launch import config_spec

    return config_spec(args.config, [*([args.spec] if args.spec else []), *args.overrides])


def _wait(sweep_dir, poll: float, timeout: float | None) -> int:
    from sweeps.status import format_status, wait_for

    states = wait_for(sweep_dir, poll_s=poll, timeout_s=timeout)
    if states is None:
        print(f"timed out after {timeout:g} s; some runs have not ended", file=sys.stderr)
        return 1
    print(format_status(sweep_dir, states))
    return 0 if all(s.state in ("done", "diverged") for s in states) else 1


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sweeps import launch, status

    if args.sweep_command == "plan":
        from sweeps.plan import format_plan

        spec, _, runs = launch.plan(args.spec, args.dir)
        print(json.dumps([r.to_json() for r in runs], indent=1) if args.json else format_plan(spec.name, runs))
        return 0
    if args.sweep_command == "run":
        train_cmd = shlex.split(args.train_cmd) if args.train_cmd else None
        root, _ = launch.run_sweep(_spec_of(args), args.dir, launcher=args.launcher, workers=args.workers,
                                   threads=args.threads, retry_failed=args.retry_failed,
                                   slurm=_key_values(args.slurm), train_cmd=train_cmd)
        if args.launcher == "slurm" and not args.wait:
            return 0
        if args.launcher == "slurm":
            return _wait(root, poll=10.0, timeout=None)
        plan, states = status.sweep_status(root)
        print(status.format_status(plan["name"], states))
        return 0 if all(s.state in ("done", "diverged") for s in states) else 1
    if args.sweep_command == "status":
        plan, states = status.sweep_status(args.dir)
        if args.json:
            print(json.dumps({"name": plan["name"], "runs": [asdict(s) for s in states]}, indent=1))
        else:
            print(status.format_status(plan["name"], states))
        return 0
    return _wait(args.dir, args.poll, args.timeout)
