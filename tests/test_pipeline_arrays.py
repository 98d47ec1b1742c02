"""Every pipeline follows the `array` block: the tetrahedral MIC format end to end on conf/test (4
channels, 3-D labels: azimuth, elevation and angular errors, SRP-PHAT on a 2-D grid, a model whose
predictions carry elevation), and the inference pipeline refusing recordings of another array."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.shards import ShardedAudio

from conftest import run_pipeline

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)

TETRA = {"array": {"kind": "tetrahedral"}}


def test_the_tetrahedral_array_end_to_end(kedro_project):
    for pipeline in ("data_simulation", "feature_extraction", "pretraining", "evaluation"):
        run_pipeline(kedro_project, pipeline, runtime_params=TETRA)

    audio = ShardedAudio(kedro_project / "data/03_primary/spatial_audio")
    meta = audio.metadata
    assert {ArrayGeometry.from_json(text).kind for text in meta["array"]} == {"tetrahedral"}
    assert audio.load_clip(meta["clip_id"].iloc[0]).shape[0] == 4
    assert meta["elevation_deg"].abs().max() > 5.0  # sources above and below the array

    encoder = torch.load(kedro_project / "data/06_models/encoder.pt", weights_only=True)
    assert encoder["array"]["kind"] == "tetrahedral"
    assert encoder["encoder_config"]["in_channels"] == 10

    table = pd.read_csv(kedro_project / "data/08_reporting/results.csv")
    for protocol in ("linear_probe", "knn", "fine_tune"):
        for metric in ("azimuth_error", "elevation_error", "angular_error"):
            values = table.loc[:1, f"{protocol}_{metric}"]
            assert values.notna().all() and values.between(0, 180).all(), (protocol, metric)
    srp = table.set_index("encoder").loc["SRP-PHAT (no learning)"]
    assert 0 <= srp["fine_tune_angular_error"] <= 180
    assert 0 <= srp["fine_tune_elevation_error"] <= 90
    assert "angular error °" in (kedro_project / "data/08_reporting/results.md").read_text()

    model = torch.load(kedro_project / "data/06_models/seld_model.pt", weights_only=True)
    assert model["geometry"]["labels"]["kind"] == "direction"
    assert model["heads"]["azimuth.weight"].shape[0] == 3

    folder = kedro_project / "data/01_raw/recordings"
    folder.mkdir(parents=True)
    clip = audio.load_clip(meta.query("split == 'test'")["clip_id"].iloc[0])
    sf.write(str(folder / "a.wav"), clip.T, 16000)
    run_pipeline(kedro_project, "inference", runtime_params=TETRA)
    out = pd.read_parquet(kedro_project / "data/07_model_output/inference.parquet")
    assert {"azimuth_deg", "elevation_deg"} <= set(out.columns)
    assert out["elevation_deg"].between(-90, 90).all()

    # the same 4 channels, but the project says they come from the square: refused, naming both arrays
    with pytest.raises(ValueError, match=r"array: the recordings' array \(circular .* not the one the model"):
        run_pipeline(kedro_project, "inference")


def test_pretraining_refuses_encoder_channels_that_do_not_fit_the_array(kedro_project):
    hexagon = {"array": {"circular": {"n_mics": 6}}, "encoder": {"in_channels": 10}}
    with pytest.raises(ValueError, match=r"encoder.in_channels is 10, but the array of 6 microphones"):
        run_pipeline(kedro_project, "data_simulation", runtime_params=hexagon)
    assert not (kedro_project / "data/03_primary/spatial_audio").exists()  # checked before anything ran


def test_scene_tables_record_the_array(kedro_project):
    hexagon = {"array": {"circular": {"n_mics": 6}}}
    run_pipeline(kedro_project, "data_simulation", runtime_params=hexagon)
    scenes = pd.read_parquet(kedro_project / "data/02_intermediate/scenes.parquet")
    stored = json.loads(scenes["array"].iloc[0])
    assert stored["kind"] == "circular"
    assert len(stored["positions"]) == 6
    assert set(scenes["n_mics"]) == {6}
    audio = ShardedAudio(kedro_project / "data/03_primary/spatial_audio")
    assert audio.load_clip(audio.metadata["clip_id"].iloc[0]).shape[0] == 6
    np.testing.assert_allclose(np.linalg.norm(np.asarray(stored["positions"]), axis=1), 0.05)


def test_the_square_as_custom_positions_gives_the_same_numbers(tmp_path, monkeypatch):
    """The paper's square given as `custom` positions: the same scenes, audio and results at the same seed."""
    from conftest import make_project_copy

    positions = [[0.05, 0, 0], [0, 0.05, 0], [-0.05, 0, 0], [0, -0.05, 0]]
    custom = {"array": {"kind": "custom", "custom": {"positions": positions}}}
    outputs = {}
    for name, params in (("circular", {}), ("custom", custom)):
        project = make_project_copy(tmp_path / name)
        monkeypatch.chdir(project)
        for pipeline in ("data_simulation", "feature_extraction", "pretraining", "evaluation"):
            run_pipeline(project, pipeline, runtime_params=params)
        audio = ShardedAudio(project / "data/03_primary/spatial_audio")
        outputs[name] = (
            pd.read_csv(project / "data/08_reporting/results.csv"),
            np.concatenate([audio.load_clip(c).ravel() for c in sorted(audio.metadata["clip_id"])]),
        )
    assert np.array_equal(outputs["circular"][1], outputs["custom"][1])
    pd.testing.assert_frame_equal(outputs["circular"][0], outputs["custom"][0], check_exact=True)
