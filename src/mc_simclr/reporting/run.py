"""The evaluation report: tables shaped like the paper's Table 1, Fig. 2's data, plots and MLflow metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mc_simclr.evaluation import BATCHNORM_MODES, CONFIRMATION, PROTOCOLS, ProtocolResults, probe_key
from mc_simclr.metrics import LOCATION_METRICS, bootstrap_interval, breakdown, clip_scores, location_metrics

#: The metrics of the paper's array; an array that resolves elevation adds elevation and angular
#: error, a linear array has the axis-angle error instead of the azimuth error (see mc_simclr.metrics).
METRICS = ("accuracy", "azimuth_error")


def metrics_of(tables: list[pd.DataFrame | None]) -> tuple[str, ...]:
    """``accuracy`` and the localisation metrics of clip tables (in :data:`LOCATION_METRICS` order)."""
    present = {m for clips in tables if clips is not None for m in location_metrics(clips)}
    return ("accuracy", *(m for m in LOCATION_METRICS if m in present)) if present else METRICS


#: Column titles of the metrics (after the protocol's name).
METRIC_TITLES = {
    "accuracy": "accuracy %",
    "azimuth_error": "error °",
    "elevation_error": "elevation error °",
    "angular_error": "angular error °",
    "axis_error": "axis-angle error °",
}


def results_table(
    rows: dict[str, dict[str, pd.DataFrame | None]],
    protocols: tuple[str, ...] = PROTOCOLS,
    intervals: bool = False,
    n_resamples: int = 1000,
) -> pd.DataFrame:
    """Table 1 layout: one row per encoder, accuracy and error for each protocol.

    ``rows`` maps a row name to ``{protocol: clip predictions or None}`` (None: not applicable).
    With ``intervals``, every metric also gets its 95 % bootstrap interval over the clips
    (``<metric>_ci_low`` and ``<metric>_ci_high`` columns after the metrics).
    """
    records = []
    metrics = metrics_of([clips for by_protocol in rows.values() for clips in by_protocol.values()])
    for name, by_protocol in rows.items():
        record: dict[str, Any] = {"encoder": name}
        bounds: dict[str, float] = {}
        for protocol in protocols:
            clips = by_protocol.get(protocol)
            for metric in metrics:
                column = f"{protocol}_{metric}"
                record[column] = clip_scores(clips)[metric] if clips is not None else np.nan
                if intervals:
                    low, high = (
                        bootstrap_interval([clips], metric, n_resamples) if clips is not None else (np.nan, np.nan)
                    )
                    bounds[f"{column}_ci_low"], bounds[f"{column}_ci_high"] = low, high
        records.append({**record, **bounds})
    return pd.DataFrame.from_records(records)


def format_intervals(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Metric columns as text ``value (low-high)`` where the table has their interval columns."""
    out = table.copy()
    for column in [c for c in table.columns if f"{c}_ci_low" in table.columns]:
        low, high = table[f"{column}_ci_low"], table[f"{column}_ci_high"]
        out[column] = [
            "-" if np.isnan(v) else f"{v:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
            for v, lo, hi in zip(table[column], low, high, strict=True)
        ]
        out = out.drop(columns=[f"{column}_ci_low", f"{column}_ci_high"])
    return out


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
        f"{protocol}_{metric}": f"{names[protocol]} {title}"
        for protocol in PROTOCOLS
        for metric, title in METRIC_TITLES.items()
    }


def table1_markdown(table: pd.DataFrame, knn_k: int) -> str:
    """The results table with the paper's column names (and intervals, where it has them)."""
    return to_markdown(format_intervals(table).rename(columns={"encoder": "Encoder", **metric_headers(knn_k)}))


def subset_table(curves: dict[str, dict[float, pd.DataFrame]], unit: str) -> pd.DataFrame:
    """Accuracy and error of subset fine-tuning per encoder and labeled amount (the paper's Fig. 2)."""
    records = [
        {"encoder": name, "amount": amount, "unit": unit, "clips": len(clips), **clip_scores(clips)}
        for name, curve in curves.items()
        for amount, clips in sorted(curve.items())
    ]
    if not records:  # evaluation.subsets.amounts: [] (no subset fine-tuning)
        return pd.DataFrame(columns=["encoder", "amount", "unit", "clips", "accuracy"])
    return pd.DataFrame.from_records(records)


