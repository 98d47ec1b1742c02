"""Thin nodes of the ``data_simulation`` pipeline; the work is done in ``mc_simclr.audio`` and
``mc_simclr.acoustics``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from mc_simclr.acoustics.render import plan_shards, render_shard, sample_scene_table
from mc_simclr.acoustics.rir import get_backend
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.audio.corpora import (
    CLIP_TABLE_COLUMNS,
    generate_synthetic_corpus,
    read_folder_corpus,
    read_fsdnoisy18k,
)
from mc_simclr.audio.synthetic import CLASSES
from mc_simclr.shards import OK, ShardData, ShardedAudio

logger = logging.getLogger(__name__)

CORPUS_SOURCES = ("synthetic", "fsdnoisy18k", "folder")


def prepare_corpus(corpus: dict[str, Any], audio: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the clip table of the corpus named by ``corpus.source`` (writing the synthetic one first).

    Returns the clip table and a report of the clips that were skipped and why.
    """
    source = corpus.get("source")
    if source == "synthetic":
        cfg = corpus["synthetic"]
        csv = generate_synthetic_corpus(
            root=cfg["root"],
            clips_per_split=cfg["clips_per_split"],
            mean_duration_s=cfg["mean_duration_s"],
            duration_range_s=tuple(cfg["duration_range_s"]),
            sample_rate=int(audio["sample_rate"]),
            seed=int(cfg["seed"]),
            classes=tuple(cfg.get("classes") or CLASSES),
        )
        table, report = read_folder_corpus(cfg["root"], csv)
    elif source == "fsdnoisy18k":
        cfg = corpus["fsdnoisy18k"]
        table, report = read_fsdnoisy18k(cfg["root"], int(cfg["validation_size"]), int(cfg["seed"]))
    elif source == "folder":
        cfg = corpus["folder"]
        table, report = read_folder_corpus(
            cfg["root"],
            cfg.get("csv"),
            cfg.get("default_split", "labeled"),
            int(cfg.get("validation_size", 0)),
            int(cfg.get("seed", 0)),
        )
    else:
        raise ValueError(f"corpus.source must be one of {CORPUS_SOURCES}, got {source!r}")
    if table.empty:
        raise ValueError(f"corpus.source={source!r} yielded no usable clip (skipped: {report.n_skipped})")
    counts = table["split"].value_counts().to_dict()
    logger.info("Clip table: %d clips %s, %d skipped", len(table), counts, report.n_skipped)
    return table[list(CLIP_TABLE_COLUMNS)], report.to_dict()


def sample_scenes(clip_table: pd.DataFrame, simulation: dict[str, Any]) -> pd.DataFrame:
    """Draw one scene per clip (room, RT60, array and source positions; paper section 4.1)."""
    config = SceneConfig.from_params(simulation.get("scene", {}))
    scenes = sample_scene_table(list(clip_table["clip_id"]), config, int(simulation["seed"]))
    logger.info(
        "Sampled %d scenes: RT60 %.2f-%.2f s, %d redraws",
        len(scenes),
        scenes["rt60"].min(),
        scenes["rt60"].max(),
        scenes["redraws"].sum(),
    )
    return scenes


def spatialize_clips(
    clip_table: pd.DataFrame, scenes: pd.DataFrame, simulation: dict[str, Any], audio: dict[str, Any]
) -> dict[str, Callable[[], ShardData]]:
    """Plan the rendering of every clip through its scene's RIRs into shards (rendered lazily on save)."""
    backend = get_backend(simulation["backend"], **(simulation.get("backend_options") or {}))
    sample_rate = int(audio["sample_rate"])
    peak = float(simulation["peak"])
    clips = clip_table.merge(scenes, on="clip_id", how="inner", validate="one_to_one")
    if len(clips) != len(clip_table):
        raise ValueError("scenes do not cover every clip of clip_table: re-run sample_scenes")
    settings = json.dumps(
        {
            "backend": simulation["backend"],
            "options": simulation.get("backend_options") or {},
            "sr": sample_rate,
            "peak": peak,
        },
        sort_keys=True,
    )
    render = partial(render_shard, backend=backend, sample_rate=sample_rate, peak=peak)
    return plan_shards(clips, int(simulation["shard_size"]), render, salt=settings)


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
