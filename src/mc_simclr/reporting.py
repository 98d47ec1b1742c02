"""The evaluation report: tables shaped like the paper's Table 1, Fig. 2's data, plots and MLflow metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mc_simclr.evaluation import PROTOCOLS, ProtocolResults
from mc_simclr.metrics import breakdown, clip_scores


def results_table(rows: dict[str, dict[str, pd.DataFrame | None]]) -> pd.DataFrame:
    """Table 1 layout: one row per encoder, accuracy and error for linear probing and fine-tuning.

    ``rows`` maps a row name to ``{protocol: clip predictions or None}`` (None: not applicable).
    """
    records = []
    for name, protocols in rows.items():
        record: dict[str, Any] = {"encoder": name}
        for protocol in PROTOCOLS:
            clips = protocols.get(protocol)
            result = clip_scores(clips) if clips is not None else {"accuracy": np.nan, "azimuth_error": np.nan}
            record[f"{protocol}_accuracy"] = result["accuracy"]
            record[f"{protocol}_azimuth_error"] = result["azimuth_error"]
        records.append(record)
    return pd.DataFrame.from_records(records)


def to_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), NaN shown as a dash."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "-" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = [header, rule] + ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def metric_headers(knn_k: int, short: bool = False) -> dict[str, str]:
    """Column titles of the metric columns of :func:`results_table`; the k-NN title follows ``knn_k``.

    ``short`` gives the abbreviated titles of the ablation tables (LP, FT).
    """
    names = {"linear_probe": "LP" if short else "Linear-probing", "knn": f"{knn_k}-NN"}
    names["fine_tune"] = "FT" if short else "Fine-tuning"
    return {
        f"{protocol}_{metric}": f"{names[protocol]} {'accuracy %' if metric == 'accuracy' else 'error °'}"
        for protocol in PROTOCOLS
        for metric in ("accuracy", "azimuth_error")
    }


def table1_markdown(table: pd.DataFrame, knn_k: int) -> str:
    """The results table with the paper's column names."""
    return to_markdown(table.rename(columns={"encoder": "Encoder", **metric_headers(knn_k)}))


def subset_table(curves: dict[str, dict[float, pd.DataFrame]], unit: str) -> pd.DataFrame:
    """Accuracy and error of subset fine-tuning per encoder and labeled amount (the paper's Fig. 2)."""
    records = [
        {"encoder": name, "amount": amount, "unit": unit, "clips": len(clips), **clip_scores(clips)}
        for name, curve in curves.items()
        for amount, clips in sorted(curve.items())
    ]
    return pd.DataFrame.from_records(records)


def plot_subsets(table: pd.DataFrame) -> plt.Figure:
    """Accuracy and azimuth error against the amount of labeled data, one line per encoder."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    unit = table["unit"].iloc[0] if len(table) else "fraction"
    for name, group in table.groupby("encoder", sort=False):
        axes[0].plot(group["amount"], group["accuracy"], marker="o", label=name)
        axes[1].plot(group["amount"], group["azimuth_error"], marker="o", label=name)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("azimuth error (°)")
    for ax in axes:
        ax.set_xlabel(f"labeled data ({'fraction of clips' if unit == 'fraction' else 'hours'})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Fine-tuning with different amounts of labeled data")
    fig.tight_layout()
    return fig


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """First two principal components of the embeddings."""
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_embeddings(embeddings: np.ndarray, items: pd.DataFrame, max_points: int = 2000, seed: int = 0) -> plt.Figure:
    """2-D PCA projection of test embeddings coloured by class and by azimuth."""
    if len(embeddings) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(embeddings), max_points, replace=False))
        embeddings, items = embeddings[keep], items.iloc[keep]
    points = pca_2d(embeddings)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    labels = items["label"].astype(str).to_numpy()
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    for k, name in enumerate(names):
        mask = labels == name
        axes[0].scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(k), label=name)
    axes[0].set_title("test embeddings by class")
    if len(names) <= 20:
        axes[0].legend(fontsize=6, markerscale=2, ncol=2)
    sc = axes[1].scatter(points[:, 0], points[:, 1], s=6, c=items["azimuth_deg"], cmap="hsv", vmin=-180, vmax=180)
    axes[1].set_title("test embeddings by azimuth")
    fig.colorbar(sc, ax=axes[1], label="azimuth (°)")
    for ax in axes:
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The evaluation pipeline's report
# --------------------------------------------------------------------------------------------
#: Row names of the results table and their key in the MLflow metric names.
ROW_KEYS = {
    "random init": "random",
    "MC-SimCLR": "mc_simclr",
    "supervised azimuth (ceiling)": "supervised_azimuth",
    "SRP-PHAT (no learning)": "srp_phat",
}


@dataclass
class EvaluationReport:
    """Everything the evaluation writes: Table 1 (and its Markdown), the per-RT60 / per-class
    breakdown, Fig. 2's data and plot, the embedding projection and the MLflow metrics."""

    table: pd.DataFrame
    markdown: str
    breakdown: pd.DataFrame
    subset_curves: pd.DataFrame
    subset_figure: plt.Figure
    embedding_figure: plt.Figure
    metrics: dict[str, Any]


