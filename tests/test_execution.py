"""Shards computed here, in a local pool or on a Dask cluster: the same bytes, retries, clear failures."""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips
from mc_simclr.audio.corpora import read_folder_corpus
from mc_simclr.audio.io import read_mono
from mc_simclr.execution import ExecutionConfig, ShardPlan, ShardTaskError, dask_client, task_threads
from mc_simclr.shards import ShardedAudio, complete_shards, save_shards

RATE = 16000
SIMULATION = {"seed": 0, "backend": "torchrir", "peak": 0.9, "shard_size": 2, "scene": {"rt60": [0.1, 0.3]}}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(5):
        sf.write(str(root / f"c{i}.wav"), 0.1 * rng.standard_normal(RATE // 2), RATE)
    pd.DataFrame({"filename": [f"c{i}.wav" for i in range(5)], "label": ["a"] * 5}).to_csv(
        root / "clips.csv", index=False
    )
    table, _ = read_folder_corpus(root)
    return plan_render_shards(table, scenes_for_clips(table, SIMULATION), SIMULATION, RATE)


def _bytes(root):
    return {sid: (root / sid / "audio.npy").read_bytes() for sid in complete_shards(root)}


@pytest.mark.slow
def test_every_backend_writes_the_same_shards(plan, tmp_path):
    save_shards(tmp_path / "local", plan)
    reference = _bytes(tmp_path / "local")
    assert len(reference) == 3
    for backend in ("processes", "dask"):
        root = tmp_path / backend
        counts = save_shards(root, ShardPlan(plan, {"backend": backend, "workers": 2}))
        assert counts["written"] == 3
        assert _bytes(root) == reference, backend  # bit for bit
        pd.testing.assert_frame_equal(ShardedAudio(root).metadata, ShardedAudio(tmp_path / "local").metadata)
        # a re-run submits nothing: every shard is complete
        assert save_shards(root, ShardPlan(plan, {"backend": backend, "workers": 2}))["skipped"] == 3


@pytest.mark.slow
def test_a_failing_shard_is_retried_once_then_stops_the_run_naming_it(tmp_path):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("a passing fault")
        return read_shard_data()

    def read_shard_data():
        from mc_simclr.shards import ShardData

        data = ShardData()
        data.add({"clip_id": "x"}, np.zeros((4, 10), np.float32))
        return data

    save_shards(tmp_path / "a", {"s0": flaky})
    assert len(attempts) == 2
    assert complete_shards(tmp_path / "a") == ["s0"]
    broken = partial(read_mono, tmp_path / "missing.wav", RATE)  # picklable, fails every time
    for backend in ("local", "processes", "dask"):
        with pytest.raises(ShardTaskError, match=r"shard s1 failed twice.*missing\.wav: file not found"):
            save_shards(tmp_path / backend, ShardPlan({"s1": broken}, {"backend": backend, "workers": 1}))
        assert complete_shards(tmp_path / backend) == []


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_fast_with_its_address():
    config = ExecutionConfig.from_params({"backend": "dask", "dask": {"address": "tcp://127.0.0.1:9", "timeout_s": 2}})
    started = time.perf_counter()
    with pytest.raises(
        ConnectionError, match=r"execution.dask.address: no Dask scheduler answered at tcp://127.0.0.1:9"
    ):
        dask_client(config)
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize(
    "params, message",
    [
        ({"backend": "spark"}, "execution.backend"),
        ({"workers": 0}, "execution.workers"),
        ({"dask": {"port": 1}}, "execution.dask.port"),
    ],
)
def test_execution_settings_are_checked(params, message):
    with pytest.raises(ValueError, match=message):
        ExecutionConfig.from_params(params)


def test_workers_on_this_machine_share_its_threads(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert task_threads(ExecutionConfig.from_params({"backend": "local", "workers": 4})) == 8
    assert task_threads(ExecutionConfig.from_params({"backend": "processes", "workers": 4})) == 2
    assert task_threads(ExecutionConfig.from_params({"backend": "processes", "workers": 16})) == 1
    assert task_threads(ExecutionConfig.from_params({"backend": "dask", "workers": 2})) == 4  # a LocalCluster
    remote = {"backend": "dask", "workers": 2, "dask": {"address": "tcp://10.0.0.5:8786"}}
    assert task_threads(ExecutionConfig.from_params(remote)) == 8
