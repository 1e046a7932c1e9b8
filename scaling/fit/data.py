"""The one loader of fit inputs: run dirs, sweep dirs and CSV files become one table of points.

This is the only module of :mod:`scaling.fit` that knows the run-dir layout (``result.json``,
``config.yaml``, ``metrics.jsonl``); it reads them through :mod:`scaling.training.run_files`
(standard library only) and never imports the trainer. Everything
downstream works on :class:`Points`, plain numpy arrays with one entry per run.

CSV columns: ``params,tokens,loss`` (required), optionally ``flops,lr,batch_size,seed,bpb,status``;
``w_<domain>`` and ``loss_<evalset>`` columns are the mixture law's; every other column is a knob, unless
its values are per run (more than half as many as rows: a run name, a measurement). ``batch_size`` is in
tokens; these names match in any case (``Loss``, ``FLOPs``). Without one of them, a common other name
(:data:`COLUMN_ALIASES`: ``learning_rate``, ``val_loss``, ``budget`` as published IsoFLOP tables name each
run's compute, ...) is read in its place, a compute column after a check that it is of the order of
6·N·D; a batch column usually counted in sequences is refused. A CSV with each run's compute and only
one of params and tokens (as published IsoFLOP tables list a budget and a size) gets the other as
flops / (6 x the one given), with a note. A batch in sequences beside a sequence-length column is their
product. A count column may name its unit (``params (M)``, ``tokens_B``, ``FLOPs (1e18)``), and is read
times it; a header's spaces and "-" read as "_" (``Model Size``). A loss written nan or inf marks a run
that diverged (its setting still bounds the hyperparameter surfaces, :attr:`Points.diverged`).

The fitted metric is the final validation loss in nats per token, or its bits per byte (``val_bpb``)
when the runs differ in tokenization (vocabulary, tokenizer, data): nats per token of two tokenizers
are not comparable, bits per byte of the same text are. ``metric="auto"`` picks.

A downstream task's metric can be fitted instead: ``eval/<task>/bpb`` (the final score in each run's
``result.json``, else the last ``metrics.jsonl`` row that has it; a CSV column of that name) is fitted
like the validation loss. ``eval/<task>/acc`` (or ``acc_norm``) loads the task's bpb as the loss and the
accuracy beside it (:attr:`Points.accuracy`): accuracy is no power law in N and D, so the fit predicts
it in two steps (:mod:`scaling.fit.downstream`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scaling.config_loading import RUN_NEUTRAL_KEYS, read_yaml
from scaling.errors import ScalingError
from scaling.fit.basics import representative
from scaling.training.run_files import CONFIG_FILE, RESULT_FILE, read_metrics, val_rows

CELL_TOLERANCE_DEX = 0.01
REQUIRED_COLUMNS = ("params", "tokens", "loss")
NUMERIC_COLUMNS = ("params", "tokens", "loss", "flops", "lr", "batch_size", "seed", "bpb")
_RESERVED_COLUMNS = (*NUMERIC_COLUMNS, "status")
# Other names published tables and exported run logs give the columns the fit reads (any case; the name
# after a last "." counts too, as in optimizer.learning_rate or a W&B export's optim.lr, and a "/" reads
# as "_", as in W&B's metric val/loss). Without the
# column itself, its one alias is read in its place, with a note: left as a knob, a learning_rate column
# would leave the LR law unfitted and split the runs into settings. ``budget`` is what IsoFLOP tables
# call each run's compute.
COLUMN_ALIASES = {
    "params": ("n", "n_params", "num_params", "parameters", "param_count", "parameter_count", "model_size"),
    "tokens": ("d", "n_tokens", "num_tokens", "train_tokens", "training_tokens", "dataset_size"),
    "loss": ("val_loss", "eval_loss", "validation_loss"),
    "flops": ("budget", "c", "compute", "train_flops", "training_flops", "flop", "training_flop"),
    "lr": ("learning_rate", "peak_lr", "max_lr", "lr_max"),
    "batch_size": ("batch_tokens", "tokens_per_batch", "batch_size_tokens"),
    "seed": ("random_seed",),
    "status": ("state", "run_state"),  # a W&B runs-table export's State
}
# A count's unit written in its header, as published tables give sizes: "params (M)", "Tokens [B]",
# "tokens_B", "FLOPs (1e18)"; the column is read times the unit (any case)
COUNT_COLUMNS = ("params", "tokens", "flops", "batch_size")
COUNT_UNITS = {"k": 1e3, "thousand": 1e3, "thousands": 1e3, "m": 1e6, "million": 1e6, "millions": 1e6,
               "b": 1e9, "g": 1e9, "billion": 1e9, "billions": 1e9, "t": 1e12, "trillion": 1e12,
               "trillions": 1e12}
_UNIT_IN_HEADER = re.compile(r"^(?P<name>.*?\S)\s*(?:[(\[]\s*(?:x|×|in)?\s*(?P<unit>[a-z]+|1e\+?\d+|10\^\d+)"
                             r"\s*[)\]]|_(?P<suffix>[kmbgt]))$", re.IGNORECASE)
# batch columns that tables usually count in sequences: the fit reads tokens per optimiser step, so
# without a batch_size column these are refused rather than guessed
SEQUENCE_BATCH_COLUMNS = ("bs", "batch", "global_batch_size", "train_batch_size", "micro_batch_size",
                          "batch_size_sequences")
# with a column of tokens per sequence beside it, such a batch in sequences becomes tokens: their product
SEQUENCE_LENGTH_COLUMNS = ("seq_len", "sequence_length", "seq_length", "context_length", "block_size",
                           "max_seq_len", "ctx_len")
SEQUENCE_BATCH = "batch_size in sequences"  # the _column_sources key of (batch column, length column)
# a FLOPs column read from an alias this far from 6·N·D (median ratio) is no training compute (tokens?)
FLOPS_ALIAS_RANGE = (0.05, 20.0)
# a CSV's status words (any case), as our run dirs and W&B's run states say them: every other word is refused,
# so a crashed or still-running run's partial loss is never fitted as a finished run's
STATUS_WORDS = {
    "done": ("done", "finished", "completed", "success"),
    "failed": ("failed", "crashed", "killed", "error", "preempted", "cancelled", "canceled"),
    "unfinished": ("running", "pending", "queued"),
    "diverged": ("diverged",),
}
# a CSV whose largest count lies below this is in other units (millions, billions): no run is that small
MIN_LARGEST_COUNT = {"params": 1e4, "tokens": 1e5}
# tokens / batch_size beyond this (median) means a batch in sequences: no pretraining run takes so many steps
MAX_MEDIAN_STEPS = 5e6
# a CSV loss written as one of these marks a run that diverged (an empty cell is a missing value)
DIVERGED_LOSS_WORDS = ("nan", "inf", "infinity")
# a median batch this small (tokens) for models this large (median params) is more likely in sequences:
# pretraining batches of 50M+ parameter models are tens of thousands of tokens or more
SMALL_BATCH = (4096, 5e7)
METRICS = ("auto", "loss", "bpb")  # and eval/<task>/<key> for a key of EVAL_KEYS
EVAL_KEYS = ("bpb", "acc", "acc_norm")
METRIC_LABELS = {"loss": "validation loss (nats/token)", "bpb": "validation bits per byte"}
# config keys whose values fix how text becomes tokens: runs that differ in one compare in bits per byte
_TOKENIZATION_KEYS = ("model.vocab_size", "data.tokenizer_sha256", "data.path", "data.mixture")
# config keys that are never knobs: the run-neutral ones, those that identify a run or only steer
# validation, checkpointing and placement, the data mixture (the mixture law's own input), and how the
# batch is split into micro-batches (what that split changes is the batch, read as ``batch_size`` in
# tokens per step; an LR x batch sweep sets it through these two keys)
_NOT_KNOBS = (
    *RUN_NEUTRAL_KEYS,
    "train.micro_batch_size",
    "train.grad_accum",
    "run.",
    "data.val_tokens",
    "data.mixture",
    "data.eval",
    "train.val_every_tokens",
    "train.checkpoint",
    "train.log_every_steps",
    "train.tokens",
    "train.accelerator",
    "train.devices",
    "train.compile",
    "train.num_nodes",
    "train.strategy",
    "optim.fused",
    "eval.",
)


@dataclass
class Curve:
    """A run's validation curve: loss after each number of training tokens."""

    run: str
    params: float
    flops_per_token: float
    tokens: np.ndarray
    loss: np.ndarray
    bpb: np.ndarray | None = None  # val bits per byte at the same points (NaN where not logged)
    n_runs: int = 1  # runs averaged into this curve (one setting's seeds: envelope.one_curve_per_cell)


