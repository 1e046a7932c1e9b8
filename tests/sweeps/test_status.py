"""`scaling sweep status` and `wait` on the edges: damaged files, string losses, cancelled runs, run names,
progress lines while waiting, --out everywhere, and the rich table on a terminal."""

from __future__ import annotations

import io
import json

import pytest

from scaling.cli import main
from sweeps.launch import run_sweep
from sweeps.status import ProgressReporter, print_status, sweep_status
from sweeps.store import RunState, SweepStore


def _quiet(*_):
    pass


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def finished_sweep(tmp_path, write_spec, tiny, fake_train):
    """A two-run sweep of the stand-in trainer, both done."""
    spec = write_spec(f"name: st\noverrides: {tiny}\ngrid: {{optim.lr: [6.0e-3, 1.0e-3]}}\n")
    root, _ = run_sweep(spec, tmp_path / "sweep", train_cmd=fake_train, echo=_quiet)
    return spec, root, [r["run_id"] for r in SweepStore(root).plan()["runs"]]


def test_a_truncated_result_shows_as_damaged_and_is_relaunched(finished_sweep, capsys, fake_train):
    spec, root, ids = finished_sweep
    result = SweepStore(root).run_dir(ids[0]) / "result.json"
    result.write_text(result.read_text()[:20])
    code, out, _ = _run(capsys, "sweep", "status", str(root))
    row = next(line for line in out.splitlines() if line.startswith(ids[0]))
    assert code == 0 and " damaged " in row and "result.json is unreadable" in row
    assert "1 done, 1 damaged" in out.splitlines()[0]
    result.unlink()  # what a trainer that recovers does; the launch must pick the run up again
    assert list(run_sweep(spec, root, train_cmd=fake_train, echo=_quiet)[1]) == [ids[0]]


def test_a_string_loss_is_shown_as_missing_not_a_traceback(finished_sweep, capsys):
    _, root, ids = finished_sweep
    path = SweepStore(root).run_dir(ids[0]) / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "final_val_loss": "abc", "tokens": "x"}))
    code, out, _ = _run(capsys, "sweep", "status", "--out", str(root))
    row = next(line for line in out.splitlines() if line.startswith(ids[0])).split()
    assert code == 0 and row[row.index("done") + 2] == "-"  # the loss column


def test_a_truncated_plan_is_called_damaged_with_what_to_do(finished_sweep, capsys):
    _, root, _ = finished_sweep
    plan = root / "plan.json"
    plan.write_text(plan.read_text()[:50])
    code, _, err = _run(capsys, "sweep", "status", str(root))
    assert code == 2 and err.count("\n") == 1
    assert (
        "plan.json is damaged" in err and "scaling sweep run SPEC --out" in err and "no plan.json" not in err
    )


def test_a_cancelled_run_says_cancelled_and_a_plain_relaunch_names_the_failed_ones(
    finished_sweep, fake_train
):
    spec, root, ids = finished_sweep
    store = SweepStore(root)
    # what the trainer leaves when SLURM's scancel sends SIGTERM: a failed result with an empty message
    (store.run_dir(ids[1]) / "result.json").write_text(
        json.dumps({"status": "failed", "error": "SIGTERMException: "})
    )
    state = {s.run_id: s for s in sweep_status(root)[1]}[ids[1]]
    assert state.state == "failed" and state.error.startswith("cancelled (SIGTERM)")
    lines = []
    assert run_sweep(spec, root, train_cmd=fake_train, echo=lines.append)[1] == {}
    assert "1 failed (not relaunched; add --retry-failed to relaunch them), launching 0" in lines[0]


def test_a_failure_recorded_while_a_requeued_job_stopped_is_set_aside_and_the_run_resumes(
    finished_sweep, fake_train
):
    spec, root, ids = finished_sweep
    store = SweepStore(root)
    run_dir = store.run_dir(ids[1])
    # a two-node job being requeued: rank 1 is killed first, so rank 0 records its vanished peer
    (run_dir / "result.json").write_text(
        json.dumps({"status": "failed", "error": "RuntimeError: [gloo] Connection closed by peer"})
    )
    store.record(ids[1], {"event": "start", "attempt": 2})
    store.record(ids[1], {"event": "end", "attempt": 2, "outcome": "requeued", "exit_code": None})
    state = {s.run_id: s for s in sweep_status(root)[1]}[ids[1]]
    assert state.state == "interrupted" and store.failure(ids[1]) is None
    assert list(run_sweep(spec, root, train_cmd=fake_train, echo=_quiet)[1]) == [ids[1]]
    assert store.result(ids[1])["status"] == "done"
    kept = json.loads((run_dir / "result.stopped-0.json").read_text())
    assert kept["error"].startswith("RuntimeError: [gloo]")
    # the same failed result after an attempt that ended on its own is a failure
    (run_dir / "result.json").write_text(json.dumps({"status": "failed", "error": "ValueError: x"}))
    store.record(ids[1], {"event": "end", "attempt": 3, "outcome": "failed", "exit_code": 1})
    assert store.failure(ids[1]) == "ValueError: x"


