"""Thin nodes of the ``feature_extraction`` pipeline; the work is done in ``mc_simclr.features``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from mc_simclr.devices import resolve_device
from mc_simclr.features import FeatureExtractor, featurize_clips
from mc_simclr.shards import OK, FeatureShard, FeatureShards, ShardedAudio

logger = logging.getLogger(__name__)

EVALUATION_SPLITS = ("labeled", "validation", "test")


def class_names(spatial_metadata: pd.DataFrame) -> list[str]:
    """Sorted class names of the labeled split: the class index of every later step."""
    labels = spatial_metadata.loc[spatial_metadata["split"] == "labeled", "label"]
    names = sorted({str(v) for v in labels if str(v)})
    if not names:
        raise ValueError("spatial_metadata has no labeled clip: evaluation needs a labeled split")
    return names


def _featurize_shard(
    spatial_audio: ShardedAudio, clip_ids: list[str], extractor: FeatureExtractor, options: dict[str, Any]
) -> FeatureShard:
    return featurize_clips(
        ((row.to_dict(), audio) for row, audio in spatial_audio.iter_clips(clip_ids)), extractor=extractor, **options
    )


def extract_features(
    spatial_audio: ShardedAudio,
    classes: list[str],
    features: dict[str, Any],
    feature_extraction: dict[str, Any],
    audio: dict[str, Any],
) -> dict[str, Callable[[], FeatureShard]]:
    """Plan one feature shard per audio shard of the evaluation splits (computed lazily on save)."""
    splits = list(feature_extraction.get("splits", EVALUATION_SPLITS))
    unknown = sorted(set(splits) - {"unlabeled", *EVALUATION_SPLITS})
    if unknown:
        raise ValueError(f"feature_extraction.splits has unknown split(s) {unknown}")
    sample_rate = int(audio["sample_rate"])
    extractor = FeatureExtractor.from_params(features, sample_rate=sample_rate)
    options = {
        "patch_samples": int(round(float(feature_extraction["patch_seconds"]) * sample_rate)),
        "max_patches": int(feature_extraction["max_patches_per_clip"]),
        "class_index": {name: i for i, name in enumerate(classes)},
        "batch_size": int(feature_extraction["batch_size"]),
        "device": resolve_device(feature_extraction.get("device", "auto")),
    }
    salt = json.dumps(
        {"features": features, "sr": sample_rate, **{k: str(v) for k, v in options.items() if k != "device"}},
        sort_keys=True,
    )
    digest = hashlib.sha1(salt.encode("utf-8")).hexdigest()[:8]
    meta = spatial_audio.metadata
    rendered = meta[(meta["status"] == OK) & meta["split"].isin(splits)]
    plan = {}
    for shard_id, rows in rendered.groupby("shard_id", sort=True):
        plan[f"{shard_id}-{digest}"] = partial(
            _featurize_shard, spatial_audio, list(rows["clip_id"]), extractor, options
        )
    if not plan:
        raise ValueError(f"no rendered clip in the splits {splits}")
    logger.info("Feature extraction: %d clips of %s in %d shards", len(rendered), splits, len(plan))
    return plan


def summarize_features(feature_patches: FeatureShards) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Index of all feature patches and counts per split for MLflow."""
    items = feature_patches.items
    metrics: dict[str, dict[str, float]] = {"patches": {"value": float(len(items)), "step": 0}}
    for split, group in items.groupby("split"):
        metrics[f"{split}_clips"] = {"value": float(group["clip_id"].nunique()), "step": 0}
        metrics[f"{split}_patches"] = {"value": float(len(group)), "step": 0}
    return items, metrics
