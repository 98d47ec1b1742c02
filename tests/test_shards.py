"""Sharded multichannel storage: atomic, resumable, bounded-memory reads."""

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from mc_simclr.datasets import MultichannelAudioShardsDataset
from mc_simclr.shards import (
    FeatureShard,
    FeatureShards,
    ShardData,
    ShardedAudio,
    complete_shards,
    save_shards,
    write_feature_shard,
    write_shard,
)


def _shard(n: int, seed: int, skip: int | None = None) -> ShardData:
    rng = np.random.default_rng(seed)
    data = ShardData()
    for i in range(n):
        row = {"clip_id": f"c{seed}_{i}", "label": "bell"}
        if i == skip:
            data.add(row, None, "skipped: unreadable")
        else:
            data.add(row, rng.standard_normal((4, 100 + 37 * i)).astype(np.float32))
    return data


def test_round_trip_with_skipped_clip(tmp_path):
    original = _shard(5, seed=1, skip=2)
    write_shard(tmp_path, "s0", original)
    store = ShardedAudio(tmp_path)
    assert store.shard_ids == ["s0"]
    assert len(store) == 5
    assert list(store.metadata["status"]).count("ok") == 4
    for row, audio in zip(original.rows, original.audio, strict=True):
        if audio is None:
            with pytest.raises(KeyError, match="not rendered"):
                store.load_clip(row["clip_id"])
        else:
            np.testing.assert_array_equal(store.load_clip(row["clip_id"]), audio)
    iterated = {row["clip_id"]: audio for row, audio in store.iter_clips()}
    assert len(iterated) == 4
    np.testing.assert_array_equal(iterated["c1_4"], original.audio[4])


def test_lazy_save_skips_complete_shards_and_removes_stale(tmp_path):
    calls = []

    def thunk(name, seed):
        def make():
            calls.append(name)
            return _shard(2, seed)

        return make

    counts = save_shards(tmp_path, {"a": thunk("a", 1), "b": thunk("b", 2)})
    assert counts == {"written": 2, "skipped": 0, "removed": 0}
    assert calls == ["a", "b"]
    counts = save_shards(tmp_path, {"a": thunk("a", 1), "c": thunk("c", 3)})
    assert counts == {"written": 1, "skipped": 1, "removed": 1}
    assert calls == ["a", "b", "c"]
    assert complete_shards(tmp_path) == ["a", "c"]


