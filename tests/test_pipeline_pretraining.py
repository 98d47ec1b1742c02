"""The pretraining pipeline under conf/test: encoder file, MLflow metrics, params and artifact."""

import mlflow
import pytest
import torch

from mc_simclr.model_files import unpack_encoder

from conftest import run_pipeline, tracking_uri

pytestmark = pytest.mark.slow  # runs Kedro pipelines (pytest -m "not slow" skips it)


def test_pretraining_run(simulated_project):
    run_pipeline(simulated_project, "pretraining")

    state = torch.load(simulated_project / "data/06_models/encoder.pt", weights_only=True)
    encoder, extractor = unpack_encoder(state)
    assert len(state["history"]) == 2
    assert len(state["pretraining_run_id"]) == 32
    with torch.no_grad():
        h = encoder(extractor(torch.randn(2, 4, 16000)))
    assert h.shape == (2, 16)
    assert (simulated_project / "data/06_models/pretraining_checkpoint.pt").is_file()

    mlflow.set_tracking_uri(tracking_uri(simulated_project))
    runs = mlflow.search_runs(
        experiment_names=["mc-simclr-test"],
        filter_string="tags.mlflow.runName = 'pretraining · test · split_crnn · seed 0'",
    )
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.pretraining.batch_size"] == "4"
    assert run["params.augmentations.channel_drop.p"] == "0.1"
    client = mlflow.tracking.MlflowClient()
    losses = client.get_metric_history(run["run_id"], "pretraining.loss")
    assert [m.step for m in losses] == [1, 2]
    assert client.get_metric_history(run["run_id"], "pretraining.clips_per_s")[0].value > 0
    artifacts = [a.path for a in client.list_artifacts(run["run_id"], "models")]
    assert "models/encoder.pt" in artifacts

    # a second run resumes from the finished checkpoint instead of training again
    run_pipeline(simulated_project, "pretraining")
    again = torch.load(simulated_project / "data/06_models/encoder.pt", weights_only=True)
    for key, value in state["encoder"].items():
        assert torch.equal(value, again["encoder"][key])
