"""The report of a sweep (the ablations, the seed study): its tables, their Markdown, the ChannelDrop
plot and the sweep's MLflow metric values, from the variants' aggregated results
(:func:`mc_simclr.sweeps.aggregate_seeds`). The report of a single run is :mod:`mc_simclr.reporting.run`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mc_simclr.evaluation import BATCHNORM_MODES, PROTOCOLS, probe_key
from mc_simclr.reporting.run import METRIC_TITLES, metric_headers, to_markdown
from mc_simclr.sweeps import RESULT_COLUMNS, RESULT_PROTOCOLS, present_columns

#: ``<protocol>_accuracy`` of subset fine-tuning (:func:`mc_simclr.sweeps.subset_protocol`); group 1: the amount.
SUBSET_KEY = re.compile(r"fine_tune_([0-9.e+-]+)(?:pct|h)_accuracy")


def sweep_frame(results: list[dict[str, Any]], split: str = "test") -> pd.DataFrame:
    """One row per variant: its settings, seeds, every metric (mean, std over seeds, interval) and wall times."""
    records = []
    for result in results:
        metrics = result["splits"].get(split, {})
        record = {"variant": result["variant"], **result["settings"], "seeds": len(result["seeds"]), **metrics}
        record.update({f"{k}_s": v for k, v in result.get("wall_s", {}).items()})
        record["mlflow_run_id"] = result.get("run_id", "")
        records.append(record)
    return pd.DataFrame.from_records(records)


def _with_spread(columns: tuple[str, ...]) -> list[str]:
    return [c for column in columns for c in (column, f"{column}_std", f"{column}_ci_low", f"{column}_ci_high")]


def table1(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: one row per augmentation set, linear probing, k-NN and fine-tuning."""
    rows = frame[frame["tables"].str.split(",").map(lambda t: "table1" in t)]
    columns = present_columns(PROTOCOLS, frame.columns)
    return rows[["variant", "label", "seeds", *_with_spread(columns)]].reset_index(drop=True)


