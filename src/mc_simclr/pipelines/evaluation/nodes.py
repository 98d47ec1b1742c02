"""Thin nodes of the ``evaluation`` pipeline; protocols live in ``mc_simclr.evaluation``, tables and
plots in ``mc_simclr.reporting``."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mc_simclr.baselines import SRPPhat
from mc_simclr.evaluation import SupervisedConfig, load_splits, random_init_like, run_protocols, supervised_azimuth
from mc_simclr.inference import package_seld_model
from mc_simclr.metrics import breakdown
from mc_simclr.reporting import PROTOCOLS, plot_embeddings, plot_subsets, results_table, subset_table, table1_markdown
from mc_simclr.shards import FeatureShards, ShardedAudio
from mc_simclr.training import unpack_encoder

logger = logging.getLogger(__name__)


def _evaluate(
    encoder_state: dict[str, Any],
    pretrained: bool,
    feature_patches: FeatureShards,
    class_names: list[str],
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    encoder, extractor = unpack_encoder(encoder_state)
    if not pretrained:
        encoder = random_init_like(encoder, int(evaluation["random_init_seed"]))
    subsets = evaluation["subsets"]
    return run_protocols(
        encoder,
        pretrained,
        load_splits(feature_patches),
        len(class_names),
        SupervisedConfig.from_params(evaluation["supervised"]),
        subset_amounts=list(subsets["amounts"]),
        subset_unit=subsets["unit"],
        subset_seed=int(subsets["seed"]),
        n_mics=extractor.n_mics,
    )


def evaluate_pretrained(
    encoder: dict[str, Any], feature_patches: FeatureShards, class_names: list[str], evaluation: dict[str, Any]
) -> dict[str, Any]:
    """All protocols on the pretrained encoder."""
    return _evaluate(encoder, True, feature_patches, class_names, evaluation)


def evaluate_random_init(
    encoder: dict[str, Any], feature_patches: FeatureShards, class_names: list[str], evaluation: dict[str, Any]
) -> dict[str, Any]:
    """All protocols on a random-init encoder of the same shape (its fine-tuning = supervised from scratch)."""
    return _evaluate(encoder, False, feature_patches, class_names, evaluation)


def supervised_azimuth_ceiling(
    encoder: dict[str, Any], feature_patches: FeatureShards, class_names: list[str], evaluation: dict[str, Any]
) -> pd.DataFrame:
    """The azimuth ceiling: a random-init encoder of the same shape trained on azimuth alone."""
    model, extractor = unpack_encoder(encoder)
    model = random_init_like(model, int(evaluation["random_init_seed"]))
    config = SupervisedConfig.from_params(evaluation["supervised"])
    return supervised_azimuth(model, load_splits(feature_patches), len(class_names), config, extractor.n_mics)


def export_seld_model(
    pretrained_results: dict[str, Any], encoder: dict[str, Any], class_names: list[str]
) -> dict[str, Any]:
    """The fine-tuned MC-SimCLR encoder with its class and azimuth heads, for the inference pipeline."""
    tuned_encoder, heads = pretrained_results["model"]
    _, extractor = unpack_encoder(encoder)
    return package_seld_model(
        tuned_encoder,
        heads,
        extractor,
        encoder["features"],
        class_names,
        {"pretraining_run_id": encoder.get("pretraining_run_id", ""), "protocol": "fine_tune"},
    )


def srp_phat_baseline(
    spatial_audio: ShardedAudio, feature_index: pd.DataFrame, evaluation: dict[str, Any], audio: dict[str, Any]
) -> pd.DataFrame:
    """SRP-PHAT azimuth of every test clip (its first ``max_seconds``), clip-level like the learned rows."""
    params = evaluation["srp_phat"]
    sample_rate = int(audio["sample_rate"])
    test = feature_index[feature_index["split"] == "test"].groupby("clip_id", sort=True).first().reset_index()
    meta = spatial_audio.metadata.set_index("clip_id")
    diameter = float(meta["array_diameter"].iloc[0])
    srp = SRPPhat(sample_rate, int(params["n_fft"]), tuple(params["freq_range"]), diameter, int(meta["n_mics"].iloc[0]))
    max_samples = int(float(params["max_seconds"]) * sample_rate)
    predictions = [
        srp(spatial_audio.load_clip(clip_id, 0, max_samples))
        for clip_id in tqdm(test["clip_id"], desc="SRP-PHAT", unit="clip")
    ]
    return test[["clip_id", "label", "class_index", "azimuth_deg", "rt60"]].assign(
        pred_azimuth=predictions, pred_class=np.nan
    )


def build_report(
    pretrained_results: dict[str, Any],
    random_results: dict[str, Any],
    srp_results: pd.DataFrame,
    ceiling_results: pd.DataFrame,
    encoder: dict[str, Any],
    evaluation: dict[str, Any],
) -> tuple[pd.DataFrame, str, pd.DataFrame, pd.DataFrame, plt.Figure, plt.Figure, dict[str, Any]]:
    """Table 1, its Markdown, the per-RT60 / per-class breakdown, Fig. 2 data and plot, the
    embedding projection and the MLflow metrics."""
    rows = {
        "random init": {p: random_results[p] for p in PROTOCOLS},
        "MC-SimCLR": {p: pretrained_results[p] for p in PROTOCOLS},
        "supervised azimuth (ceiling)": {"fine_tune": ceiling_results},
        "SRP-PHAT (no learning)": {"fine_tune": srp_results},
    }
    table = results_table(rows)
    markdown = table1_markdown(table) + (
        "\nRandom-init fine-tuning is the supervised-from-scratch model. k-NN: the majority class and mean "
        "direction of the 5 nearest labeled patches, no training. The supervised azimuth ceiling is the same "
        "encoder trained from scratch on azimuth alone. SRP-PHAT estimates azimuth only. Both are listed under "
        "fine-tuning for lack of a better column.\n"
    )
    parts = []
    for name, protocols in rows.items():
        for protocol, clips in protocols.items():
            if clips is None:
                continue
            tables = breakdown(clips, list(evaluation["rt60_bins"]))
            parts.append(
                tables["rt60"].assign(encoder=name, protocol=protocol, group="rt60").rename(columns={"rt60_bin": "bin"})
            )
            parts.append(
                tables["class"].assign(encoder=name, protocol=protocol, group="class").rename(columns={"label": "bin"})
            )
    details = pd.concat(parts, ignore_index=True)[
        ["encoder", "protocol", "group", "bin", "clips", "accuracy", "azimuth_error"]
    ]
    curves = subset_table(
        {"MC-SimCLR": pretrained_results["subsets"], "random init": random_results["subsets"]},
        evaluation["subsets"]["unit"],
    )
    embeddings, items = pretrained_results["embeddings"]
    figure_embeddings = plot_embeddings(embeddings, items, int(evaluation["projection"]["max_points"]))

    metrics: dict[str, Any] = {}
    for record in table.to_dict("records"):
        key = {
            "random init": "random",
            "MC-SimCLR": "mc_simclr",
            "supervised azimuth (ceiling)": "supervised_azimuth",
            "SRP-PHAT (no learning)": "srp_phat",
        }[record["encoder"]]
        for column, value in record.items():
            if column != "encoder" and not np.isnan(value):
                metrics[f"{key}.{column}"] = {"value": float(value), "step": 0}
    for key, results in (("mc_simclr", pretrained_results), ("random", random_results)):
        for protocol, values in results["validation"].items():
            for metric, value in values.items():
                metrics[f"{key}.validation.{protocol}_{metric}"] = {"value": float(value), "step": 0}
    scale = 100 if evaluation["subsets"]["unit"] == "fraction" else 60
    for record in curves.to_dict("records"):
        key = "mc_simclr" if record["encoder"] == "MC-SimCLR" else "random"
        for column in ("accuracy", "azimuth_error"):
            metrics.setdefault(f"{key}.subset_{column}", []).append(
                {"value": float(record[column]), "step": int(round(record["amount"] * scale))}
            )
    run_id = encoder.get("pretraining_run_id", "")
    if mlflow.active_run() is not None and run_id:
        mlflow.set_tag("pretraining_run_id", run_id)
    logger.info("Evaluation results:\n%s", markdown)
    return table, markdown, details, curves, plot_subsets(curves), figure_embeddings, metrics
