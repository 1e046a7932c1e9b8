"""The report's PNG plots: loss vs compute with frontier and band, IsoFLOP profiles, LR vs loss,
residuals. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.fit.data import Points, metric_label
from scaling.fit.parametric import ParametricFit


def error_bars(values, lo, hi) -> np.ndarray:
    """matplotlib's (2, n) ``yerr`` of points ``values`` with intervals [lo, hi]. A point estimate may lie
    outside its bootstrap percentile interval (by a rounding error, or a skewed bootstrap); its bar on that
    side is then empty rather than negative, which matplotlib refuses."""
    values, lo, hi = (np.asarray(x, dtype=float) for x in (values, lo, hi))
    return np.clip(np.vstack([values - lo, hi - values]), 0.0, None)


def _metric_label(points: Points) -> str:
    return "final " + metric_label(points.metric)


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, ncols, figsize=(6.4 if ncols == 1 else 5.5 * ncols, 4.4), dpi=110)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> str:
    import io

    from data_pipelines.atomic import atomic_write_bytes

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def _save_figure(fig, path: Path) -> str | None:
    """Write ``fig`` (None: nothing to plot) to ``path``; returns the path written."""
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    return _save(plt, fig, path)


def readable_log_axis(axis) -> None:
    """Plain labels (``20``, ``5e+13``) at 1-2-5 steps on a log axis that spans under two decades, where
    matplotlib would label crowded minor ticks (``2×10^1 3×10^1 ...``) that overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and np.log10(hi / lo) <= 2):
        return
    subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) > 0.7 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_loss_vs_compute(result: dict, points: Points, path: Path) -> str:
    return _save_figure(loss_vs_compute_figure(result, points), path)


def loss_vs_compute_figure(result: dict, points: Points):
    """Every run's loss against its compute, the fitted frontier with its band, the recommended run and,
    dotted, the compute of the largest run."""
    plt, fig, ax = _figure()
    sc = ax.scatter(points.flops, points.loss, c=np.log10(points.params), cmap="viridis", s=18, label="runs")
    fig.colorbar(sc, ax=ax, label="log10 params")
    fr = result["frontier"]
    ax.plot(fr["flops"], fr["loss"], "k-", lw=1.2, label="approach 3 frontier")
    band = [(c, b) for c, b in zip(fr["flops"], fr["ci"], strict=True) if b]
    if band:
        ax.fill_between(
            [c for c, _ in band],
            [b[0] for _, b in band],
            [b[1] for _, b in band],
            color="k",
            alpha=0.15,
            label=f"{100 * result['parametric']['ci_level']:.0f}% bootstrap band",
        )
    rec = result["recommendation"]
    ax.errorbar(
        [rec["flops"]],
        [rec["loss"]],
        yerr=error_bars([rec["loss"]], [rec["lo"]], [rec["hi"]]),
        fmt="r*",
        ms=10,
        capsize=3,
        label="recommended run (prediction interval)",
    )
    ax.axvline(points.flops.max(), color="grey", ls=":", lw=1, label="largest run")
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel=_metric_label(points),
           title="Loss vs compute")
    readable_log_axis(ax.yaxis)
    ax.legend(fontsize=7)
    return fig


def plot_isoflop(result: dict, points: Points, path: Path) -> str | None:
    return _save_figure(isoflop_figure(result, points), path)