def plot_subsets(table: pd.DataFrame) -> plt.Figure:
    """Accuracy and localisation error (azimuth; angular for a 3-D array, axis angle for a linear
    one) against the amount of labeled data, one line per encoder."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    if table.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no subsets\n(evaluation.subsets.amounts is empty)", ha="center", va="center")
            ax.set_axis_off()
        return fig
    unit = table["unit"].iloc[0]
    error = next((m for m in ("angular_error", "axis_error", "azimuth_error") if m in table), "azimuth_error")
    for name, group in table.groupby("encoder", sort=False):
        axes[0].plot(group["amount"], group["accuracy"], marker="o", label=name)
        axes[1].plot(group["amount"], group[error], marker="o", label=name)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel(f"{error.replace('_', ' ')} (°)")
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
    """Everything the evaluation writes: Table 1 on the test split with intervals (and its Markdown,
    which also holds the confirmation split and both BatchNorm protocols), the same on the
    confirmation split, the linear probe under both BatchNorm protocols, the per-RT60 / per-class
    breakdown, Fig. 2's data and plot, the embedding projection and the MLflow metrics."""

    table: pd.DataFrame
    markdown: str
    confirmation: pd.DataFrame
    batchnorm: pd.DataFrame
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
    table = pd.concat(parts, ignore_index=True)
    metrics = [m for m in ("accuracy", *LOCATION_METRICS) if m in table]
    return table[["encoder", "protocol", "group", "bin", "clips", *metrics]]


def batchnorm_table(results: dict[str, ProtocolResults]) -> pd.DataFrame:
    """The linear probe of each encoder under both BatchNorm protocols: test (and confirmation) and
    validation scores, with the chosen protocol marked."""
    records = []
    for name, result in results.items():
        for mode in BATCHNORM_MODES:
            record: dict[str, Any] = {"encoder": name, "batchnorm": mode, "chosen": mode == result.batchnorm}
            for split, clips in result.clips.items():
                for metric, value in clip_scores(clips[probe_key(mode)]).items():
                    record[f"{split}_{metric}"] = value
            for metric in metrics_of([result.clips["test"][probe_key(mode)]]):
                record[f"validation_{metric}"] = result.validation[probe_key(mode)].get(metric, np.nan)
            records.append(record)
    return pd.DataFrame.from_records(records)


#: Short names of the key numbers, for the columns of MLflow's runs table (long names are cut there).
KEY_METRICS = {
    "MC LP acc": ("mc_simclr", "linear_probe_accuracy"),
    "MC LP az err": ("mc_simclr", "linear_probe_azimuth_error"),
    "rand LP acc": ("random", "linear_probe_accuracy"),
    "rand LP az err": ("random", "linear_probe_azimuth_error"),
}


