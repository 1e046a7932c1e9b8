"""Training windows from prepared datasets: seeded, disjoint across ranks, mixable, exactly resumable.

A split's token stream is cut into fixed windows of ``seq_len + 1`` tokens with stride ``seq_len``
(window ``i`` covers tokens ``[i*seq_len, i*seq_len + seq_len]``), so every token is a target once
per epoch. Each dataset walks its windows in a seeded permutation, a new one per epoch.

Every step draws one *global* batch of ``batch_size * world_size`` slots. In a mixture each slot
picks a dataset with probability proportional to its weight, from a generator seeded by
``(seed, step)``; the slots that picked a dataset take its next windows in permutation order. Rank
``r`` reads slots ``[r*batch_size, (r+1)*batch_size)``. Every rank does the same bookkeeping, so
ranks never share a window within an epoch, and the whole position is a few integers
(step, and epoch and position per dataset): :meth:`WindowSampler.state_dict`.
"""

from __future__ import annotations

import warnings

import numpy as np

from data_pipelines.dataset import PreparedDataset, ShardedTokens
from data_pipelines.errors import DataError

DEFAULT_VAL_TOKENS = 65536  # tokens of the fixed validation set a run evaluates on (its data.val_tokens)
_STATE_VERSION = 1
_MIX_STREAM = 0x6D6978  # separates the mixture generator from the permutation generators


