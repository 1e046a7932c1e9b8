"""Opening a prepared dataset: checks, memory-mapped shards, and the model-compatibility check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.format import INDEX_DTYPE, MANIFEST, STATE, sha256_file


class ShardedTokens:
    """A split's token stream: the concatenation of its memory-mapped shards, read lazily.

    Supports ``len()``, integer indexing and contiguous slices (``tokens[a:b]`` returns a NumPy
    array copied from one or two shards); ``shards`` is the list of per-shard memmaps.
    ``np.asarray(tokens)`` reads the whole split into memory.
    """

    def __init__(self, shards: list[np.ndarray]):
        self.shards = shards
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards], dtype=np.int64)])
        self.dtype = shards[0].dtype if shards else np.dtype("<u2")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("ShardedTokens supports contiguous slices only")
            return self.read(start, max(stop - start, 0))
        i = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(key)
        s = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.shards[s][i - self.offsets[s]]

    def read(self, start: int, length: int) -> np.ndarray:
        """``length`` tokens from global position ``start``, across shard boundaries if needed."""
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        parts, pos, left = [], start, length
        s = max(first, 0)
        while left > 0 and s < len(self.shards):
            lo = pos - int(self.offsets[s])
            take = min(left, len(self.shards[s]) - lo)
            parts.append(self.shards[s][lo:lo + take])
            pos, left, s = pos + take, left - take, s + 1
        if not parts:
            return np.empty(0, dtype=self.dtype)
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype=None, copy=None):
        arr = self.read(0, len(self))
        return arr if dtype is None else arr.astype(dtype)


class PreparedDataset:
    """A folder written by :func:`data_pipelines.prepare`, checked when opened.

    ``verify="fast"`` checks that every shard and index file exists with the size the manifest
    states and that ``tokenizer.json`` has the recorded hash; ``"full"`` also re-hashes every shard.
    Any problem raises :class:`DataError` with a one-line message saying what to do.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self._token_cache: dict[str, ShardedTokens] = {}

    @classmethod
    def open(cls, path: str | Path, verify: str = "fast",
             expected_tokenizer_sha256: str | None = None) -> PreparedDataset:
        """Open and check the dataset at ``path`` (see the class docstring for ``verify``)."""
        if verify not in ("fast", "full"):
            raise DataError(f"verify={verify!r} must be 'fast' or 'full'")
        path = Path(path)
        hint = f"run `scaling prepare SOURCE... --out {path}`"
        if not path.is_dir():
            raise DataError(f"no prepared dataset at {path}; {hint}")
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            if (path / STATE).is_file():
                raise DataError(f"preparing {path} did not finish; re-run the same `scaling prepare` command "
                                "(it resumes)")
            raise DataError(f"{path} is not a prepared dataset (no {MANIFEST}); {hint}")
        try:
            manifest = json.loads(manifest_path.read_text())
            manifest["splits"]["train"], manifest["tokenizer"]["sha256"]  # noqa: B018 - shape check
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{manifest_path} is damaged ({e}); prepare the dataset again") from e
        ds = cls(path, manifest)
        ds._check(verify)
        if expected_tokenizer_sha256 is not None:
            check_compatible(ds, None, expected_tokenizer_sha256)
        return ds

    def _check(self, verify: str) -> None:
        tok = self.path / self.manifest["tokenizer"]["file"]
        again = f"prepare {self.path} again"
        if not tok.is_file():
            raise DataError(f"{tok} is missing; {again}")
        if sha256_file(tok) != self.tokenizer_sha256:
            raise DataError(f"{tok} does not match the hash in the manifest (altered); {again}")
        itemsize = self.dtype.itemsize
        for shard in self._all_shards():
            for name, size, digest in ((shard["file"], shard["tokens"] * itemsize, shard["sha256"]),
                                       (shard["index"], shard["documents"] * INDEX_DTYPE.itemsize,
                                        shard["index_sha256"])):
                f = self.path / name
                if not f.is_file():
                    raise DataError(f"shard {f} is missing; {again}")
                actual = f.stat().st_size
                if actual != size:
                    raise DataError(f"shard {f} has {actual} bytes, the manifest says {size} "
                                    f"(truncated or altered); {again}")
                if verify == "full" and sha256_file(f) != digest:
                    raise DataError(f"shard {f} fails its sha256 check (altered or corrupt); {again}")

    def _all_shards(self) -> list[dict]:
        return [s for split in self.manifest["splits"].values() for s in split["shards"]]

    @property
    def vocab_size(self) -> int:
        """Number of ids the dataset's tokenizer can produce (special tokens included)."""
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def eos_id(self) -> int:
        """The id of the end-of-document token that follows every document."""
        return int(self.manifest["tokenizer"]["eos_id"])

    @property
    def tokenizer_sha256(self) -> str:
        """sha256 of ``tokenizer.json``: put it in ``data.tokenizer_sha256`` to pin a tokenizer."""
        return self.manifest["tokenizer"]["sha256"]

    @property
    def dtype(self) -> np.dtype:
        """Token dtype of the shards (little-endian uint16 or uint32)."""
        return np.dtype(self.manifest["dtype"]).newbyteorder("<")

    def _split(self, split: str) -> dict:
        try:
            return self.manifest["splits"][split]
        except KeyError:
            splits = ", ".join(self.manifest["splits"])
            raise DataError(f"{self.path} has no split {split!r} (splits: {splits})") from None

    def split_tokens(self, split: str) -> int:
        """Tokens in ``split``, one EOS per document included."""
        return int(self._split(split)["tokens"])

    def split_bytes(self, split: str) -> int:
        """UTF-8 bytes of the text of ``split``'s documents (the denominator of bits per byte)."""
        return int(self._split(split)["bytes"])

    def split_documents(self, split: str) -> int:
        """Documents in ``split``."""
        return int(self._split(split)["documents"])

    def bits_per_byte(self, loss_nats_per_token: float, split: str = "val") -> float:
        """Convert a mean loss over ``split``'s tokens (EOS included) into bits per UTF-8 byte.

        Uses the train split's tokens-per-byte when ``split`` is empty (as :func:`validation_windows`
        then validates on train).
        """
        if self.split_bytes(split) == 0:
            split = "train"
        return loss_nats_per_token * self.split_tokens(split) / self.split_bytes(split) / math.log(2)

    def tokens(self, split: str) -> ShardedTokens:
        """The split's tokens as one lazily read stream over memory-mapped shards (:class:`ShardedTokens`)."""
        if split not in self._token_cache:
            maps = [np.memmap(self.path / s["file"], dtype=self.dtype, mode="r")
                    for s in self._split(split)["shards"] if s["tokens"]]
            self._token_cache[split] = ShardedTokens(maps)
        return self._token_cache[split]

    def document_ends(self, split: str) -> np.ndarray:
        """End offset (exclusive, EOS included) of every document of ``split`` in :meth:`tokens` order."""
        ends, base = [], 0
        for s in self._split(split)["shards"]:
            ends.append(np.fromfile(self.path / s["index"], dtype=INDEX_DTYPE).astype(np.int64) + base)
            base += s["tokens"]
        return np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)

    def tokenizer(self):
        """The dataset's tokenizer (a ``tokenizers.Tokenizer``)."""
        from data_pipelines.tokenizer import load_tokenizer

        return load_tokenizer(self.path / self.manifest["tokenizer"]["file"])

    def __repr__(self) -> str:
        return (f"PreparedDataset({str(self.path)!r}, vocab_size={self.vocab_size}, "
                f"train_tokens={self.split_tokens('train')})")


def check_compatible(dataset: PreparedDataset, model_vocab_size: int | None,
                     expected_tokenizer_sha256: str | None) -> None:
    """Refuse a dataset the model cannot read: a tokenizer other than the pinned one, or more ids
    than the model's embedding has rows. Raises DataError with the setting to change."""
    if expected_tokenizer_sha256 and dataset.tokenizer_sha256 != expected_tokenizer_sha256:
        raise DataError(
            f"{dataset.path} was tokenized with tokenizer {dataset.tokenizer_sha256[:12]}, but the config "
            f"names {expected_tokenizer_sha256[:12]} (data.tokenizer_sha256); prepare it with that tokenizer "
            f"(--tokenizer FILE) or update data.tokenizer_sha256")
    if model_vocab_size is not None and dataset.vocab_size > model_vocab_size:
        raise DataError(
            f"{dataset.path} has a tokenizer of {dataset.vocab_size} tokens but "
            f"model.vocab_size={model_vocab_size}; "
            f"set model.vocab_size={dataset.vocab_size} or more")