def test_runs_get_readable_names_that_status_shows_and_the_trainer_receives(finished_sweep, capsys):
    _, root, ids = finished_sweep
    plan = SweepStore(root).plan()
    assert [r["name"] for r in plan["runs"]] == ["s100k lr=6e-3 s0", "s100k lr=1e-3 s0"]
    launch = (SweepStore(root).run_dir(ids[0]) / "launch.yaml").read_text()
    assert "name: s100k lr=6e-3 s0" in launch
    code, out, _ = _run(capsys, "sweep", "status", str(root))
    assert "s100k lr=6e-3 s0" in out


def test_run_names_abbreviate_tokens_and_keep_the_run_id_apart(tmp_path, write_spec):
    from sweeps.launch import plan

    body = "ladder: {models: [s330k], tokens: [1.0e5]}\ngrid: {optim.lr: [6.0e-3]}\nseeds: [1]\n"
    base = "model.vocab_size=512, train.seq_len=64, train.micro_batch_size=4"
    spec = write_spec(f"overrides: [{base}]\n{body}")
    _, _, runs = plan(spec, tmp_path / "sweep")
    assert runs[0].name == "s330k lr=6e-3 tok=1e5 s1"
    named = write_spec(f"overrides: [{base}, run.name=mine]\n{body}", "named.yaml")
    _, _, same = plan(named, tmp_path / "sweep2")
    assert same[0].name == "mine" and same[0].run_id == runs[0].run_id


def test_wait_prints_a_progress_line_every_interval():
    now = [0.0]
    lines = []
    reporter = ProgressReporter(every_s=60, echo=lines.append, clock=lambda: now[0])
    plan = {"runs": [{"run_id": "a", "tokens": 100}, {"run_id": "b", "tokens": 100}]}
    reporter(plan, [RunState("a", "running", tokens=0), RunState("b", "pending")])
    now[0] = 30.0
    reporter(plan, [RunState("a", "running", tokens=25), RunState("b", "pending")])
    assert lines == []  # not yet a minute
    now[0] = 60.0
    reporter(plan, [RunState("a", "done", tokens=100), RunState("b", "running", tokens=20)])
    assert lines == ["1 done, 1 running; 60% of tokens; ETA 0:00:40 (0:01:00 waited)"]


def test_wait_reports_progress_from_the_command_line(finished_sweep, capsys, monkeypatch):
    _, root, ids = finished_sweep
    result = SweepStore(root).run_dir(ids[0]) / "result.json"
    result.rename(result.with_name("held.json"))
    from sweeps import status

    polls = []

    def fake_sleep(_):
        polls.append(1)
        if len(polls) == 2:
            result.with_name("held.json").rename(result)

    monkeypatch.setattr(status.time, "sleep", fake_sleep)
    monkeypatch.setattr(status, "IDLE_GIVE_UP_S", 1e9)
    code, out, _ = _run(capsys, "sweep", "wait", "--out", str(root), "--report-every", "0", "--poll", "0")
    assert code == 0 and out.splitlines()[0].startswith("1 done, 1 interrupted; ")
    assert "sweep st: 2 runs — 2 done" in out.splitlines()


def test_status_is_a_rich_table_on_a_terminal_and_plain_text_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    states = [RunState("abc123", "done", tokens=1e5, loss=3.21, name="s100k lr=1e-3 s0"),
              RunState("def456", "failed", error="cancelled (SIGTERM)")]
    term, pipe = Terminal(), io.StringIO()
    print_status("t", states, file=term)
    print_status("t", states, file=pipe)
    assert "┃" in term.getvalue() or "│" in term.getvalue()
    assert "s100k" in term.getvalue() and "3.2100" in term.getvalue()
    assert (
        pipe.getvalue().splitlines()[0] == "sweep t: 2 runs — 1 done, 1 failed" and "│" not in pipe.getvalue()
    )


def test_sweep_help_lists_only_actions_that_exist(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "watch" not in out