def breakdown_table(rows: dict[str, dict[str, pd.DataFrame | None]], rt60_bins: list[float]) -> pd.DataFrame:
    """Accuracy and error per RT60 bin and per class for every row and protocol of the results table."""
    parts = []
    for name, protocols in rows.items():
        for protocol, clips in protocols.items():
            if clips is None:
                continue
            tables = breakdown(clips, rt60_bins)
            common = {"encoder": name, "protocol": protocol}
            parts.append(tables["rt60"].assign(**common, group="rt60").rename(columns={"rt60_bin": "bin"}))
            parts.append(tables["class"].assign(**common, group="class").rename(columns={"label": "bin"}))
    columns = ["encoder", "protocol", "group", "bin", "clips", "accuracy", "azimuth_error"]
    return pd.concat(parts, ignore_index=True)[columns]


def report_metrics(
    table: pd.DataFrame, results: dict[str, ProtocolResults], curves: pd.DataFrame, unit: str
) -> dict[str, Any]:
    """MLflow metrics: every cell of the table, the validation scores, and the subset curves (one step per amount)."""
    metrics: dict[str, Any] = {}
    for record in table.to_dict("records"):
        key = ROW_KEYS[record["encoder"]]
        for column, value in record.items():
            if column != "encoder" and not np.isnan(value):
                metrics[f"{key}.{column}"] = {"value": float(value), "step": 0}
    for name, result in results.items():
        for protocol, values in result.validation.items():
            for metric, value in values.items():
                if math.isfinite(value):
                    metrics[f"{ROW_KEYS[name]}.validation.{protocol}_{metric}"] = {"value": float(value), "step": 0}
    scale = 100 if unit == "fraction" else 60
    for record in curves.to_dict("records"):
        key = ROW_KEYS[record["encoder"]]
        for column in ("accuracy", "azimuth_error"):
            point = {"value": float(record[column]), "step": int(round(record["amount"] * scale))}
            metrics.setdefault(f"{key}.subset_{column}", []).append(point)
    return metrics


def build_report(
    pretrained: ProtocolResults,
    random: ProtocolResults,
    srp_phat: pd.DataFrame,
    ceiling: pd.DataFrame,
    evaluation: dict[str, Any],
    knn_k: int,
) -> EvaluationReport:
    """Assemble the evaluation report from the results of both encoders and the two reference rows."""
    rows: dict[str, dict[str, pd.DataFrame | None]] = {
        "random init": dict(random.clips),
        "MC-SimCLR": dict(pretrained.clips),
        "supervised azimuth (ceiling)": {"fine_tune": ceiling},
        "SRP-PHAT (no learning)": {"fine_tune": srp_phat},
    }
    table = results_table(rows)
    markdown = table1_markdown(table, knn_k) + (
        f"\nRandom-init fine-tuning is the supervised-from-scratch model. {knn_k}-NN: the majority class and mean "
        f"direction of the {knn_k} nearest labeled patches, no training. The supervised azimuth ceiling is the same "
        "encoder trained from scratch on azimuth alone. SRP-PHAT estimates azimuth only. Both are listed under "
        "fine-tuning for lack of a better column.\n"
    )
    unit = evaluation["subsets"]["unit"]
    curves = subset_table({"MC-SimCLR": pretrained.subsets, "random init": random.subsets}, unit)
    figure = plot_embeddings(
        pretrained.embeddings, pretrained.embedding_items, int(evaluation["projection"]["max_points"])
    )
    return EvaluationReport(
        table=table,
        markdown=markdown,
        breakdown=breakdown_table(rows, list(evaluation["rt60_bins"])),
        subset_curves=curves,
        subset_figure=plot_subsets(curves),
        embedding_figure=figure,
        metrics=report_metrics(table, {"MC-SimCLR": pretrained, "random init": random}, curves, unit),
    )
