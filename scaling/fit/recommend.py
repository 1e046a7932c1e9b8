"""The recommendation for the large run: size, tokens, loss with interval, LR and batch, as a config.

Compute-optimal allocation uses the real FLOP accounting of concrete shapes rather than C = 6ND:
for every depth on the preset ladder's aspect ratio (:func:`scaling.ladder.ladder_shape`), tokens =
C / (training FLOPs per token of that shape, :func:`scaling.counting.flops_per_token`), and the shape
with the lowest predicted loss wins. At small sizes the output head and attention make 6N badly wrong;
at large sizes this agrees with the closed form N_opt = G·(C/6)^a, which the report shows alongside.

Which approach sets the size (:func:`choose_allocation`): approach 3 as above, or approach 2 -- the shape
nearest its N*(C) law -- when that law rests on three budgets or more and determines a more tightly
than approach 3 does. Few budgets leave approach 3's five constants loosely determined while the
IsoFLOP optima still fix the allocation well; the predicted loss always comes from approach 3. Runs that
all share one tokens-per-parameter ratio (a fixed-ratio ladder) measure no allocation at all: the large
run keeps their ratio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaling.config import ModelConfig
from scaling.counting import count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.fit.basics import PowerLaw
from scaling.fit.bootstrap import percentile_interval
from scaling.fit.hparams import hparam_at
from scaling.fit.large_run import clean_large_run
from scaling.fit.parametric import ParametricFit
from scaling.ladder import ladder_shape

if TYPE_CHECKING:
    from scaling.fit.steps import FitContext

FAR_EXTRAPOLATION = 100.0  # warn when the target compute exceeds the largest fitted run's by more than this
FAR_AXIS = 30.0  # warn when a prediction's N or D lies this factor beyond the fitted range
ALLOCATION_MIN_BUDGETS = 3  # approach 2 may set the allocation from this many budgets (a third checks a line)
# runs whose tokens per parameter span less than this (1.4x) share one ratio: along it N and D move together,
# so L = E + A/N^α + B/D^β cannot tell which power belongs to N and which to D, and no approach measures a
ONE_RATIO_DEX = 0.15
RUNS_RATIO = "the runs' ratio"
# where the config the large run starts from comes from (steps.Target.base_source)
BASE_FROM_RUNS, BASE_FROM_OPTION, BASE_FROM_DEFAULTS = "largest run", "--base-config", "defaults"
# the runs' values of an unswept hyperparameter follow a rule c·N^k when they scatter this little about it
# (std of the log): the large run gets the rule at its N, as the study would have set it
RULE_MAX_SCATTER = 0.05


@dataclass
class Ladder:
    """Candidate shapes: depth, parameter count (in the fit's convention) and training FLOPs per token."""

    n_layer: np.ndarray
    params: np.ndarray
    flops_per_token: np.ndarray
    base_model: dict
    seq_len: int

    def shape(self, i: int) -> dict:
        return {**self.base_model, **ladder_shape(int(self.n_layer[i]))}


def build_ladder(base_model: dict, seq_len: int, params_kind: str, max_layers: int = 256) -> Ladder:
    """Every ladder depth 1..max_layers on top of ``base_model`` (vocab, positions, ... kept)."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    base = {k: v for k, v in base_model.items() if k in known}
    layers, params, fpt = [], [], []
    for n_layer in range(1, max_layers + 1):
        shape = ladder_shape(n_layer)
        if shape["d_model"] % shape["n_head"]:
            continue  # wide odd depths give d_model that is not a whole number of 64-wide heads
        cfg = ModelConfig(**{**base, **shape})
        counts = count_params(cfg)
        layers.append(n_layer)
        params.append(counts.non_embedding if params_kind == "non-embedding" else counts.total)
        fpt.append(flops_per_token(cfg, seq_len))
    return Ladder(np.array(layers), np.array(params, dtype=float), np.array(fpt), base, seq_len)


def best_on_ladder(fit: ParametricFit, flops: float, ladder: Ladder) -> int:
    """Index of the ladder shape with the lowest predicted loss when trained with ``flops``."""
    return int(np.argmin(fit.predict(ladder.params, flops / ladder.flops_per_token)))


def nearest_shape(ladder: Ladder, params: float) -> int:
    """Index of the ladder shape whose parameter count is nearest ``params`` (in log)."""
    return int(np.argmin(np.abs(np.log(ladder.params / params))))


def ratio_shape(ladder: Ladder, flops: float, tokens_per_param: float) -> int:
    """Index of the ladder shape that, trained with ``flops``, sees nearest ``tokens_per_param`` tokens per
    parameter (in log)."""
    ratios = flops / ladder.flops_per_token / ladder.params
    return int(np.argmin(np.abs(np.log(ratios / tokens_per_param))))


@dataclass
class Allocation:
    """Which approach sets the compute-optimal size, and why in words."""

    approach: str
    """"approach 3" (least predicted loss on the ladder), "approach 2" (nearest its N*(C)) or
    :data:`RUNS_RATIO` (the shape that keeps the runs' one tokens-per-parameter ratio)."""
    why: str
    n_opt_law: PowerLaw | None = None
    """Approach 2's N*(C), C in training FLOPs; None when approach 2 does not set the size."""
    tokens_per_param: float | None = None
    """The runs' one ratio, kept by the large run; None when the runs span several."""

    def index(self, fit: ParametricFit, flops: float, ladder: Ladder) -> int:
        """The ladder shape of the compute-optimal run of ``flops``."""
        if self.tokens_per_param is not None:
            return ratio_shape(ladder, flops, self.tokens_per_param)
        if self.n_opt_law is None:
            return best_on_ladder(fit, flops, ladder)
        return nearest_shape(ladder, self.n_opt_law(flops))

    def to_dict(self) -> dict:
        return {"approach": self.approach, "why": self.why}


APPROACH_3 = Allocation("approach 3", "the default")


def choose_allocation(a3_ci: list[float] | None, iso_a_ci: list[float] | None, n_opt_law: PowerLaw | None,
                      n_budgets: int, tokens_per_param: np.ndarray | None = None) -> Allocation:
    """Approach 2 sets the size when its N*(C) ``n_opt_law`` rests on ``ALLOCATION_MIN_BUDGETS`` budgets or
    more and its a interval ``iso_a_ci`` is narrower than approach 3's bootstrap interval ``a3_ci``;
    approach 3 otherwise (also without either interval: nothing to compare). When the runs'
    ``tokens_per_param`` span less than ``ONE_RATIO_DEX``, neither measures the allocation and the large
    run keeps that ratio."""
    logs = np.log10(tokens_per_param) if tokens_per_param is not None else np.zeros(0)
    if logs.size and np.ptp(logs) < ONE_RATIO_DEX:
        r = float(10 ** np.median(logs))
        why = (f"every run has {r:.3g} tokens per parameter, and along one ratio a parameter term and a "
               f"data term look alike, so no approach measures the compute-optimal ratio: the large run "
               f"keeps the runs' (runs at a second ratio, such as {r / 5:.3g} or {5 * r:.3g}, let the fit "
               f"choose)")
        return Allocation(RUNS_RATIO, why, tokens_per_param=r)
    if n_opt_law is None or n_budgets < ALLOCATION_MIN_BUDGETS:
        return Allocation("approach 3", f"approach 2 has fewer than {ALLOCATION_MIN_BUDGETS} IsoFLOP budgets "
                                        "with a bracketed optimum")
    if a3_ci is None or iso_a_ci is None:
        missing = "approach 3 has no bootstrap" if a3_ci is None else "approach 2's a has no interval"
        return Allocation("approach 3", f"{missing}, so the approaches' precision cannot be compared")
    w2, w3 = iso_a_ci[1] - iso_a_ci[0], a3_ci[1] - a3_ci[0]
    widths = f"the 95% intervals of a are {w2:.2f} wide (approach 2) and {w3:.2f} (approach 3)"
    if w2 < w3:
        return Allocation("approach 2", f"its IsoFLOP optima determine a more tightly: {widths}", n_opt_law)
    return Allocation("approach 3", f"its law determines a at least as tightly: {widths}")


def choose(fit: ParametricFit, ladder: Ladder, *, flops: float | None = None, params: float | None = None,
           tokens: float | None = None, allocation: Allocation = APPROACH_3) -> dict:
    """Resolve a target to a shape, tokens and FLOPs: ``flops`` alone (the compute-optimal run), ``params``
    or ``tokens`` alone (the other follows the law of ``allocation``), or ``params`` and ``tokens``
    together (that run)."""
    if (flops is None) == (params is None and tokens is None):
        raise ScalingError("give --target-flops alone, or --target-params and/or --target-tokens")
    for name, value in (("flops", flops), ("params", params), ("tokens", tokens)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ScalingError(f"--target-{name} must be a positive number, got {value}")
    law, ratio = allocation.n_opt_law, allocation.tokens_per_param
    if flops is not None:
        i = allocation.index(fit, flops, ladder)
        d = flops / ladder.flops_per_token[i]
    elif params is not None and tokens is not None:  # a fixed run, e.g. trained past compute-optimal
        i = nearest_shape(ladder, params)
        d = tokens
    elif params is not None:
        i = nearest_shape(ladder, params)
        if ratio is not None:
            d = ratio * ladder.params[i]
        elif law is None:  # the Chinchilla-optimal tokens for this size: invert N = G·(C/6)^a
            d = (ladder.params[i] / fit.G) ** (1 / fit.a) / ladder.params[i]
        else:  # the compute whose optimum is this size: invert N*(C) = coef·C^a
            d = (ladder.params[i] / law.coef) ** (1 / law.exponent) / ladder.flops_per_token[i]
    elif ratio is not None:
        i = nearest_shape(ladder, tokens / ratio)
        d = tokens
    elif law is None:
        n_target = (tokens * fit.G) ** (1 / fit.b) / tokens
        i = nearest_shape(ladder, n_target)
        d = tokens
    else:  # the shape that is its own compute's optimum when trained on ``tokens``
        i = int(np.argmin(np.abs(np.log(ladder.params / law(tokens * ladder.flops_per_token)))))
        d = tokens
    if i == len(ladder.params) - 1:
        raise ScalingError(
            f"the target needs a model deeper than the largest ladder shape ({ladder.n_layer[-1]} layers)"
        )
    if params is not None and params < ladder.params[0] / 2:
        raise ScalingError(f"--target-params {params:.3g} is below the smallest ladder shape "
                           f"({ladder.params[0]:.3g} params): aim higher (a target is for the large run)")
    return {
        "index": i,
        "n_layer": int(ladder.n_layer[i]),
        "params": float(ladder.params[i]),
        "tokens": float(d),
        "flops": float(d * ladder.flops_per_token[i]),
        "flops_per_token": float(ladder.flops_per_token[i]),
    }


def _device_count(train: dict) -> int | None:
    """Devices per optimiser step (devices per node x nodes); None when ``train.devices`` is auto."""
    from scaling.config import parse_devices

    devices = parse_devices(train.get("devices", "auto"))
    if isinstance(devices, list):
        count = len(devices)
    elif isinstance(devices, int) and devices > 0:
        count = devices
    else:
        return None
    return count * int(train.get("num_nodes", 1))


def round_batch(batch_tokens: float, train: dict, seq_len: int) -> dict:
    """The batch the config can run: micro_batch_size x seq_len x grad_accum x devices tokens, nearest to
    ``batch_tokens`` with the small runs' micro-batch (smaller when the batch holds fewer sequences).

    Returns the micro-batch, grad_accum, the batch used and, in words, how it was rounded.
    """
    devices = _device_count(train)
    per_step = devices or 1
    sequences = max(1.0, batch_tokens / seq_len / per_step)
    micro = min(int(train.get("micro_batch_size", 16)), max(1, round(sequences)))
    accum = max(1, round(sequences / micro))
    used = micro * accum * seq_len * per_step
    device_words = (f"{devices} device(s)" if devices
                    else "1 device (train.devices=auto: divide grad_accum by the count)")
    return {"requested": float(batch_tokens), "used": float(used), "micro_batch_size": micro,
            "grad_accum": accum, "seq_len": seq_len, "devices": devices,
            "note": f"{batch_tokens:.4g} tokens rounded to {micro} x {seq_len} x {accum} x {device_words} "
                    f"= {used} tokens ({100 * (used / batch_tokens - 1):+.1f}%)"}


def large_run_config(base_config: dict, ladder: Ladder, choice: dict, *, lr: float | None,
                     batch_tokens: float | None) -> dict:
    """The config tree of the recommended run (``scaling train`` validates it on load), cleared of the
    sweep's plumbing (:func:`scaling.fit.large_run.clean_large_run`)."""

    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base_config.items()}
    model = {**cfg.get("model", {}), **ladder.shape(choice["index"]), "name": f"fit-L{choice['n_layer']}"}
    train = dict(cfg.get("train", {}))
    seq_len = int(train.get("seq_len", ladder.seq_len))
    train.update(tokens=float(round(choice["tokens"])), seq_len=seq_len,
                 val_every_tokens=float(max(1, round(choice["tokens"] / 100))),
                 checkpoint_every_tokens=float(max(1, round(choice["tokens"] / 20))), checkpoint_at_tokens=[])
    if batch_tokens is not None:
        rounding = round_batch(batch_tokens, train, seq_len)
        train.update(micro_batch_size=rounding["micro_batch_size"], grad_accum=rounding["grad_accum"])
    optim = dict(cfg.get("optim", {}))
    if lr is not None:
        optim["lr"] = float(lr)
    run = {**cfg.get("run", {}), "name": "large-run", "seed": 0, "resume": "never", "branch_from": None,
           "branch_at_tokens": None}
    return clean_large_run({**cfg, "model": model, "train": train, "optim": optim, "run": run})


def large_run_yaml(tree: dict, path) -> str:
    """``tree`` validated as a run config, as the text of large_run.yaml at ``path`` (fully resolved, with a
    header that says how to train it)."""
    import tempfile

    import yaml

    from scaling.config_loading import load_config, to_yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(tree, f, sort_keys=False)
    try:
        text = to_yaml(load_config([f.name]))
    finally:
        import os

        os.unlink(f.name)
    header = "# The large run recommended by `scaling fit` (see report.md). Train it with:\n" \
             f"#   {train_command(path)}\n" \
             "# The global batch is train.micro_batch_size x train.grad_accum x GPUs: on N GPUs divide\n" \
             "# train.grad_accum by N (or raise the micro-batch while it fits in memory).\n"
    return header + text


def train_command(path) -> str:
    """The command that trains the large run written at ``path``, as the report and the terminal print it."""
    import shlex

    return f"scaling train --config {shlex.quote(str(path))}"


_FORM_WORDS = {"N,D": "power law in N and D", "N": "power law in N", "C": "power law in compute"}


def _source(hparams: dict, name: str, base: str = "base config") -> str:
    """Where the recommended value of a hyperparameter comes from, in words (``base``: what the config
    the large run starts from is)."""
    entry = hparams.get(name)
    if entry is None:
        return f"{base} (not swept)"
    if entry.get("prediction") is None:
        return f"{base} ({entry['note']})"
    return _FORM_WORDS[entry["law"]["form"]] if entry.get("law") else "measured optimum at one size"


def carried_from_runs(values: np.ndarray, params: np.ndarray, flops: np.ndarray, target_params: float,
                      what: str) -> tuple[float, str] | None:
    """An unswept hyperparameter as the runs chose it, for the large run of ``target_params``: their one
    value; their rule c·N^k at the target's N when ``values`` follow one in N (a per-size learning rate);
    else the largest run's. With the source in words; None when no run has a value."""
    ok = np.isfinite(values) & (values > 0)
    if not ok.any():
        return None
    v, n = values[ok], params[ok]
    if np.ptp(np.log(v)) < 1e-9:
        return float(v[0]), f"the runs' {what} (not swept)"
    if np.ptp(np.log(n)) > 0:
        k, c = np.polyfit(np.log(n), np.log(v), 1)
        if np.std(np.log(v) - (c + k * np.log(n))) < RULE_MAX_SCATTER:
            return (float(np.exp(c) * target_params ** k),
                    f"the runs' rule, {what} ∝ N^{k:.3g}, at the target's N (not swept)")
    largest = int(np.argmax(flops[ok]))
    return float(v[largest]), f"the largest run's {what} (not swept)"


def from_runs(ctx: FitContext, name: str, what: str) -> tuple[float, str] | None:
    """The large run's ``name`` (lr, batch_size) from the tuned runs when no law gives it: unswept, as
    :func:`carried_from_runs`; swept without a law (every cell's best at the edge of its grid), the
    largest run's best value, a bound. None when a law gives it or no run has a value."""
    entry, tuned = ctx.hparams.get(name), ctx.tuned
    values = getattr(tuned, name)
    if entry is None:
        return carried_from_runs(values, tuned.params, tuned.flops, ctx.target.choice["params"], what)
    ok = np.flatnonzero(np.isfinite(values))
    if entry.get("prediction") is not None or not ok.size:
        return None
    largest = ok[int(np.argmax(tuned.flops[ok]))]
    return float(values[largest]), f"the largest run's best {what} ({entry['note']})"


def compute_optimal(ctx: FitContext, loss: float) -> dict:
    """The compute-optimal run of the target's compute, and how much lower its loss is than ``loss``."""
    ladder, choice, law = ctx.target.ladder, ctx.target.choice, ctx.law
    i = ctx.target.allocation.index(law, choice["flops"], ladder)
    d = choice["flops"] / ladder.flops_per_token[i]
    best = float(law.predict(ladder.params[i], d))
    return {"params": float(ladder.params[i]), "n_layer": int(ladder.n_layer[i]), "tokens": float(d),
            "tokens_per_param": float(d / ladder.params[i]), "loss": best,
            "loss_ci": percentile_interval(ctx.uncertainty.samples.get("pred_compute_optimal", np.zeros(0)),
                                           ctx.options.ci),
            "loss_gap": loss - best,
            "loss_gap_rel": (loss - best) / best}


def allocation_intervals(ctx: FitContext) -> tuple[list[float] | None, list[float] | None]:
    """The intervals of N_opt and D_opt at the target's compute, from the approach that set the size
    (approach 2: its N*(C) over the noisy copies; D from each end at the ladder's FLOPs per token there;
    none when the runs' ratio is kept: it is a choice, not an estimate)."""
    if ctx.target.allocation.tokens_per_param is not None:
        return None, None
    if ctx.target.allocation.approach != "approach 2":
        return ctx.uncertainty.cis.get("n_opt"), ctx.uncertainty.cis.get("d_opt")
    flops, ladder = ctx.target.choice["flops"], ctx.target.ladder
    _, n_ci = ctx.isoflop.n_opt_at(flops)
    if n_ci is None:
        return None, None
    log_fpt = np.interp(np.log(n_ci[::-1]), np.log(ladder.params), np.log(ladder.flops_per_token))
    return n_ci, [float(flops / np.exp(v)) for v in log_fpt]


def _lookup(tree: dict, dotted: str):
    """The value at ``a.b.c`` in a nested dict, and whether the key exists."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def knob_levels(effects: dict, tree: dict) -> dict[str, dict]:
    """Per knob judged at the target: the level the large run takes, and why (fit.json
    ``recommendation.knobs``).

    ``carry`` and ``reverses`` take the level predicted best at the target; ``undecided`` keeps the
    level most runs used (the study's own base level, the one its learning rates and other settings
    were tried at), and on a tie the default config's level when it is one of them, so noise does not
    pick it. A knob that is no config key (a CSV column) is only reported.
    """
    from scaling.config_loading import load_config, to_dict
    from scaling.fit.knob_laws import level_name

    defaults = to_dict(load_config([]))
    out = {}
    for knob, e in effects.items():
        if e["verdict"] in ("carry", "reverses"):
            level, why = e["best"], f"{e['verdict']}: predicted best at the target"
        else:
            most = max(lv["n_runs"] for lv in e["levels"].values())
            tied = [name for name, lv in e["levels"].items() if lv["n_runs"] == most]
            default, known = _lookup(defaults, knob)
            if len(tied) > 1 and known and level_name(default) in tied:
                level, why = level_name(default), "undecided: the default config's level"
            else:
                level, why = tied[0], "undecided: the level most runs used"
        _, settable = _lookup(tree, knob)
        out[knob] = {"level": level, "value": e["values"][level], "why": why, "in_config": settable}
    return out


def _set(tree: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    node = tree
    for part in path:
        node = node[part]
    node[last] = value


def recommend(ctx: FitContext, out: Path) -> tuple[dict, dict]:
    """The large run: its config tree (for ``out``/large_run.yaml) and fit.json's ``recommendation``."""
    points, hp, options = ctx.points, ctx.hparams, ctx.options
    base, ladder, choice = ctx.target.base, ctx.target.ladder, ctx.target.choice
    at_run = hparam_at(hp, -1)
    fixed_run = options.target_params is not None and options.target_tokens is not None
    lr, batch = at_run["lr"], at_run["batch_tokens"]
    base_train = base.get("train", {})
    base_batch = float(base_train.get("micro_batch_size", 16) * base_train.get("grad_accum", 1) *
                       base_train.get("seq_len", ladder.seq_len))
    base_words = "framework default" if ctx.target.base_source == BASE_FROM_DEFAULTS else "base config"
    lr_source, batch_source = _source(hp, "lr", base_words), _source(hp, "batch_size", base_words)
    if ctx.target.base_source != BASE_FROM_OPTION:  # without a law: as the runs set it, not a default's value
        lr, lr_source = from_runs(ctx, "lr", "learning rate") or (lr, lr_source)
        batch, batch_source = from_runs(ctx, "batch_size", "batch size") or (batch, batch_source)
    tree = large_run_config(base, ladder, choice, lr=lr, batch_tokens=batch)
    knobs = knob_levels(ctx.knob_effects.effects, tree)
    for knob, k in knobs.items():
        if k["in_config"]:
            _set(tree, knob, k["value"])
    if ctx.mixture:
        from scaling.fit.mixture import mixture_config

        tree["data"] = {**tree.get("data", {}), "mixture": mixture_config(ctx.mixture)}
    tree = clean_large_run(tree)  # a knob's level may be a relative path (a dataset) too
    interval = next(p for p in ctx.uncertainty.predictions if p["recommended"])
    throughput = options.gpu_throughput
    n_opt_ci, d_opt_ci = allocation_intervals(ctx)
    recommendation = {
        **{k: v for k, v in choice.items() if k != "index"},
        "d_model": tree["model"]["d_model"], "n_head": tree["model"]["n_head"], "params_kind": options.params,
        "tokens_per_param": choice["tokens"] / choice["params"],
        "loss": interval["loss"], "lo": interval["lo"], "hi": interval["hi"],
        "allocation": ctx.target.allocation.to_dict(),
        "n_opt_ci": n_opt_ci, "d_opt_ci": d_opt_ci,
        "lr": lr if lr is not None else tree["optim"].get("lr"),
        "lr_ci": at_run["lr_ci"],
        "lr_source": lr_source,
        "batch_tokens": batch if batch is not None else base_batch,
        "batch_ci": at_run["batch_ci"],
        "batch_source": batch_source,
        "batch_rounding": (round_batch(batch, tree["train"], int(tree["train"]["seq_len"]))
                           if batch is not None else None),
        "compute_optimal": (compute_optimal(ctx, interval["loss"]) if fixed_run else None),
        "extrapolation_factor": choice["flops"] / float(points.flops.max()),
        "gpu_hours": choice["flops"] / throughput / 3600 if throughput else None,
        "gpu_throughput": throughput, "a": {"approach3": ctx.law.a, "approach2": ctx.isoflop.a,
                                            "approach1": ctx.envelope.a},
        "knobs": knobs,
        "config": str(out / "large_run.yaml"),
    }
    return tree, recommendation
