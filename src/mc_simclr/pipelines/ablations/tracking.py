"""MLflow for the ablation sweep: one nested run per variant under the sweep's run (kedro-mlflow's)."""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import torch

from mc_simclr.training import history_metrics


@contextlib.contextmanager
def variant_run(name: str, run_id: str | None = None) -> Iterator[mlflow.ActiveRun | None]:
    """A nested MLflow run for one variant (reopened by ``run_id``), or nothing when no run is active.

    Only nests under an active run (the sweep's, opened by kedro-mlflow), so running the nodes
    without MLflow tracking never creates runs on its own. A failure marks the run FAILED.
    """
    if mlflow.active_run() is None:
        yield None
        return
    if run_id:
        run = mlflow.start_run(run_id=run_id, nested=True)
    else:
        run = mlflow.start_run(run_name=name, nested=True, tags={"ablation_variant": name})
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()


def log_params(params: dict[str, Any]) -> None:
    """Log flattened parameters, values cut to MLflow's length limit."""
    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def log_pretraining(state: dict[str, Any]) -> None:
    """The per-epoch pretraining metrics (as the pretraining pipeline logs them) and the encoder file."""
    for name, points in history_metrics(state.get("history", [])).items():
        for point in points:
            mlflow.log_metric(f"pretraining.{name}", point["value"], step=point["step"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.pt"
        torch.save(state, path)
        mlflow.log_artifact(str(path), "models")


def log_evaluation(result: dict[str, Any], cached: bool) -> None:
    """Test metrics, validation scores and the result file of one variant's evaluation."""
    mlflow.log_metrics({f"evaluation.{k}": float(v) for k, v in result["metrics"].items() if math.isfinite(v)})
    for protocol, values in result["validation"].items():
        mlflow.log_metrics(
            {f"evaluation.validation.{protocol}_{k}": float(v) for k, v in values.items() if math.isfinite(v)}
        )
    mlflow.set_tag("evaluation_cached", str(cached).lower())
    mlflow.log_dict(result, "reporting/results.json")