@dataclass
class Points:
    """The fit's input table: one row per run (parallel arrays) plus the runs' validation curves."""

    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    flops: np.ndarray  # measured training FLOPs; 6·N·D where the input has none
    lr: np.ndarray  # NaN where unknown
    batch_size: np.ndarray  # tokens per optimiser step; NaN where unknown
    seed: np.ndarray  # NaN where unknown
    run: list[str]  # run id or "file.csv:line"
    trunk: list[str]  # runs that share a trunk (cooldown branches) share this key
    knobs: dict[str, list[Any]] = field(default_factory=dict)  # swept settings, one value per row
    curves: list[Curve] = field(default_factory=list)
    configs: list[dict] = field(default_factory=list)  # resolved run configs (empty for CSV rows)
    group: str | None = None  # W&B group of the runs (the sweep), when they agree
    notes: list[str] = field(default_factory=list)  # what the loader excluded and why
    metric: str = (
        "loss"  # what ``loss`` holds: "loss" (nats/token), "bpb" (bits per byte) or "eval/<task>/bpb"
    )
    accuracy: np.ndarray | None = None  # per row, the fitted task accuracy (``accuracy_metric``), or None
    accuracy_metric: str | None = None  # "eval/<task>/acc" or "eval/<task>/acc_norm" when one is fitted
    project: str | None = None  # W&B project of the runs, when they agree
    # (params, tokens, lr, batch_size) of each run that diverged (left out of the rows): a learning rate
    # or batch the hyperparameter surfaces count as tried and far worse than any finished run
    diverged: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))

    def __len__(self) -> int:
        return len(self.loss)

    def cells(self) -> list[tuple[float, float]]:
        """Per row, its (size, tokens) cell: values within 2% (0.01 decades) count as equal.

        A knob such as qk_norm adds a few parameters, and a different batch size rounds the token
        count differently; those runs still compare at the same size and budget.
        """
        return list(zip(representative(self.params, CELL_TOLERANCE_DEX).tolist(),
                        representative(self.tokens, CELL_TOLERANCE_DEX).tolist(), strict=True))

    def subset(self, idx: np.ndarray | list[int]) -> Points:
        """The rows ``idx`` (repeats allowed, as in a bootstrap resample); curves are kept whole."""
        idx = np.asarray(idx, dtype=int)

        def pick(xs: list) -> list:
            return [xs[i] for i in idx]

        return Points(
            self.params[idx],
            self.tokens[idx],
            self.loss[idx],
            self.flops[idx],
            self.lr[idx],
            self.batch_size[idx],
            self.seed[idx],
            pick(self.run),
            pick(self.trunk),
            {k: pick(v) for k, v in self.knobs.items()},
            self.curves,
            pick(self.configs) if self.configs else [],
            self.group,
            list(self.notes),
            self.metric,
            None if self.accuracy is None else self.accuracy[idx],
            self.accuracy_metric,
            self.project,
            self.diverged,
        )


