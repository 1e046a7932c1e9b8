"""The files of a run dir, read and written in one place (sweeps and fits import these too).

A run dir holds ``config.yaml`` (the resolved config, written at the start), ``metrics.jsonl``
(one JSON object per logged step), ``result.json`` (written once at the end, atomically) and
``checkpoints/`` (``last.ckpt`` and ``previous.ckpt`` for resume, ``tokens-<N>.ckpt`` at branch points;
each a file, or a folder of shards under a sharded strategy). This module imports only the standard
library and the atomic writers, so reading runs stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_pipelines.atomic import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PREVIOUS_CHECKPOINT = "previous.ckpt"  # the last.ckpt before the latest one, kept for a damaged latest
CHECKPOINT_META = "scaling-meta.pt"  # in a sharded checkpoint's folder: everything but its tensors

STATUS_DONE, STATUS_DIVERGED, STATUS_FAILED = "done", "diverged", "failed"
FINISHED_STATUSES = (STATUS_DONE, STATUS_DIVERGED)  # a re-launch returns these without training


@dataclass
class RunResult:
    """What ``result.json`` holds; :func:`scaling.train` returns one."""

    status: str  # done | diverged | failed
    run_id: str
    run_dir: str = ""  # where the run's files are (not a result.json key)
    params: int | None = None  # all parameters
    params_non_embedding: int | None = None
    tokens: int | None = None  # training tokens seen at the end (global)
    flops: float | None = None  # training FLOPs = flops_per_token * tokens
    final_val_loss: float | None = None  # nats/token on the fixed val subset, at the end
    best_val_loss: float | None = None
    val_bpb: float | None = None  # bits per byte of the final val loss
    final_train_loss: float | None = None  # loss of the last logged step
    tokens_per_sec: float | None = None  # training throughput of all devices together
    mfu: float | None = None  # None on devices without a known peak (CPUs)
    wall_time_s: float | None = None
    hardware: str | None = None
    seed: int | None = None
    git_sha: str | None = None
    steps: int | None = None  # optimiser steps at the end
    lr: float | None = None  # peak LR
    batch_tokens: int | None = None  # global batch in tokens
    seq_len: int | None = None
    model: str | None = None  # model preset name
    diverged_at_step: int | None = None
    last_good_loss: float | None = None
    parent: dict | None = None  # {"run_dir", "tokens"} for a cooldown branch
    error: str | None = None  # one line, for failed runs
    num_nodes: int | None = None  # nodes the run trained on
    world_size: int | None = None  # ranks (processes) that trained it, all nodes together
    hosts: list[str] | None = None  # hostname of each rank, in rank order
    extra: dict[str, Any] = field(default_factory=dict)  # further keys found in result.json

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this result: 0 done, 3 diverged, 1 failed."""
        from scaling.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_OK

        return {STATUS_DONE: EXIT_OK, STATUS_DIVERGED: EXIT_DIVERGED}.get(self.status, EXIT_FAILED)

    def to_json(self) -> dict[str, Any]:
        """The ``result.json`` object (``run_dir`` is left out: the file lives in it)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("run_dir", "extra")
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], run_dir: str | Path = "") -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)} - {"run_dir", "extra"}
        known = {k: v for k, v in obj.items() if k in names}
        extra = {k: v for k, v in obj.items() if k not in names}
        return cls(run_dir=str(run_dir), extra=extra, **known)


def result_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESULT_FILE


def read_result(run_dir: str | Path) -> RunResult | None:
    """The run's result, or None while it has not finished (no result.json)."""
    path = result_path(run_dir)
    if not path.is_file():
        return None
    return RunResult.from_json(json.loads(path.read_text()), run_dir)


def write_result(run_dir: str | Path, result: RunResult) -> None:
    """Write ``result.json`` atomically."""
    atomic_write_json(result_path(run_dir), result.to_json())


def write_config(run_dir: str | Path, yaml_text: str) -> None:
    """Write ``config.yaml`` atomically."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml_text)


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every object of a JSON-lines file; a line torn by a killed writer is skipped; no file → []."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return rows


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of ``metrics.jsonl`` (a torn last line from a killed process is skipped)."""
    return read_jsonl(metrics_path(run_dir))


def train_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that carry ``train/loss``."""
    return [r for r in rows if "train/loss" in r]


def val_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that carry ``val/loss``."""
    return [r for r in rows if "val/loss" in r]


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Keep only rows up to ``last_step`` (resume from a checkpoint at that step): no duplicate steps."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= last_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


class MetricsWriter:
    """Appends rows to ``metrics.jsonl``, one flushed line each, so a killed run loses nothing logged."""

    def __init__(self, run_dir: str | Path):
        self.path = metrics_path(run_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """``checkpoints/last.ckpt`` if the run has one (a file, or a sharded checkpoint's folder)."""
    path = checkpoint_dir(run_dir) / LAST_CHECKPOINT
    return path if path.is_file() or path.is_dir() else None


def token_checkpoint_name(tokens: float) -> str:
    """File name of the checkpoint kept at a requested token count (``tokens-1000000.ckpt``)."""
    return f"tokens-{int(round(tokens))}.ckpt"


def token_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """Requested token count -> checkpoint path, for every branch-point checkpoint of a run."""
    found = {}
    for path in sorted(checkpoint_dir(run_dir).glob("tokens-*.ckpt")):
        try:
            found[int(path.stem.split("-", 1)[1])] = path
        except ValueError:
            continue
    return found
