"""Sweep specs expand into the right runs, with stable ids, and bad specs fail in one line before any run."""

from __future__ import annotations

import math

import pytest
import yaml

from scaling.config_loading import load_config, run_id
from scaling.counting import count_params, flops_per_token
from scaling.errors import ScalingError
from sweeps.plan import dotlist, format_plan, plan_sweep
from sweeps.spec import load_spec, parse_spec

TINY = "[model=s100k, model.vocab_size=512, train.seq_len=64, train.micro_batch_size=4, train.tokens=2e5]"


def _plan(text: str, tmp_path):
    return plan_sweep(parse_spec(yaml.safe_load(text), "spec.yaml", tmp_path), tmp_path / "sweep")


def test_grid_times_seeds_is_a_cartesian_product_with_ids_from_the_resolved_config(tmp_path):
    runs = _plan(f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3, 3.0e-3]}}\nseeds: 3\n", tmp_path)
    assert [(r.swept["optim.lr"], r.swept["run.seed"]) for r in runs] == [
        (1e-3, 0), (1e-3, 1), (1e-3, 2), (3e-3, 0), (3e-3, 1), (3e-3, 2)]
    for r in runs:
        cfg = load_config([], dotlist(r.overrides))
        assert r.run_id == run_id(cfg)
        assert cfg.optim.lr == r.swept["optim.lr"] and cfg.run.seed == r.swept["run.seed"]
    assert len({r.run_id for r in runs}) == 6
    assert runs[4].tags == ["optim.lr=0.003", "seed=1"]


def test_ids_are_stable_across_plans_and_do_not_depend_on_logging_or_threads(tmp_path):
    a = _plan(f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3]}}\n", tmp_path)
    b = _plan(f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3]}}\nseeds: [0]\n", tmp_path)
    c = _plan(
        f"overrides: {TINY[:-1]}, train.threads=1, logging.project=x]\ngrid: {{optim.lr: [1.0e-3]}}\n",
        tmp_path,
    )
    assert a[0].run_id == b[0].run_id == c[0].run_id


def test_zip_pairs_lists_and_refuses_unequal_lengths(tmp_path):
    runs = _plan(
        f"overrides: {TINY}\nzip: {{optim.lr: [1.0e-3, 2.0e-3], optim.beta2: [0.9, 0.99]}}\n", tmp_path
    )
    assert [(r.swept["optim.lr"], r.swept["optim.beta2"]) for r in runs] == [(1e-3, 0.9), (2e-3, 0.99)]
    with pytest.raises(ScalingError, match=r"same length \(optim.lr: 2, optim.beta2: 1\)"):
        _plan(f"overrides: {TINY}\nzip: {{optim.lr: [1.0e-3, 2.0e-3], optim.beta2: [0.9]}}\n", tmp_path)


def test_random_samples_are_reproducible_and_inside_their_ranges(tmp_path):
    text = (f"overrides: {TINY}\nrandom:\n  n: 20\n  seed: 7\n  params:\n"
            "    optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}\n"
            "    model.n_layer: {distribution: int_uniform, min: 1, max: 3}\n"
            "    model.activation: {values: [gelu, swiglu]}\n")
    runs, again = _plan(text, tmp_path), _plan(text, tmp_path)
    assert [r.run_id for r in runs] == [r.run_id for r in again]
    lrs = [r.swept["optim.lr"] for r in runs]
    assert all(1e-4 <= x <= 1e-2 for x in lrs)
    assert min(lrs) < 1e-3 < max(lrs)  # log-uniform: a tenth of the range below 1e-3 would be rare otherwise
    assert {r.swept["model.n_layer"] for r in runs} <= {1, 2, 3}
    assert {r.swept["model.activation"] for r in runs} == {"gelu", "swiglu"}


