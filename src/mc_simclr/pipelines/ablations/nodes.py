"""Thin nodes of the ``ablations`` pipeline; variants, caching and tables live in ``mc_simclr.ablations``.

Each variant's two nodes share one nested MLflow run under the sweep's run: the pretraining node
opens it (parameters, loss curve, encoder file) and the evaluation node reopens it by id (metrics,
result file).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import torch

from mc_simclr.ablations import (
    cache_path,
    deep_merge,
    evaluation_fingerprint,
    flatten,
    load_cached,
    log_params,
    parse_variants,
    plot_channel_drop,
    save_cached,
    sweep_frame,
    sweep_metrics,
    table1,
    table2,
    tables_markdown,
    variant_blocks,
    variant_run,
)
from mc_simclr.evaluation import SupervisedConfig, load_splits, run_protocols
from mc_simclr.features import FeatureExtractor
from mc_simclr.models import EncoderConfig, build_encoder
from mc_simclr.reporting import results_table
from mc_simclr.shards import FeatureShards, ShardedAudio
from mc_simclr.training import PretrainConfig, fingerprint, package_encoder, pretrain, pretraining_clips, unpack_encoder

logger = logging.getLogger(__name__)


def _variant(ablations: dict[str, Any], name: str):
    variants = {v.name: v for v in parse_variants(ablations)}
    if name not in variants:
        raise ValueError(f"ablations.variants has no variant {name!r}; it has {sorted(variants)}")
    return variants[name]


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
    extractor = FeatureExtractor.from_params(features, sample_rate=int(audio["sample_rate"]))
    encoder_config = EncoderConfig.from_params(enc)
    started = time.perf_counter()
    with variant_run(name) as run:
        if run is not None:
            log_params(
                {
                    **variant.settings(),
                    **flatten("encoder", enc),
                    **(flatten("pretraining", pre) if variant.pretrain else {}),
                    **(flatten("augmentations", aug) if variant.pretrain else {}),
                }
            )
        if variant.pretrain:
            clip_ids = pretraining_clips(spatial_audio, pretraining.get("split", "unlabeled"))
            logger.info("Ablation %s: pretraining with %s", name, variant.settings())
            result = pretrain(spatial_audio, clip_ids, extractor, encoder_config, aug, PretrainConfig.from_params(pre))
            model, history, encoder_fingerprint = result.encoder, result.history, result.fingerprint
        else:
            seed = int(evaluation["random_init_seed"])
            torch.manual_seed(seed)
            model = build_encoder(encoder_config, extractor.n_mels).eval()
            history = []
            encoder_fingerprint = fingerprint(
                {"random_init": seed, "encoder": encoder_config.to_dict(), "features": extractor.extra_repr()}
            )
        state = package_encoder(
            model,
            extractor,
            features,
            {
                "pretraining_fingerprint": encoder_fingerprint,
                "history": history,
                "ablation_variant": name,
                "ablation_run_id": run.info.run_id if run is not None else "",
                # training time of all epochs, also when they ran in an earlier, interrupted session
                "pretraining_s": sum(float(h.get("seconds", 0.0)) for h in history) or time.perf_counter() - started,
            },
        )
        if run is not None:
            for record in history:
                mlflow.log_metrics(
                    {f"pretraining.{k}": float(record[k]) for k in ("loss", "lr", "clips_per_s")},
                    step=int(record["epoch"]),
                )
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "encoder.pt"
                torch.save(state, path)
                mlflow.log_artifact(str(path), "models")
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
    params = deep_merge(evaluation, ablations.get("evaluation", {}) or {})
    expected = evaluation_fingerprint(
        encoder["pretraining_fingerprint"],
        {
            "supervised": params["supervised"],
            "feature_shards": sorted(feature_patches.shard_ids),
            "classes": list(class_names),
        },
    )
    path = cache_path(ablations, name)
    result = load_cached(path, expected)
    cached = result is not None
    if cached:
        logger.info("Ablation %s: evaluation found in %s (same encoder and settings), not repeated", name, path)
    else:
        started = time.perf_counter()
        model, extractor = unpack_encoder(encoder)
        outcome = run_protocols(
            model,
            variant.pretrain,
            load_splits(feature_patches),
            len(class_names),
            SupervisedConfig.from_params(params["supervised"]),
            subset_amounts=[],
            n_mics=extractor.n_mics,
        )
        metrics = results_table({name: outcome}).drop(columns="encoder").iloc[0].to_dict()
        result = {
            "variant": name,
            "settings": variant.settings(),
            "metrics": metrics,
            "validation": outcome["validation"],
            "wall_s": {
                "pretraining": float(encoder.get("pretraining_s", 0.0)),
                "evaluation": time.perf_counter() - started,
            },
            "fingerprint": expected,
        }
        save_cached(path, result)
    result = {**result, "run_id": encoder.get("ablation_run_id", "")}
    with variant_run(name, run_id=encoder.get("ablation_run_id") or None) as run:
        if run is not None:
            mlflow.log_metrics({f"evaluation.{k}": float(v) for k, v in result["metrics"].items() if math.isfinite(v)})
            for protocol, values in result["validation"].items():
                mlflow.log_metrics(
                    {f"evaluation.validation.{protocol}_{k}": float(v) for k, v in values.items() if math.isfinite(v)}
                )
            mlflow.set_tag("evaluation_cached", str(cached).lower())
            mlflow.log_dict(result, "reporting/results.json")
    return result


def build_sweep_report(
    ablations: dict[str, Any], *results: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame, str, plt.Figure, dict[str, Any]]:
    """All variants, Table 1 and Table 2 (CSV and Markdown), the ChannelDrop plot and the sweep metrics."""
    frame = sweep_frame(list(results))
    one, two = table1(frame), table2(frame)
    markdown_1, markdown_2 = tables_markdown(one, two, str(ablations.get("title", "MC-SimCLR ablations")))
    logger.info("Ablation sweep:\n%s\n%s", markdown_1, markdown_2)
    if mlflow.active_run() is not None:
        total = frame[[c for c in ("pretraining_s", "evaluation_s") if c in frame]].to_numpy().sum()
        mlflow.log_metric("ablations.variant_wall_s_total", float(total))
    return frame, one, markdown_1, two, markdown_2, plot_channel_drop(two), sweep_metrics(frame)
