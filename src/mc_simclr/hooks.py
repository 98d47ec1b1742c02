"""Project hooks: parameters checked before a run writes anything; MLflow runs named for what they are."""

from __future__ import annotations

import json
import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from mc_simclr.preflight import check_parameters
from mc_simclr.reporting.run import KEY_METRICS

logger = logging.getLogger(__name__)

#: MLflow 3's experiment kind for model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
#: A saved view of the runs table with the key metrics as columns (MLflow's shared view state:
#: ``?viewStateShareKey=key-metrics`` on the experiment's runs page selects it).
KEY_VIEW = "key-metrics"


def key_metrics_view() -> str:
    """The JSON of the runs-table view that shows the key metrics beside the run's source and models."""
    columns = ["attributes.`Source`", "attributes.`Models`", *(f"metrics.`{name}`" for name in KEY_METRICS)]
    return json.dumps({"selectedColumns": columns})


def runs_page(experiment_id: str, host: str = "http://127.0.0.1:5000") -> str:
    """The runs page of an experiment in the model-training view, with the key-metrics columns."""
    return f"{host}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={KEY_VIEW}"


class ParameterChecks:
    """Check every parameter block (:func:`mc_simclr.preflight.check_parameters`) before a run writes anything."""

    @hook_impl
    def after_context_created(self, context) -> None:
        check_parameters(context.params)


def run_name(run_params: dict[str, Any], params: dict[str, Any]) -> str:
    """``<pipelines> · <env> · <encoder> · seed <n>``: what a run is, for the MLflow runs table."""
    pipelines = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    pipelines = [str(p) for p in ([pipelines] if isinstance(pipelines, str) else pipelines)]
    parts = ["+".join("default" if p == "__default__" else p for p in pipelines), str(run_params.get("env") or "local")]
    encoder = (params.get("encoder") or {}).get("architecture")
    if encoder:
        parts.append(str(encoder))
    if "ablations" in pipelines or "seeds" in pipelines:
        sweep = params.get("seeds" if "seeds" in pipelines else "ablations") or {}
        parts.append("seeds " + ",".join(str(s) for s in sweep.get("seeds", [0])))
    elif "seed" in (params.get("pretraining") or {}):
        parts.append(f"seed {params['pretraining']['seed']}")
    return " · ".join(parts)


class MlflowRunNames:
    """Name the run kedro-mlflow opened (instead of ``__default__``), mark its experiment as model
    training and give it a runs-table view with the key metrics (:func:`runs_page`). kedro-mlflow's
    own ``before_pipeline_run`` runs first (plugin hooks are called after project hooks are
    registered, so before them)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        params = {}
        for block in ("encoder", "pretraining", "ablations", "seeds"):
            try:
                params[block] = catalog.load(f"params:{block}")
            except Exception:  # noqa: BLE001 - a block this project run does not have
                continue
        mlflow.set_tag("mlflow.runName", run_name(run_params, params))
        client = mlflow.tracking.MlflowClient()
        experiment = client.get_experiment(run.info.experiment_id)
        tags = {**EXPERIMENT_KIND, f"mlflow.sharedViewState.{KEY_VIEW}": key_metrics_view()}
        for key, value in tags.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(run.info.experiment_id, key, value)
        logger.info("MLflow runs with their key metrics: %s", runs_page(run.info.experiment_id))
