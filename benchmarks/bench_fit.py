"""Approach 3 with bootstrap: 250 points, 200 refits — and what the two speed/accuracy choices buy.

    python benchmarks/bench_fit.py [--points-per-size 25] [--boot 200] [--compare-refits 20]

1. The acceptance number: fit L(N, D) on 250 synthetic points (10 sizes × 25 token counts, 1% log
   noise) from the grid of starts, then 200 bootstrap refits. Wall time and CPU time.
2. Side by side, same process, same resamples: ``--compare-refits`` refits with OpenBLAS on one
   thread (what the fitter does) and with the library default (2 threads here). Ratio of times.
3. Side by side: the scaled objective with tight tolerances vs scipy's defaults on the raw Huber
   sum (the early-stopping trap), started at Chinchilla's constants: final gradient norm, objective,
   distance of a from the grid optimum.
4. The whole ``fit_runs`` on a demo-sized study (25 run dirs): what the demo waits for.
The machine's load average is printed: other engineers' tests distort every number.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the synthetic ladders are test helpers; run from a checkout, the repository root makes them importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.fit import FitOptions, fit_runs  # noqa: E402
from scaling.fit.basics import single_threaded_blas  # noqa: E402
from scaling.fit.bootstrap import bootstrap, percentile_interval  # noqa: E402
from scaling.fit.data import Points  # noqa: E402
from scaling.fit.parametric import CHINCHILLA, ParametricFit, fit_parametric  # noqa: E402
from tests.helpers.synthetic import demo_like_runs, ladder_grid  # noqa: E402

TRUE = ParametricFit.from_constants(E=1.8, A=900.0, B=2000.0, alpha=0.40, beta=0.33)


def _points(n, d, loss) -> Points:
    nan = np.full(n.size, np.nan)
    runs = [f"r{i}" for i in range(n.size)]
    return Points(n, d, loss, 6 * n * d, nan, nan, nan.copy(), runs, list(runs))


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _refits(n, d, loss, start, k: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(k):
        idx = rng.integers(0, n.size, n.size)
        fit_parametric(n[idx], d[idx], loss[idx], init=start, grid=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points-per-size", type=int, default=25)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--compare-refits", type=int, default=20)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    n, d, loss = ladder_grid(
        TRUE, np.logspace(7, 9.5, 10), np.logspace(8.5, 11, args.points_per_size), noise=0.01
    )
    fit, t_fit, c_fit = _timed(lambda: fit_parametric(n, d, loss))
    (samples, info), t_boot, c_boot = _timed(lambda: bootstrap(_points(n, d, loss), fit, lambda f: {"a": f.a},
                                                               n_boot=args.boot))
    ci = percentile_interval(samples["a"])
    print(
        f"[1] {n.size} points: grid fit {t_fit:.2f} s wall ({c_fit:.2f} s CPU); "
        f"{info['n_ok']}/{args.boot} bootstrap "
        f"refits {t_boot:.2f} s wall ({c_boot:.2f} s CPU); total {t_fit + t_boot:.2f} s; "
        f"a = {fit.a:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] (true {TRUE.a:.4f})"
    )

    k = args.compare_refits
    _, t_default, _ = _timed(
        lambda: _refits(n, d, loss, fit.theta, k)
    )  # fit_parametric pins 1 thread itself...

    def _default_threads():
        # ...so undo the pin for this arm: call L-BFGS-B directly the way fit_parametric does, unpinned
        from scipy.optimize import minimize

        from scaling.fit import parametric as P

        rng = np.random.default_rng(0)
        for _ in range(k):
            idx = rng.integers(0, n.size, n.size)
            x, y, ll = np.log(n[idx]), np.log(d[idx]), np.log(loss[idx])
            scale = idx.size * P.HUBER_DELTA

            def fun(theta, x=x, y=y, ll=ll, scale=scale):
                f, g, _ = P._objective(theta, x, y, ll, P.HUBER_DELTA)
                return f[0] / scale, g[0] / scale

            minimize(fun, fit.theta, jac=True, method="L-BFGS-B", bounds=P._BOUNDS,
                     options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000, "maxfun": 20000})

    _, t_unpinned, _ = _timed(_default_threads)
    print(f"[2] {k} refits: OpenBLAS 1 thread {t_default:.2f} s, library default threads {t_unpinned:.2f} s; "
          f"ratio default/1-thread = {t_unpinned / t_default:.1f}x")

    for label, scale in (("scaled + tight tolerances", True), ("raw Huber sum, scipy defaults", False)):
        with single_threaded_blas():
            f, t, _ = _timed(lambda scale=scale: fit_parametric(n, d, loss, init=CHINCHILLA, grid=False,
                                                                 scale_objective=scale))
        print(f"[3] start at Chinchilla, {label}: grad norm {f.grad_norm:.2e}, objective {f.objective:.6e}, "
              f"|a - a_grid| = {abs(f.a - fit.a):.2e}, {t:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        demo_like_runs(
            Path(tmp) / "sweep", ParametricFit.from_constants(E=1.5, A=30.0, B=300.0, alpha=0.3, beta=0.3)
        )
        options = FitOptions(n_boot=args.boot, wandb="disabled")
        result, t, _ = _timed(lambda: fit_runs([Path(tmp) / "sweep"], Path(tmp) / "fit", options))
        print(
            f"[4] fit_runs on a demo-like study ({result['inputs']['n_rows']} run dirs, "
            f"{args.boot} bootstrap "
            f"refits, 4 plots, no W&B): {t:.2f} s wall"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
