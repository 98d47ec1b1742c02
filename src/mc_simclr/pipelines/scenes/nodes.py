"""Thin nodes of the ``scenes`` pipeline; the work is done in ``mc_simclr.acoustics.scene_set`` and
``mc_simclr.reporting.scenes``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from mc_simclr.acoustics.scene_set import write_scene_set
from mc_simclr.reporting.scenes import scene_tracks_figure

logger = logging.getLogger(__name__)


def synthesize_scenes(
    clip_table: pd.DataFrame,
    scenes: dict[str, Any],
    simulation: dict[str, Any],
    array: dict[str, Any],
    audio: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, dict[str, float]]]:
    """Write (or find) every recording of the ``scenes`` block in the DCASE layout below ``scenes.root``."""
    table, report = write_scene_set(clip_table, scenes, simulation, array, int(audio["sample_rate"]))
    logger.info(
        "Scenes in %s: %d written, %d found; %d events, %d of them moving",
        report["root"],
        report["written"],
        report["found"],
        int(table["n_events"].sum()),
        int(table["n_moving"].sum()),
    )
    metrics = {
        "recordings": float(len(table)),
        "written": float(report["written"]),
        "events": float(table["n_events"].sum()),
        "moving_events": float(table["n_moving"].sum()),
    }
    return table, report, {k: {"value": v, "step": 0} for k, v in metrics.items()}


def plot_scene_tracks(scene_recordings: pd.DataFrame, scene_report: dict[str, Any]):
    """The reference tracks of the first test recording (azimuth over time, one colour per class)."""
    return scene_tracks_figure(scene_recordings, scene_report["classes"])