class _WindowStream:
    """One dataset's windows in a seeded permutation per epoch, consumed in order."""

    def __init__(self, tokens: ShardedTokens, seq_len: int, seed: int, index: int, name: str):
        self.tokens, self.seq_len, self.seed, self.index = tokens, seq_len, seed, index
        self.windows = (len(tokens) - 1) // seq_len if len(tokens) else 0
        if self.windows < 1:
            raise DataError(f"{name} has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}; "
                            "use a shorter train.seq_len or more data")
        self.epoch = 0
        self.position = 0
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def _permutation(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.index, self.epoch])
            self._perm = rng.permutation(self.windows)
            self._perm_epoch = self.epoch
        return self._perm

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` window indices, continuing into the next epoch when this one ends."""
        out = []
        while count > 0:
            perm = self._permutation()
            n = min(count, self.windows - self.position)
            out.append(perm[self.position:self.position + n])
            self.position += n
            count -= n
            if self.position == self.windows:
                self.epoch, self.position = self.epoch + 1, 0
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def read(self, window: int) -> np.ndarray:
        return self.tokens.read(int(window) * self.seq_len, self.seq_len + 1).astype(np.int64)


class WindowSampler:
    """An infinite stream of int64 batches of shape ``(batch_size, seq_len + 1)`` for one rank.

    ``sources`` is a list of ``(dataset, weight)``; one source with any weight is the plain case.
    Inputs are ``batch[:, :-1]`` and targets ``batch[:, 1:]``. See the module docstring for how
    windows are ordered, split between ranks and mixed.
    """

    def __init__(self, sources: list[tuple[PreparedDataset, float]], *, split: str = "train", seq_len: int,
                 batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if not sources:
            raise DataError("the sampler needs at least one dataset")
        if seq_len < 1 or batch_size < 1:
            raise DataError(f"seq_len={seq_len} and batch_size={batch_size} must be positive")
        if not 0 <= rank < world_size:
            raise DataError(f"rank={rank} must be in [0, world_size={world_size})")
        weights = np.array([float(w) for _, w in sources])
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise DataError(f"mixture weights must be positive numbers, got {weights.tolist()}")
        self.split, self.seq_len, self.batch_size, self.seed = split, seq_len, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.datasets = [ds for ds, _ in sources]
        self.probabilities = weights / weights.sum()
        self._streams = [_WindowStream(ds.tokens(split), seq_len, seed, i, f"{ds.path} ({split} split)")
                         for i, ds in enumerate(self.datasets)]
        self.step = 0

    @property
    def windows_per_epoch(self) -> list[int]:
        """Number of windows of each dataset (one epoch of that dataset)."""
        return [s.windows for s in self._streams]

    @property
    def epochs(self) -> list[int]:
        """The epoch each dataset's stream is in."""
        return [s.epoch for s in self._streams]

    def _slot_sources(self) -> np.ndarray:
        slots = self.batch_size * self.world_size
        if len(self._streams) == 1:
            return np.zeros(slots, dtype=np.int64)
        rng = np.random.default_rng([self.seed, _MIX_STREAM, self.step])
        return rng.choice(len(self._streams), size=slots, p=self.probabilities)

    def next_batch(self) -> np.ndarray:
        """This rank's next batch, int64 of shape ``(batch_size, seq_len + 1)``."""
        choice = self._slot_sources()
        windows = np.empty(len(choice), dtype=np.int64)
        for j, stream in enumerate(self._streams):
            mask = choice == j
            windows[mask] = stream.take(int(mask.sum()))
        self.step += 1
        lo = self.rank * self.batch_size
        batch = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        for row, slot in enumerate(range(lo, lo + self.batch_size)):
            batch[row] = self._streams[choice[slot]].read(windows[slot])
        return batch

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        """The position as plain JSON-serialisable data; the same on every rank."""
        return {
            "version": _STATE_VERSION, "step": self.step, "seed": self.seed, "split": self.split,
            "seq_len": self.seq_len,
            "streams": [{"path": str(ds.path), "windows": s.windows, "epoch": s.epoch, "position": s.position}
                        for ds, s in zip(self.datasets, self._streams, strict=True)],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where :meth:`state_dict` was taken (same datasets, seq_len and seed)."""
        mine = self.state_dict()
        for key in ("version", "seed", "split", "seq_len"):
            if state.get(key) != mine[key]:
                raise DataError(f"the saved data-loader state has {key}={state.get(key)!r}, this run has "
                                f"{mine[key]!r}; resume with the same data settings")
        saved = state.get("streams", [])
        if [s["windows"] for s in saved] != [s.windows for s in self._streams]:
            raise DataError("the saved data-loader state belongs to other datasets (window counts differ); "
                            "resume with the same data.path / data.mixture")
        self.step = int(state["step"])
        for stream, s in zip(self._streams, saved, strict=True):
            stream.epoch, stream.position = int(s["epoch"]), int(s["position"])


def validation_windows(dataset: PreparedDataset, seq_len: int, max_tokens: int = DEFAULT_VAL_TOKENS
                       ) -> np.ndarray:
    """A fixed validation set: int64 windows ``(n, seq_len + 1)`` with ``n * seq_len <= max_tokens``.

    The windows are spread evenly over the val split (the same windows for every run of the same
    dataset, whatever the seed). If the val split is shorter than one window, the *last* windows
    of the train split are used instead, with a warning: those tokens are also trained on, so the
    loss is then optimistic.
    """
    split = "val"
    tokens = dataset.tokens("val")
    if len(tokens) < seq_len + 1:
        split, tokens = "train", dataset.tokens("train")
        warnings.warn(f"{dataset.path} has no validation split long enough for seq_len={seq_len}; "
                      "validating on the end of the train split (also trained on)", stacklevel=2)
    total = (len(tokens) - 1) // seq_len
    if total < 1:
        raise DataError(f"{dataset.path} has {len(tokens)} {split} tokens, fewer than "
                        f"seq_len+1={seq_len + 1}; "
                        "use a shorter train.seq_len or more data")
    n = max(1, min(total, int(max_tokens) // seq_len))
    if split == "val":
        starts = np.linspace(0, total - 1, n).round().astype(np.int64)
    else:
        starts = np.arange(total - n, total, dtype=np.int64)
    return np.stack([tokens.read(int(w) * seq_len, seq_len + 1).astype(np.int64) for w in starts])
