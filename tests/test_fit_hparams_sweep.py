"""The ``hparams:`` sweep generator: LR x batch grids in log steps around a given or fitted centre."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaling.errors import ScalingError
from sweeps.plan import plan_sweep
from sweeps.spec import parse_spec


def _grid(runs, model, tokens=None):
    mine = [
        r for r in runs if r.swept["model"] == model and (tokens is None or r.swept["train.tokens"] == tokens)
    ]
    return sorted({r.swept["optim.lr"] for r in mine}), sorted(
        {r.config.train.micro_batch_size * r.config.train.grad_accum * r.config.train.seq_len for r in mine}
    )


def test_a_given_centre_gives_five_lrs_by_four_batches_per_cell(tmp_path):
    spec = parse_spec(
        {
            "overrides": ["train.seq_len=128", "train.micro_batch_size=8"],
            "hparams": {"models": ["s330k", "s800k"], "tokens": [2e6, 8e6], "lr": 4e-3, "batch": 4096},
        },
        base_dir=tmp_path,
    )
    runs = plan_sweep(spec, tmp_path / "sweep")
    assert len(runs) == 2 * 2 * 5 * 4
    lrs, batches = _grid(runs, "s330k", 2e6)
    assert lrs == pytest.approx([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])
    assert batches == [2048, 4096, 8192, 16384]  # micro-batch x grad_accum x seq_len; the extra one above


def test_the_centre_follows_a_fits_laws_at_each_size_and_budget(tmp_path):
    law = {
        "form": "N,D",
        "coef": 0.5,
        "exponents": {"N": -0.3, "D": 0.1},
        "log_resid_std": 0.01,
        "n_points": 6,
    }
    batch_law = {"form": "C", "coef": 1.0, "exponents": {"C": 0.25}, "log_resid_std": 0.01, "n_points": 6}
    fit = {
        "inputs": {"params_kind": "non-embedding"},
        "hparams": {"lr": {"law": law}, "batch_size": {"law": batch_law}},
    }
    (tmp_path / "fit.json").write_text(json.dumps(fit))
    spec = parse_spec(
        {
            "overrides": ["train.seq_len=64"],
            "hparams": {
                "models": ["s330k", "s800k"],
                "tokens_per_param": [20, 80],
                "fit": "fit.json",
                "lr_points": 3,
                "batch_points": 1,
            },
        },
        base_dir=tmp_path,
    )
    runs = plan_sweep(spec, tmp_path / "sweep")
    assert len(runs) == 2 * 2 * 3
    for r in runs[1::3]:  # the middle LR of each cell is the law's value there
        n, d = r.non_embedding, r.swept["train.tokens"]
        assert r.swept["optim.lr"] == pytest.approx(0.5 * n**-0.3 * d**0.1, rel=1e-3)
        batch = r.config.train.micro_batch_size * r.config.train.grad_accum * 64
        assert np.log(batch / (6 * n * d) ** 0.25) == pytest.approx(
            0, abs=np.log(1.5)
        )  # rounded to sequences
    assert len({r.swept["optim.lr"] for r in runs}) == 12  # a centre per (N, D), not one for all


def test_the_generator_refuses_a_grid_over_its_own_keys_and_a_missing_fit(tmp_path):
    with pytest.raises(ScalingError, match="optim.lr is set by both hparams and grid"):
        parse_spec({"hparams": {"models": ["s330k"], "tokens": [1e6]}, "grid": {"optim.lr": [1e-3, 2e-3]}})
    spec = parse_spec(
        {"hparams": {"models": ["s330k"], "tokens": [1e6], "fit": "nowhere/fit.json"}}, base_dir=tmp_path
    )
    with pytest.raises(ScalingError, match="cannot read .*fit.json"):
        plan_sweep(spec, tmp_path / "sweep")