def eval_metric(metric: str) -> tuple[str, str] | None:
    """``(task, key)`` of a downstream metric name ``eval/<task>/<key>``; None for loss, bpb and auto.

    Raises :class:`ScalingError` on any other name."""
    if metric in METRICS:
        return None
    task, _, key = metric.removeprefix("eval/").rpartition("/")
    if not metric.startswith("eval/") or not task or key not in EVAL_KEYS:
        raise ScalingError(
            f"--metric must be one of {', '.join(METRICS)} or eval/<task>/<key> with a key among "
            f"{', '.join(EVAL_KEYS)} (e.g. eval/stdlib-nextline/acc), not {metric!r}"
        )
    return task, key


def metric_label(metric: str) -> str:
    """What a fitted metric is, in words (report and plot labels)."""
    parsed = eval_metric(metric)
    if parsed is None:
        return METRIC_LABELS[metric]
    return f"{parsed[0]} task bits per byte of the right answers ({metric})"


def _number(value: Any, where: str, column: str) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null")):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ScalingError(f"{where}: column {column}={value!r} is not a number") from None


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def _read_csv(path: Path) -> tuple[list[dict], list[str]]:
    """The CSV's rows, and notes on how its columns were read."""
    try:
        return _parse_csv(path)
    except UnicodeDecodeError as e:
        raise ScalingError(
            f"{path}: not UTF-8 text (byte {e.start} cannot be decoded); save the CSV as UTF-8"
        ) from None


def _names_column(name: str, column: str, aliases: tuple[str, ...]) -> bool:
    """Whether header ``name`` is another name of ``column``: one of its aliases, or a dotted name ending
    in the column or an alias (``optim.lr``, ``optimizer.learning_rate``), in any case, with "/", spaces
    and "-" read as "_" (W&B's ``val/loss``, ``Model Size``); a count column may carry its unit
    (``params (M)``, see :func:`count_unit`)."""
    base, factor = count_unit(name) if column in COUNT_COLUMNS else (name, 1.0)
    last = _last_name(base)
    return (base != column or factor != 1.0) and (
        last in aliases or ("." in base and last == column) or (factor != 1.0 and last == column))


def _last_name(header: str) -> str:
    """A column's name after its last ".", lower case, "/", spaces and "-" read as "_" (``optim.lr`` →
    ``lr``, ``Model Size`` → ``model_size``)."""
    last = header.strip().lower().rsplit(".", 1)[-1]
    return re.sub(r"[/\s-]+", "_", last)


def count_unit(header: str) -> tuple[str, float]:
    """A header without the unit it names, and that unit as a factor: ``"params (M)"`` → ``("params",
    1e6)``, ``"tokens_B"`` → ``("tokens", 1e9)``, ``"FLOPs (1e18)"`` → ``("FLOPs", 1e18)``; a header
    without one is returned as it is, with 1."""
    match = _UNIT_IN_HEADER.match(header.strip())
    if not match:
        return header, 1.0
    unit = (match["unit"] or match["suffix"]).lower()
    if unit in COUNT_UNITS:
        return match["name"], COUNT_UNITS[unit]
    power = re.fullmatch(r"(?:1e\+?|10\^)(\d+)", unit)
    return (match["name"], 10.0 ** int(power[1])) if power else (header, 1.0)


