"""The evaluation pipeline under conf/test writes the results table, breakdowns and plots."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mc_simclr.audio.io import resample
from mc_simclr.evaluation import PROTOCOLS
from mc_simclr.shards import ShardedAudio

from conftest import run_pipeline, tracking_uri

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)


def test_evaluation_run(simulated_project):
    for pipeline in ("feature_extraction", "pretraining", "evaluation"):
        run_pipeline(simulated_project, pipeline)

    reporting = simulated_project / "data/08_reporting"
    table = pd.read_csv(reporting / "results.csv")
    assert list(table["encoder"]) == [
        "random init",
        "MC-SimCLR",
        "supervised azimuth (ceiling)",
        "SRP-PHAT (no learning)",
    ]
    learned = table.iloc[:2]
    n_test = ShardedAudio(simulated_project / "data/03_primary/spatial_audio").metadata["split"].eq("test").sum()
    accuracies = learned[[f"{p}_accuracy" for p in PROTOCOLS]].to_numpy()
    # per-clip scores: every accuracy is a whole number of the test clips
    np.testing.assert_allclose(accuracies * n_test / 100, np.round(accuracies * n_test / 100), atol=1e-9)
    assert table["fine_tune_azimuth_error"].notna().all()
    # SRP-PHAT on broadband sources in small rooms: far better than chance (90 degrees)
    assert table.loc[3, "fine_tune_azimuth_error"] < 30.0
    # the reference rows estimate azimuth only
    assert table.loc[2:, ["linear_probe_accuracy", "knn_accuracy", "fine_tune_accuracy"]].isna().all().all()
    assert "Linear-probing accuracy %" in (reporting / "results.md").read_text()
    details = pd.read_csv(reporting / "results_breakdown.csv")
    assert set(details["group"]) == {"rt60", "class"}
    # the per-class breakdown adds up to the table
    per_class = details[details["group"] == "class"]
    for (encoder, protocol), rows in per_class.groupby(["encoder", "protocol"]):
        row = table.set_index("encoder").loc[encoder]
        error = (rows["azimuth_error"] * rows["clips"]).sum() / rows["clips"].sum()
        assert error == pytest.approx(row[f"{protocol}_azimuth_error"]), (encoder, protocol)
        if rows["accuracy"].notna().all():
            accuracy = (rows["accuracy"] * rows["clips"]).sum() / rows["clips"].sum()
            assert accuracy == pytest.approx(row[f"{protocol}_accuracy"]), (encoder, protocol)
    subsets = pd.read_csv(reporting / "subset_finetuning.csv")
    assert sorted(set(subsets["amount"])) == [0.5, 1.0]
    assert set(subsets["encoder"]) == {"MC-SimCLR", "random init"}
    assert (reporting / "subset_finetuning.png").stat().st_size > 1000
    assert (reporting / "test_embeddings.png").stat().st_size > 1000

    mlflow.set_tracking_uri(tracking_uri(simulated_project))
    pretraining = mlflow.search_runs(
        experiment_names=["mc-simclr-test"],
        filter_string="tags.mlflow.runName = 'pretraining · test · split_crnn · seed 0'",
    )
    runs = mlflow.search_runs(
        experiment_names=["mc-simclr-test"],
        filter_string="tags.mlflow.runName = 'evaluation · test · split_crnn · seed 0'",
    )
    run = runs.iloc[0]
    assert run["tags.pretraining_run_id"] == pretraining.iloc[0]["run_id"]
    # every cell of the table is an MLflow metric of the run, with the same value
    keys = {"random init": "random", "MC-SimCLR": "mc_simclr"}
    keys |= {"supervised azimuth (ceiling)": "supervised_azimuth", "SRP-PHAT (no learning)": "srp_phat"}
    for record in table.to_dict("records"):
        for column, value in record.items():
            if column != "encoder" and not np.isnan(value):
                metric = run[f"metrics.evaluation.{keys[record['encoder']]}.{column}"]
                assert metric == pytest.approx(value), (record["encoder"], column)
    assert 0 <= run["metrics.evaluation.mc_simclr.knn_azimuth_error"] <= 180
    artifacts = [a.path for a in mlflow.tracking.MlflowClient().list_artifacts(run["run_id"], "reporting")]
    assert "reporting/results.csv" in artifacts
    assert "reporting/subset_finetuning.png" in artifacts

    # inference on "own recordings": two rendered test clips, one of them at 44.1 kHz
    audio = ShardedAudio(simulated_project / "data/03_primary/spatial_audio")
    folder = simulated_project / "data/01_raw/recordings"
    folder.mkdir(parents=True)
    test_ids = list(audio.metadata.query("split == 'test'")["clip_id"])[:2]
    clip = audio.load_clip(test_ids[0])
    sf.write(str(folder / "a.wav"), clip.T, 16000)
    sf.write(str(folder / "b.wav"), resample(audio.load_clip(test_ids[1]), 16000, 44100).T, 44100)
    run_pipeline(simulated_project, "inference")
    out = pd.read_parquet(simulated_project / "data/07_model_output/inference.parquet")
    assert set(out["file"].map(lambda f: f.rsplit("/", 1)[-1])) == {"a.wav", "b.wav"}
    first = out[out["file"].str.endswith("a.wav")]
    assert len(first) == int(np.ceil(clip.shape[1] / 16000))
    assert first["start_s"].tolist() == list(range(len(first)))
    assert out["azimuth_deg"].between(-180, 180).all()
    assert out["class_probability"].between(0, 1).all()
    assert len(out["embedding"].iloc[0]) == 16
    assert (simulated_project / "data/06_models/seld_model.pt").is_file()

    # a recording with the wrong channel count is refused with its name
    sf.write(str(folder / "stereo.wav"), clip[:2].T, 16000)
    with pytest.raises(ValueError, match=r"stereo.wav: 2 channel\(s\), expected 4"):
        run_pipeline(simulated_project, "inference")
