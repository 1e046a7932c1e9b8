"""``scaling sweep plan|run|status|wait``: a thin shell over :mod:`sweeps.launch` and :mod:`sweeps.status`.

Only the standard library is imported at the top; the work happens in ``run``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def _planning_arguments(p: argparse.ArgumentParser, for_run: bool = False) -> None:
    if for_run:  # `sweep run` also takes one run config instead of a spec
        p.add_argument("spec", nargs="?", help="sweep spec YAML (or, with --config, the first override)")
        p.add_argument(
            "overrides", nargs="*", metavar="KEY=VALUE", help="with --config: overrides of the run config"
        )
        p.add_argument(
            "--config",
            help="instead of a spec: one run config (e.g. a fit's large_run.yaml), run as a "
            "sweep of one run named after the file",
        )
    else:
        p.add_argument("spec", help="sweep spec YAML (examples in configs/sweeps/)")
    p.add_argument("--out", "--dir", dest="dir", help="sweep dir (default runs/sweeps/<name>)")
    p.add_argument(
        "--max-runs",
        type=int,
        default=10_000,
        help="refuse a spec that expands to more runs than this, before expanding it (default 10,000)",
    )
    p.add_argument("--skip-data-check", action="store_true",
                   help="do not open each run's prepared data (data.path) here, e.g. when it exists only on "
                        "the compute nodes")


def _dir_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", help="sweep dir")
    p.add_argument(
        "--out", "--dir", dest="out_dir", metavar="DIR", help="sweep dir (instead of the positional one)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "plan", help="print the runs of a spec (id, overrides, params, tokens, FLOPs); runs nothing"
    )
    _planning_arguments(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = sub.add_parser("run", help="launch the unfinished runs of a spec, locally or on SLURM (Ctrl-C stops "
                                   "local trainers; they resume on the next run)")
    _planning_arguments(p, for_run=True)
    p.add_argument(
        "--launcher", default="local", help="local (subprocesses here) or slurm (submitit job arrays)"
    )
    p.add_argument("--workers", type=int, help="local: runs at once (one GPU each when there are GPUs)")
    p.add_argument("--threads", type=int, help="local: CPU threads per run (default: cores / workers)")
    p.add_argument("--preload", action="store_true", default=None,
                   help="local: fork each trainer from one process that imported it once (saves seconds of "
                        "start-up per run; also launcher.local.preload in the spec)")
    p.add_argument("--retry-failed", action="store_true", help="also relaunch runs that failed")
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="slurm: override launcher.slurm settings, e.g. --slurm partition=gpu --slurm time_min=240; "
        "max_concurrent counts the whole sweep (a new array gets what its live jobs leave)",
    )
    p.add_argument("--wait", action="store_true", help="slurm: block until every run has ended")
    p.add_argument("--train-cmd", help="the trainer command (default: this python -m scaling train); "
                                       "e.g. to wrap it in a container")
    p.add_argument("--report-every", type=float, default=60.0,
                   help="slurm --wait: seconds between progress lines (default 60)")

    p = sub.add_parser("status", help="counts and a table of a sweep dir's runs")
    _dir_arguments(p)
    p.add_argument("--json", action="store_true", help="print the states as JSON")

    p = sub.add_parser("wait", help="block until every run of a sweep dir is done, diverged or failed")
    _dir_arguments(p)
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between checks")
    p.add_argument("--report-every", type=float, default=60.0,
                   help="seconds between progress lines: counts, share of tokens trained, ETA (default 60)")


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
            raise ScalingError(
                "give one sweep spec YAML, or --config RUN.yaml [KEY=VALUE ...] for a single run"
            )
        return args.spec
    from sweeps.launch import config_spec

    return config_spec(args.config, [*([args.spec] if args.spec else []), *args.overrides])


def _sweep_dir(args: argparse.Namespace) -> str:
    from scaling.errors import ScalingError

    if args.dir and args.out_dir and args.dir != args.out_dir:
        raise ScalingError(f"two sweep dirs given ({args.dir} and --out {args.out_dir}); give one")
    if not (args.dir or args.out_dir):
        raise ScalingError(f"no sweep dir; e.g. `scaling sweep {args.sweep_command} runs/sweeps/NAME`")
    return args.dir or args.out_dir


def _wait(sweep_dir, poll: float, timeout: float | None, report_every: float) -> int:
    from sweeps.status import ProgressReporter, print_status, sweep_status, wait_for

    reporter = ProgressReporter(report_every, lambda line: print(line, flush=True))
    states = wait_for(sweep_dir, poll_s=poll, timeout_s=timeout, on_poll=reporter)
    if states is None:
        print(f"timed out after {timeout:g} s; some runs have not ended", file=sys.stderr)
        return 1
    print_status(sweep_status(sweep_dir)[0]["name"], states)
    return 0 if all(s.state in ("done", "diverged") for s in states) else 1


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sweeps import launch, status

    if args.sweep_command == "plan":
        from sweeps.plan import format_plan

        spec, _, runs = launch.plan(
            args.spec, args.dir, max_runs=args.max_runs, check_data=not args.skip_data_check
        )
        print(
            json.dumps([r.to_json() for r in runs], indent=1) if args.json else format_plan(spec.name, runs)
        )
        return 0
    if args.sweep_command == "run":
        train_cmd = shlex.split(args.train_cmd) if args.train_cmd else None
        try:
            root, _ = _launch(args, train_cmd)
        except KeyboardInterrupt:
            what = f"--config {args.config}" if args.config else args.spec
            again = f"scaling sweep run {what}" + (f" --out {args.dir}" if args.dir else "")
            print(
                f"interrupted: trainers stopped; `{again}` resumes them from their checkpoints",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        if args.launcher == "slurm" and not args.wait:
            return 0
        if args.launcher == "slurm":
            return _wait(root, poll=10.0, timeout=None, report_every=args.report_every)
        plan, states = status.sweep_status(root)
        status.print_status(plan["name"], states)
        return 0 if all(s.state in ("done", "diverged") for s in states) else 1
    if args.sweep_command == "status":
        plan, states = status.sweep_status(_sweep_dir(args))
        if args.json:
            print(json.dumps({"name": plan["name"], "runs": [asdict(s) for s in states]}, indent=1))
        else:
            status.print_status(plan["name"], states)
        return 0
    return _wait(_sweep_dir(args), args.poll, args.timeout, args.report_every)


def _launch(args: argparse.Namespace, train_cmd: list[str] | None):
    from sweeps import launch

    return launch.run_sweep(
        _spec_of(args),
        args.dir,
        launcher=args.launcher,
        workers=args.workers,
        threads=args.threads,
        retry_failed=args.retry_failed,
        slurm=_key_values(args.slurm),
        train_cmd=train_cmd,
        max_runs=args.max_runs,
        preload=args.preload,
        check_data=False if args.skip_data_check else None,
    )
