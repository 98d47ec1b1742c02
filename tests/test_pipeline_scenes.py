"""The scenes pipeline under conf/test: the DCASE layout, its MLflow record and the tracks figure."""

import mlflow
import pandas as pd
import pytest

from mc_simclr.audio.dcase import read_class_list, read_metadata, scan_layout

from conftest import run_pipeline, tracking_uri

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)


def test_scenes_run_and_resume(kedro_project):
    run_pipeline(kedro_project, "scenes")
    root = kedro_project / "data/01_raw/scenes"
    table = pd.read_parquet(kedro_project / "data/02_intermediate/scene_recordings.parquet")
    assert list(table["recording"]) == ["fold1_room1_mix001", "fold3_room1_mix001"]
    layout, report = scan_layout(root, n_channels=4)
    assert report.n_skipped == 0 and len(layout) == 2
    classes = read_class_list(root)
    for _, row in layout.iterrows():
        rows = read_metadata(row["metadata"], len(classes), row["n_frames"])
        assert row["n_frames"] == 40 and len(rows)
    assert (kedro_project / "data/08_reporting/scene_tracks.png").stat().st_size > 10_000
    mlflow.set_tracking_uri(tracking_uri(kedro_project))
    run = mlflow.search_runs(experiment_names=["mc-simclr-test"]).iloc[0]
    assert run["metrics.scenes.recordings"] == 2 and run["metrics.scenes.written"] == 2
    # a rerun writes nothing
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")}
    run_pipeline(kedro_project, "scenes")
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")} == before


def test_seld_rows_on_the_scenes_with_the_pretrained_encoder(simulated_project):
    run_pipeline(simulated_project, "pretraining")
    run_pipeline(simulated_project, "scenes")
    run_pipeline(simulated_project, "seld")
    reporting = simulated_project / "data/08_reporting"
    results = pd.read_csv(reporting / "seld_results.csv")
    assert sorted(results["row"].unique()) == ["finetune", "frozen", "scratch", "seldnet"]
    assert len(results) == 4 * 2  # rows x fractions x one seed
    for column in ("f_score", "seld_score", "f_2023", "er_2023"):
        assert results[column].between(0, 10).all() or results[column].isna().all(), column
    summary = pd.read_csv(reporting / "seld_summary.csv")
    assert len(summary) == 8 and (summary["seeds"] == 1).all()
    assert "frozen" in (reporting / "seld_summary.md").read_text()
    per_class = pd.read_csv(reporting / "seld_per_class.csv")
    assert set(per_class["row"]) == set(results["row"])
    assert (reporting / "seld_tracks.png").stat().st_size > 10_000
    mlflow.set_tracking_uri(tracking_uri(simulated_project))
    runs = mlflow.search_runs(experiment_names=["mc-simclr-test"], order_by=["start_time DESC"])
    assert "metrics.seld.frozen.seld_score" in runs.columns
