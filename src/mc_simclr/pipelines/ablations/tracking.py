"""MLflow for the sweeps: one nested run per variant under the sweep's run (kedro-mlflow's), and one
nested run per seed under its variant's run."""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import torch

from mc_simclr.pretraining import history_metrics


@contextlib.contextmanager
def nested_run(name: str, run_id: str | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """A nested MLflow run (reopened by ``run_id``), or nothing when no run is active.

    Only nests under an active run (the sweep's, opened by kedro-mlflow, or a variant's), so
    running the nodes without MLflow tracking never creates runs on its own. A failure marks the
    run FAILED.
    """
    if mlflow.active_run() is None:
        yield None
        return
    if run_id:
        run = mlflow.start_run(run_id=run_id, nested=True)
    else:
        run = mlflow.start_run(run_name=name, nested=True, tags=tags or {})
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()


def variant_run(name: str, run_id: str | None = None) -> contextlib.AbstractContextManager:
    """The nested run of one variant, tagged ``sweep_variant``."""
    return nested_run(name, run_id, {"sweep_variant": name})


def seed_run(variant: str, seed: int, run_id: str | None = None) -> contextlib.AbstractContextManager:
    """The nested run of one seed of a variant (opened inside the variant's run), tagged with both."""
    return nested_run(f"{variant} seed {seed}", run_id, {"sweep_variant": variant, "seed": str(seed)})


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


def log_metric_block(prefix: str, values: dict[str, float]) -> None:
    """``{prefix}.{name}`` for every finite value."""
    mlflow.log_metrics(
        {f"{prefix}.{k}": float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
    )


def log_seed_evaluation(result: dict[str, Any], cached: bool) -> None:
    """One seed's test (and confirmation) metrics and validation scores."""
    for split, values in result["splits"].items():
        log_metric_block("evaluation" if split == "test" else f"evaluation.{split}", values["metrics"])
    for protocol, values in result["validation"].items():
        log_metric_block(f"evaluation.validation.{protocol}", values)
    mlflow.set_tag("evaluation_cached", str(cached).lower())


def log_variant_evaluation(result: dict[str, Any]) -> None:
    """A variant's metrics over its seeds (mean, std, interval) and its result file."""
    for split, values in result["splits"].items():
        log_metric_block("evaluation" if split == "test" else f"evaluation.{split}", values)
    mlflow.log_dict(result, "reporting/results.json")
