"""The data_simulation pipeline under conf/test: files, shards, metadata and MLflow records."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mc_simclr.shards import ShardedAudio, complete_shards

from conftest import run_pipeline, tracking_uri

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)


def test_data_simulation_run_and_resume(kedro_project):
    run_pipeline(kedro_project, "data_simulation")

    clips = pd.read_parquet(kedro_project / "data/02_intermediate/clip_table.parquet")
    assert clips["split"].value_counts().to_dict() == {
        "unlabeled": 6,
        "labeled": 4,
        "test": 4,
        "validation": 2,
        "confirmation": 3,
    }
    assert (kedro_project / "data/01_raw/synthetic/clips.csv").is_file()

    store = ShardedAudio(kedro_project / "data/03_primary/spatial_audio")
    assert len(store) == len(clips)
    assert (store.metadata["status"] == "ok").all()
    meta = pd.read_parquet(kedro_project / "data/03_primary/spatial_metadata.parquet")
    assert set(meta["clip_id"]) == set(clips["clip_id"])
    assert {"azimuth_deg", "elevation_deg", "distance_m", "rt60", "label", "split", "shard_id"} <= set(meta.columns)
    for row, audio in store.iter_clips():
        assert audio.shape[0] == 4
        assert np.isfinite(audio).all()
        assert abs(audio.shape[1] - round(row["duration"] * 16000)) <= 1
        assert np.isclose(np.abs(audio).max(), 0.9, atol=1e-3)

    # every kedro run is an MLflow run with its parameters and the simulation metrics
    mlflow.set_tracking_uri(tracking_uri(kedro_project))
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
    # an environment's override of one key keeps its siblings (soft merge) and is checked
    params = kedro_project / "conf/test/parameters_data_simulation.yml"
    config = yaml.safe_load(params.read_text())
    config["simulation"]["backend"] = "nope"
    params.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="simulation.backend"):
        run_pipeline(kedro_project, "data_simulation", env="test")


def test_parameters_merge_softly_across_environments():
    from kedro.config import OmegaConfigLoader

    from mc_simclr.settings import CONFIG_LOADER_ARGS

    from conftest import PROJECT_ROOT

    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="test", **CONFIG_LOADER_ARGS)
    params = loader["parameters"]
    assert params["simulation"]["shard_size"] == 4  # from conf/test
    assert params["simulation"]["seed"] == 1234  # sibling kept from conf/base
    assert params["simulation"]["scene"]["rt60"] == [0.1, 0.4]
    assert params["simulation"]["scene"]["min_wall_distance"] == 0.5
    assert params["array"]["circular"]["diameter"] == 0.1
    assert params["corpus"]["source"] == "synthetic"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"simulation": {"backend": "raytracer"}}, "simulation.backend must be one of"),
        ({"simulation": {"noise": {"snr_db": [20.0, 0.0]}}}, "simulation.noise.snr_db"),
        ({"augmentations": {"mixup": {"alpha_maxx": 0.1}}}, "augmentations.mixup.alpha_maxx"),
        ({"seeds": {"seeds": [1, 1]}}, "seeds.seeds"),
        ({"array": {"circular": {"n_mics": 1}}}, r"array\.circular\.n_mics must be >= 2"),
        ({"array": {"kind": "custom", "custom": {"positions": [[0, 0, 0], [0, 0, 0]]}}}, "coincide"),
    ],
)
def test_bad_parameters_stop_a_run_before_it_writes_anything(kedro_project, params, message):
    with pytest.raises(ValueError, match=message):
        run_pipeline(kedro_project, "data_simulation", runtime_params=params)
    assert not any((kedro_project / "data").rglob("*.parquet"))
    assert not (kedro_project / "data" / "01_raw").exists() or not any((kedro_project / "data" / "01_raw").iterdir())
