"""Thin nodes of the ``data_simulation`` pipeline; the work is done in ``mc_simclr.audio`` and
``mc_simclr.acoustics``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips
from mc_simclr.audio.corpora import build_clip_table
from mc_simclr.execution import ShardPlan
from mc_simclr.shards import OK, ShardData, ShardedAudio

logger = logging.getLogger(__name__)


def prepare_corpus(corpus: dict[str, Any], audio: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the clip table of the corpus named by ``corpus.source`` (writing the synthetic one first).

    Returns the clip table and a report of the clips that were skipped and why.
    """
    table, report = build_clip_table(corpus, int(audio["sample_rate"]))
    counts = table["split"].value_counts().to_dict()
    logger.info("Clip table: %d clips %s, %d skipped", len(table), counts, report.n_skipped)
    return table, report.to_dict()


def sample_scenes(clip_table: pd.DataFrame, simulation: dict[str, Any], array: dict[str, Any]) -> pd.DataFrame:
    """Draw one scene per clip (room, RT60, array and source positions; paper section 4.1)."""
    scenes = scenes_for_clips(clip_table, simulation, array)
    logger.info(
        "Sampled %d scenes: RT60 %.2f-%.2f s, %d redraws",
        len(scenes),
        scenes["rt60"].min(),
        scenes["rt60"].max(),
        scenes["redraws"].sum(),
    )
    return scenes


def spatialize_clips(
    clip_table: pd.DataFrame,
    scenes: pd.DataFrame,
    simulation: dict[str, Any],
    audio: dict[str, Any],
    execution: dict[str, Any],
) -> dict[str, Callable[[], ShardData]]:
    """Plan the rendering of every clip through its scene's RIRs into shards, rendered when the dataset
    saves them, by the ``execution`` backend (here, a local pool or a Dask cluster)."""
    return ShardPlan(plan_render_shards(clip_table, scenes, simulation, int(audio["sample_rate"])), execution)


def summarize_simulation(
    spatial_audio: ShardedAudio, corpus_report: dict[str, Any], audio: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Metadata table of the rendered corpus and run metrics (clips rendered and skipped, retries)."""
    meta = spatial_audio.metadata
    rendered = meta[meta["status"] == OK]
    metrics = {
        "clips_rendered": len(rendered),
        "clips_skipped_reading": int(corpus_report.get("n_skipped", 0)),
        "clips_skipped_rendering": int((meta["status"] != OK).sum()),
        "rir_tail_retries": int(meta["rir_retries"].sum()),
        "scene_redraws": int(meta["redraws"].sum()),
        "rendered_hours": float(rendered["length"].sum()) / float(audio["sample_rate"]) / 3600.0,
        "shards": len(spatial_audio.shard_ids),
    }
    logger.info("Simulation: %s", metrics)
    return meta.drop(columns=["path"]), {k: {"value": float(v), "step": 0} for k, v in metrics.items()}
