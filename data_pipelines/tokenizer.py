"""Byte-level BPE tokenizers: training one on your documents, loading one you bring, encoding.

Byte-level BPE never meets an unknown character and decodes back to exactly the input text, which
is what "never lose a token" needs. Training is deterministic for the same documents in the same
order. The EOS token ends every document in the shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
# EOS spellings recognised in a tokenizer you bring, in order of preference.
EOS_CANDIDATES = (EOS_TOKEN, "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[SEP]")


def check_vocab_size(vocab_size: object) -> None:
    """Raise DataError unless ``vocab_size`` is an int a byte-level BPE can have (at least 258)."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise DataError(f"vocab_size={vocab_size!r} must be a whole number (e.g. 8192)")
    if vocab_size < 256 + 2:
        raise DataError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least 258 "
                        "(256 bytes + EOS + PAD)")


def train_tokenizer(documents: Iterable[str], vocab_size: int):
    """Train a byte-level BPE tokenizer with ``vocab_size`` entries (EOS and PAD included)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_vocab_size(vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(documents, trainer)
    return tok


def load_tokenizer(path: str | Path):
    """Load a ``tokenizer.json``; raises DataError when the file is missing or is not a tokenizer."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise DataError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_str(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, Exception) as e:  # tokenizers raises a plain Exception
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path} is not a HF tokenizers tokenizer.json ({first}); pass a file saved by "
                        "Tokenizer.save") from e


def eos_id(tok, eos_token: str | None = None) -> tuple[str, int]:
    """The EOS token and its id: ``eos_token`` if given, else the first of :data:`EOS_CANDIDATES` present."""
    for name in [eos_token] if eos_token else EOS_CANDIDATES:
        idx = tok.token_to_id(name)
        if idx is not None:
            return name, idx
    wanted = repr(eos_token) if eos_token else " or ".join(EOS_CANDIDATES)
    raise DataError(f"the tokenizer has no end-of-document token {wanted}; add one or name it with eos_token")


def vocab_size_of(tok) -> int:
    """Number of ids the tokenizer can produce (special tokens included)."""
    return tok.get_vocab_size(with_added_tokens=True)


def prepare_for_encoding(tok) -> None:
    """Encode special-token spellings found in raw text as ordinary text.

    A document that contains the literal string ``<|endoftext|>`` must not get a real EOS in its
    middle; only the pipeline puts EOS tokens in the stream.
    """
    tok.encode_special_tokens = True


def encodes_in_pieces(tok) -> bool:
    """True when encoding a text in pieces cut by :func:`data_pipelines.sources.safe_cut` gives the
    tokens of the whole text: a byte-level BPE like the ones :func:`train_tokenizer` makes (no
    normalizer, the GPT-2 split pattern, no prefix space)."""
    import json

    spec = json.loads(tok.to_str())
    pre = spec.get("pre_tokenizer") or {}
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True) and not pre.get("add_prefix_space", False))


def encode_documents(tok, texts: list[str], eos: int, dtype: np.dtype,
                     ends: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts into one flat array with EOS after each, plus each text's token count.

    With ``ends``, only the texts whose entry is true get an EOS (the others are pieces of a
    document that goes on in the next text). The one encoding routine of the package: the
    in-process path and the worker processes both use it.
    """
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    eos_after = np.ones(len(texts), dtype=np.int64) if ends is None else np.asarray(ends, dtype=np.int64)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings)) + eos_after
    flat = np.empty(int(lengths.sum()), dtype=dtype)
    start = 0
    for e, n, has_eos in zip(encodings, lengths, eos_after, strict=True):
        flat[start:start + len(e.ids)] = e.ids
        if has_eos:
            flat[start + n - 1] = eos
        start += n
    return flat, lengths
