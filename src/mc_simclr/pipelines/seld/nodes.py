"""Thin nodes of the ``seld`` pipeline; the work is done in ``mc_simclr.seld_study`` and
``mc_simclr.reporting.scenes``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mc_simclr.reporting.run import to_markdown
from mc_simclr.reporting.scenes import plot_tracks
from mc_simclr.seld_study import run_study, summary


def run_seld(encoder: dict[str, Any], seld: dict[str, Any]) -> dict[str, Any]:
    """Every row x fraction x seed of the ``seld`` block (the pretrained encoder from ``encoder``)."""
    return run_study(encoder, seld)


def report_seld(study: dict[str, Any]):
    """The results (one line per run), their summary over seeds (CSV and Markdown), the per-class
    table, the layout report, one test recording's reference and predicted tracks, MLflow metrics."""
    results: pd.DataFrame = study["results"]
    table = summary(results)
    markdown = to_markdown(table, digits=3)
    scene = study["figure_scene"]
    full = results["fraction"].max()
    shown = "finetune" if "finetune" in scene["predicted"] else next(iter(scene["predicted"]), None)
    figure = plot_tracks(
        scene["reference"],
        study["report"]["classes"],
        title=f"{scene['name']}: reference (dots) and {shown} predictions (circles)",
        predicted=scene["predicted"].get(shown),
    )
    metrics = {}
    for _, row in table[table["fraction"] == full].iterrows():
        for metric in ("f_score", "doa_error", "seld_score"):
            metrics[f"{row['row']}.{metric}"] = {"value": float(row[metric]), "step": 0}
    return results, table, markdown, study["per_class"], study["report"], figure, metrics
