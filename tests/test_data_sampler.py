"""The reader and sampler: memory-mapped windows, exact resume, disjoint ranks, mixtures, validation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from data_fixtures import prepare_small

from data_pipelines import DataError, PreparedDataset, WindowSampler, prepare, validation_windows

SEQ = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("ds") / "small"
    prepare_small(out, shard_tokens=20_000)  # several shards, so windows straddle shard boundaries
    return PreparedDataset.open(out)


@pytest.fixture(scope="module")
def other(tmp_path_factory, dataset) -> PreparedDataset:
    """A second dataset with the same tokenizer but different text (prose, not code)."""
    src = tmp_path_factory.mktemp("prose")
    words = ["river", "mountain", "quiet", "golden", "evening", "lantern", "harbour", "meadow"]
    rng = np.random.default_rng(1)
    for i in range(40):
        (src / f"story{i}.txt").write_text(" ".join(rng.choice(words, 300)) + ".\n")
    out = tmp_path_factory.mktemp("ds") / "prose"
    prepare([str(src)], out, tokenizer=dataset.path / "tokenizer.json", val_fraction=0.0, progress=False)
    return PreparedDataset.open(out)


def all_windows(ds: PreparedDataset, split: str = "train") -> Counter:
    toks = np.asarray(ds.tokens(split)).astype(np.int64)
    n = (len(toks) - 1) // SEQ
    return Counter(toks[i * SEQ:i * SEQ + SEQ + 1].tobytes() for i in range(n))


def take(sampler: WindowSampler, n: int) -> list[np.ndarray]:
    return [sampler.next_batch() for _ in range(n)]


def test_tokens_concatenate_the_shards_in_order(dataset):
    toks = dataset.tokens("train")
    assert len(dataset.manifest["splits"]["train"]["shards"]) > 2
    assert len(toks) == dataset.split_tokens("train")
    whole = np.concatenate([np.fromfile(dataset.path / s["file"], dtype="<u2")
                            for s in dataset.manifest["splits"]["train"]["shards"]])
    boundary = dataset.manifest["splits"]["train"]["shards"][0]["tokens"]
    assert np.array_equal(toks[boundary - 5:boundary + 5], whole[boundary - 5:boundary + 5])
    assert np.array_equal(np.asarray(toks), whole)
    assert toks[-1] == dataset.eos_id == whole[-1]


def test_batches_are_windows_of_the_token_stream(dataset):
    batch = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=8, seed=0).next_batch()
    assert batch.shape == (8, SEQ + 1) and batch.dtype == np.int64
    windows = all_windows(dataset)
    assert all(row.tobytes() in windows for row in batch)


def test_one_epoch_visits_every_window_exactly_once(dataset):
    windows = all_windows(dataset)
    n = sum(windows.values())
    sampler = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=1, seed=3)
    seen = Counter(row.tobytes() for b in take(sampler, n) for row in b)
    assert seen == windows
    assert sampler.epochs == [1]


def test_epochs_use_different_permutations_and_seeds_differ(dataset):
    n = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=1, seed=0).windows_per_epoch[0]
    sampler = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=1, seed=0)
    epoch0 = np.concatenate(take(sampler, n))
    epoch1 = np.concatenate(take(sampler, n))
    assert not np.array_equal(epoch0, epoch1)
    other_seed = np.concatenate(take(WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=1, seed=1), n))
    same_seed = np.concatenate(take(WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=1, seed=0), n))
    assert np.array_equal(same_seed, epoch0) and not np.array_equal(other_seed, epoch0)


@pytest.mark.parametrize("mixture", [False, True])
def test_resume_continues_with_identical_batches_across_an_epoch_boundary(dataset, other, mixture):
    sources = [(dataset, 1.0), (other, 0.5)] if mixture else [(dataset, 1.0)]
    kw = dict(seq_len=SEQ, batch_size=16, seed=7)
    reference = WindowSampler(sources, **kw)
    batches = []
    while max(reference.epochs) == 0:
        batches.append(reference.next_batch())
    boundary = len(batches)  # the batch that finished some dataset's first epoch
    batches += take(reference, 4)
    k, m = boundary - 2, 6  # the M batches after the save cross that epoch's end
    expected = batches[k:k + m]

    first = WindowSampler(sources, **kw)
    take(first, k)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = WindowSampler(sources, **kw)
    resumed.load_state_dict(state)
    for got, want in zip(take(resumed, m), expected, strict=True):
        assert np.array_equal(got, want)


def test_resume_with_another_seq_len_is_refused(dataset):
    state = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=2, seed=0).state_dict()
    with pytest.raises(DataError, match="seq_len"):
        WindowSampler([(dataset, 1.0)], seq_len=SEQ * 2, batch_size=2, seed=0).load_state_dict(state)


def test_ranks_get_disjoint_windows_that_cover_the_epoch(dataset):
    windows = all_windows(dataset)
    world = 3
    samplers = [WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=4, seed=5, rank=r, world_size=world)
                for r in range(world)]
    steps = sum(windows.values()) // (4 * world)
    per_rank = [Counter(row.tobytes() for b in take(s, steps) for row in b) for s in samplers]
    union = sum(per_rank, Counter())
    assert sum(union.values()) == steps * 4 * world
    assert all(union[w] <= windows[w] for w in union)  # no window served twice in the epoch
    # a single rank alone gives other batches than rank 0 of a 3-rank job
    single = WindowSampler([(dataset, 1.0)], seq_len=SEQ, batch_size=4, seed=5)
    assert not np.array_equal(single.next_batch(), WindowSampler(
        [(dataset, 1.0)], seq_len=SEQ, batch_size=4, seed=5, rank=1, world_size=world).next_batch())


def test_mixture_proportions_match_the_weights(dataset, other):
    code = all_windows(dataset)
    sampler = WindowSampler([(dataset, 3.0), (other, 1.0)], seq_len=SEQ, batch_size=8, seed=11)
    rows = [row.tobytes() for b in take(sampler, 200) for row in b]
    share = sum(r in code for r in rows) / len(rows)
    sigma = (0.75 * 0.25 / len(rows)) ** 0.5
    assert abs(share - 0.75) < 4 * sigma
    again = WindowSampler([(dataset, 3.0), (other, 1.0)], seq_len=SEQ, batch_size=8, seed=11)
    assert [row.tobytes() for b in take(again, 200) for row in b] == rows


def test_bad_mixture_weights_are_refused(dataset):
    with pytest.raises(DataError, match="weights"):
        WindowSampler([(dataset, 0.0)], seq_len=SEQ, batch_size=2, seed=0)


def test_validation_windows_are_a_fixed_spread_of_the_val_split(dataset):
    vw = validation_windows(dataset, SEQ, max_tokens=10 * SEQ)
    assert vw.shape == (10, SEQ + 1) and vw.dtype == np.int64
    val = all_windows(dataset, "val")
    assert all(row.tobytes() in val for row in vw)
    assert np.array_equal(vw, validation_windows(dataset, SEQ, max_tokens=10 * SEQ))
    val_tokens = np.asarray(dataset.tokens("val"))
    last_start = ((len(val_tokens) - 1) // SEQ - 1) * SEQ
    assert np.array_equal(vw[-1], val_tokens[last_start:last_start + SEQ + 1])  # spread to the end


def test_validation_falls_back_to_the_end_of_train_without_val(other):
    with pytest.warns(UserWarning, match="end of the train split"):
        vw = validation_windows(other, SEQ, max_tokens=4 * SEQ)
    train = np.asarray(other.tokens("train")).astype(np.int64)
    n = (len(train) - 1) // SEQ
    assert np.array_equal(vw[-1], train[(n - 1) * SEQ:n * SEQ + 1])


def test_a_split_shorter_than_one_window_is_a_data_error(other):
    with pytest.raises(DataError, match="fewer than seq_len"):
        WindowSampler([(other, 1.0)], seq_len=10**7, batch_size=1, seed=0)
