"""The mixture law on synthetic studies with a known truth: the law's constants and the optimum are
recovered, the epoch cap binds and warns, and ``scaling fit`` carries the weights to large_run.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from scaling.errors import ScalingError
from scaling.fit import fit_runs
from scaling.fit.mixture import analyse_mixture
from scaling.fit.mixture_data import MixtureData, csv_rows, load_mixture
from scaling.fit.mixture_law import choose_law

DOMAINS = ["code", "docs", "tests"]
# the exponential mixing law per evaluation set i: L_i(r) = c_i + exp(Σ_j T[i, j] r_j); each set is
# helped most by its own domain
T = np.array([[-2.0, 0.3, -0.5], [0.4, -2.5, 0.1], [-0.6, 0.2, -1.8]])
C = np.array([1.5, 1.8, 1.2])


def true_loss(r: np.ndarray) -> np.ndarray:
    return C + np.exp(np.atleast_2d(r) @ T.T)


def study(n: int = 20, noise: float = 0.003, seed: int = 0, scale: np.ndarray | None = None) -> MixtureData:
    """``n`` Dirichlet mixtures of the three domains with log-normal noise on each loss."""
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(3), size=n)
    loss = true_loss(r) * np.exp(rng.normal(0, noise, (n, 3)))
    if scale is not None:
        loss = loss * scale[:, None]
    return MixtureData(DOMAINS, list(DOMAINS), r, loss, np.full(n, np.nan), np.full(n, np.nan),
                       [f"run{i}" for i in range(n)])


def grid_optimum(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: float = 0.005) -> np.ndarray:
    """Brute-force optimum of the true law on the simplex within [lo, hi]."""
    a, b = np.meshgrid(np.arange(0, 1 + step, step), np.arange(0, 1 + step, step))
    r = np.column_stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()])
    r = r[np.all((r >= lo - 1e-9) & (r <= hi + 1e-9), axis=1)]
    return r[np.argmin(true_loss(r) @ target)]


def write_mixture_csv(path, data: MixtureData, **extra) -> str:
    cols = [f"w_{d}" for d in data.domains] + [f"loss_{e}" for e in data.eval_sets] + list(extra)
    rows = [",".join(cols)]
    for i in range(len(data)):
        rows.append(
            ",".join(str(v) for v in [*data.weights[i], *data.losses[i], *(extra[c][i] for c in extra)])
        )
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_exponential_law_is_chosen_by_held_out_error_and_its_constants_recovered():
    data = study()
    law, heldout, forms = choose_law(data.weights, data.losses, data.eval_sets)
    assert law.form == "exponential"
    assert forms["exponential"]["mae"] < forms["linear"]["mae"] / 3
    assert heldout["rank_corr"] > 0.95 and heldout["method"] == "leave-one-mixture-out"
    consts = law.to_dict(DOMAINS, DOMAINS)
    for i, e in enumerate(DOMAINS):
        assert consts[e]["c"] == pytest.approx(C[i], abs=0.1)
        for j, d in enumerate(DOMAINS):
            assert consts[e][f"t_{d}"] == pytest.approx(T[i, j], abs=0.25)


def test_quadratic_truth_picks_a_regression_over_the_weights():
    rng = np.random.default_rng(3)
    r = rng.dirichlet(np.ones(3), size=30)
    # a synergy between code and tests that no single exponential can bend to
    loss = (2.0 * r[:, 0] + 2.4 * r[:, 1] + 2.2 * r[:, 2] - 2.5 * r[:, 0] * r[:, 2])[:, None]
    law, heldout, _ = choose_law(r, loss + rng.normal(0, 0.002, loss.shape), ["code"])
    assert law.form == "quadratic"
    assert heldout["mae"] < 0.005


def test_optimum_for_a_combined_target_matches_the_true_law():
    data = study()
    m = analyse_mixture(data, target="code=1,docs=1", n_boot=30)
    lo = np.array([m["bounds"][d][0] for d in DOMAINS])
    hi = np.array([m["bounds"][d][1] for d in DOMAINS])
    truth = grid_optimum(np.array([1.0, 1.0, 0.0]), lo, hi)
    got = np.array([m["weights"][d]["value"] for d in DOMAINS])
    assert got.sum() == pytest.approx(1.0)
    assert np.abs(got - truth).max() < 0.03
    assert m["weights"]["docs"]["lo"] <= m["weights"]["docs"]["value"] <= m["weights"]["docs"]["hi"]
    assert m["predicted"]["code"]["loss"] == pytest.approx(float(true_loss(got)[0, 0]), rel=0.01)
    assert m["target"] == {"code": 1.0, "docs": 1.0}


def test_own_domain_gets_more_weight_than_the_natural_mixture_for_its_eval_set():
    data = study()
    data.domain_tokens = {"code": 6e9, "docs": 1e9, "tests": 3e9}
    m = analyse_mixture(data, target="docs", n_boot=0, large_tokens=1e9)
    assert m["natural"]["weights"]["docs"] == pytest.approx(0.1)
    assert m["weights"]["docs"]["value"] > 0.5
    assert m["predicted"]["docs"]["loss"] < m["natural"]["predicted"]["docs"]


def test_epoch_cap_limits_a_small_domain_and_warns():
    data = study()
    data.domain_tokens = {"code": 1e10, "docs": 5e7, "tests": 1e10}  # docs: 50M tokens
    m = analyse_mixture(data, target="docs", n_boot=0, large_tokens=1e9, max_epochs=4)
    # 4 epochs of 50M tokens in a 1B-token run: at most 20% docs, though docs is best for docs
    assert m["weights"]["docs"]["value"] == pytest.approx(0.2, abs=1e-6)
    assert m["epochs"]["docs"] == pytest.approx(4.0, rel=1e-6)
    assert any("docs is capped" in w and "--max-epochs 4" in w for w in m["warnings"])


def test_too_little_data_in_all_domains_raises_the_cap_and_says_so():
    data = study()
    data.domain_tokens = {"code": 1e8, "docs": 1e8, "tests": 1e8}
    m = analyse_mixture(data, target="docs", n_boot=0, large_tokens=3e9, max_epochs=4)
    assert sum(w["value"] for w in m["weights"].values()) == pytest.approx(1.0)
    assert any("repeats them 10 times" in w for w in m["warnings"])


def test_min_weight_is_kept_and_bad_constraints_are_one_line_errors():
    data = study()
    m = analyse_mixture(data, target="docs", n_boot=0, min_weight="tests=0.15")
    assert m["weights"]["tests"]["value"] >= 0.15 - 1e-9
    with pytest.raises(ScalingError, match="together at most 1"):
        analyse_mixture(data, n_boot=0, min_weight=0.5)
    with pytest.raises(ScalingError, match="the evaluation sets are code, docs, tests"):
        analyse_mixture(data, target="prose", n_boot=0)


def test_too_few_mixtures_is_an_error_that_says_what_to_add():
    data = study(n=2)
    with pytest.raises(ScalingError, match="at least 3 weight vectors"):
        analyse_mixture(data, n_boot=0)


def test_mixture_only_csv_fit_writes_weights_candidates_and_large_run(tmp_path):
    from scaling.config_loading import load_config

    csv = write_mixture_csv(tmp_path / "mix.csv", study())
    cand = tmp_path / "cand.csv"
    cand.write_text("w_code,w_docs,w_tests\n1,1,1\n0,1,0\n")
    out = tmp_path / "fit"
    result = fit_runs([csv], out, n_boot=20, wandb="disabled", mixture_target="docs", target_tokens=1e9,
                      domain_tokens=("code=6e9,docs=1e9", "tests=3e9"), predict_mixtures=str(cand))
    assert json.loads((out / "fit.json").read_text()) == result
    assert "parametric" not in result and result["inputs"]["scaling_law"] == "skipped"
    m = result["mixture"]
    assert set(m) >= {"law", "heldout", "target", "weights", "predicted", "epochs", "warnings", "candidates"}
    assert m["heldout"]["rank_corr"] > 0.9 and m["heldout"]["mae"] < 0.02
    assert m["epochs"]["docs"] == pytest.approx(m["weights"]["docs"]["value"] * 1e9 / 1e9)
    pure_docs = m["candidates"][1]
    assert pure_docs["weights"] == {"code": 0.0, "docs": 1.0, "tests": 0.0}
    assert pure_docs["predicted"]["docs"] == pytest.approx(
        float(true_loss(np.array([0, 1, 0]))[0, 1]), rel=0.03
    )
    cfg = load_config([out / "large_run.yaml"])
    carried = {s.path: s.weight for s in cfg.data.mixture}
    assert carried["docs"] == pytest.approx(m["weights"]["docs"]["value"], abs=1e-4)
    report = (out / "report.md").read_text()
    assert "## Data mixture" in report and "skipped" in report
    assert (out / "mixture.png").stat().st_size > 0


def test_a_mixture_only_large_run_starts_from_the_base_config_given(tmp_path):
    base = tmp_path / "mine.yaml"
    base.write_text("optim: {lr: 0.0015}\ntrain: {micro_batch_size: 4}\n")
    out = tmp_path / "fit"
    fit_runs([write_mixture_csv(tmp_path / "mix.csv", study())], out, n_boot=0, plots=False,
             wandb="disabled", base_config=str(base))
    large = yaml.safe_load((out / "large_run.yaml").read_text())
    assert (large["optim"]["lr"], large["train"]["micro_batch_size"]) == (0.0015, 4)
    assert {s["path"] for s in large["data"]["mixture"]} <= {"code", "docs", "tests"}


def test_csv_with_sizes_fits_both_laws_and_reports_how_the_optimum_moves(tmp_path):
    small, large = study(seed=1), study(seed=2)
    data = MixtureData(DOMAINS, DOMAINS, np.vstack([small.weights, large.weights]),
                       np.vstack([small.losses * 1.3, large.losses]), np.zeros(40), np.zeros(40),
                       [str(i) for i in range(40)])
    n = np.repeat([1e7, 4e7], 20)
    d = 20 * n
    loss = 1.8 + 300 / n ** 0.3 + 400 / d ** 0.3
    csv = write_mixture_csv(tmp_path / "both.csv", data, params=n, tokens=d, loss=loss, seed=np.arange(40))
    result = fit_runs(
        [csv],
        tmp_path / "fit",
        n_boot=0,
        plots=False,
        wandb="disabled",
        mixture_target="tests",
        target_flops=1e18,
    )
    assert "parametric" in result and result["mixture"]["law"] == "exponential"
    assert not any(k.startswith(("w_", "loss_")) for k in result["knobs"]["knobs"])
    by_size = result["mixture"]["by_size"]
    assert [round(s["params"]) for s in by_size] == [10_000_000, 40_000_000]
    assert "the optimum moves" in result["mixture"]["size_trend"]
    assert result["mixture"]["n_runs"] == 20  # the recommendation is the largest size's


def _mixture_run_dirs(root, shares) -> None:
    """Run dirs of one size on a code/docs mixture: val/code/loss = 3 - w, val/docs/loss = 2 + w (w: code)."""
    for name, tokens in (("code", 1000), ("docs", 3000)):
        (root / name).mkdir()
        (root / name / "manifest.json").write_text(json.dumps({"splits": {"train": {"tokens": tokens}},
                                                           "tokenizer": {"vocab_size": 512}}))
    for i, w in enumerate(shares):
        run = root / "sweep" / f"r{i}"
        run.mkdir(parents=True)
        mixture = [{"path": str(root / "code"), "weight": w}, {"path": str(root / "docs"), "weight": 1 - w}]
        (run / "config.yaml").write_text(yaml.safe_dump({"data": {"mixture": mixture}}))
        (run / "result.json").write_text(json.dumps({"status": "done", "run_id": f"r{i}", "tokens": 1e6,
                                                     "params_non_embedding": 1e5, "final_val_loss": 3.0}))
        (run / "metrics.jsonl").write_text(json.dumps({"val/loss": 3.0, "val/code/loss": 3 - w,
                                                       "val/docs/loss": 2 + w, "train/tokens": 1e6}) + "\n")


def test_run_dirs_at_one_size_fit_the_mixture_law_alone_and_say_why(tmp_path):
    _mixture_run_dirs(tmp_path, [0.1, 0.3, 0.5, 0.7, 0.9])
    result = fit_runs([tmp_path / "sweep"], tmp_path / "fit", n_boot=0, plots=False, wandb="disabled",
                      mixture_target="code")
    assert "approach 3 needs at least 2 model sizes" in result["warnings"][0]
    assert result["mixture"]["weights"]["code"]["value"] == pytest.approx(
        0.9
    )  # the best tried: no extrapolation
    large = yaml.safe_load((tmp_path / "fit" / "large_run.yaml").read_text())
    assert large["data"]["mixture"] == [{"path": str(tmp_path / "code"), "weight": 0.9},
                                        {"path": str(tmp_path / "docs"), "weight": 0.1}]


def test_run_dirs_give_weights_from_data_mixture_and_losses_per_eval_set(tmp_path):
    _mixture_run_dirs(tmp_path, [0.2, 0.5, 0.8])
    data = load_mixture([tmp_path / "sweep"])
    assert data.domains == ["code", "docs"] and data.eval_sets == ["code", "docs"]
    assert data.weights[:, 0].tolist() == pytest.approx([0.2, 0.5, 0.8])
    assert data.losses[:, 0].tolist() == pytest.approx([2.8, 2.5, 2.2])
    assert data.domain_tokens == {"code": 1000.0, "docs": 3000.0}
    assert data.domain_paths["docs"] == str(tmp_path / "docs")


def test_the_mixture_flags_reach_the_fit_options():
    import argparse

    from scaling.cli.fit import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["m.csv", "--out", "fit", "--mixture", "--mixture-target", "docs=2,code=1",
                              "--mixture-min-weight", "tests=0.1", "--max-epochs", "2", "--domain-tokens",
                              "code=1e9", "--domain-tokens", "docs=2e8", "--predict-mixtures", "c.csv"])
    options = options_from_args(args)
    assert (options.mixture, options.mixture_target, options.mixture_min_weight, options.max_epochs) == (
        True, "docs=2,code=1", "tests=0.1", 2.0)
    assert options.domain_tokens == ("code=1e9", "docs=2e8") and options.predict_mixtures == "c.csv"
    assert options_from_args(parser.parse_args(["m.csv", "--out", "f", "--mixture-min-weight", "0.05"])
                             ).mixture_min_weight == 0.05


def test_a_mixture_csv_reads_wandbs_run_states_as_the_scaling_csv_does(tmp_path):
    """A W&B export's "finished" rows were all skipped (only "done" counted); crashed rows are left out
    and an unknown word is refused, as in a scaling-law CSV."""
    data = study(n=6)
    states = ["finished", "Finished", "done", "", "crashed", "running"]
    rows = csv_rows(Path(write_mixture_csv(tmp_path / "mix.csv", data, status=states)))
    assert [r["run"] for r in rows] == [f"mix.csv:{line}" for line in (2, 3, 4, 5)]
    write_mixture_csv(tmp_path / "bad.csv", data, status=["maybe"] * 6)
    with pytest.raises(ScalingError, match="status 'maybe' is not one the fit knows"):
        csv_rows(tmp_path / "bad.csv")
