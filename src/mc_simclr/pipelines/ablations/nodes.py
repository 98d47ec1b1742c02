"""Thin nodes of the ``ablations`` pipeline; variants, caching and tables live in ``mc_simclr.ablations``.

Each variant's two nodes share one nested MLflow run under the sweep's run (see ``tracking``): the
pretraining node opens it (parameters, loss curve, encoder file) and the evaluation node reopens it
by id (metrics, result file).
"""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import torch

from mc_simclr.ablations import (
    Variant,
    build_sweep_report,
    evaluate_variant_encoder,
    evaluation_params,
    parse_variants,
    variant_blocks,
)
from mc_simclr.evaluation import SupervisedConfig
from mc_simclr.features import FeatureExtractor
from mc_simclr.models import EncoderConfig, build_encoder
from mc_simclr.pipelines.ablations.tracking import log_evaluation, log_params, log_pretraining, variant_run
from mc_simclr.shards import FeatureShards, ShardedAudio
from mc_simclr.training import package_encoder, pretrain_from_params
from mc_simclr.utils import fingerprint, flatten

logger = logging.getLogger(__name__)


def _variant(ablations: dict[str, Any], name: str) -> Variant:
    variants = {v.name: v for v in parse_variants(ablations)}
    if name not in variants:
        raise ValueError(f"ablations.variants has no variant {name!r}; it has {sorted(variants)}")
    return variants[name]


def _random_init_file(
    features: dict[str, Any], encoder: dict[str, Any], sample_rate: int, seed: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """The encoder file of the ``random`` variant: a seeded random-init encoder, no pretraining."""
    extractor = FeatureExtractor.from_params(features, sample_rate=sample_rate)
    config = EncoderConfig.from_params(encoder)
    torch.manual_seed(seed)
    model = build_encoder(config, extractor.n_mels).eval()
    key = fingerprint({"random_init": seed, "encoder": config.to_dict(), "features": extractor.extra_repr()})
    return package_encoder(
        model, extractor, features, {"pretraining_fingerprint": key, "history": [], "pretraining_s": 0.0, **extra}
    )


def pretrain_variant(
    spatial_audio: ShardedAudio,
    features: dict[str, Any],
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    audio: dict[str, Any],
    evaluation: dict[str, Any],
    ablations: dict[str, Any],
    *,
    name: str,
) -> dict[str, Any]:
    """Pretrain one variant's encoder (resumes from its own checkpoint), or build it untrained."""
    variant = _variant(ablations, name)
    pre, enc, aug = variant_blocks(variant, pretraining, encoder, augmentations, ablations)
    sample_rate = int(audio["sample_rate"])
    with variant_run(name) as run:
        extra = {"ablation_variant": name, "ablation_run_id": run.info.run_id if run is not None else ""}
        if run is not None:
            settings = {**variant.settings(), **flatten("encoder", enc)}
            if variant.pretrain:
                settings.update({**flatten("pretraining", pre), **flatten("augmentations", aug)})
            log_params(settings)
        if variant.pretrain:
            logger.info("Ablation %s: pretraining with %s", name, variant.settings())
            state = pretrain_from_params(spatial_audio, features, pre, enc, aug, sample_rate, extra=extra)
        else:
            state = _random_init_file(features, enc, sample_rate, int(evaluation["random_init_seed"]), extra)
        if run is not None:
            log_pretraining(state)
    return state


def evaluate_variant(
    encoder: dict[str, Any],
    feature_patches: FeatureShards,
    class_names: list[str],
    evaluation: dict[str, Any],
    ablations: dict[str, Any],
    *,
    name: str,
) -> dict[str, Any]:
    """Linear probing, k-NN and fine-tuning of one variant's encoder; cached by fingerprint."""
    variant = _variant(ablations, name)
    result, cached = evaluate_variant_encoder(variant, encoder, feature_patches, class_names, evaluation, ablations)
    if cached:
        logger.info("Ablation %s: evaluation found in the cache (same encoder and settings), not repeated", name)
    result = {**result, "run_id": encoder.get("ablation_run_id", "")}
    with variant_run(name, run_id=encoder.get("ablation_run_id") or None) as run:
        if run is not None:
            log_evaluation(result, cached)
    return result


def build_sweep_tables(
    ablations: dict[str, Any], evaluation: dict[str, Any], *results: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame, str, plt.Figure, dict[str, Any]]:
    """All variants, Table 1 and Table 2 (CSV and Markdown), the ChannelDrop plot and the sweep metrics."""
    knn_k = SupervisedConfig.from_params(evaluation_params(evaluation, ablations)["supervised"]).knn_k
    report = build_sweep_report(list(results), str(ablations.get("title", "MC-SimCLR ablations")), knn_k)
    logger.info("Ablation sweep:\n%s\n%s", report.table1_markdown, report.table2_markdown)
    if mlflow.active_run() is not None:
        mlflow.log_metric("ablations.variant_wall_s_total", report.variant_wall_s)
    return (
        report.variants,
        report.table1,
        report.table1_markdown,
        report.table2,
        report.table2_markdown,
        report.channel_drop_figure,
        report.metrics,
    )