def isoflop_figure(result: dict, points: Points):
    """Left: each fitted budget's profile (best run per size), the fitted profile and its optimum, and the
    optima's path (N*(C), L*(C)) from the two fitted laws; a skipped budget's runs in grey, labelled
    skipped, with no curve. Right: N* against C with its uncertainty and the fitted N*(C) ∝ C^a.
    None when no budget has a profile."""
    iso = result["isoflop"]
    fitted = sorted((b for b in iso["budgets"] if "sizes" in b), key=lambda b: b["flops"])
    skipped = sorted((b for b in iso["skipped"] if "sizes" in b), key=lambda b: b["flops"])
    if not fitted and not skipped:
        return None
    from scaling.fit.isoflop_profile import profile_curve

    plt, fig, (ax, right) = _figure(ncols=2)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(fitted)))
    for b, colour in zip(fitted, colours, strict=True):
        ax.plot(b["sizes"], b["losses"], "o", ms=3, color=colour, label=f"C={b['flops']:.2g}")
        curve_n, curve_loss = profile_curve(iso["method"], np.log10(b["sizes"]), b["losses"],
                                            iso["window_dex"], b.get("loss_sigmas"))
        ax.plot(curve_n, curve_loss, "-", lw=0.8, color=colour)
        ax.plot([b["n_opt"]], [b["loss_opt"]], "kx", ms=8)
    for b in skipped:  # no usable minimum: its runs only, so nothing looks like a fitted optimum
        ax.plot(b["sizes"], b["losses"], "o", ms=3, color="0.7", label=f"C={b['flops']:.2g} (skipped)")
    law, loss_law = iso["n_opt_law"], iso["loss_law"]
    if law and loss_law and fitted:
        cs = np.geomspace(fitted[0]["flops"], fitted[-1]["flops"], 50)
        ax.plot(law["coef"] * cs ** law["exponent"], loss_law["E"] + loss_law["A"] * cs ** -loss_law["alpha"],
                "k--", lw=1, label=f"N*(C), L*(C) = {loss_law['E']:.3g} + {loss_law['A']:.3g}"
                                   f"·C^-{loss_law['alpha']:.3g}")
    ax.set(xscale="log", xlabel="params", ylabel=_metric_label(points),
           title=f"IsoFLOP profiles ({iso['method']}; x = fitted optimum)")
    readable_log_axis(ax.xaxis)
    ax.legend(fontsize=6, ncol=2)
    if iso["budgets"]:
        cs = np.array([b["flops"] for b in iso["budgets"]])
        n_opt = np.array([b["n_opt"] for b in iso["budgets"]])
        spread = 10 ** np.array([b["n_opt_log10_std"] for b in iso["budgets"]])
        right.errorbar(cs, n_opt, yerr=[n_opt - n_opt / spread, n_opt * spread - n_opt], fmt="ko", ms=4,
                       capsize=3,
                       label="N* per budget (±1σ)")
        if law:
            span = f" [{iso['a_ci'][0]:.3f}, {iso['a_ci'][1]:.3f}]" if iso["a_ci"] else ""
            line = np.geomspace(cs.min(), cs.max(), 50)
            right.plot(line, law["coef"] * line ** law["exponent"], "k-", lw=1,
                       label=f"N* ∝ C^{iso['a']:.3f}{span}")
        right.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel="N* (params)",
                  title="Compute-optimal size")
        readable_log_axis(right.xaxis)
        readable_log_axis(right.yaxis)
        right.legend(fontsize=7)
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no budget with a usable minimum", ha="center", va="center", color="0.4")
    return fig


def plot_lr(result: dict, points: Points, path: Path) -> str | None:
    cells = result["hparams"].get("lr", {}).get("cells", [])
    if not cells:
        return None
    plt, fig, ax = _figure()
    keys = points.cells()
    for c in cells:
        rows = np.array([k == (c["params"], c["tokens"]) for k in keys]) & np.isfinite(points.lr)
        order = np.argsort(points.lr[rows])
        line, = ax.plot(points.lr[rows][order], points.loss[rows][order], "o", ms=4,
                        label=f"N={c['params']:.3g}, D={c['tokens']:.3g}")
        ax.plot([c["opt"]], [c["loss_at_opt"]], "*", color=line.get_color(), ms=12, mec="k")
    ax.set(
        xscale="log",
        xlabel="learning rate",
        ylabel=_metric_label(points),
        title="LR vs loss (* = fitted optimum)",
    )
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_residuals(fit: ParametricFit, tuned: Points, path: Path) -> str:
    return _save_figure(residuals_figure(fit, tuned), path)


def residuals_figure(fit: ParametricFit, tuned: Points):
    """Approach 3's residuals against tokens per parameter, coloured by size: a trend is a misfit."""
    plt, fig, ax = _figure()
    sc = ax.scatter(
        tuned.tokens / tuned.params, fit.residuals, c=np.log10(tuned.params), cmap="viridis", s=18
    )
    fig.colorbar(sc, ax=ax, label="log10 params")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="tokens per parameter", ylabel="log L − log L̂", title="Approach 3 residuals")
    readable_log_axis(ax.xaxis)
    return fig


