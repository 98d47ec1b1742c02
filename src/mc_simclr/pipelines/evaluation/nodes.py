"""Thin nodes of the ``evaluation`` pipeline; protocols live in ``mc_simclr.evaluation``, the report in
``mc_simclr.reporting.run``."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from mc_simclr.baselines import srp_phat_clips
from mc_simclr.evaluation import (
    EvaluationInputs,
    ProtocolResults,
    azimuth_ceiling,
    evaluate_encoder,
    prepare_evaluation,
)
from mc_simclr.model_files import package_seld_model
from mc_simclr.reporting.run import build_report, key_metrics
from mc_simclr.serving import log_seld_model
from mc_simclr.shards import FeatureShards, ShardedAudio

logger = logging.getLogger(__name__)


def load_evaluation_inputs(
    encoder: dict[str, Any], feature_patches: FeatureShards, class_names: list[str], evaluation: dict[str, Any]
) -> EvaluationInputs:
    """Both encoders (pretrained and random init), the feature splits and the settings, loaded once."""
    return prepare_evaluation(encoder, feature_patches, class_names, evaluation)


def evaluate_pretrained(evaluation_inputs: EvaluationInputs) -> ProtocolResults:
    """All protocols on the pretrained encoder."""
    return evaluate_encoder(evaluation_inputs, pretrained=True)


def evaluate_random_init(evaluation_inputs: EvaluationInputs) -> ProtocolResults:
    """All protocols on a random-init encoder of the same shape (its fine-tuning = supervised from scratch)."""
    return evaluate_encoder(evaluation_inputs, pretrained=False)


def supervised_azimuth_ceiling(evaluation_inputs: EvaluationInputs) -> dict[str, pd.DataFrame]:
    """The azimuth ceiling: a random-init encoder of the same shape trained on azimuth alone."""
    return azimuth_ceiling(evaluation_inputs)


def export_seld_model(
    pretrained_results: ProtocolResults, evaluation_inputs: EvaluationInputs, class_names: list[str]
) -> dict[str, Any]:
    """The fine-tuned MC-SimCLR encoder with its class and direction heads and the array geometry, for
    the inference pipeline, the Python API and the served model."""
    tuned = pretrained_results.model
    return package_seld_model(
        tuned.encoder,
        tuned.heads,
        evaluation_inputs.extractor,
        evaluation_inputs.features,
        class_names,
        {"pretraining_run_id": evaluation_inputs.pretraining_run_id, "protocol": "fine_tune"},
        evaluation_inputs.geometry,
    )


def log_mlflow_model(seld_model: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """Log the model as an MLflow ``pyfunc`` model in this run and register it (``evaluation.registered_model``)."""
    if mlflow.active_run() is None:
        return
    name = evaluation.get("registered_model")
    info = log_seld_model(seld_model, registered_name=str(name) if name else None)
    logger.info("MLflow model %s%s", info.model_uri, f", registered as {name}" if name else "")


def srp_phat_baseline(
    spatial_audio: ShardedAudio, feature_index: pd.DataFrame, evaluation: dict[str, Any], audio: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """SRP-PHAT azimuth of every test (and confirmation) clip, clip-level like the learned rows."""
    return srp_phat_clips(spatial_audio, feature_index, evaluation["srp_phat"], int(audio["sample_rate"]))


def build_evaluation_report(
    pretrained_results: ProtocolResults,
    random_init_results: ProtocolResults,
    srp_phat_results: dict[str, pd.DataFrame],
    supervised_azimuth_results: dict[str, pd.DataFrame],
    evaluation_inputs: EvaluationInputs,
    evaluation: dict[str, Any],
) -> tuple[
    pd.DataFrame, str, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, plt.Figure, plt.Figure, dict[str, Any]
]:
    """Table 1 (test, with intervals), its Markdown, Table 1 on the confirmation split, the linear
    probe under both BatchNorm protocols, the per-RT60 / per-class breakdown, Fig. 2 data and plot,
    the embedding projection and the MLflow metrics."""
    report = build_report(
        pretrained_results,
        random_init_results,
        srp_phat_results,
        supervised_azimuth_results,
        evaluation,
        knn_k=evaluation_inputs.config.knn_k,
    )
    run_id = evaluation_inputs.pretraining_run_id
    if mlflow.active_run() is not None:
        mlflow.log_metrics(key_metrics(report.metrics))  # short names: columns of the runs table
        if run_id:
            mlflow.set_tag("pretraining_run_id", run_id)
    logger.info("Evaluation results:\n%s", report.markdown)
    return (
        report.table,
        report.markdown,
        report.confirmation,
        report.batchnorm,
        report.breakdown,
        report.subset_curves,
        report.subset_figure,
        report.embedding_figure,
        report.metrics,
    )
