"""Thin nodes of the ``pretraining`` pipeline; the loop lives in ``mc_simclr.pretraining``."""

from __future__ import annotations

from typing import Any

import mlflow

from mc_simclr.pretraining import history_metrics, pretrain_from_params
from mc_simclr.shards import ShardedAudio


def pretrain_encoder(
    spatial_audio: ShardedAudio,
    features: dict[str, Any],
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    audio: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
    """Pretrain the encoder on the unlabeled split; returns the encoder file and per-epoch metrics."""
    run = mlflow.active_run()
    state = pretrain_from_params(
        spatial_audio,
        features,
        pretraining,
        encoder,
        augmentations,
        int(audio["sample_rate"]),
        extra={"pretraining_run_id": run.info.run_id if run else ""},
    )
    return state, history_metrics(state["history"])
