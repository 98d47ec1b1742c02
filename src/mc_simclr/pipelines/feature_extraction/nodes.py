"""Thin nodes of the ``feature_extraction`` pipeline; the work is done in ``mc_simclr.features``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from mc_simclr import features as features_lib
from mc_simclr.execution import ShardPlan
from mc_simclr.shards import FeatureShard, FeatureShards, ShardedAudio


def class_names(spatial_metadata: pd.DataFrame) -> list[str]:
    """Sorted class names of the rendered labeled clips: the class index of every later step."""
    return features_lib.class_names(spatial_metadata)


def extract_features(
    spatial_audio: ShardedAudio,
    classes: list[str],
    features: dict[str, Any],
    feature_extraction: dict[str, Any],
    audio: dict[str, Any],
    execution: dict[str, Any],
) -> dict[str, Callable[[], FeatureShard]]:
    """Plan one feature shard per audio shard of the evaluation splits, computed when the dataset saves
    them, by the ``execution`` backend."""
    plan = features_lib.plan_feature_shards(
        spatial_audio, classes, features, feature_extraction, int(audio["sample_rate"])
    )
    return ShardPlan(plan, execution)


def summarize_features(feature_patches: FeatureShards) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Index of all feature patches and counts per split for MLflow."""
    items = feature_patches.items
    metrics: dict[str, dict[str, float]] = {"patches": {"value": float(len(items)), "step": 0}}
    for split, group in items.groupby("split"):
        metrics[f"{split}_clips"] = {"value": float(group["clip_id"].nunique()), "step": 0}
        metrics[f"{split}_patches"] = {"value": float(len(group)), "step": 0}
    return items, metrics