def _sampled(dist: str, tmp_path, n: int = 40) -> list[float]:
    text = f"overrides: {TINY}\nmethod: random\nrun_cap: {n}\nparameters:\n  optim.lr: {dist}\n"
    return [r.swept["optim.lr"] for r in _plan(text, tmp_path)]


def test_log_uniform_takes_exponents_and_log_uniform_values_takes_values_as_in_wandb(tmp_path):
    exps = _sampled(f"{{distribution: log_uniform, min: {math.log(1e-4)}, max: {math.log(1e-2)}}}", tmp_path)
    values = _sampled("{distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}", tmp_path)
    for lrs in (exps, values):
        assert all(1e-4 <= x <= 1e-2 for x in lrs) and min(lrs) < 1e-3 < max(lrs)
    assert all(
        math.e <= x <= math.e**2 for x in _sampled("{distribution: log_uniform, min: 1, max: 2}", tmp_path)
    )
    q_exp = _sampled(
        f"{{distribution: q_log_uniform, min: {math.log(10)}, max: {math.log(1000)}, q: 10}}", tmp_path
    )
    q_values = _sampled("{distribution: q_log_uniform_values, min: 10.0, max: 1000.0, q: 10}", tmp_path)
    for xs in (q_exp, q_values):
        assert all(10 <= x <= 1000 and math.isclose(x / 10, round(x / 10)) for x in xs) and len(set(xs)) > 5
    with pytest.raises(ScalingError, match=r"log_uniform takes min and max as natural-log exponents .* "
                                           r"use log_uniform_values$"):
        _sampled("{distribution: log_uniform, min: 1.0, max: 1000.0}", tmp_path)


def test_wandb_sweep_yaml_grid_and_random(tmp_path):
    grid = _plan(f"overrides: {TINY}\nmethod: grid\nparameters:\n  optim.lr: {{values: [1.0e-3, 2.0e-3]}}\n"
                 "  optim.beta2: {value: 0.99}\n", tmp_path)
    assert [r.config.optim.lr for r in grid] == [1e-3, 2e-3]
    assert all(r.config.optim.beta2 == 0.99 for r in grid)
    rand = _plan(f"overrides: {TINY}\nmethod: random\nrun_cap: 4\nparameters:\n"
                 "  optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}\n", tmp_path)
    assert len(rand) == 4 and all(1e-4 <= r.config.optim.lr <= 1e-2 for r in rand)


def test_ladder_with_tokens_per_parameter_uses_the_trainer_parameter_count(tmp_path):
    runs = _plan(
        f"overrides: {TINY}\nladder: {{models: [s100k, s330k], tokens_per_param: [10, 20]}}\n", tmp_path
    )
    assert [r.config.model.name for r in runs] == ["s100k", "s100k", "s330k", "s330k"]
    for r, mult in zip(runs, [10, 20, 10, 20], strict=True):
        assert r.tokens == round(mult * count_params(r.config.model).non_embedding)
    absolute = _plan(f"overrides: {TINY}\nladder: {{models: [s100k], tokens: [1.0e5, 3.0e5]}}\n", tmp_path)
    assert [r.tokens for r in absolute] == [100000, 300000]


def test_isoflop_tokens_are_the_budget_over_flops_per_token(tmp_path):
    runs = _plan(
        f"overrides: {TINY}\nisoflop: {{budgets: [1.0e12, 3.0e12], models: [s100k, s330k]}}\n", tmp_path
    )
    assert len(runs) == 4
    for r, budget in zip(runs, [1e12, 1e12, 3e12, 3e12], strict=True):
        fpt = flops_per_token(r.config.model, r.config.train.seq_len)
        assert r.tokens == round(budget / fpt)
        assert math.isclose(r.flops, budget, rel_tol=1e-4)
    assert runs[0].tokens > runs[1].tokens  # the smaller model sees more tokens at the same budget


