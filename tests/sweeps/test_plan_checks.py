"""Planning at scale and against the data: a huge spec is refused before it is expanded, 10^4 runs plan in
seconds with the same ids as the full resolve, runs whose data is missing or too large for their vocabulary
are refused at plan time, and every example spec plans the number of runs its header comment says."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.config_loading import run_id
from scaling.errors import ScalingError
from sweeps.launch import plan
from sweeps.plan import resolve_run_config
from sweeps.spec import load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))


def test_a_million_run_grid_is_refused_at_once_with_its_count(write_spec, tiny):
    values = ", ".join(f"{i}.0e-4" for i in range(1, 101))
    spec = write_spec(
        f"overrides: {tiny}\ngrid: {{optim.lr: [{values}], optim.beta2: [{values}]}}\nseeds: 100\n"
    )
    started = time.monotonic()
    with pytest.raises(
        ScalingError, match=r"expands to 1,000,000 runs, more than the limit of 10,000; .*--max-runs"
    ):
        load_spec(spec)
    assert time.monotonic() - started < 5


def test_the_limit_is_a_cli_flag(tmp_path, write_spec, tiny, capsys):
    spec = write_spec(f"overrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, 2.0e-3, 3.0e-3]}}\n")
    code = main(["sweep", "plan", str(spec), "--max-runs", "2", "--skip-data-check"])
    assert code == 2 and "expands to 3 runs, more than the limit of 2" in capsys.readouterr().err
    assert main(["sweep", "plan", str(spec), "--max-runs", "3", "--skip-data-check"]) == 0


def test_the_fast_resolve_gives_the_same_configs_as_the_full_one(tmp_path, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, '2e-3'], model: [s100k, s330k], "
                      "train.tokens: ['1e5'], schedule.kind: [cosine, wsd]}\nseeds: [0, 3]\n")
    loaded, _, runs = plan(spec, tmp_path / "sweep")
    assert len(runs) == 16
    for r in runs:
        full = resolve_run_config(loaded, r.overrides)
        assert run_id(full) == r.run_id
        tree = r.tree
        assert {**tree, "run": {**tree["run"], "name": None}} == {
            **_plain(full),
            "run": {**_plain(full)["run"], "name": None},
        }


def _plain(cfg) -> dict:
    from scaling.config_loading import to_dict

    return to_dict(cfg)


def test_a_bad_value_in_one_run_still_names_that_run(tmp_path, write_spec, tiny):
    spec = write_spec(f"overrides: {tiny}\ngrid: {{optim.lr: [1.0e-3, -1.0]}}\n")
    with pytest.raises(ScalingError, match=r"optim.lr=-1.0 must be positive \(in the run .*optim.lr=-1.0"):
        plan(spec, tmp_path / "sweep")


def _grid_spec(write_spec, tiny, seeds: int) -> Path:
    values = ", ".join(f"{i}.0e-4" for i in range(1, 26))
    return write_spec(
        f"overrides: {tiny}\ngrid: {{optim.lr: [{values}], optim.beta2: [0.9, 0.95, 0.98, 0.99]}}\n"
        f"seeds: {seeds}\n"
    )


@pytest.mark.slow
def test_ten_thousand_runs_plan_in_seconds(tmp_path, write_spec, tiny):
    started = time.monotonic()
    _, _, runs = plan(_grid_spec(write_spec, tiny, 100), tmp_path / "sweep")
    elapsed = time.monotonic() - started
    assert len(runs) == 10_000 and len({r.run_id for r in runs}) == 10_000
    assert elapsed < 120  # was 649 s; ~10 s on a quiet machine, the bound leaves room for a shared one


def test_a_planned_run_holds_a_few_kilobytes(tmp_path, write_spec, tiny):
    tracemalloc.start()
    _, _, runs = plan(_grid_spec(write_spec, tiny, 10), tmp_path / "sweep")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(runs) == 1000 and peak < 40e6  # 10^4 runs took 862 MB (86 MB per thousand)


@pytest.mark.parametrize("data, vocab, message", [
    ("/nonexistent/prepared", 512, "no prepared dataset at /nonexistent/prepared"),
    # the config itself refuses a vocabulary smaller than the data's tokenizer, before the plan check
    (None, 256, "model.vocab_size=256 is smaller than the 512-token tokenizer"),
])
def test_runs_that_could_not_start_are_refused_at_plan_time(
    tmp_path, tiny_corpus, write_spec, capsys, data, vocab, message
):
    spec = write_spec(f"overrides: [model=s100k, data.path={data or tiny_corpus}, model.vocab_size={vocab}]\n"
                      "seeds: 2\n")
    for action in ("plan", "run"):
        code = main(["sweep", action, str(spec), "--out", str(tmp_path / "sweep")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1
        assert data is None or "--skip-data-check" in err
    assert not (tmp_path / "sweep").exists()


def test_good_data_passes_the_plan_check(tmp_path, tiny_corpus, write_spec):
    spec = write_spec(f"overrides: [model=s100k, data.path={tiny_corpus}, model.vocab_size=512]\nseeds: 2\n")
    assert len(plan(spec, tmp_path / "sweep", check_data=True)[2]) == 2


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_example_spec_plans_the_runs_its_comment_promises(path):
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    promised = re.search(r"= (\d+) runs", header)
    assert promised, f"{path.name}: say '= N runs' in the header comment"
    spec = load_spec(path)
    assert len(plan(path, "/tmp/unused")[2]) == int(promised.group(1)), spec.name