def key_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The key numbers (test linear probe of both encoders) under their short names, from :func:`report_metrics`."""
    return {
        short: metrics[f"{row}.{column}"]["value"]
        for short, (row, column) in KEY_METRICS.items()
        if f"{row}.{column}" in metrics  # a linear array has no azimuth error
    }


def report_metrics(
    tables: dict[str, pd.DataFrame], results: dict[str, ProtocolResults], curves: pd.DataFrame, unit: str
) -> dict[str, Any]:
    """MLflow metrics: every cell of the results tables (``<row>.<column>`` for test,
    ``<row>.<split>.<column>`` otherwise; intervals included), the validation scores (also of both
    BatchNorm protocols) and the subset curves (one step per amount)."""
    metrics: dict[str, Any] = {}
    for split, table in tables.items():
        for record in table.to_dict("records"):
            key = ROW_KEYS[record["encoder"]] + ("" if split == "test" else f".{split}")
            for column, value in record.items():
                if column != "encoder" and not np.isnan(value):
                    metrics[f"{key}.{column}"] = {"value": float(value), "step": 0}
    for name, result in results.items():
        for protocol, values in result.validation.items():
            for metric, value in values.items():
                if math.isfinite(value):
                    metrics[f"{ROW_KEYS[name]}.validation.{protocol}_{metric}"] = {"value": float(value), "step": 0}
        for split, clips in result.clips.items():
            prefix = ROW_KEYS[name] + ("" if split == "test" else f".{split}")
            for mode in BATCHNORM_MODES:
                for metric, value in clip_scores(clips[probe_key(mode)]).items():
                    if math.isfinite(value):
                        metrics[f"{prefix}.{probe_key(mode)}_{metric}"] = {"value": float(value), "step": 0}
    scale = 100 if unit == "fraction" else 60
    for record in curves.to_dict("records"):
        key = ROW_KEYS[record["encoder"]]
        for column in (c for c in ("accuracy", *LOCATION_METRICS) if c in record):
            point = {"value": float(record[column]), "step": int(round(record["amount"] * scale))}
            metrics.setdefault(f"{key}.subset_{column}", []).append(point)
    return metrics


def _rows(
    pretrained: ProtocolResults,
    random: ProtocolResults,
    srp_phat: dict[str, pd.DataFrame],
    ceiling: dict[str, pd.DataFrame],
    split: str,
) -> dict[str, dict[str, pd.DataFrame | None]]:
    return {
        "random init": {p: random.clips[split][p] for p in PROTOCOLS},
        "MC-SimCLR": {p: pretrained.clips[split][p] for p in PROTOCOLS},
        "supervised azimuth (ceiling)": {"fine_tune": ceiling[split]},
        "SRP-PHAT (no learning)": {"fine_tune": srp_phat[split]},
    }


def build_report(
    pretrained: ProtocolResults,
    random: ProtocolResults,
    srp_phat: dict[str, pd.DataFrame],
    ceiling: dict[str, pd.DataFrame],
    evaluation: dict[str, Any],
    knn_k: int,
) -> EvaluationReport:
    """Assemble the evaluation report from the results of both encoders and the two reference rows.

    ``srp_phat`` and ``ceiling`` map a split (``test``, ``confirmation``) to clip predictions.
    """
    rows = _rows(pretrained, random, srp_phat, ceiling, "test")
    table = results_table(rows, intervals=True)
    has_confirmation = CONFIRMATION in pretrained.clips
    confirmation = (
        results_table(_rows(pretrained, random, srp_phat, ceiling, CONFIRMATION), intervals=True)
        if has_confirmation
        else pd.DataFrame(columns=table.columns)
    )
    both = {"random init": random, "MC-SimCLR": pretrained}
    batchnorm = batchnorm_table(both)
    markdown = (
        "## Test split (95 % bootstrap intervals over clips)\n\n"
        + table1_markdown(table, knn_k)
        + f"\nLinear probe and {knn_k}-NN with the BatchNorm statistics {pretrained.batchnorm}"
        + (" on the labeled split" if pretrained.batchnorm == "recalibrate" else " the encoders carry")
        + f" (`evaluation.batchnorm`). Random-init fine-tuning is the supervised-from-scratch model. {knn_k}-NN: "
        f"the majority class and mean direction of the {knn_k} nearest labeled patches, no training. The "
        "supervised azimuth ceiling is the same encoder trained from scratch on azimuth alone. SRP-PHAT "
        "estimates azimuth only. Both are listed under fine-tuning for lack of a better column.\n"
    )
    if has_confirmation:
        markdown += (
            "\n## Confirmation split (a second test split that no design choice has seen)\n\n"
            + table1_markdown(confirmation, knn_k)
        )
    renamed = {"encoder": "Encoder", "batchnorm": "BatchNorm", "chosen": "chosen"}
    for split in ("test", CONFIRMATION, "validation"):
        for metric, title in METRIC_TITLES.items():
            renamed[f"{split}_{metric}"] = f"{split} {title}"
    markdown += "\n## Linear probe under both BatchNorm protocols\n\n" + to_markdown(
        batchnorm.assign(chosen=batchnorm["chosen"].map({True: "yes", False: ""})).rename(columns=renamed)
    )
    unit = evaluation["subsets"]["unit"]
    curves = subset_table({"MC-SimCLR": pretrained.subsets, "random init": random.subsets}, unit)
    figure = plot_embeddings(
        pretrained.embeddings, pretrained.embedding_items, int(evaluation["projection"]["max_points"])
    )
    tables = {"test": table, **({CONFIRMATION: confirmation} if has_confirmation else {})}
    return EvaluationReport(
        table=table,
        markdown=markdown,
        confirmation=confirmation,
        batchnorm=batchnorm,
        breakdown=breakdown_table(rows, list(evaluation["rt60_bins"])),
        subset_curves=curves,
        subset_figure=plot_subsets(curves),
        embedding_figure=figure,
        metrics=report_metrics(tables, both, curves, unit),
    )
