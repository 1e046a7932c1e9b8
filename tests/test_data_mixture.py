"""A data.mixture must be one tokenizer's ids, pinned or not."""

from __future__ import annotations

import pytest
from data_fixtures import prepare_small

from data_pipelines import PreparedDataset
from scaling.errors import DataError
from scaling.training.data_module import TokenDataModule


def test_a_mixture_of_datasets_with_different_tokenizers_is_refused(tmp_path):
    prepare_small(tmp_path / "a", max_bytes=60_000)
    prepare_small(tmp_path / "b", max_bytes=60_000, vocab_size=600)
    prepare_small(tmp_path / "c", max_bytes=60_000, tokenizer=tmp_path / "a" / "tokenizer.json")
    TokenDataModule([(tmp_path / "a", 1.0), (tmp_path / "c", 1.0)], seq_len=16, micro_batch_size=2)
    with pytest.raises(DataError, match="mixes tokenizers") as info:
        TokenDataModule([(tmp_path / "a", 1.0), (tmp_path / "b", 1.0)], seq_len=16, micro_batch_size=2)
    message = str(info.value)
    for name in ("a", "b"):
        assert str(tmp_path / name) in message
        assert PreparedDataset.open(tmp_path / name).tokenizer_sha256[:12] in message
    assert "\n" not in message