def test_an_isoflop_tokens_per_param_range_keeps_each_budgets_own_sizes(tmp_path):
    models = "[s100k, s330k, s800k, s1.5m]"
    ratios = {}
    spec = f"overrides: {TINY}\nisoflop: {{budgets: [1.0e12, 1.0e13], models: {models}}}\n"
    for r in _plan(spec, tmp_path):
        n = count_params(r.config.model).non_embedding
        ratios[(round(r.flops, -10), r.config.model.name)] = r.tokens / n
    # just above the small budget's largest size, just below the large budget's smallest size
    low, high = 1.01 * ratios[(1e12, "s1.5m")], 0.99 * ratios[(1e13, "s100k")]
    runs = _plan(f"overrides: {TINY}\nisoflop: {{budgets: [1.0e12, 1.0e13], models: {models}, "
                 f"tokens_per_param_range: [{low}, {high}]}}\n", tmp_path)
    kept = {(round(r.flops, -10), r.config.model.name) for r in runs}
    assert kept == {key for key, ratio in ratios.items() if low <= ratio <= high} and len(kept) == 6
    # the larger budget drops its smallest size (too many tokens), the smaller its largest (too few)
    assert (1e13, "s100k") not in kept and (1e12, "s1.5m") not in kept
    with pytest.raises(ScalingError, match="keeps 2 size\\(s\\) within tokens_per_param_range"):
        _plan(f"overrides: {TINY}\nisoflop: {{budgets: [1.0e12], models: {models}, "
              f"tokens_per_param_range: [{0.99 * ratios[(1e12, 's330k')]}, 1.0e9]}}\n", tmp_path)


def test_a_size_scaled_lr_multiplies_each_runs_lr_by_its_size_to_the_exponent(tmp_path):
    runs = _plan(f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3, 4.0e-3]}}\nisoflop: {{budgets: [1.0e12], "
                 f"models: [s100k, s330k], lr_exponent: -0.5, lr_reference_params: 1.0e5}}\n", tmp_path)
    assert len(runs) == 4
    for r in runs:
        n = count_params(r.config.model).non_embedding
        base = 1e-3 if r.swept["optim.lr"] < 2e-3 * (n / 1e5) ** -0.5 else 4e-3
        assert r.config.optim.lr == pytest.approx(base * (n / 1e5) ** -0.5, rel=1e-3)
    ladder = _plan(f"overrides: {TINY}\nladder: {{models: [s330k], tokens: [1.0e6], lr_exponent: -1, "
                   f"lr_reference_params: 1.0e5}}\n", tmp_path)
    n = count_params(ladder[0].config.model).non_embedding
    assert ladder[0].config.optim.lr == pytest.approx(load_config([], []).optim.lr * 1e5 / n, rel=1e-3)
    with pytest.raises(ScalingError, match="lr_reference_params needs isoflop.lr_exponent"):
        _plan(f"overrides: {TINY}\nisoflop: {{budgets: [1.0e12], models: [s100k], lr_reference_params: 1}}\n",
              tmp_path)


def test_cooldowns_plan_one_constant_trunk_and_a_branch_per_token_count(tmp_path):
    runs = _plan(
        f"overrides: {TINY}\ncooldowns: {{models: [s100k], tokens: [2.0e5, 4.0e5], decay_fraction: 0.25}}\n",
        tmp_path,
    )
    trunk, *branches = runs
    batch = 64 * 4
    assert trunk.role == "trunk" and trunk.config.schedule.kind == "constant"
    starts = [round(t * 0.75 / batch) * batch for t in (2e5, 4e5)]
    assert list(trunk.config.train.checkpoint_at_tokens) == starts
    assert trunk.config.train.tokens == max(starts)
    for b, final, start in zip(branches, (2e5, 4e5), starts, strict=True):
        assert b.role == "branch" and b.depends_on == trunk.run_id
        assert b.config.run.branch_from == str((tmp_path / "sweep" / "runs" / trunk.run_id).resolve())
        assert b.config.run.branch_at_tokens == start and b.config.train.tokens == final
        assert b.config.schedule.kind == "linear"
        assert math.isclose(b.flops, flops_per_token(b.config.model, 64) * (final - start))


def test_format_plan_lists_every_run_and_the_totals(tmp_path):
    runs = _plan(f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3, 3.0e-3]}}\n", tmp_path)
    text = format_plan("s", runs)
    assert all(r.run_id in text for r in runs)
    assert "optim.lr=0.003" in text
    assert text.splitlines()[-1].startswith("sweep s: 2 runs, 400k tokens")


