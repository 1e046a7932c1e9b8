"""``scaling demo``: the whole method in one command, on the built-in corpus.

1. prepare the ``stdlib`` corpus (the interpreter's own standard-library source, no download);
2. run three sweeps of tiny models through the local launcher — a size ladder (sizes × token
   budgets), a learning-rate sweep at two sizes, and a second seed of one setting;
3. fit scaling laws to all of them (the largest size is also held out and predicted from the
   others) and print the recommendation for 100× the largest run's compute.

Everything lands under ``--out`` (default ``demo_out/``): the prepared data, the sweep specs (YAML
you can re-run with ``scaling sweep run``), the run dirs with offline W&B runs, and the fit.
A second invocation reuses the prepared data and every finished run, so it only refits.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoPlan:
    """What the demo trains; the full plan fits 15 minutes on a quiet 2-core CPU."""

    sizes: tuple[str, ...]  # ladder presets, largest first (the longest runs start first: less idle tail)
    lrs: tuple[float, ...]  # learning rate per size (about 1/d_model: wider models want smaller steps)
    tokens: tuple[float, ...]  # token budgets of the ladder, largest first
    lr_sizes: tuple[str, ...]  # sizes of the learning-rate sweep (each also in `sizes`)
    lr_factors: tuple[float, ...]  # multiples of a size's ladder LR tried by the LR sweep
    lr_tokens: float  # token budget of the learning-rate sweep and the repeated seed (one of `tokens`)
    seed_size: str  # size of the repeated-seed setting
    seq_len: int  # training sequence length
    micro_batch_size: int  # sequences per step (small: tiny models gain most from more steps)
    vocab_size: int  # tokenizer vocabulary trained on the corpus
    corpus_bytes: int | None  # cap on the corpus (None = the whole standard library)
    val_fraction: float  # share of documents held out for validation
    val_tokens: int  # fixed validation subset
    n_boot: int  # bootstrap refits of the fit

    def lr_of(self, size: str) -> float:
        """The ladder's learning rate for ``size``."""
        return self.lrs[self.sizes.index(size)]


FULL = DemoPlan(
    sizes=("s1.5m", "s800k", "s330k", "s100k"), lrs=(1.2e-3, 1.5e-3, 2e-3, 3e-3), tokens=(1e6, 5e5, 2.5e5),
    lr_sizes=("s330k", "s100k"), lr_factors=(0.5, 2.0), lr_tokens=5e5, seed_size="s330k",
    seq_len=128, micro_batch_size=8, vocab_size=512, corpus_bytes=None, val_fraction=0.02, val_tokens=16384,
    n_boot=200,
)
QUICK = DemoPlan(
    sizes=("s800k", "s330k", "s100k"), lrs=(1.5e-3, 2e-3, 3e-3), tokens=(3.2e4, 1.6e4),
    lr_sizes=("s100k",), lr_factors=(4.0,), lr_tokens=3.2e4, seed_size="s100k",
    seq_len=64, micro_batch_size=8, vocab_size=512, corpus_bytes=400_000, val_fraction=0.1, val_tokens=4096,
    n_boot=20,
)
TARGET_FACTOR = 100.0  # recommend for this multiple of the largest run's training FLOPs
WANDB_PROJECT = "scaling-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--out``, ``--quick``, ``--workers`` and ``--wandb``."""
    parser.add_argument("--out", default="demo_out", help="folder for data, runs and the fit (default demo_out/)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long version (smaller models and corpus)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once (default 2, one per core)")
    parser.add_argument("--wandb", default="offline", choices=("offline", "disabled"),
                        help="log runs and the fit as offline W&B runs (default) or not at all")


def _base_overrides(plan: DemoPlan, data_path: Path, wandb: str) -> list[str]:
    return [
        f"data.path={data_path}", f"model.vocab_size={plan.vocab_size}", f"model.max_seq_len={plan.seq_len}",
        f"train.seq_len={plan.seq_len}", f"train.micro_batch_size={plan.micro_batch_size}",
        f"data.val_tokens={plan.val_tokens}", "schedule.kind=cosine",
        # validate three times per run at most: the final loss is what the fit reads
        f"train.val_every_tokens={max(plan.tokens)}", f"train.checkpoint_every_tokens={max(plan.tokens)}",
        f"logging.wandb={wandb}", f"logging.project={WANDB_PROJECT}",
    ]


