"""The data_simulation pipeline under conf/test: files, shards, metadata and MLflow records."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import run_pipeline
from mc_simclr.audio.shards import ShardedAudio, complete_shards


def test_data_simulation_run_and_resume(kedro_project):
    run_pipeline(kedro_project, "data_simulation")

    clips = pd.read_parquet(kedro_project / "data/02_intermediate/clip_table.parquet")
    assert clips["split"].value_counts().to_dict() == {"unlabeled": 6, "labeled": 4, "test": 4, "validation": 2}
    assert (kedro_project / "data/01_raw/synthetic/clips.csv").is_file()

    store = ShardedAudio(kedro_project / "data/03_primary/spatial_audio")
    assert len(store) == len(clips) and (store.metadata["status"] == "ok").all()
    meta = pd.read_parquet(kedro_project / "data/03_primary/spatial_metadata.parquet")
    assert set(meta["clip_id"]) == set(clips["clip_id"])
    assert {"azimuth_deg", "elevation_deg", "distance_m", "rt60", "label", "split", "shard_id"} <= set(meta.columns)
    for row, audio in store.iter_clips():
        assert audio.shape[0] == 4 and np.isfinite(audio).all()
        assert abs(audio.shape[1] - round(row["duration"] * 16000)) <= 1
        assert np.isclose(np.abs(audio).max(), 0.9, atol=1e-3)

    # every kedro run is an MLflow run with its parameters and the simulation metrics
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    runs = mlflow.search_runs(experiment_names=["mc-simclr-test"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.simulation.backend"] == "torchrir"
    assert run["metrics.simulation.clips_rendered"] == len(clips)
    assert run["metrics.simulation.clips_skipped_rendering"] == 0

    # a second run renders nothing again: complete shards are kept as they are
    shard_dir = kedro_project / "data/03_primary/spatial_audio"
    before = {s: (shard_dir / s / "audio.npy").stat().st_mtime_ns for s in complete_shards(shard_dir)}
    run_pipeline(kedro_project, "data_simulation")
    after = {s: (shard_dir / s / "audio.npy").stat().st_mtime_ns for s in complete_shards(shard_dir)}
    assert before == after


def test_bad_backend_name_is_reported(kedro_project):
    # a user override in conf/local of one key keeps its siblings (soft merge) and is checked
    (kedro_project / "conf/local/parameters.yml").write_text("simulation:\n  backend: nope\n")
    with pytest.raises(ValueError, match="simulation.backend"):
        run_pipeline(kedro_project, "data_simulation", env=None)
