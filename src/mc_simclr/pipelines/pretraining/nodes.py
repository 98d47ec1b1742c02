"""Thin nodes of the ``pretraining`` pipeline; the loop lives in ``mc_simclr.training``."""

from __future__ import annotations

import logging
from typing import Any

import mlflow

from mc_simclr.features import FeatureExtractor
from mc_simclr.models import EncoderConfig
from mc_simclr.shards import ShardedAudio
from mc_simclr.training import PretrainConfig, package_encoder, pretrain, pretraining_clips

logger = logging.getLogger(__name__)


def pretrain_encoder(
    spatial_audio: ShardedAudio,
    features: dict[str, Any],
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    audio: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
    """Pretrain the encoder on the unlabeled split; returns the encoder file and per-epoch metrics."""
    clip_ids = pretraining_clips(spatial_audio, pretraining.get("split", "unlabeled"))
    extractor = FeatureExtractor.from_params(features, sample_rate=int(audio["sample_rate"]))
    config = PretrainConfig.from_params({k: v for k, v in pretraining.items() if k != "split"})
    result = pretrain(spatial_audio, clip_ids, extractor, EncoderConfig.from_params(encoder), augmentations, config)
    logger.info(
        "Pretraining done: %d epochs on %d clips, final loss %.4f",
        len(result.history),
        len(clip_ids),
        result.history[-1]["loss"],
    )
    run = mlflow.active_run()
    state = package_encoder(
        result.encoder,
        extractor,
        features,
        {
            "pretraining_fingerprint": result.fingerprint,
            "pretraining_run_id": run.info.run_id if run else "",
            "history": result.history,
        },
    )
    metrics = {
        name: [{"value": float(h[name]), "step": int(h["epoch"])} for h in result.history]
        for name in ("loss", "lr", "clips_per_s")
    }
    return state, metrics