@pytest.mark.parametrize(
    "text, message",
    [
        ("gird: {optim.lr: [1]}", "unknown key 'gird'; did you mean grid?"),
        ("grid: {optim.lrr: [1.0e-3]}", "unknown config key 'optim.lrr'; did you mean optim.lr?"),
        ("grid: {optim.lr: []}", "grid.optim.lr is empty"),
        ("grid: {}", "grid is empty"),
        (
            "grid: {optim.lr: [1.0e-3]}\nzip: {optim.lr: [2.0e-3]}",
            "conflicting overrides: optim.lr is set by both grid and zip",
        ),
        ("overrides: [optim.lr=1, optim.lr=2]", "conflicting overrides: optim.lr"),
        ("seeds: 2\ngrid: {run.seed: [5]}", "conflicting overrides: run.seed"),
        ("seeds: [a, b]", "seeds: 'a' is not a whole number; give a count (seeds: 3) or a list of integers"),
        ("seeds: [0, 1.5]", "seeds: 1.5 is not a whole number"),
        (
            "ladder: {models: [s100k], tokens: [1]}\nisoflop: {budgets: [1], models: [s100k]}",
            "one of ladder, isoflop",
        ),
        ("ladder: {models: [s100k]}", "exactly one of tokens"),
        (
            "random: {n: 2, params: {optim.lr: {distribution: log_uniform_values, min: 0, max: 1}}}",
            "log_uniform_values needs min > 0",
        ),
        (
            "random: {n: 2, params: {optim.lr: {distribution: q_log_uniform_values, min: 1, max: 9, q: 0}}}",
            "q_log_uniform_values needs q > 0",
        ),
        ("launcher: {slurm: {}, lsf: {}}", "launcher: unknown key 'lsf'"),
        (
            "ladder: {models: [s100k], tokens: [1.0e5]}\ngrid: {train.tokens: [1.0e5, 2.0e5]}",
            "conflicting overrides: train.tokens is set by both ladder and grid",
        ),
        (
            "ladder: {models: [s100k], tokens: [1.0e5]}\ngrid: {model: [s330k]}",
            "conflicting overrides: model is set by both ladder and grid",
        ),
        (
            "isoflop: {budgets: [1.0e12], models: [s100k]}\nzip: {model: [s330k]}",
            "conflicting overrides: model is set by both isoflop and zip",
        ),
        (
            "cooldowns: {models: [s100k], tokens: [2.0e5]}\ngrid: {train.tokens: [1.0e6]}",
            "conflicting overrides: train.tokens is set by both cooldowns and grid",
        ),
        (
            "cooldowns: {models: [s100k], tokens: [2.0e5], decay_shape: sqrt}\n"
            "random: {n: 1, params: {schedule.decay_shape: {values: [linear]}}}",
            "conflicting overrides: schedule.decay_shape is set by both cooldowns and random",
        ),
    ],
)
def test_bad_specs_are_refused_with_one_line_naming_the_problem(tmp_path, text, message):
    with pytest.raises(ScalingError) as err:
        _plan(text, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_generator_combines_with_parts_that_set_other_keys(tmp_path):
    runs = _plan(f"overrides: {TINY}\nladder: {{models: [s100k], tokens: [1.0e5]}}\n"
                 "grid: {optim.lr: [1.0e-3, 3.0e-3]}\n", tmp_path)
    assert [(r.config.model.name, r.tokens, r.config.optim.lr) for r in runs] == [
        ("s100k", 100000, 1e-3), ("s100k", 100000, 3e-3)]
    cooldowns = _plan(f"overrides: {TINY}\ncooldowns: {{models: [s100k], tokens: [2.0e5]}}\n"
                      "grid: {schedule.decay_shape: [sqrt]}\n", tmp_path)
    assert cooldowns[1].config.schedule.decay_shape == "sqrt"


def test_a_key_given_twice_in_a_spec_file_is_refused_naming_it_and_its_lines(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("base: []\noverrides:\n  model: s100k\n  optim.lr: 1.0e-3\n  optim.lr: 3.0e-3\n")
    with pytest.raises(ScalingError) as err:
        load_spec(path)
    assert (
        str(err.value) == f"{path}: duplicate key 'optim.lr' in overrides (lines 4 and 5); give each key once"
    )
    path.write_text(
        f"overrides: {TINY}\ngrid: {{optim.lr: [1.0e-3]}}\nseeds: 2\ngrid: {{optim.lr: [2.0e-3]}}\n"
    )
    with pytest.raises(ScalingError, match=r"duplicate key 'grid' \(lines 2 and 4\)"):
        load_spec(path)
    path.write_text(f"overrides: {TINY}\ngrid: &lrs {{optim.lr: [1.0e-3]}}\nzip: {{optim.beta2: [0.9]}}\n")
    assert len(plan_sweep(load_spec(path), tmp_path / "sweep")) == 1  # no key twice: accepted


def test_an_invalid_run_config_is_refused_at_plan_time_naming_the_run(tmp_path):
    with pytest.raises(ScalingError, match=r"divisible.*\(in the run .*model.n_head=3"):
        _plan(f"overrides: {TINY}\ngrid: {{model.n_head: [2, 3]}}\n", tmp_path)


def test_example_specs_in_configs_plan(tmp_path):
    from scaling.config_loading import configs_dir

    specs = sorted((configs_dir() / "sweeps").glob("*.yaml"))
    assert len(specs) >= 4
    for path in specs:
        spec = load_spec(path)
        runs = plan_sweep(spec, tmp_path / spec.name)
        assert runs, path
        assert all(r.run_id == run_id(r.config) for r in runs), path  # ids are the resolved configs' hashes


def test_knobs_give_every_level_the_same_sizes_and_budgets(tmp_path):
    runs = _plan("overrides: [model.vocab_size=512, train.seq_len=64, train.micro_batch_size=4]\n"
                 "ladder: {models: [s100k, s330k], tokens: [2e5, 4e5]}\n"
                 "knobs: {model.activation: [swiglu, gelu]}\n", tmp_path)
    cells = {}
    for r in runs:
        cells.setdefault(r.config.model.activation, set()).add(
            (r.config.model.n_layer, r.config.train.tokens)
        )
    assert len(runs) == 8 and cells["swiglu"] == cells["gelu"] and len(cells["gelu"]) == 4


@pytest.mark.parametrize("body, message", [
    ("knobs: {model.activation: [swiglu, gelu]}\n", "knobs: needs a ladder: or isoflop: generator"),
    ("ladder: {models: [s100k], tokens: [2e5]}\nknobs: {optim.lr: [1.0e-3, 2.0e-3]}\n",
     "knobs.optim.lr: learning rate and batch size are judged by the hyperparameter laws"),
    ("ladder: {models: [s100k], tokens: [2e5]}\nknobs: {model.activation: [gelu]}\n",
     "knobs.model.activation: a knob needs at least two levels"),
])
def test_a_knobs_block_that_cannot_judge_a_knob_is_refused(tmp_path, body, message):
    with pytest.raises(ScalingError, match=message):
        _plan(f"overrides: {TINY}\n{body}".replace("train.tokens=2e5]", "]"), tmp_path)
