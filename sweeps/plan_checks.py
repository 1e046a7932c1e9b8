"""Checks of a planned sweep against its data, so runs that could not start fail at plan time.

Each distinct prepared dataset is opened once (the trainer's own fast check: manifest, tokenizer
hash, shard sizes); every run is then checked against it as the trainer would at its start: the
data must exist and be complete, and its tokenizer must fit the run's ``model.vocab_size``.
"""

from __future__ import annotations

from pathlib import Path

from scaling.errors import DataError, ScalingError


def data_paths(tree: dict) -> list[str]:
    """The prepared datasets a run reads: its mixture's paths, else ``data.path``."""
    mixture = tree["data"].get("mixture") or []
    return [str(source["path"]) for source in mixture] or [str(tree["data"]["path"])]


def check_run_data(runs: list) -> None:
    """Refuse, in one line naming the run, a planned run whose data is missing or does not fit its model."""
    from data_pipelines import PreparedDataset, check_compatible

    opened: dict[tuple[str, str], object] = {}
    for run in runs:
        tree = run.tree
        for path in data_paths(tree):
            key = (str(Path(path).resolve()), tree["data"].get("verify", "fast"))
            try:
                if key not in opened:
                    opened[key] = PreparedDataset.open(path, verify=key[1])
                vocab = tree["model"].get("vocab_size")
                check_compatible(opened[key], vocab if isinstance(vocab, int) else None,
                                 tree["data"].get("tokenizer_sha256"))
            except DataError as e:
                raise ScalingError(
                    f"run {run.run_id} ({run.name}): {e} (checked at plan time; --skip-data-check "
                    "skips it where the data exists only on the training machines)"
                ) from None
