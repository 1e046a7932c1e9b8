"""The on-disk format of a prepared dataset: file names, token dtypes and hashing.

A prepared dataset is a folder::

    manifest.json          what is in the folder (written last: its presence means "complete")
    tokenizer.json         the HF `tokenizers` tokenizer the shards were encoded with
    train-00000.bin        flat little-endian token ids (uint16 when the vocab fits, else uint32)
    train-00000.idx        little-endian uint64 end offset of each document that ends in that shard
    val-00000.bin / .idx   the same for the validation split

Every document is followed by the EOS token (and holds no other). A shard holds ``shard_tokens``
tokens (the last of a split fewer), so a document may begin in one shard and end in a later one; a
shard's manifest entry counts the documents that end in it and its ``open_tokens`` after the last end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
STATE = ".prepare-state.json"  # progress of an unfinished prepare; removed when the manifest is written
SPLITS = ("train", "val")
INDEX_DTYPE = np.dtype("<u8")


def token_dtype(vocab_size: int) -> np.dtype:
    """Little-endian uint16 when every id fits in 16 bits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def dtype_name(dtype: np.dtype) -> str:
    """The manifest's spelling of a token dtype ("uint16" / "uint32")."""
    return np.dtype(dtype).newbyteorder("=").name


def shard_names(split: str, index: int) -> tuple[str, str]:
    """File names of the token file and the document index of shard ``index`` of ``split``."""
    stem = f"{split}-{index:05d}"
    return f"{stem}.bin", f"{stem}.idx"


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex sha256 of a bytes-like object."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks so memory stays small."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