def plot_knob(result: dict, points: Points, knob: str, path: Path) -> str:
    """Loss vs compute per level of ``knob``: each level's law along the target's tokens per parameter,
    its interval at the target, and the runs that judged it (at their own tokens per parameter)."""
    from scaling.fit.knob_laws import knob_data, loss_on_path
    from scaling.fit.parametric import ParametricFit

    e, rec = result["knob_effects"][knob], result["recommendation"]
    n_t, d_t = rec["params"], rec["tokens"]
    c_t = 6.0 * n_t * d_t
    plt, fig, ax = _figure()
    data = knob_data(points, knob)
    flops = 6.0 * data.params * data.tokens
    grid = np.geomspace(min(c_t, flops.min()) / 3, max(c_t, flops.max()) * 3, 120)
    for i, name in enumerate(data.levels):
        lv = e["levels"][name]
        law = ParametricFit.from_constants(**e["laws"][name])
        line, = ax.plot(grid, loss_on_path(law, n_t, d_t, grid / c_t), lw=1.2, label=f"{name} law")
        if lv["lo"] is not None:
            ax.errorbar([c_t], [lv["loss"]], yerr=error_bars([lv["loss"]], [lv["lo"]], [lv["hi"]]), fmt="o",
                        color=line.get_color(), capsize=3, ms=4)
        ax.scatter(
            flops[data.level == i], data.loss[data.level == i], color=line.get_color(), s=12, alpha=0.7
        )
    ax.axvline(c_t, color="r", ls="--", lw=1, label="target (interval per level); dots: runs")
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs (6ND, along the target's tokens per parameter)",
           ylabel="loss", title=f"{knob}: {e['verdict']} ({e['best']} best at the target)")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_mixture(mixture: dict, path: Path) -> str:
    """Left: each evaluation set's loss predicted without the run's mixture vs measured. Right: the
    recommended weights with their bootstrap intervals (and the natural mixture, when known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    pts = mixture["heldout"]["points"]
    for e in mixture["eval_sets"]:
        x = [p["measured"] for p in pts if p["eval_set"] == e]
        y = [p["predicted"] for p in pts if p["eval_set"] == e]
        left.scatter(x, y, s=14, label=e)
    every = [p["measured"] for p in pts] + [p["predicted"] for p in pts]
    left.plot([min(every), max(every)], [min(every), max(every)], "k--", lw=0.8)
    corr = mixture["heldout"]["rank_corr"]
    left.set(xlabel="measured loss", ylabel="predicted loss (held out)",
             title=f"{mixture['law']} law, {mixture['heldout']['method']}: Spearman "
                   f"{'n/a' if corr is None else f'{corr:.2f}'}")
    left.legend(fontsize=7, title="evaluation set", title_fontsize=7)
    domains = mixture["domains"]
    x = np.arange(len(domains))
    w = mixture["weights"]
    values = np.array([w[d]["value"] for d in domains])
    ends = [(w[d]["lo"], w[d]["hi"]) if w[d]["lo"] is not None else (w[d]["value"],) * 2 for d in domains]
    err = error_bars(values, [lo for lo, _ in ends], [hi for _, hi in ends])
    right.bar(x, values, yerr=err, capsize=4, color="tab:blue", alpha=0.8, label="recommended")
    if mixture.get("natural"):
        right.plot(
            x, [mixture["natural"]["weights"][d] for d in domains], "k_", ms=22, mew=2, label="natural"
        )
    right.set_xticks(x, domains, rotation=20)
    target = ", ".join(f"{k}={v:g}" for k, v in mixture["target"].items())
    right.set(ylabel="weight", ylim=(0, 1), title=f"recommended mixture for {target}")
    right.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, path)


PLOT_FILES = {"loss_vs_compute": "loss_vs_compute.png", "isoflop": "isoflop.png", "lr": "lr_vs_loss.png",
              "residuals": "residuals.png"}
"""The plot of every fit (knob plots come on top), by name."""
WHY_NOT_MADE = {
    "isoflop": "no compute budget was trained at several model sizes (an IsoFLOP grid)",
    "lr": "no learning-rate sweep (no model size was trained with 3 or more learning rates)",
}
"""Why a plot of :data:`PLOT_FILES` that the data do not support was not made."""


def write_plots(result: dict, points: Points, tuned: Points, fit: ParametricFit, out: Path) -> dict[str, str]:
    """Write every plot that the data support; returns name -> path."""
    made = {
        "loss_vs_compute": plot_loss_vs_compute(result, points, out / PLOT_FILES["loss_vs_compute"]),
        "isoflop": plot_isoflop(result, points, out / PLOT_FILES["isoflop"]),
        "lr": plot_lr(result, points, out / PLOT_FILES["lr"]),
        "residuals": plot_residuals(fit, tuned, out / PLOT_FILES["residuals"]),
    }
    if result.get("mixture"):
        made["mixture"] = plot_mixture(result["mixture"], out / "mixture.png")
    for j, knob in enumerate(result.get("knob_effects") or {}):
        made[f"knob_{knob}"] = plot_knob(result, points, knob, out / f"knob_{j}.png")
    return {k: v for k, v in made.items() if v}


def plots_not_made(made: dict[str, str]) -> dict[str, str]:
    """File name -> why, for each plot of :data:`PLOT_FILES` missing from ``made``."""
    return {PLOT_FILES[name]: why for name, why in WHY_NOT_MADE.items() if name not in made}
