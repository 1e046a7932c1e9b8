"""Synthetic fit inputs from known constants, for tests, benchmarks and trying the tools out.

A study whose answer is known is the only way to check a fitter: these functions draw losses from
L(N, D) = E + A/N^α + B/D^β with log-normal noise, optionally with an LR penalty, and write them as a
CSV or as run dirs in the run-dir contract (config.yaml, result.json, metrics.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_pipelines.atomic import atomic_write_json, atomic_write_text
from scaling.fit.parametric import ParametricFit


def ladder_grid(law: ParametricFit, sizes, tokens, *, noise: float = 0.01, seed: int = 0):
    """Every size × token count, losses with multiplicative log-noise of std ``noise``: (N, D, L)."""
    n, d = (
        a.ravel() for a in np.meshgrid(np.asarray(sizes, float), np.asarray(tokens, float), indexing="ij")
    )
    rng = np.random.default_rng(seed)
    return n, d, law.predict(n, d) * np.exp(rng.normal(0.0, noise, n.size))


def write_csv(path, params, tokens, loss, **columns) -> Path:
    """A fit CSV with the required columns plus any extra (knob) columns."""
    names = ["params", "tokens", "loss", *columns]
    rows = [",".join(names)]
    for i in range(len(params)):
        rows.append(
            ",".join(str(v) for v in (params[i], tokens[i], loss[i], *(columns[c][i] for c in columns)))
        )
    atomic_write_text(path, "\n".join(rows) + "\n")
    return Path(path)


def lr_penalty(lr: float, lr_opt: float, width: float = 0.3) -> float:
    """Extra loss of a learning rate off the optimum: width · (log10(lr/lr_opt))²."""
    return width * np.log10(lr / lr_opt) ** 2


def write_runs(root, law: ParametricFit, runs: list[dict], *, noise: float = 0.01, seed: int = 0,
               group: str = "synthetic", curve_points: int = 8) -> list[Path]:
    """Write run dirs for ``runs`` = [{n_layer, tokens, lr, seed, (status)}] under ``root``.

    Sizes come from the ladder shape of ``n_layer`` (counted like the trainer counts them); the loss is
    the law at (non-embedding N, D) + an LR penalty around lr_opt = 0.02·N^-0.3, times log-noise.
    Validation curves follow the same law at intermediate token counts.
    """
    from scaling.config_loading import load_config, to_yaml
    from scaling.counting import count_params, flops_per_token
    from scaling.ladder import ladder_shape

    rng = np.random.default_rng(seed)
    paths = []
    for k, spec in enumerate(runs):
        shape = ladder_shape(spec["n_layer"])
        overrides = [f"model.{key}={'null' if v is None else v}" for key, v in shape.items()]
        overrides += [
            f"train.tokens={spec['tokens']}",
            f"optim.lr={spec['lr']}",
            f"run.seed={spec['seed']}",
            f"logging.group={group}",
            "train.seq_len=128",
            "train.micro_batch_size=8",
            "model.vocab_size=512",
        ]
        overrides += [f"{key}={value}" for key, value in spec.get("config", {}).items()]
        cfg = load_config([], overrides)
        counts = count_params(cfg.model)
        n, d = counts.non_embedding, float(spec["tokens"])
        lr_opt = 0.02 * n ** -0.3
        shift = spec.get("loss_shift", 0.0)
        loss = float(
            (law.predict(n, d) + lr_penalty(spec["lr"], lr_opt) + shift) * np.exp(rng.normal(0, noise))
        )
        fpt = flops_per_token(cfg.model, cfg.train.seq_len)
        run = Path(root) / f"run{k:03d}"
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", to_yaml(cfg))
        status = spec.get("status", "done")
        atomic_write_json(run / "result.json", {
            "status": status, "run_id": f"r{k:03d}", "params": counts.total, "params_non_embedding": n,
            "tokens": d, "flops": fpt * d, "final_val_loss": loss if status == "done" else float("nan"),
            "best_val_loss": loss, "seed": spec["seed"], "lr": spec["lr"], "batch_tokens": 8 * 128,
            "seq_len": 128, "model": "custom", "parent": None, "wall_time_s": 1.0, "tokens_per_sec": 1e4})
        lines = []
        for t in np.linspace(d / curve_points, d, curve_points):
            lines.append(
                json.dumps({"train/tokens": float(t), "train/loss": loss + 0.1, "train/lr": spec["lr"]})
            )
            val = (law.predict(n, t) + lr_penalty(spec["lr"], lr_opt) + shift) * np.exp(
                rng.normal(0, noise / 2)
            )
            lines.append(json.dumps({"train/tokens": float(t), "val/loss": float(val)}))
        atomic_write_text(run / "metrics.jsonl", "\n".join(lines) + "\n")
        paths.append(run)
    return paths


def demo_like_runs(root, law: ParametricFit, *, noise: float = 0.01, seed: int = 0) -> list[Path]:
    """~25 runs shaped like the demo's study: 5 sizes × 3 token budgets, an LR sweep at 2 sizes, 2 seeds."""
    specs = []
    for n_layer in (2, 3, 4, 5, 6):
        for tokens in (1e6, 3e6, 1e7):
            specs.append({"n_layer": n_layer, "tokens": tokens, "lr": None, "seed": 0})
    for n_layer in (3, 5):
        for factor in (0.25, 0.5, 2.0, 4.0):
            specs.append({"n_layer": n_layer, "tokens": 3e6, "lr": factor, "seed": 0})
    specs.append({"n_layer": 4, "tokens": 3e6, "lr": None, "seed": 1})
    specs.append({"n_layer": 6, "tokens": 1e7, "lr": None, "seed": 1})
    # lr None = the optimum of that size; a number = that multiple of it
    from scaling.counting import count_params
    from scaling.fit.recommend import ModelConfig
    from scaling.ladder import ladder_shape

    for s in specs:
        n = count_params(ModelConfig(**{**ladder_shape(s["n_layer"]), "vocab_size": 512})).non_embedding
        best = 0.02 * n ** -0.3
        s["lr"] = float(f"{best * (s['lr'] or 1.0):.4g}")
    return write_runs(root, law, specs, noise=noise, seed=seed)


def isoflop_grid(law: ParametricFit, budgets, *, sizes=(5, 9), half_width_dex: float = 0.7,
                 offset_dex: float = 0.25, noise: float = 0.0075, seed: int = 0):
    """An IsoFLOP study as a real one looks: per budget 5-9 unevenly spaced sizes (random positions,
    at least 0.05 decades apart, between two end sizes ``half_width_dex`` decades either side of a
    centre that misses the true optimum by up to ``offset_dex``), tokens = C/(6N), losses times
    (1 + N(0, noise)): (N, D, L, C)."""
    rng = np.random.default_rng(seed)
    n, c = [], []
    for budget in np.asarray(budgets, dtype=float):
        centre = np.log10(law.n_opt(budget)) + rng.uniform(-offset_dex, offset_dex)
        k = int(rng.integers(sizes[0], sizes[1] + 1))
        u = np.zeros(2)
        while np.diff(u).min() < 0.05:  # sizes at least 12% apart, as a real ladder's are
            inner = rng.uniform(centre - half_width_dex, centre + half_width_dex, k - 2)
            u = np.sort(np.concatenate([[centre - half_width_dex, centre + half_width_dex], inner]))
        n += list(10 ** u)
        c += [budget] * u.size
    n, c = np.array(n), np.array(c)
    d = c / (6 * n)
    return n, d, law.predict(n, d) * (1 + rng.normal(0.0, noise, n.size)), c