def demo_specs(plan: DemoPlan, data_path: Path, wandb: str = "offline") -> dict[str, dict]:
    """The three sweep specs of the demo, by name.

    The ladder pairs each size with its learning rate (``zip``) and crosses them with the token
    budgets (``grid``); the LR sweep tries multiples of those rates; the seed sweep repeats one
    ladder setting with ``run.seed=1`` (the ladder run is seed 0).
    """
    base = _base_overrides(plan, data_path, wandb)
    lr_pairs = [(size, plan.lr_of(size) * f) for size in plan.lr_sizes for f in plan.lr_factors]
    return {
        "demo-ladder": {"name": "demo-ladder", "overrides": base,
                        "zip": {"model": list(plan.sizes), "optim.lr": list(plan.lrs)},
                        "grid": {"train.tokens": list(plan.tokens)}},
        "demo-lr": {"name": "demo-lr", "overrides": [*base, f"train.tokens={plan.lr_tokens}"],
                    "zip": {"model": [s for s, _ in lr_pairs], "optim.lr": [lr for _, lr in lr_pairs]}},
        "demo-seeds": {"name": "demo-seeds",
                       "overrides": [*base, f"model={plan.seed_size}", f"optim.lr={plan.lr_of(plan.seed_size)}",
                                     f"train.tokens={plan.lr_tokens}"],
                       "seeds": [1]},
    }


class _Progress:
    """Prints one line per finished run: which run, its loss, and how far the whole demo is."""

    def __init__(self, total: int, echo):
        self.total, self.done, self.echo, self.start = total, 0, echo, time.time()
        self.sweep_dir: Path | None = None

    def __call__(self, line: str) -> None:
        run_id, _, outcome = line.partition(": ")
        result_path = self.sweep_dir / "runs" / run_id / "result.json" if self.sweep_dir else None
        if not (result_path and len(run_id) == 12 and result_path.exists()):
            self.echo(f"  {line}")
            return
        import json

        import yaml

        self.done += 1
        r = json.loads(result_path.read_text())
        cfg = yaml.safe_load((result_path.parent / "config.yaml").read_text())
        elapsed = time.time() - self.start
        self.echo(f"  [{self.done}/{self.total}] {r.get('model')} {r['tokens']:.3g} tokens "
                  f"lr {cfg['optim']['lr']:g} seed {r['seed']}: {r['status']}, val loss "
                  f"{r['final_val_loss']:.3f} in {r['wall_time_s']:.0f} s ({elapsed:.0f} s elapsed)"
                  if r.get("final_val_loss") is not None else f"  [{self.done}/{self.total}] {run_id}: {outcome}")


def _label(planned_run: dict) -> str:
    """``s800k@1e+06`` for a planned run: its model and token budget."""
    model = planned_run.get("swept", {}).get("model") or planned_run["run_id"]
    return f"{model}@{planned_run['tokens']:.2g}"


class _Ticker:
    """While runs train, prints every ``every_s`` seconds how far the running ones are."""

    def __init__(self, progress: _Progress, echo, every_s: float = 30.0):
        import threading

        self.progress, self.echo, self.every_s = progress, echo, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)

    def _loop(self) -> None:
        from sweeps.status import sweep_status

        while not self.stop.wait(self.every_s):
            if self.progress.sweep_dir is None or not (self.progress.sweep_dir / "plan.json").exists():
                continue
            plan, states = sweep_status(self.progress.sweep_dir)
            planned = {r["run_id"]: r for r in plan["runs"]}
            running = [f"{_label(planned[s.run_id])} {min(100.0, 100 * (s.tokens or 0) / planned[s.run_id]['tokens']):.0f}%"
                       for s in states if s.state == "running" and planned[s.run_id].get("tokens")]
            if running:
                elapsed = time.time() - self.progress.start
                self.echo(f"  ... {self.progress.done}/{self.progress.total} runs done, training "
                          f"{', '.join(running)} ({elapsed:.0f} s elapsed)")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run_demo(out: str | Path = "demo_out", *, quick: bool = False, workers: int = 2, wandb: str = "offline",
             echo=print) -> dict:
    """Prepare the corpus, run the demo sweeps, fit, and print the recommendation; returns fit.json."""
    import yaml

    from data_pipelines import prepare, stdlib_sources
    from data_pipelines.atomic import atomic_write_text
    from scaling.fit import FitOptions, fit_runs
    from sweeps.launch import plan, run_sweep

    plan_ = QUICK if quick else FULL
    out = Path(out).resolve()
    t0 = time.time()
    data_path = out / "data" / "stdlib"
    echo(f"1/3 preparing the stdlib corpus into {data_path}")
    manifest = prepare(stdlib_sources(max_bytes=plan_.corpus_bytes), data_path, vocab_size=plan_.vocab_size,
                       val_fraction=plan_.val_fraction, workers=min(2, workers), progress=False)
    echo(f"    {manifest['splits']['train']['tokens']:,} train tokens, {manifest['splits']['val']['tokens']:,} "
         f"val tokens ({time.time() - t0:.0f} s)")

    specs = demo_specs(plan_, data_path, wandb)
    spec_paths = {}
    for name, spec in specs.items():
        spec_paths[name] = out / "specs" / f"{name}.yaml"
        atomic_write_text(spec_paths[name], yaml.safe_dump(spec, sort_keys=False))
    sweep_dirs = {name: out / "sweeps" / name for name in specs}
    total = sum(len(plan(spec_paths[n], sweep_dirs[n])[2]) for n in specs)
    echo(f"2/3 training {total} runs in {len(specs)} sweeps ({workers} at a time; finished runs are reused)")
    progress = _Progress(total, echo)
    with _Ticker(progress, echo):
        for name in specs:
            progress.sweep_dir = sweep_dirs[name]
            run_sweep(spec_paths[name], sweep_dirs[name], workers=workers, threads=1, echo=progress)
    train_s = time.time() - t0

    echo("3/3 fitting scaling laws")
    largest = max(r["flops"] for d in sweep_dirs.values() for r in _results(d))
    options = FitOptions(target_flops=TARGET_FACTOR * largest, n_boot=plan_.n_boot, wandb=wandb,
                         wandb_project=WANDB_PROJECT, wandb_group="demo-fit")
    fit = fit_runs(list(sweep_dirs.values()), out / "fit", options)
    echo(summary(fit, time.time() - t0, train_s))
    return fit


