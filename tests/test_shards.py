"""Sharded multichannel storage: atomic, resumable, bounded-memory reads."""

import numpy as np
import pytest
from kedro.io import DatasetError

from mc_simclr.datasets import MultichannelAudioShardsDataset
from mc_simclr.shards import ShardData, ShardedAudio, complete_shards, save_shards, write_shard


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
    assert store.shard_ids == ["s0"] and len(store) == 5
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
    assert counts == {"written": 2, "skipped": 0, "removed": 0} and calls == ["a", "b"]
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
    assert isinstance(store, ShardedAudio) and len(store) == 3
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
        assert loaded.dtype == np.float32 and np.abs(loaded - audio).max() <= tolerance
        np.testing.assert_array_equal(store.load_clip(f"c{i}", 10, 20), loaded[:, 10:30])