def test_interrupted_write_leaves_no_complete_shard(tmp_path):
    def failing():
        raise KeyboardInterrupt

    save_shards(tmp_path, {"a": lambda: _shard(2, 1)})
    with pytest.raises(KeyboardInterrupt):
        save_shards(tmp_path, {"a": lambda: _shard(2, 1), "b": failing})
    assert complete_shards(tmp_path) == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    # a temporary folder left by a killed process is not a shard and is cleaned on the next save
    (tmp_path / ".b.tmp-deadbeef").mkdir()
    assert complete_shards(tmp_path) == ["a"]
    save_shards(tmp_path, {"a": lambda: _shard(2, 1), "b": lambda: _shard(2, 2)})
    assert complete_shards(tmp_path) == ["a", "b"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_kedro_dataset(tmp_path):
    dataset = MultichannelAudioShardsDataset(path=str(tmp_path / "audio"))
    assert not dataset.exists()
    dataset.save({"x": _shard(3, 4)})
    assert dataset.exists()
    store = dataset.load()
    assert isinstance(store, ShardedAudio)
    assert len(store) == 3
    with pytest.raises(DatasetError, match="expected a mapping of shard id to shard data, got list"):
        dataset.save([1, 2])


def test_inconsistent_channel_counts_rejected(tmp_path):
    data = ShardData()
    data.add({"clip_id": "a"}, np.zeros((4, 10), np.float32))
    data.add({"clip_id": "b"}, np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="channel counts"):
        write_shard(tmp_path, "bad", data)
    assert complete_shards(tmp_path) == []


@pytest.mark.parametrize("dtype, tolerance", [("float32", 0.0), ("int16", 0.5 / 32767), ("float16", 1e-3)])
def test_compact_storage_dtypes_read_back_as_float32(tmp_path, dtype, tolerance):
    rng = np.random.default_rng(0)
    clips = [(0.5 * rng.standard_normal((4, n))).clip(-1, 1).astype(np.float32) for n in (300, 50)]
    data = ShardData(storage_dtype=dtype)
    for i, audio in enumerate(clips):
        data.add({"clip_id": f"c{i}"}, audio)
    write_shard(tmp_path, "s", data)
    store = ShardedAudio(tmp_path)
    assert store.shard_audio("s").dtype == np.dtype(dtype)  # half the bytes for int16 and float16
    for i, audio in enumerate(clips):
        loaded = store.load_clip(f"c{i}")
        assert loaded.dtype == np.float32
        assert np.abs(loaded - audio).max() <= tolerance
        np.testing.assert_array_equal(store.load_clip(f"c{i}", 10, 20), loaded[:, 10:30])


def _feature_store(tmp_path, sizes=(5, 3, 4)):
    """Feature shards of ``sizes`` items (C, T, F) = (3, 4, 2), each item's values unique."""
    rng = np.random.default_rng(0)
    arrays = []
    for number, size in enumerate(sizes):
        features = rng.normal(size=(size, 3, 4, 2)).astype(np.float32)
        items = pd.DataFrame(
            {"clip_id": [f"s{number}c{i}" for i in range(size)], "split": ["a", "b"] * (size // 2) + ["a"] * (size % 2)}
        )
        write_feature_shard(tmp_path, f"shard-{number:05d}", FeatureShard(features, items))
        arrays.append(features)
    return FeatureShards(tmp_path), np.concatenate(arrays)


def test_feature_rows_read_exactly_the_indexed_items(tmp_path):
    store, expected = _feature_store(tmp_path)
    rows, items = store.rows()
    assert rows.shape == (12, 3, 4, 2)
    assert list(items["clip_id"]) == list(store.items["clip_id"])
    np.testing.assert_array_equal(rows[:], expected)
    np.testing.assert_array_equal(store.load()[0], expected)
    # unsorted, repeated, across shards, negative; slices with steps; masks; tensors; one item
    for index in ([11, 0, 5, 5, 6, 4, 3], [-1, 2], np.array([7, 8, 9, 10]), torch.tensor([9, 1])):
        np.testing.assert_array_equal(rows[index], expected[np.asarray(index)])
    np.testing.assert_array_equal(rows[1:11:3], expected[1:11:3])
    mask = np.arange(12) % 3 == 0
    np.testing.assert_array_equal(rows[mask], expected[mask])
    np.testing.assert_array_equal(rows[7], expected[7])
    assert rows[[]].shape == (0, 3, 4, 2)
    # a selection is lazy and indexes within itself
    chosen = rows.select(np.array([10, 2, 6]))
    np.testing.assert_array_equal(chosen[[2, 0]], expected[[6, 10]])
    # a split's rows and items stay aligned
    b_rows, b_items = store.rows(store.items["split"] == "b")
    positions = np.flatnonzero((store.items["split"] == "b").to_numpy())
    np.testing.assert_array_equal(b_rows[:], expected[positions])
    assert list(b_items["clip_id"]) == list(store.items["clip_id"].iloc[positions])
    with pytest.raises(IndexError, match="out of range"):
        rows[[12]]
    with pytest.raises(IndexError, match="boolean index"):
        rows[np.ones(3, bool)]


def test_feature_rows_name_a_truncated_shard(tmp_path):
    store, _ = _feature_store(tmp_path)
    rows, _ = store.rows()
    path = tmp_path / "shard-00001" / "features.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="shard-00001.*ends before row 3"):
        rows[[5, 6, 7]]
