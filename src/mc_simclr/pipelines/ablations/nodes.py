"""Thin nodes of the sweeps (``ablations`` and ``seeds``); variants, seeds, caching and tables live in
``mc_simclr.sweeps``.

Each variant's two nodes share its nested MLflow run under the sweep's run, and one nested run per
seed under it (see ``tracking``): the pretraining node opens them (parameters, loss curves, encoder
files) and the evaluation node reopens them by id (metrics, result file).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import torch

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import table_geometry
from mc_simclr.evaluation import SupervisedConfig
from mc_simclr.features import FeatureExtractor
from mc_simclr.model_files import package_encoder
from mc_simclr.networks import EncoderConfig, build_encoder
from mc_simclr.pipelines.ablations.tracking import (
    log_params,
    log_pretraining,
    log_seed_evaluation,
    log_variant_evaluation,
    seed_run,
    variant_run,
)
from mc_simclr.pretraining import pretrain_from_params
from mc_simclr.reporting.run import KEY_METRICS
from mc_simclr.reporting.sweep import build_sweep_report
from mc_simclr.shards import FeatureShards, ShardedAudio
from mc_simclr.sweeps import (
    Variant,
    aggregate_seeds,
    check_sweep,
    evaluate_seed,
    evaluation_params,
    parse_seeds,
    parse_variants,
    seed_blocks,
    variant_blocks,
)
from mc_simclr.utils import fingerprint, flatten

logger = logging.getLogger(__name__)


def _variant(block: dict[str, Any], name: str, sweep: str) -> Variant:
    check_sweep(block, sweep)
    variants = {v.name: v for v in parse_variants(block, sweep)}
    if name not in variants:
        raise ValueError(f"{sweep}.variants has no variant {name!r}; it has {sorted(variants)}")
    return variants[name]


def _random_init_file(
    features: dict[str, Any],
    encoder: dict[str, Any],
    sample_rate: int,
    seed: int,
    extra: dict[str, Any],
    geometry: ArrayGeometry,
) -> dict[str, Any]:
    """The encoder file of a ``pretrain: false`` variant: a seeded random-init encoder, no pretraining."""
    extractor = FeatureExtractor.from_params(features, sample_rate=sample_rate, n_mics=geometry.n_mics)
    config = EncoderConfig.from_params(encoder).for_array(geometry.n_mics)
    torch.manual_seed(seed)
    model = build_encoder(config, extractor.n_mels).eval()
    identity = {"random_init": seed, "encoder": config.to_dict(), "features": extractor.extra_repr()}
    if geometry != ArrayGeometry.circular():
        identity["array"] = geometry.to_dict()
    return package_encoder(
        model,
        extractor,
        features,
        {"pretraining_fingerprint": fingerprint(identity), "history": [], "pretraining_s": 0.0, **extra},
        geometry,
    )


def pretrain_variant(
    spatial_audio: ShardedAudio,
    features: dict[str, Any],
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    audio: dict[str, Any],
    evaluation: dict[str, Any],
    sweep_params: dict[str, Any],
    *,
    name: str,
    sweep: str = "ablations",
) -> dict[str, Any]:
    """Pretrain one variant's encoder for every seed of the sweep (each resumes from its own
    checkpoint), or build it untrained (a random-init variant: the seed initialises it)."""
    variant = _variant(sweep_params, name, sweep)
    pre, enc, aug = variant_blocks(variant, pretraining, encoder, augmentations, sweep_params)
    sample_rate = int(audio["sample_rate"])
    files: dict[str, dict[str, Any]] = {}
    with variant_run(name) as run:
        settings = {**variant.settings(), **flatten("encoder", enc), "seeds": parse_seeds(sweep_params, sweep)}
        if variant.pretrain:
            settings.update({**flatten("pretraining", pre), **flatten("augmentations", aug)})
        if run is not None:
            log_params(settings)
        for seed in parse_seeds(sweep_params, sweep):
            with seed_run(name, seed) as seeded:
                extra = {
                    "sweep_variant": name,
                    "seed_run_id": seeded.info.run_id if seeded else "",
                    "seed": seed,
                }
                if variant.pretrain:
                    logger.info("%s %s, seed %d: pretraining with %s", sweep, name, seed, variant.settings())
                    blocks = seed_blocks(pre, seed, sweep_params["work_dir"], name)
                    state = pretrain_from_params(spatial_audio, features, blocks, enc, aug, sample_rate, extra=extra)
                else:
                    geometry = table_geometry(spatial_audio.metadata)
                    state = _random_init_file(features, enc, sample_rate, seed, extra, geometry)
                if seeded is not None:
                    log_pretraining(state)
            files[str(seed)] = state
    return {"variant": name, "variant_run_id": run.info.run_id if run is not None else "", "seeds": files}


def evaluate_variant(
    encoder: dict[str, Any],
    feature_patches: FeatureShards,
    class_names: list[str],
    evaluation: dict[str, Any],
    sweep_params: dict[str, Any],
    *,
    name: str,
    sweep: str = "ablations",
) -> dict[str, Any]:
    """Linear probing, k-NN and fine-tuning of each seed's encoder (cached by fingerprint), then the
    variant's result over its seeds.

    A variant with ``encoder_from`` gets the encoders of that variant and its own MLflow runs (the
    variant's run with its settings and evaluation overrides, one nested run per seed).
    """
    variant = _variant(sweep_params, name, sweep)
    own = variant.encoder_from is None
    per_seed = []
    variant_run_id = encoder.get("variant_run_id", "") if own else ""
    if not own:
        with variant_run(name) as run:
            if run is not None:
                log_params({**variant.settings(), **flatten("evaluation", variant.evaluation)})
                variant_run_id = run.info.run_id
    for seed, state in encoder["seeds"].items():
        result, cached = evaluate_seed(
            variant, state, int(seed), feature_patches, class_names, evaluation, sweep_params
        )
        if cached:
            logger.info("%s %s, seed %s: evaluation found in the cache, not repeated", sweep, name, seed)
        # a variant's own seed runs are reopened; one with encoder_from opens new ones under its run
        parent = contextlib.nullcontext() if own else variant_run(name, run_id=variant_run_id or None)
        seed_run_id = (state.get("seed_run_id") or state.get("ablation_run_id")) if own else None  # older files
        with parent, seed_run(name, int(seed), run_id=seed_run_id or None) as run:
            if run is not None:
                log_seed_evaluation(result, cached)
        per_seed.append(result)
    aggregate = {**aggregate_seeds(variant, per_seed), "run_id": variant_run_id}
    with variant_run(name, run_id=variant_run_id or None) as run:
        if run is not None:
            log_variant_evaluation(aggregate)
    return aggregate


def _knn_k(evaluation: dict[str, Any], sweep_params: dict[str, Any]) -> int:
    return SupervisedConfig.from_params(evaluation_params(evaluation, sweep_params)["supervised"]).knn_k


def build_sweep_tables(
    ablations: dict[str, Any], evaluation: dict[str, Any], *results: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame, str, pd.DataFrame, str, plt.Figure, dict[str, Any]]:
    """The ablation sweep: all variants, the summary, Table 1 and Table 2 (CSV and Markdown), the
    ChannelDrop plot and the sweep metrics."""
    title = str(ablations.get("title", "MC-SimCLR ablations"))
    report = build_sweep_report(list(results), title, _knn_k(evaluation, ablations))
    logger.info("Ablation sweep:\n%s\n%s", report.table1_markdown, report.table2_markdown)
    if mlflow.active_run() is not None:
        mlflow.log_metric("ablations.variant_wall_s_total", report.variant_wall_s)
    figure = report.channel_drop_figure if report.channel_drop_figure is not None else plt.figure()
    return (
        report.variants,
        report.summary,
        report.summary_markdown,
        report.table1,
        report.table1_markdown,
        report.table2,
        report.table2_markdown,
        figure,
        report.metrics,
    )


def build_seed_summary(
    seeds: dict[str, Any], evaluation: dict[str, Any], *results: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str, dict[str, Any]]:
    """The seed study: all variants, the summary over seeds (CSV and Markdown) and its metrics."""
    title = str(seeds.get("title", "MC-SimCLR over pretraining seeds"))
    report = build_sweep_report(list(results), title, _knn_k(evaluation, seeds))
    logger.info("Seed study:\n%s", report.summary_markdown)
    if mlflow.active_run() is not None:
        mlflow.log_metric("seeds.variant_wall_s_total", report.variant_wall_s)
        means = {r["variant"]: r["metrics"] for r in results}
        if {"mc_simclr", "random"} <= set(means):  # the key numbers (means over seeds) as runs-table columns
            mlflow.log_metrics(
                {short: means[row][column] for short, (row, column) in KEY_METRICS.items() if column in means[row]}
            )
    return report.variants, report.summary, report.summary_markdown, report.metrics
