"""The ``mixture:`` sweep part: simplex grids and Dirichlet samples of domain weights, the natural and
uniform mixtures, crossed with a ladder and seeds, with stable run ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from scaling.errors import ScalingError
from sweeps.mixture import mixture_points, simplex_grid
from sweeps.plan import plan_sweep
from sweeps.spec import parse_spec


def _datasets(root, tokens: dict[str, int]) -> list[str]:
    paths = []
    for name, n in tokens.items():
        (root / name).mkdir(parents=True)
        (root / name / "manifest.json").write_text(json.dumps({"splits": {"train": {"tokens": n}}}))
        paths.append(str(root / name))
    return paths


def test_simplex_grid_has_every_vector_of_the_step():
    grid = simplex_grid(3, 0.25)
    assert len(grid) == 15  # C(4 + 2, 2)
    assert all(sum(v) == pytest.approx(1) for v in grid) and (0.5, 0.25, 0.25) in grid
    with pytest.raises(ScalingError, match="must divide 1"):
        simplex_grid(3, 0.3)


def test_grid_points_add_natural_and_uniform_and_name_every_domain_for_evaluation(tmp_path):
    paths = _datasets(tmp_path, {"lib": 6000, "tests": 3000, "docs": 1000})
    points = mixture_points({"domains": paths, "step": 0.5})
    weights = [{s["path"].split("/")[-1]: s["weight"] for s in p["data.mixture"]} for p in points]
    assert len(points) == 6 + 2  # 6 grid vectors, the natural mixture, the uniform one
    assert {"lib": 0.6, "tests": 0.3, "docs": 0.1} in weights
    assert {"lib": 0.333333, "tests": 0.333333, "docs": 0.333333} in weights
    assert {"lib": 1.0} in weights  # a weight of 0 leaves the source out of data.mixture ...
    assert all(
        [e["name"] for e in p["data.eval"]] == ["lib", "tests", "docs"] for p in points
    )  # ... not of eval


def test_dirichlet_samples_center_on_the_natural_mixture_and_repeat_with_the_seed(tmp_path):
    paths = _datasets(tmp_path, {"lib": 8000, "docs": 2000})
    section = {"domains": paths, "dirichlet": {"n": 60, "concentration": 50, "seed": 1}, "natural": False,
               "uniform": False}
    points = mixture_points(section)
    lib = np.array([p["data.mixture"][0]["weight"] for p in points])
    assert len(points) == 60 and lib.mean() == pytest.approx(0.8, abs=0.015) and lib.std() < 0.05
    assert mixture_points(section) == points


def test_a_mixture_sweep_crosses_with_a_ladder_and_seeds_with_stable_ids(tmp_path, tiny_corpus):
    import shutil

    for name in ("lib", "docs"):
        shutil.copytree(tiny_corpus, tmp_path / name)
    raw = {"name": "mix", "overrides": ["model.vocab_size=512", "train.seq_len=64"],
           "ladder": {"models": ["s100k", "s330k"], "tokens": [1e6]},
           "mixture": {"domains": [str(tmp_path / "lib"), str(tmp_path / "docs")], "step": 0.5},
           "seeds": 2}
    spec = parse_spec(raw, "mix.yaml", tmp_path)
    runs = plan_sweep(spec, tmp_path / "sweep")
    assert (
        len(runs) == 2 * 3 * 2
    )  # sizes x grid of 3 (the natural and uniform mixtures are 50/50, on it) x seeds
    assert len({r.run_id for r in runs}) == len(runs)
    assert [r.run_id for r in plan_sweep(parse_spec(raw, "mix.yaml", tmp_path), tmp_path / "sweep")] == \
        [r.run_id for r in runs]
    cfg = runs[0].config
    assert [e.name for e in cfg.data.eval] == ["lib", "docs"]
    assert sum(s.weight for s in cfg.data.mixture) == pytest.approx(1.0)


def test_the_example_spec_plans_the_runs_its_header_says(tmp_path, monkeypatch):
    from pathlib import Path

    spec_path = Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "mixture.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    domains = raw["mixture"]["domains"]
    monkeypatch.chdir(tmp_path)
    _datasets(tmp_path / "data", {Path(d).name: n for d, n in zip(domains, (5000, 3000, 2000), strict=True)})
    header = spec_path.read_text().split("\nname:")[0]
    assert len(mixture_points(raw["mixture"])) * len(raw["ladder"]["models"]) == 32 and "32 runs" in header
    natural = mixture_points({**raw["mixture"], "natural": True})  # needs the manifests made above
    assert len(natural) * len(raw["ladder"]["models"]) == 34 and "34 with natural: true" in header


def test_bad_mixture_sections_are_one_line_errors(tmp_path):
    paths = _datasets(tmp_path, {"a": 10, "b": 10})
    with pytest.raises(ScalingError, match="exactly one of step"):
        mixture_points({"domains": paths})
    with pytest.raises(ScalingError, match="two or more prepared datasets"):
        mixture_points({"domains": paths[:1], "step": 0.5})
    with pytest.raises(ScalingError, match="prepare the dataset first"):
        mixture_points({"domains": [*paths, str(tmp_path / "missing")], "step": 0.5})
    with pytest.raises(ScalingError, match="unknown key 'steps'"):
        mixture_points({"domains": paths, "steps": 0.5})
