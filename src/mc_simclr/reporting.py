"""Result tables shaped like the paper's Table 1 and the plots of the evaluation report."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mc_simclr.metrics import breakdown

PROTOCOLS = ("linear_probe", "knn", "fine_tune")


def scores(clips: pd.DataFrame) -> dict[str, float]:
    """Accuracy (%) and mean azimuth error (degrees) of clip-level predictions."""
    overall = breakdown(clips)["overall"].iloc[0]
    return {"accuracy": float(overall["accuracy"]), "azimuth_error": float(overall["azimuth_error"])}


def results_table(rows: dict[str, dict[str, pd.DataFrame | None]]) -> pd.DataFrame:
    """Table 1 layout: one row per encoder, accuracy and error for linear probing and fine-tuning.

    ``rows`` maps a row name to ``{protocol: clip predictions or None}`` (None: not applicable).
    """
    records = []
    for name, protocols in rows.items():
        record: dict[str, Any] = {"encoder": name}
        for protocol in PROTOCOLS:
            clips = protocols.get(protocol)
            result = scores(clips) if clips is not None else {"accuracy": np.nan, "azimuth_error": np.nan}
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


def table1_markdown(table: pd.DataFrame) -> str:
    """The results table with the paper's column names."""
    renamed = table.rename(
        columns={
            "encoder": "Encoder",
            "linear_probe_accuracy": "Linear-probing accuracy %",
            "linear_probe_azimuth_error": "Linear-probing error °",
            "knn_accuracy": "k-NN accuracy %",
            "knn_azimuth_error": "k-NN error °",
            "fine_tune_accuracy": "Fine-tuning accuracy %",
            "fine_tune_azimuth_error": "Fine-tuning error °",
        }
    )
    return to_markdown(renamed)


def subset_table(curves: dict[str, dict[float, pd.DataFrame]], unit: str) -> pd.DataFrame:
    """Accuracy and error of subset fine-tuning per encoder and labeled amount (the paper's Fig. 2)."""
    records = [
        {"encoder": name, "amount": amount, "unit": unit, "clips": len(clips), **scores(clips)}
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
