"""Read an offline W&B run file (``run-<id>.wandb``) back into plain Python, for tests and audits.

The file is a LevelDB-log-style stream (wandb 0.31, pinned): a 7-byte header (``:W&B``, u16
0xBEE1, u8 version 0), then 32 KiB blocks of records, each with a 7-byte header (u32 CRC32 of the
type byte and payload, u16 length, u8 type: 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST); a block tail
shorter than a header is padding. Each reassembled payload is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """What an offline run file says: the run record, config, history rows and summary."""

    project: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    run_id: str | None = None
    display_name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def _payloads(data: bytes):
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError("not a W&B run file (bad header)")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _HEADER:  # padding at the end of a block
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if length == 0 and kind == 0:  # zero fill after the last record
            break
        payload = data[pos + _HEADER:pos + _HEADER + length]
        if zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF != crc:
            raise ValueError(f"CRC mismatch in W&B record at byte {pos}")
        pos += _HEADER + length
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            yield pending + payload
            pending = b""


def _items(items) -> dict[str, Any]:
    out = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def read_wandb_file(path: str | Path) -> WandbRun:
    """Parse one ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    run = WandbRun()
    for payload in _payloads(Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.project, run.group, run.job_type = r.project, r.run_group, r.job_type
            run.tags, run.run_id, run.display_name = list(r.tags), r.run_id, r.display_name
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def find_wandb_files(folder: str | Path) -> list[Path]:
    """Every offline run file under ``folder`` (one per attempt of a run), oldest first."""
    return sorted(Path(folder).rglob("run-*.wandb"))
