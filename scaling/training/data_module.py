"""``TokenDataModule``: prepared token shards as a LightningDataModule with an exactly resumable stream.

Training batches come from :class:`data_pipelines.WindowSampler` (random windows from a weighted
mixture, one independent stream per rank), validation from a fixed subset
(:func:`data_pipelines.validation_windows`) split across ranks. Batches are int64 tensors of shape
(micro_batch_size, seq_len + 1): inputs are ``[:, :-1]``, targets ``[:, 1:]``.

Exact resume: Lightning fetches batches ahead of the step that uses them, so the sampler's live
state runs ahead of training. The stream therefore records the sampler state *before* each batch,
and :meth:`TokenDataModule.state_dict` saves the one for the first batch not yet consumed
(``global_step × accumulate_grad_batches``), gathered from every rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from scaling.errors import DataError
from scaling.training.callbacks_common import gather_from_ranks


def open_dataset(path: str | Path, verify: str = "fast", tokenizer_sha256: str | None = None,
                 model_vocab_size: int | None = None):
    """Open a prepared dataset; a missing, unprepared or incompatible one raises a one-line
    :class:`DataError`."""
    from data_pipelines import PreparedDataset, check_compatible

    dataset = PreparedDataset.open(path, verify=verify, expected_tokenizer_sha256=tokenizer_sha256)
    if model_vocab_size is not None:  # the tokenizer hash was checked by open()
        check_compatible(dataset, model_vocab_size, None)
    return dataset


def _check_same_tokenizer(datasets: list) -> None:
    """Refuse a mixture whose datasets were tokenized differently: their ids would mean different text."""
    first = datasets[0]
    for other in datasets[1:]:
        if other.tokenizer_sha256 != first.tokenizer_sha256:
            raise DataError(
                f"data.mixture mixes tokenizers: {first.path} has tokenizer "
                f"{first.tokenizer_sha256[:12]} but "
                f"{other.path} has {other.tokenizer_sha256[:12]}; "
                "prepare both with the same one (--tokenizer FILE)"
            )


class _TrainStream(IterableDataset):
    """Endless training batches; remembers the sampler state before each one (see module docs)."""

    def __init__(self, owner: TokenDataModule):
        self.owner = owner

    def __iter__(self) -> Iterator[torch.Tensor]:
        owner = self.owner
        while True:
            owner._snapshots[owner._produced] = owner.sampler.state_dict()
            owner._snapshots.pop(owner._produced - 64, None)  # the ones far behind are never needed
            owner._produced += 1
            yield torch.from_numpy(np.ascontiguousarray(owner.sampler.next_batch(), dtype=np.int64))


class _Batches(IterableDataset):
    """Fixed batches of a tensor, in order (an iterable, so Lightning adds no distributed sampler)."""

    def __init__(self, windows: torch.Tensor, batch_size: int):
        self.windows, self.batch_size = windows, batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.windows), self.batch_size):
            yield self.windows[start:start + self.batch_size]


class TokenDataModule(pl.LightningDataModule):
    """Training and validation batches from one prepared dataset or a weighted mixture.

    ``sources`` is a prepared dataset directory or a list of ``(directory, weight)``; validation
    uses the first source. ``model_vocab_size`` (optional) refuses data whose tokenizer does not fit
    the model. Every rank gets its own stream (``rank``/``world_size`` from the Trainer).
    """

    def __init__(self, sources: str | Path | Sequence[tuple[str | Path, float]], seq_len: int,
                 micro_batch_size: int, seed: int = 0, val_tokens: float = 65536, verify: str = "fast",
                 tokenizer_sha256: str | None = None, model_vocab_size: int | None = None,
                 eval_sets: Sequence[tuple[str, str | Path, float | None]] = ()):
        super().__init__()
        if isinstance(sources, (str, Path)):
            sources = [(sources, 1.0)]
        self.seq_len, self.micro_batch_size, self.seed = seq_len, micro_batch_size, seed
        self.val_tokens = int(val_tokens)
        self.datasets = [(open_dataset(p, verify, tokenizer_sha256, model_vocab_size), float(w))
                         for p, w in sources]
        # named evaluation sets (val/<name>/loss): a fixed subset of each one's validation split
        self.eval_sets = [(name, open_dataset(p, verify, tokenizer_sha256, model_vocab_size),
                           int(tokens or val_tokens)) for name, p, tokens in eval_sets]
        _check_same_tokenizer([d for d, _ in self.datasets] + [d for _, d, _ in self.eval_sets])
        self.sampler = None
        self._snapshots: dict[int, Any] = {}
        self._produced = 0  # batches drawn from the sampler on this rank since the run began
        self._pending_state: dict | None = None

    @classmethod
    def from_config(cls, cfg) -> TokenDataModule:
        """The data module a run config describes (``data`` and ``train`` groups, ``run.seed``)."""
        sources = [(s.path, s.weight) for s in cfg.data.mixture] or [(cfg.data.path, 1.0)]
        return cls(sources, seq_len=cfg.train.seq_len, micro_batch_size=cfg.train.micro_batch_size,
                   seed=cfg.run.seed, val_tokens=cfg.data.val_tokens, verify=cfg.data.verify,
                   tokenizer_sha256=cfg.data.tokenizer_sha256, model_vocab_size=cfg.model.vocab_size,
                   eval_sets=eval_sets_of(cfg.data))

    @property
    def eval_names(self) -> list[str]:
        """Names of the named evaluation sets, in the order of their validation dataloaders (after the
        default)."""
        return [name for name, _, _ in self.eval_sets]

    @property
    def eval_tokens_per_byte(self) -> dict[str, float | None]:
        """Tokens per byte of each named evaluation set's validation split."""
        return {name: _tokens_per_byte(d) for name, d, _ in self.eval_sets}

    @property
    def val_tokens_per_byte(self) -> float | None:
        """Tokens per byte of the validation split (turns nats/token into bits/byte)."""
        return _tokens_per_byte(self.datasets[0][0])

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def make_sampler(self, rank: int, world_size: int):
        """The training sampler of one rank (override to feed other batches, e.g. in a benchmark)."""
        from data_pipelines import WindowSampler

        return WindowSampler(
            self.datasets,
            split="train",
            seq_len=self.seq_len,
            batch_size=self.micro_batch_size,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
        )

    def make_val_windows(self) -> np.ndarray:
        """The fixed validation subset, all ranks together: (n, seq_len + 1) int64."""
        from data_pipelines import validation_windows

        return validation_windows(self.datasets[0][0], self.seq_len, self.val_tokens)

    def setup(self, stage: str | None = None) -> None:
        if self.sampler is None:
            self.sampler = self.make_sampler(*self._rank_world())
            if self._pending_state is not None:
                self.load_state_dict(self._pending_state)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        pin = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(_TrainStream(self), batch_size=None, num_workers=0, pin_memory=pin)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The default validation subset; with named evaluation sets, a list: the default first, then each
        set."""
        from data_pipelines import validation_windows

        rank, world = self._rank_world()
        subsets = [self.make_val_windows()] + [validation_windows(d, self.seq_len, tokens)
                                               for _, d, tokens in self.eval_sets]
        loaders = [DataLoader(_Batches(torch.from_numpy(np.ascontiguousarray(w, dtype=np.int64))[rank::world],
                                       self.micro_batch_size), batch_size=None) for w in subsets]
        return loaders if self.eval_sets else loaders[0]

    # --- exact resume --------------------------------------------------------------------------
    def _consumed(self) -> int:
        if self.trainer is None:
            return self._produced
        return self.trainer.global_step * self.trainer.accumulate_grad_batches

    def state_dict(self) -> dict[str, Any]:
        """The sampler state of every rank at the first batch not yet consumed by training."""
        if self.sampler is None:
            return {}
        consumed = self._consumed()
        state = self._snapshots.get(consumed) if consumed < self._produced else self.sampler.state_dict()
        if state is None:
            raise RuntimeError(f"no sampler state recorded for batch {consumed} (drawn {self._produced})")
        return {"consumed": consumed, "sampler_states": gather_from_ranks(state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.sampler is None:
            self._pending_state = state
            return
        self._pending_state = None
        rank, world = self._rank_world()
        states = state["sampler_states"]
        if len(states) != world:
            raise DataError(f"checkpoint was written by {len(states)} data streams but this run has "
                            f"{world} processes; resume with the same number of devices")
        self.sampler.load_state_dict(states[rank])
        self._produced = state["consumed"]
        self._snapshots.clear()


def _tokens_per_byte(dataset) -> float | None:
    """Tokens per byte of a dataset's validation split (turns nats/token into bits/byte)."""
    n_bytes = dataset.split_bytes("val")
    return dataset.split_tokens("val") / n_bytes if n_bytes else None


def eval_sets_of(data_cfg) -> list[tuple[str, str, float | None]]:
    """(name, path, tokens) of each named evaluation set of a ``data`` config: ``data.eval``, or by default
    each source of a mixture of two or more (named by its folder), so every domain gets its own loss."""
    if data_cfg.eval:
        return [(e.name, e.path, e.tokens) for e in data_cfg.eval]
    if len(data_cfg.mixture) > 1:
        return [(Path(s.path).name, s.path, None) for s in data_cfg.mixture]
    return []