def _column_sources(path: Path, header: list[str]
                    ) -> tuple[dict[str, str], list[str], list[str], dict[str, float]]:
    """Which column each column the fit reads comes from (itself or its one alias), the columns left
    out because the column they alias is there, notes on both, and the unit a source's header names
    (``params (M)``: 1e6) where it names one."""
    sources, left_out, notes, factors = {}, [], [], {}
    for column, aliases in (*COLUMN_ALIASES.items(), ("batch_size", SEQUENCE_BATCH_COLUMNS)):
        found = [h for h in header if _names_column(h, column, aliases)]
        if column in header or column in sources:
            left_out += found
            notes += [f"{path}: column {h!r} left out: the {column} column is read" for h in found]
        elif len(found) > 1:
            raise ScalingError(f"{path}: columns {found[0]!r} and {found[1]!r} both name the {column} "
                               f"column; keep one, or rename one to {column}")
        elif found and aliases is SEQUENCE_BATCH_COLUMNS:
            lengths = [h for h in header if _last_name(h) in SEQUENCE_LENGTH_COLUMNS]
            if len(lengths) != 1:
                raise ScalingError(
                    f"{path}: column {found[0]!r} looks like a batch size in sequences, which the fit reads "
                    f"in tokens per optimiser step: give a batch_size column in tokens (sequences x sequence "
                    f"length) or a seq_len column, or rename {found[0]!r} if it is something else")
            sources[SEQUENCE_BATCH] = (found[0], lengths[0])
            notes.append(f"{path}: batch_size = {found[0]!r} x {lengths[0]!r} (sequences per step x tokens "
                         f"per sequence; there is no batch_size column)")
        elif found:
            sources[column] = found[0]
            factor = count_unit(found[0])[1] if column in COUNT_COLUMNS else 1.0
            if factor != 1.0:
                factors[column] = factor
            what = "each run's training FLOPs" if column == "flops" else f"the {column} column"
            unit = f" times {factors[column]:g}, the unit its name gives" if column in factors else ""
            notes.append(f"{path}: column {found[0]!r} read as {what}{unit} (there is no {column} column)")
    return sources, left_out, notes, factors