def table2(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2: fine-tuning (and linear probing) against the ChannelDrop probability."""
    rows = frame[frame["tables"].str.split(",").map(lambda t: "table2" in t)]
    columns = ["variant", "channel_drop_p", "seeds", *_with_spread(present_columns(PROTOCOLS, frame.columns))]
    return rows[columns].sort_values("channel_drop_p", kind="stable").reset_index(drop=True)


def subset_protocols(columns) -> tuple[str, ...]:
    """The subset fine-tuning protocols (:func:`mc_simclr.sweeps.subset_protocol`) among a frame's
    ``<protocol>_accuracy`` columns, smallest amount first."""
    found = [c[: -len("_accuracy")] for c in columns if SUBSET_KEY.fullmatch(c)]
    return tuple(sorted(found, key=lambda p: float(SUBSET_KEY.fullmatch(f"{p}_accuracy").group(1))))


def _protocols(columns) -> tuple[str, ...]:
    return (*RESULT_PROTOCOLS, *subset_protocols(columns))


def summary_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Every variant on every reported split: all protocols (both BatchNorm probes and subset
    fine-tuning included) with spread."""
    frames = []
    for split in ("test", "confirmation"):
        frame = sweep_frame(results, split)
        if RESULT_COLUMNS[0] not in frame:
            continue
        columns = present_columns(_protocols(frame.columns), frame.columns)
        frames.append(frame[["variant", "label", "seeds", *_with_spread(columns)]].assign(split=split))
    columns = [
        "variant",
        "label",
        "split",
        "seeds",
        *_with_spread(present_columns(_protocols(frames[0].columns), frames[0].columns)),
    ]
    return pd.concat(frames, ignore_index=True)[columns]


def spread_cells(table: pd.DataFrame, columns: tuple[str, ...], digits: int = 1) -> pd.DataFrame:
    """Metric columns as text ``mean ± std (low-high)`` (``± std`` only with more than one seed)."""
    out = table.drop(columns=[c for c in table.columns if c.endswith(("_std", "_ci_low", "_ci_high"))])
    for column in columns:
        cells = []
        for record in table.to_dict("records"):
            value = record[column]
            if value is None or np.isnan(value):
                cells.append("-")
                continue
            text = f"{value:.{digits}f}"
            if not np.isnan(record.get(f"{column}_std", np.nan)):
                text += f" ± {record[f'{column}_std']:.{digits}f}"
            low, high = record.get(f"{column}_ci_low", np.nan), record.get(f"{column}_ci_high", np.nan)
            if not (np.isnan(low) or np.isnan(high)):
                text += f" ({low:.{digits}f}-{high:.{digits}f})"
            cells.append(text)
        out[column] = cells
    return out


def table_headers(knn_k: int, subsets: tuple[str, ...] = ()) -> dict[str, str]:
    """Column titles of the sweep tables (the k-NN title follows ``knn_k``; ``subsets``: subset
    fine-tuning protocols, titled ``FT 25 %`` or ``FT 0.5 h``)."""
    headers = {"label": "Pre-training", "channel_drop_p": "p", "seeds": "seeds", **metric_headers(knn_k, short=True)}
    for mode in BATCHNORM_MODES:
        for metric, title in METRIC_TITLES.items():
            headers[f"{probe_key(mode)}_{metric}"] = f"LP (BN {mode}) {title}"
    for protocol in subsets:
        amount = protocol[len("fine_tune_") :].replace("pct", " %").replace("h", " h")
        for metric, title in METRIC_TITLES.items():
            headers[f"{protocol}_{metric}"] = f"FT {amount} {title}"
    return headers


def tables_markdown(table_1: pd.DataFrame, table_2: pd.DataFrame, title: str, knn_k: int) -> tuple[str, str]:
    """Markdown of both tables, with the paper's column names: mean ± std over seeds (95 % interval)."""
    headers = table_headers(knn_k)
    note = "\nCells: mean ± standard deviation over the seeds (95 % bootstrap interval over test clips).\n"
    table_1 = spread_cells(table_1.drop(columns="variant"), present_columns(PROTOCOLS, table_1.columns))
    one = f"# {title}: Table 1 (augmentations)\n\n" + to_markdown(table_1.rename(columns=headers)) + note
    table_2 = spread_cells(table_2.drop(columns="variant"), present_columns(PROTOCOLS, table_2.columns))
    table_2 = table_2.assign(channel_drop_p=table_2["channel_drop_p"].map(lambda p: f"{p:g}"))
    two = f"# {title}: Table 2 (ChannelDrop probability)\n\n" + to_markdown(table_2.rename(columns=headers)) + note
    return one, two


def summary_markdown(summary: pd.DataFrame, title: str, knn_k: int) -> str:
    """Markdown of :func:`summary_table`, one table per split (subset fine-tuning: test only)."""
    headers = table_headers(knn_k, subset_protocols(summary.columns))
    parts = [f"# {title}\n"]
    for split, rows in summary.groupby("split", sort=False):
        empty = [
            c
            for p in subset_protocols(rows.columns)
            if rows[f"{p}_accuracy"].isna().all()
            for c in rows
            if c.startswith(f"{p}_")
        ]
        rows = rows.drop(columns=empty)  # subset fine-tuning has no confirmation-split columns
        cells = spread_cells(
            rows.drop(columns=["variant", "split"]), present_columns(_protocols(rows.columns), rows.columns)
        )
        parts.append(f"\n## {split} split\n\n" + to_markdown(cells.rename(columns=headers)))
    parts.append(
        "\nCells: mean ± standard deviation over the seeds (95 % bootstrap interval over the split's clips of the "
        "mean over seeds). LP: the linear probe with the chosen BatchNorm protocol (evaluation.batchnorm), also "
        "shown under both protocols. FT 25 % (or 0.5 h): fine-tuning on a class-balanced subset of the labeled "
        "clips (<sweep>.subsets), test split only.\n"
    )
    return "".join(parts)


def plot_channel_drop(table_2: pd.DataFrame) -> plt.Figure:
    """Accuracy and localisation error (azimuth; angular for a 3-D array, axis angle for a linear one)
    against the ChannelDrop probability p (fine-tuning and linear probing)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    error = next(
        (m for m in ("angular_error", "axis_error", "azimuth_error") if f"fine_tune_{m}" in table_2), "azimuth_error"
    )
    for protocol, name in (("fine_tune", "fine-tuning"), ("linear_probe", "linear probing")):
        axes[0].plot(table_2["channel_drop_p"], table_2[f"{protocol}_accuracy"], marker="o", label=name)
        axes[1].plot(table_2["channel_drop_p"], table_2[f"{protocol}_{error}"], marker="o", label=name)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel(f"{error.replace('_', ' ')} (°)")
    for ax in axes:
        ax.set_xlabel("ChannelDrop probability p")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Performance against ChannelDrop probability")
    fig.tight_layout()
    return fig


def sweep_metrics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``{variant}.{metric}`` (test mean over seeds, its std and interval) and ``{variant}.{split}.{metric}``
    for the sweep's MLflow run (the nested runs hold each seed's values)."""
    metrics = {}
    for result in results:
        for split, values in result["splits"].items():
            prefix = result["variant"] if split == "test" else f"{result['variant']}.{split}"
            for column, value in values.items():
                if value is not None and math.isfinite(value):
                    metrics[f"{prefix}.{column}"] = {"value": float(value), "step": 0}
    return metrics


@dataclass
class SweepReport:
    """The sweep's outputs: every variant, the summary (all splits and protocols), Table 1 and Table 2
    (frames and Markdown), the ChannelDrop plot and the MLflow metrics."""

    variants: pd.DataFrame
    summary: pd.DataFrame
    summary_markdown: str
    table1: pd.DataFrame
    table1_markdown: str
    table2: pd.DataFrame
    table2_markdown: str
    channel_drop_figure: plt.Figure | None
    metrics: dict[str, Any]

    @property
    def variant_wall_s(self) -> float:
        """Pretraining and evaluation seconds of all variants and seeds together."""
        columns = [c for c in ("pretraining_s", "evaluation_s") if c in self.variants]
        return float(self.variants[columns].to_numpy().sum())


def build_sweep_report(results: list[dict[str, Any]], title: str, knn_k: int) -> SweepReport:
    """Assemble the sweep's tables, plot and metrics from the variants' aggregated results."""
    frame = sweep_frame(results)
    one, two = table1(frame), table2(frame)
    markdown_1, markdown_2 = tables_markdown(one, two, title, knn_k)
    summary = summary_table(results)
    return SweepReport(
        frame,
        summary,
        summary_markdown(summary, title, knn_k),
        one,
        markdown_1,
        two,
        markdown_2,
        plot_channel_drop(two) if len(two) else None,
        sweep_metrics(results),
    )
