"""The evaluation pipeline under conf/test writes the results table, breakdowns and plots."""

import mlflow
import pandas as pd

from conftest import run_pipeline, tracking_uri


def test_evaluation_run(simulated_project):
    for pipeline in ("feature_extraction", "pretraining", "evaluation"):
        run_pipeline(simulated_project, pipeline)

    reporting = simulated_project / "data/08_reporting"
    table = pd.read_csv(reporting / "results.csv")
    assert list(table["encoder"]) == ["random init", "MC-SimCLR", "SRP-PHAT (no learning)"]
    learned = table.iloc[:2]
    assert learned["linear_probe_accuracy"].between(0, 100).all()
    assert learned["fine_tune_azimuth_error"].between(0, 180).all()
    assert table["fine_tune_azimuth_error"].notna().all() and pd.isna(table.loc[2, "linear_probe_accuracy"])
    assert "Linear-probing accuracy %" in (reporting / "results.md").read_text()
    details = pd.read_csv(reporting / "results_breakdown.csv")
    assert set(details["group"]) == {"rt60", "class"}
    subsets = pd.read_csv(reporting / "subset_finetuning.csv")
    assert sorted(set(subsets["amount"])) == [0.5, 1.0] and set(subsets["encoder"]) == {"MC-SimCLR", "random init"}
    assert (reporting / "subset_finetuning.png").stat().st_size > 1000
    assert (reporting / "test_embeddings.png").stat().st_size > 1000

    mlflow.set_tracking_uri(tracking_uri(simulated_project))
    pretraining = mlflow.search_runs(experiment_names=["mc-simclr-test"], filter_string="tags.mlflow.runName = 'pretraining'")
    runs = mlflow.search_runs(experiment_names=["mc-simclr-test"], filter_string="tags.mlflow.runName = 'evaluation'")
    run = runs.iloc[0]
    assert run["tags.pretraining_run_id"] == pretraining.iloc[0]["run_id"]
    assert 0 <= run["metrics.evaluation.mc_simclr.linear_probe_accuracy"] <= 100
    assert "metrics.evaluation.srp_phat.fine_tune_azimuth_error" in run
    artifacts = [a.path for a in mlflow.tracking.MlflowClient().list_artifacts(run["run_id"], "reporting")]
    assert "reporting/results.csv" in artifacts and "reporting/subset_finetuning.png" in artifacts