def _parse_csv(path: Path) -> tuple[list[dict], list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Excel) is not a column
        reader = csv.DictReader(f)
        # the columns the fit reads match in any case (Loss, FLOPs); knob and mixture columns keep theirs
        header = [h.strip().lower() if h.strip().lower() in _RESERVED_COLUMNS else h.strip()
                  for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        repeated = sorted({h for h in header if h and header.count(h) > 1})
        if repeated:  # DictReader would keep the last one silently
            name = repeated[0]
            raise ScalingError(f"{path}: column {name!r} appears {header.count(name)} times in the header; "
                               f"keep one column of each name")
        sources, left_out, notes, factors = _column_sources(path, header)
        missing = [c for c in REQUIRED_COLUMNS if c not in header and c not in sources]
        derived = _derived_count(path, missing, "flops" in header or "flops" in sources)
        if derived:
            missing.remove(derived[0])
            notes.append(derived[2])
        if missing:
            raise ScalingError(
                f"{path}: missing column(s) {', '.join(missing)}; a fit CSV needs "
                f"params,tokens,loss, or flops and loss with one of params, tokens (optional lr,batch_size,"
                f"seed,bpb, eval/<task>/<key> and knob columns)"
            )
        rows = []
        for line, raw in enumerate(reader, start=2):
            raw = {(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
            for name in left_out:
                raw.pop(name, None)
            where = f"{path.name}:{line}"
            row: dict[str, Any] = {
                "run": where,
                "trunk": where,
                "status": row_status(raw.pop(sources.get("status", "status"), None), where),
            }
            loss_text = str(raw.get(sources.get("loss", "loss")) or "").strip().lower()
            if row["status"] == "done" and loss_text.lstrip("+") in DIVERGED_LOSS_WORDS:
                row["status"] = "diverged"  # a W&B export or a table writes a blown-up run's loss so
            for col in NUMERIC_COLUMNS:
                source = sources.get(col, col)
                row[col] = _number(raw.pop(source, None), where, source) * factors.get(col, 1.0)
            if derived:
                row[derived[0]] = row["flops"] / (6.0 * row[derived[1]])
            if SEQUENCE_BATCH in sources:
                sequences, length = sources[SEQUENCE_BATCH]
                row["batch_size"] = _number(raw.pop(sequences, None), where, sequences) * _number(
                    raw.get(length), where, length)
            row["eval"] = {k: _number(raw.pop(k), where, k) for k in list(raw) if k.startswith("eval/")}
            # w_<domain> and loss_<evalset> columns belong to the mixture law (scaling.fit.mixture_data)
            row["knobs"] = {
                k: _knob_value(v) for k, v in raw.items() if k and not k.startswith(("w_", "loss_"))
            }
            rows.append(row)
    if "flops" in sources and not derived:
        _check_flops_alias(path, rows, sources["flops"])
    notes += _check_units(path, rows)
    notes += _drop_per_run_columns(path, rows)
    return rows, notes


def _derived_count(path: Path, missing: list[str], has_flops: bool) -> tuple[str, str, str] | None:
    """(column, the other count, note) when the CSV lacks one of params and tokens but gives each run's
    compute, as published IsoFLOP tables do (a budget and a size, or a budget and a token count): the
    missing count is C / (6 x the other). None when nothing is to be derived."""
    counts = [c for c in missing if c in ("params", "tokens")]
    if not has_flops or len(counts) != 1:
        return None
    column = counts[0]
    other = "tokens" if column == "params" else "params"
    return column, other, (f"{path}: no {column} column: {column} = flops / (6 x {other}) per row (the 6·N·D "
                           f"convention; give a {column} column where the FLOPs were counted otherwise)")


def row_status(word: str | None, where: str) -> str:
    """A CSV row's status as the fit reads it (done, failed, unfinished, diverged); empty is done."""
    word = (word or "done").strip().lower() or "done"
    for status, words in STATUS_WORDS.items():
        if word in words:
            return status
    known = ", ".join(w for words in STATUS_WORDS.values() for w in words)
    raise ScalingError(f"{where}: status {word!r} is not one the fit knows ({known}); fix the row or drop "
                       f"the status column")


def _check_flops_alias(path: Path, rows: list[dict], column: str) -> None:
    """Refuse a compute column under another name (``budget``) that cannot be the runs' training FLOPs."""
    ratios = [r["flops"] / (6 * r["params"] * r["tokens"]) for r in rows
              if r["flops"] > 0 and r["params"] > 0 and r["tokens"] > 0]
    if not ratios:
        return
    ratio = float(np.median(ratios))
    if not FLOPS_ALIAS_RANGE[0] <= ratio <= FLOPS_ALIAS_RANGE[1]:
        raise ScalingError(f"{path}: column {column!r} is read as each run's training FLOPs, but it is "
                           f"{ratio:.3g}x 6·params·tokens; rename it if it is something else, or give a "
                           f"flops column")


def _check_units(path: Path, rows: list[dict]) -> list[str]:
    """Refuse counts in other units: params or tokens in millions or billions, a batch in sequences; a
    note where a batch looks like sequences without being impossible in tokens."""
    for column, least in MIN_LARGEST_COUNT.items():
        values = [r[column] for r in rows if math.isfinite(r[column])]
        if values and max(values) < least:
            raise ScalingError(f"{path}: every {column} value is below {least:g} (the largest is "
                               f"{max(values):g}); give {column} as plain counts (70M is 7e7), or name "
                               f"the unit in the header: {column} (M), {column} (B)")
    steps = [r["tokens"] / r["batch_size"] for r in rows if r["batch_size"] > 0 and r["tokens"] > 0]
    if steps and float(np.median(steps)) > MAX_MEDIAN_STEPS:
        raise ScalingError(f"{path}: batch_size is read in tokens per optimiser step, but then the runs take "
                           f"{float(np.median(steps)):.3g} steps (median); if it counts sequences, multiply "
                           f"it by the sequence length")
    batches = [r["batch_size"] for r in rows if r["batch_size"] > 0]
    sizes = [r["params"] for r in rows if math.isfinite(r["params"])]
    if not batches or not sizes:
        return []
    batch, size = float(np.median(batches)), float(np.median(sizes))
    if batch > SMALL_BATCH[0] or size < SMALL_BATCH[1]:
        return []
    return [f"{path}: batch_size is read in tokens per optimiser step, and its median {batch:g} is small for "
            f"models of {size:.3g} parameters; if it counts sequences, multiply it by the sequence length"]


def _drop_per_run_columns(path: Path, rows: list[dict]) -> list[str]:
    """Leave out of the knobs the columns whose values are per run, not settings shared by several runs.

    A knob's levels are settings that several runs share. A column with more than half as many values
    as rows (and more than two) holds run names or measurements (train loss, steps, wall time); read as
    a knob it would make every run its own setting, so repeated seeds would no longer measure the noise
    and each level comparison would lose its pairs.
    """
    values: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r["knobs"].items():
            values.setdefault(k, set()).add(repr(v))
    per_run = sorted(k for k, seen in values.items() if len(seen) > max(2, len(rows) / 2))
    for r in rows:
        for k in per_run:
            r["knobs"].pop(k, None)
    return [f"{path}: column {k!r} left out of the knobs: {len(values[k])} different values in {len(rows)} "
            f"rows are per-run values (a name, a measurement), not settings several runs share"
            for k in per_run]


def _knob_value(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _read_run(run_dir: Path, params_kind: str) -> dict:
    try:
        result = json.loads((run_dir / RESULT_FILE).read_text())
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
        raise ScalingError(f"{run_dir / RESULT_FILE}: unreadable ({e}); re-run or remove that run") from None
    config: dict = {}
    if (run_dir / CONFIG_FILE).exists():
        config = read_yaml(run_dir / CONFIG_FILE, what="run config") or {}
    where = str(run_dir)
    key = "params_non_embedding" if params_kind == "non-embedding" else "params"
    cfg_flat = _flatten(config)
    loss = result.get("final_val_loss")
    row: dict[str, Any] = {
        "run": str(result.get("run_id") or run_dir.name),
        "status": result.get("status", "done"),
        "params": _number(result.get(key), where, key),
        "tokens": _number(result.get("tokens", cfg_flat.get("train.tokens")), where, "tokens"),
        # a run that diverged stopped early: its cell is the budget it was planned for
        "planned_tokens": _number(cfg_flat.get("train.tokens"), where, "train.tokens"),
        "loss": _number(loss, where, "final_val_loss"),
        "flops": _number(result.get("flops"), where, "flops"),
        "lr": _number(result.get("lr", cfg_flat.get("optim.lr")), where, "lr"),
        "batch_size": _number(result.get("batch_tokens"), where, "batch_tokens"),
        "seed": _number(result.get("seed", cfg_flat.get("run.seed")), where, "seed"),
        "bpb": _number(result.get("val_bpb"), where, "val_bpb"),
        "tokenization": repr([cfg_flat.get(k) for k in _TOKENIZATION_KEYS]) if config else None,
        "config": config,
        "group": cfg_flat.get("logging.group"),
        "project": cfg_flat.get("logging.project"),
        "knobs": {k: v for k, v in cfg_flat.items() if not k.startswith(_NOT_KNOBS) and k != "optim.lr"},
    }
    try:
        metrics = read_metrics(run_dir)  # a line cut by a crash is skipped
    except UnicodeDecodeError as e:
        metrics, row["curve_note"] = [], f"{row['run']} (byte {e.start} is not UTF-8)"
    row["eval"] = _final_eval_scores(result, metrics, where)
    row["eval_rows"] = [r for r in metrics if "train/tokens" in r and any(k.startswith("eval/") for k in r)]
    parent = result.get("parent")
    row["trunk"] = (
        str(Path(parent["run_dir"]).resolve())
        if isinstance(parent, dict) and parent.get("run_dir")
        else str(run_dir.resolve())
    )
    row["curve"] = _read_curve(metrics, row)
    return row


def _final_eval_scores(result: dict, metrics: list[dict], where: str) -> dict[str, float]:
    """Every ``eval/...`` score of a run: result.json's, else the last metrics.jsonl row's (a run cut
    short writes no result scores)."""
    scores: dict[str, float] = {}
    for rec in metrics:
        scores.update({k: v for k, v in rec.items() if k.startswith("eval/")})
    scores.update({k: v for k, v in result.items() if k.startswith("eval/")})
    return {k: _number(v, where, k) for k, v in scores.items()}


def _read_curve(metrics: list[dict], row: dict) -> Curve | None:
    """The run's validation curve; None when it has none. A damaged ``metrics.jsonl`` (not UTF-8, a
    value that is not a number) gives no curve and sets ``row["curve_note"]``: the run's final loss comes
    from result.json and still counts, only approach 1 goes without its curve."""
    if not (row["tokens"] > 0 and row["params"] > 0) or row.get("curve_note"):
        return None
    tokens, losses, bpbs = [], [], []
    for rec in val_rows(metrics):
        if "train/tokens" not in rec:
            continue
        try:
            values = [_metric_value(rec, key) for key in ("train/tokens", "val/loss", "val/bpb")]
        except ValueError as e:
            row["curve_note"] = f"{row['run']} ({e})"
            return None
        tokens.append(values[0])
        losses.append(values[1])
        bpbs.append(values[2])
    if not tokens:
        return None
    return _curve(row, tokens, losses, bpbs)


def _metric_value(rec: dict, key: str) -> float:
    """``rec[key]`` as a float (NaN when absent or null); ValueError naming the key for anything else."""
    value = rec.get(key)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} {value!r} is not a number")
    return float(value)


def _curve(row: dict, tokens: list[float], losses: list[float], bpbs: list[float] | None = None) -> Curve:
    """A :class:`Curve` of ``row``'s run, its non-positive and NaN points left out."""
    fpt = row["flops"] / row["tokens"] if row["flops"] > 0 else 6.0 * row["params"]
    t, lo = np.asarray(tokens, dtype=float), np.asarray(losses, dtype=float)
    bpb = np.asarray(bpbs if bpbs is not None else [math.nan] * len(tokens), dtype=float)
    keep = np.isfinite(lo) & (lo > 0) & (t > 0)
    return Curve(row["run"], row["params"], fpt, t[keep], lo[keep], bpb[keep])


def _use_eval_metric(rows: list[dict], task: str, key: str, notes: list[str]) -> tuple[str, str | None]:
    """Put ``eval/<task>/bpb`` into each row's loss (and its curve), and for an accuracy metric the
    accuracy into ``row["accuracy"]``. Returns the fitted loss metric and the accuracy metric."""
    bpb_name = f"eval/{task}/bpb"
    acc_name = None if key == "bpb" else f"eval/{task}/{key}"
    wanted = [bpb_name] + ([acc_name] if acc_name else [])
    if not any(all(name in r["eval"] for name in wanted) for r in rows):
        found = sorted({k for r in rows for k in r["eval"]})
        raise ScalingError(f"no run has {' and '.join(wanted)}; train with eval.tasks=[{task}] (or score the "
                           f"runs with scaling eval) first"
                           + (f"; the runs have {', '.join(found[:6])}" if found else ""))
    for r in rows:
        r["loss"] = r["eval"].get(bpb_name, math.nan)
        r["accuracy"] = r["eval"].get(acc_name, math.nan) if acc_name else math.nan
        if acc_name and not math.isfinite(r["accuracy"]):
            r["loss"] = math.nan  # a row without the accuracy cannot serve the two-step fit
        evals = [e for e in r.get("eval_rows", []) if bpb_name in e]  # approach 1 reads the task's curves
        r["curve"] = _curve(r, [e["train/tokens"] for e in evals], [e[bpb_name] for e in evals]) \
            if evals and r["params"] > 0 and r["tokens"] > 0 else None
    what = f"{acc_name} in two steps, through the task's bits per byte" if acc_name else bpb_name
    notes.append(f"fitting the downstream metric {what}: the scaling laws (approaches 1-3) are fitted to "
                 f"{bpb_name}, not to the validation loss")
    return bpb_name, acc_name


def _choose_metric(rows: list[dict], metric: str, notes: list[str]) -> str:
    """``loss`` or ``bpb`` for ``metric`` (auto: bpb when the runs differ in tokenization)."""
    tokenizations = {r.get("tokenization") for r in rows} - {None}
    missing = [r["run"] for r in rows if not math.isfinite(r.get("bpb", math.nan))]
    if metric == "auto":
        if len(tokenizations) < 2:
            return "loss"
        if missing:
            notes.append(
                f"the runs use {len(tokenizations)} different tokenizations (vocab size, tokenizer or "
                f"data) but {len(missing)} lack val_bpb: fitting nats per token, which does not compare "
                f"across tokenizers"
            )
            return "loss"
        metric = "bpb"
        notes.append(f"the runs use {len(tokenizations)} different tokenizations (vocab size, tokenizer or "
                     f"data): fitting validation bits per byte, which compares across them, instead of nats "
                     f"per token (--metric loss overrides)")
    if metric == "bpb":
        if missing:
            raise ScalingError(f"{missing[0]}: no validation bits per byte (val_bpb / a bpb column) to fit; "
                               f"use --metric loss, or give every run a bpb")
    return metric


def _unfinished_note(sweep_dir: Path) -> str | None:
    """For a sweep dir, which planned runs have no result.json yet (None when all have one)."""
    try:
        planned = [r["run_id"] for r in json.loads((sweep_dir / "plan.json").read_text())["runs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    missing = [rid for rid in planned if not (sweep_dir / "runs" / rid / RESULT_FILE).exists()]
    if not missing:
        return None
    return (
        f"{len(missing)} of {len(planned)} planned run(s) of {sweep_dir} have no result yet (unfinished or "
        f"not launched) and are left out: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
    )


def _collect(inputs: list[str | Path], params_kind: str, notes: list[str]) -> list[dict]:
    rows: list[dict] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise ScalingError(f"{path}: no such file or directory (give run dirs, sweep dirs or CSV files)")
        if path.is_file():
            if path.suffix.lower() != ".csv":
                raise ScalingError(f"{path}: not a CSV file, run dir or sweep dir")
            csv_rows, csv_notes = _read_csv(path)
            notes.extend(csv_notes)
            rows.extend(csv_rows)
            continue
        results = [path / RESULT_FILE] if (path / RESULT_FILE).exists() else sorted(path.rglob(RESULT_FILE))
        for sweep_dir in (
            [path] if (path / "plan.json").exists() else sorted(p.parent for p in path.rglob("plan.json"))
        ):
            note = _unfinished_note(sweep_dir)
            if note:
                notes.append(note)
        if not results:
            raise ScalingError(f"{path}: no result.json found below it; are the runs finished?")
        rows.extend(_read_run(r.parent, params_kind) for r in results)
    return rows


def load_points(inputs: list[str | Path], *, params: str = "non-embedding", exclude_diverged: bool = True,
                metric: str = "auto") -> Points:
    """Read run dirs, sweep dirs and CSV files into one :class:`Points` table.

    ``params`` picks the parameter count of run dirs (``total`` or ``non-embedding``). Failed runs are
    always dropped, diverged ones unless ``exclude_diverged`` is False, rows with a NaN anywhere in
    params/tokens/loss are dropped with a note; a non-positive value is an error. ``metric``
    (auto | loss | bpb | eval/<task>/bpb|acc|acc_norm) says what ``Points.loss`` holds; see the module docs.
    """
    if params not in ("total", "non-embedding"):
        raise ScalingError(f"--params must be total or non-embedding, not {params!r}")
    if not inputs:
        raise ScalingError("no fit input: give run dirs, sweep dirs or CSV files")
    notes: list[str] = []
    rows = _collect(list(inputs), params, notes)
    failed = [r for r in rows if r["status"] == "failed"]
    unfinished = [r for r in rows if r["status"] == "unfinished"]
    diverged = [r for r in rows if r["status"] == "diverged"]
    if failed:
        notes.append(f"excluded {len(failed)} failed run(s)")
    if unfinished:
        notes.append(f"excluded {len(unfinished)} unfinished run(s) (status running, pending or queued): "
                     f"their losses are not final")
    if diverged and exclude_diverged:
        notes.append(f"excluded {len(diverged)} diverged run(s) (--no-exclude-diverged keeps them; the "
                     f"learning-rate and batch surfaces count their settings as tried and far worse)")
    rows = [
        r for r in rows
        if r["status"] not in ("failed", "unfinished") and (r["status"] != "diverged" or not exclude_diverged)
    ]
    damaged = [r["curve_note"] for r in rows if r.get("curve_note")]
    if damaged:
        notes.append(f"skipped the validation curve of {len(damaged)} run(s) whose metrics.jsonl is damaged "
                     f"(their final losses still count; approach 1 goes without those curves): "
                     + ", ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else ""))
    downstream, accuracy_metric = eval_metric(metric), None
    if downstream and rows:
        metric, accuracy_metric = _use_eval_metric(rows, *downstream, notes)
    elif not downstream:
        metric = _choose_metric(rows, metric, notes) if rows else "loss"
    if metric == "bpb":
        for r in rows:
            r["loss"] = r["bpb"]
            curve = r.get("curve")
            if curve is not None:
                keep = np.isfinite(curve.bpb)
                curve.tokens, curve.loss = curve.tokens[keep], curve.bpb[keep]
    nan_rows = [r for r in rows if not all(math.isfinite(r[c]) for c in REQUIRED_COLUMNS)]
    if nan_rows:
        notes.append(f"excluded {len(nan_rows)} row(s) with a missing or NaN params/tokens/loss: "
                     + ", ".join(r["run"] for r in nan_rows[:5]) + (" ..." if len(nan_rows) > 5 else ""))
    rows = [r for r in rows if r not in nan_rows]
    for r in rows:
        for col in ("params", "tokens", "loss", "flops", "lr", "batch_size"):
            if r[col] <= 0:
                raise ScalingError(f"{r['run']}: {col} must be positive, got {r[col]:g}")
    if not rows:
        raise ScalingError("no usable rows left after excluding failed, diverged and NaN rows")

    def col(name: str) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=float)

    flops = col("flops")
    flops = np.where(np.isfinite(flops), flops, 6.0 * col("params") * col("tokens"))
    groups = {r.get("group") for r in rows} - {None}
    projects = {r.get("project") for r in rows} - {None}
    pts = Points(col("params"), col("tokens"), col("loss"), flops, col("lr"), col("batch_size"), col("seed"),
                 [r["run"] for r in rows], [r["trunk"] for r in rows],
                 curves=[r["curve"] for r in rows if r.get("curve") is not None],
                 configs=[r["config"] for r in rows] if all("config" in r for r in rows) else [],
                 group=groups.pop() if len(groups) == 1 else None, notes=notes, metric=metric,
                 accuracy=col("accuracy") if accuracy_metric else None, accuracy_metric=accuracy_metric,
                 project=projects.pop() if len(projects) == 1 else None)
    pts.knobs = _swept_knobs(rows, pts)
    settings = np.array([_diverged_setting(r) for r in (diverged if exclude_diverged else [])], dtype=float)
    settings = settings.reshape(-1, 4)
    pts.diverged = settings[np.isfinite(settings[:, :2]).all(axis=1)]
    return pts


def _diverged_setting(row: dict) -> list[float]:
    """(params, tokens, lr, batch_size) of a run that diverged; its tokens are those it was planned for
    (a run dir's result counts only the tokens trained before it stopped), as its cell has them."""
    planned = row.get("planned_tokens", math.nan)
    return [row["params"], planned if math.isfinite(planned) else row["tokens"], row["lr"], row["batch_size"]]


def _swept_knobs(rows: list[dict], pts: Points) -> dict[str, list[Any]]:
    """Settings that take two or more values among runs of the same size and token count.

    A key that only changes together with the model size or the token budget (``model.n_layer``,
    a schedule length) is part of the ladder, not a knob. ``lr`` and ``batch_size`` count as knobs too.
    """
    table: dict[str, list[Any]] = {}
    for name in ("lr", "batch_size"):
        table[name] = [None if not math.isfinite(v) else v for v in getattr(pts, name)]
    for key in sorted({k for r in rows for k in r["knobs"]}):
        table[key] = [r["knobs"].get(key) for r in rows]
    cells: dict[tuple, list[int]] = {}
    for i, cell in enumerate(pts.cells()):
        cells.setdefault(cell, []).append(i)
    swept = {}
    for key, values in table.items():
        if any(len({repr(values[i]) for i in idx}) > 1 for idx in cells.values()):
            swept[key] = values
    return _merge_confounded(swept)


def _merge_confounded(swept: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Knobs that always change together (a tokenizer's ``data.path`` and ``model.vocab_size``) are one
    knob, named ``a + b`` with values ``va / vb``: apart, neither could be compared with the other
    held fixed. ``lr`` and ``batch_size`` stay as they are (the hyperparameter laws read them)."""
    def pattern(values: list[Any]) -> tuple[int, ...]:
        first: dict[str, int] = {}
        return tuple(first.setdefault(repr(v), len(first)) for v in values)

    groups: dict[tuple[int, ...], list[str]] = {}
    for key, values in swept.items():
        if key not in ("lr", "batch_size"):
            groups.setdefault(pattern(values), []).append(key)
    merged = {k: v for k, v in swept.items() if k in ("lr", "batch_size")}
    for keys in groups.values():
        if len(keys) == 1:
            merged[keys[0]] = swept[keys[0]]
        else:
            merged[" + ".join(keys)] = [
                " / ".join(str(swept[k][i]) for k in keys) for i in range(len(swept[keys[0]]))
            ]
    return merged
