"""Mirror a fit to W&B: one run of job_type "fit" in the sweep's group, with tables, plots and the
headline numbers in its summary. The files in the output folder stay the source of truth."""

from __future__ import annotations

from pathlib import Path

from scaling.fit.data import Points


def log_fit(result: dict, points: Points, out: Path, *, mode: str = "offline", project: str = "scaling",
            group: str | None = None) -> dict:
    """Log ``result`` (the fit.json dict) as a W&B run under ``out``; returns {mode, id, dir}."""
    import wandb

    from scaling.errors import ScalingError

    if mode not in ("offline", "online", "disabled"):
        raise ScalingError(f"--wandb must be offline, online or disabled, not {mode!r}")
    par, rec = result["parametric"], result["recommendation"]
    run = wandb.init(
        mode=mode,
        dir=str(out),
        project=project,
        group=group,
        job_type="fit",
        name=f"fit-{group}" if group else None,
        reinit="finish_previous",
        settings=wandb.Settings(silent=True),  # one line of ours below instead of W&B's chatter
        config={"inputs": result["inputs"], "target_flops": rec["flops"], "ci_level": par["ci_level"]},
    )
    try:
        rows = [[float(n), float(d), float(c), float(lo), r] for n, d, c, lo, r in
                zip(points.params, points.tokens, points.flops, points.loss, points.run, strict=True)]
        tables = {
            "fit/runs": wandb.Table(columns=["params", "tokens", "flops", "loss", "run"], data=rows),
            "fit/predictions": wandb.Table(
                columns=["params", "tokens", "loss", "lo", "hi"],
                data=[[p["params"], p["tokens"], p["loss"], p["lo"], p["hi"]] for p in result["predictions"]],
            ),
            "fit/knobs": wandb.Table(
                columns=["knob", "verdict", "n_real", "n_comparisons"],
                data=[
                    [k, v["verdict"], v["n_real"], v["n_comparisons"]]
                    for k, v in result["knobs"]["knobs"].items()
                ],
            ),
            "fit/knob_effects": wandb.Table(
                columns=[
                    "knob",
                    "level",
                    "verdict",
                    "loss",
                    "lo",
                    "hi",
                    "difference",
                    "multiplier",
                    "multiplier_lo",
                    "multiplier_hi",
                    "crossover_flops",
                ],
                data=[
                    [
                        k,
                        lv,
                        e["verdict"],
                        x["loss"],
                        x["lo"],
                        x["hi"],
                        e["difference"][lv]["value"],
                        e["multiplier"][lv]["value"],
                        e["multiplier"][lv]["lo"],
                        e["multiplier"][lv]["hi"],
                        e["crossover_flops"].get(lv),
                    ]
                    for k, e in (result.get("knob_effects") or {}).items()
                    for lv, x in e["levels"].items()
                ],
            ),
        }
        images = {
            f"fit/plot/{name}": wandb.Image(path) for name, path in result["outputs"].get("plots", {}).items()
        }
        run.log({**tables, **images})
        for key in ("E", "A", "B", "alpha", "beta", "a", "b", "grad_norm"):
            run.summary[f"fit/{key}"] = par[key]
            interval = (par.get("ci") or {}).get(key)
            if interval and None not in interval:  # A and B mean little without theirs
                run.summary[f"fit/{key}_lo"], run.summary[f"fit/{key}_hi"] = interval
        for key in ("params", "tokens", "flops", "loss", "lo", "hi", "lr", "batch_tokens"):
            run.summary[f"recommendation/{key}"] = rec[key]
        for knob, e in (result.get("knob_effects") or {}).items():
            run.summary[f"knob/{knob}/verdict"] = e["verdict"]
            run.summary[f"knob/{knob}/best"] = e["best"]
            run.summary[f"knob/{knob}/runner_up_multiplier"] = e["multiplier"][e["runner_up"]]["value"]
        info = {"mode": mode, "id": run.id, "dir": str(Path(run.dir).parent) if run.dir else None}
    finally:
        run.finish()
    return info
