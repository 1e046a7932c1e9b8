"""The mixture table of a fit: per run, its domain weights and its loss on each named evaluation set.

From a CSV: columns ``w_<domain>`` (weights, normalised per row to sum to 1) and ``loss_<evalset>``,
optionally ``params``, ``tokens``, ``seed``. From run dirs: the weights of ``data.mixture`` (runs
without one are left out; a domain is named by its folder's name) and the
``val/<name>/loss`` values in ``result.json``, else in the last validation row of ``metrics.jsonl``.
A domain's training-token count comes from its prepared dataset's ``manifest.json`` when the folder
is readable (``--domain-tokens name=count`` gives or overrides it).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.config_loading import read_yaml
from scaling.errors import ScalingError
from scaling.fit.data import _number, row_status
from scaling.training.run_files import CONFIG_FILE, RESULT_FILE, read_metrics, val_rows

WEIGHT_PREFIX, LOSS_PREFIX = "w_", "loss_"
SCALING_COLUMNS = ("params", "tokens", "loss")


@dataclass
class MixtureData:
    """One row per run: weights over ``domains`` and losses on ``eval_sets`` (parallel arrays)."""

    domains: list[str]
    eval_sets: list[str]
    weights: np.ndarray
    """(runs, domains), each row summing to 1."""
    losses: np.ndarray
    """(runs, evaluation sets)."""
    params: np.ndarray
    """NaN where unknown."""
    tokens: np.ndarray
    """Training tokens of each run; NaN where unknown."""
    run: list[str]
    domain_tokens: dict[str, float] = field(default_factory=dict)
    """Training tokens each domain holds (from manifests or ``--domain-tokens``)."""
    domain_paths: dict[str, str] = field(default_factory=dict)
    """Prepared dataset folder of each domain (run dirs only)."""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.run)

    def varies(self) -> bool:
        """Whether the runs differ in their weights (what makes a mixture study)."""
        return len(self) > 1 and bool(np.any(np.ptp(self.weights, axis=0) > 1e-9))

    def subset(self, idx) -> MixtureData:
        """The rows ``idx`` (repeats allowed)."""
        idx = np.asarray(idx, dtype=int)
        return MixtureData(
            self.domains,
            self.eval_sets,
            self.weights[idx],
            self.losses[idx],
            self.params[idx],
            self.tokens[idx],
            [self.run[i] for i in idx],
            self.domain_tokens,
            self.domain_paths,
            list(self.notes),
        )


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file."""
    with Path(path).open(newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def is_mixture_only_csv(path) -> bool:
    """A CSV with weight columns but without the params,tokens,loss of a scaling-law fit."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    try:
        header = csv_header(path)
    except (UnicodeDecodeError, OSError):
        return False  # the scaling-law loader reports what is wrong with the file
    return any(h.startswith(WEIGHT_PREFIX) for h in header) and not all(c in header for c in SCALING_COLUMNS)


def csv_rows(path: Path) -> list[dict]:
    """Per finished row of a mixture CSV: run, params, tokens, weights and losses by name."""
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        for line, raw in enumerate(csv.DictReader(f), start=2):
            raw = {(k or "").strip(): v for k, v in raw.items()}
            where = f"{path.name}:{line}"
            if row_status(raw.get("status"), where) != "done":
                continue
            rows.append({
                "run": where, "params": _number(raw.get("params"), where, "params"),
                "tokens": _number(raw.get("tokens"), where, "tokens"),
                "weights": {k[len(WEIGHT_PREFIX):]: _number(v, where, k) for k, v in raw.items()
                            if k.startswith(WEIGHT_PREFIX)},
                "losses": {k[len(LOSS_PREFIX):]: _number(v, where, k) for k, v in raw.items()
                           if k.startswith(LOSS_PREFIX)}})
    return rows


def named_losses(result: dict, metrics: list[dict]) -> dict[str, float]:
    """``val/<name>/loss`` of a run: from result.json, else from the last validation row that has any."""
    def pick(rec: dict) -> dict[str, float]:
        return {k[4:-5]: float(v) for k, v in rec.items()
                if k.startswith("val/") and k.endswith("/loss") and k.count("/") == 2 and v is not None}

    found = pick(result)
    if found:
        return found
    for rec in reversed(val_rows(metrics) or metrics):
        found = pick(rec)
        if found:
            return found
    return {}


def _run_row(run_dir: Path, paths: dict[str, str]) -> dict | None:
    try:
        result = json.loads((run_dir / RESULT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ScalingError(f"{run_dir / RESULT_FILE}: unreadable ({e}); re-run or remove that run") from None
    config = (
        (read_yaml(run_dir / CONFIG_FILE, what="run config") or {})
        if (run_dir / CONFIG_FILE).exists()
        else {}
    )
    data = config.get("data") or {}
    sources = data.get("mixture") or []  # a run on data.path alone is no mixture run
    weights = {}
    for s in sources:
        name = Path(str(s["path"])).name
        if paths.setdefault(name, str(s["path"])) != str(s["path"]):
            raise ScalingError(f"{run_dir}: two datasets named {name!r} ({paths[name]} and {s['path']}); "
                               "give the mixture's folders distinct names")
        weights[name] = weights.get(name, 0.0) + float(s.get("weight", 1.0))
    try:  # result.json holds the final losses; metrics.jsonl only fills in a run cut short
        metrics = read_metrics(run_dir) if sources else []
    except UnicodeDecodeError:  # a damaged metrics file: the loader of the scaling law says so
        metrics = []
    return {"run": str(result.get("run_id") or run_dir.name), "status": result.get("status", "done"),
            "params": _number(result.get("params_non_embedding"), str(run_dir), "params_non_embedding"),
            "tokens": _number(result.get("tokens"), str(run_dir), "tokens"), "weights": weights,
            "losses": named_losses(result, metrics)}


def _manifest_tokens(path: str) -> float | None:
    try:
        return float(json.loads((Path(path) / "manifest.json").read_text())["splits"]["train"]["tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_counts(items, what: str) -> dict[str, float]:
    """``name=number`` strings (or a dict) as a dict of non-negative numbers."""
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items or ():
            for part in str(item).split(","):
                name, sep, value = part.partition("=")
                if not sep or not name.strip():
                    raise ScalingError(f"{what} {part!r}: expected NAME=NUMBER, e.g. code=1e9")
                pairs.append((name.strip(), value))
    out = {}
    for name, value in pairs:
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise ScalingError(f"{what} {name}={value!r}: not a number") from None
        if not (out[name] >= 0 and math.isfinite(out[name])):
            raise ScalingError(f"{what} {name}={value}: must be a non-negative number")
    return out


def load_mixture(inputs, *, exclude_diverged: bool = True, domain_tokens=None) -> MixtureData | None:
    """The mixture table of ``inputs`` (CSV paths, run dirs, sweep dirs); None unless the runs' weights vary.

    Runs without a loss on every evaluation set the others share are left out with a note.
    """
    rows, paths = [], {}
    for item in [inputs] if isinstance(inputs, (str, Path)) else list(inputs):
        path = Path(item)
        if path.is_file() and path.suffix.lower() == ".csv":
            rows.extend(csv_rows(path))
        elif path.is_dir():
            found = [path / RESULT_FILE] if (path / RESULT_FILE).exists() else sorted(path.rglob(RESULT_FILE))
            rows.extend(_run_row(r.parent, paths) for r in found)
    rows = [r for r in rows if r.get("status", "done") == "done" or
            (r.get("status") == "diverged" and not exclude_diverged)]
    rows = [r for r in rows if r["weights"]]
    if not rows:
        return None
    notes = []
    domains = sorted({d for r in rows for d in r["weights"]})
    shares = [
        tuple(round(r["weights"].get(d, 0.0) / (sum(r["weights"].values()) or 1.0), 6) for d in domains)
        for r in rows
    ]
    if len(set(shares)) < 2:
        return None  # one mixture (or one dataset) for every run: nothing to fit a mixture law to
    common = set.intersection(*[{k for k, v in r["losses"].items() if math.isfinite(v)} for r in rows])
    eval_sets = sorted(common)
    if not eval_sets:
        named = sorted({k for r in rows for k in r["losses"]})
        keep = [r for r in rows if r["losses"]]
        if not named or not keep:
            raise ScalingError("the runs name mixture weights but no loss per evaluation set "
                               "(loss_<name> columns, or val/<name>/loss in the runs); nothing to fit")
        best = max(named, key=lambda e: sum(math.isfinite(r["losses"].get(e, math.nan)) for r in rows))
        keep = [r for r in rows if math.isfinite(r["losses"].get(best, math.nan))]
        notes.append(f"left out {len(rows) - len(keep)} run(s) without a loss on every evaluation set")
        rows, eval_sets = keep, sorted(set.intersection(*[set(r["losses"]) for r in keep]))
    w = np.array([[r["weights"].get(d, 0.0) for d in domains] for r in rows], dtype=float)
    if np.any(~np.isfinite(w)) or np.any(w < 0) or np.any(w.sum(axis=1) <= 0):
        raise ScalingError("mixture weights must be non-negative numbers with a positive sum in every row")
    counts = {d: t for d, p in paths.items() if (t := _manifest_tokens(p)) is not None}
    counts.update(parse_counts(domain_tokens or {}, "--domain-tokens"))
    unknown = sorted(set(counts) - set(domains))
    if unknown:
        raise ScalingError(f"--domain-tokens names {', '.join(unknown)}, not a domain of the runs "
                           f"({', '.join(domains)})")
    return MixtureData(domains, eval_sets, w / w.sum(axis=1, keepdims=True),
                       np.array([[r["losses"][e] for e in eval_sets] for r in rows], dtype=float),
                       np.array([r["params"] for r in rows]), np.array([r["tokens"] for r in rows]),
                       [r["run"] for r in rows], counts, paths, notes)