def _results(sweep_dir: Path) -> list[dict]:
    import json

    return [json.loads(p.read_text()) for p in sorted((sweep_dir / "runs").glob("*/result.json"))]


def _interval(ci) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci and None not in ci else "[n/a]"


def summary(fit: dict, total_s: float, train_s: float) -> str:
    """The recommendation and where to read more, as printed at the end of the demo."""
    rec, par, bt = fit["recommendation"], fit["parametric"], fit.get("backtest", {})
    lines = [
        "",
        f"Recommendation for {rec['flops']:.3g} training FLOPs ({rec['extrapolation_factor']:.0f}x the largest run):",
        f"  model:          {rec['params']:,.0f} {rec['params_kind']} parameters "
        f"(n_layer {rec.get('n_layer')}, d_model {rec['d_model']}, n_head {rec['n_head']}); "
        f"N_opt interval {_interval(rec.get('n_opt_ci'))}",
        f"  tokens:         {rec['tokens']:,.0f} ({rec['tokens_per_param']:.1f} per parameter); "
        f"D_opt interval {_interval(rec.get('d_opt_ci'))}",
        f"  predicted loss: {rec['loss']:.3f} (interval {_interval([rec['lo'], rec['hi']])})",
        f"  learning rate:  {rec['lr']:.3g} ({rec['lr_source']})"
        + (f"; interval {_interval(rec['lr_ci'])}" if rec.get("lr_ci") else ""),
        f"  law:            L = {par['E']:.3g} + A/N^{par['alpha']:.3f} + B/D^{par['beta']:.3f}; "
        f"a = {par['a']:.3f} {_interval(par.get('ci', {}).get('a'))}",
    ]
    if "mean_abs_rel_error" in bt:
        lines.append(f"  backtest:       largest size predicted from the others: "
                     f"{100 * bt['mean_abs_rel_error']:.1f}% mean error")
    for w in fit.get("warnings", []):
        lines.append(f"  warning: {w}")
    outputs = fit.get("outputs", {})
    lines += [
        f"Report: {outputs.get('report')}",
        f"Plots:  {', '.join(sorted(outputs.get('plots', {}).values()))}",
        f"Config for the large run: {outputs.get('large_run')}",
        f"Time: {total_s:.0f} s in all ({train_s:.0f} s preparing and training).",
    ]
    return "\n".join(lines)


def wandb_sync_line(out: Path) -> str:
    """Where the demo's offline W&B runs are and the one command that uploads them."""
    return (f"W&B: offline runs under {out}/sweeps/*/runs/*/wandb and {out}/fit/wandb; to upload: "
            f"wandb sync {out}/sweeps/*/runs/*/wandb/offline-run-* {out}/fit/wandb/offline-run-*")


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's own console lines; the one line below replaces them
    run_demo(args.out, quick=args.quick, workers=args.workers, wandb=args.wandb)
    if args.wandb == "offline":
        print(wandb_sync_line(Path(args.out).resolve()))
    return 0
