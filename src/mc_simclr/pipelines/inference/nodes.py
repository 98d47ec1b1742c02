"""Thin node of the ``inference`` pipeline; the work is done in ``mc_simclr.inference``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.inference import infer_recordings

logger = logging.getLogger(__name__)


def run_inference(seld_model: dict[str, Any], inference: dict[str, Any], array: dict[str, Any]) -> pd.DataFrame:
    """Every window of every recording in ``inference.input_dir`` matching ``inference.pattern``,
    recorded with the ``array`` block's array (the model must have been trained on it)."""
    folder = Path(inference["input_dir"])
    if not folder.is_dir():
        raise FileNotFoundError(
            f"inference.input_dir: folder {folder} does not exist "
            "(expected multichannel audio files of the `array` block's array)"
        )
    paths = sorted(folder.glob(inference.get("pattern", "*.wav")))
    if not paths:
        raise FileNotFoundError(
            f"inference.input_dir: no file matching {inference.get('pattern', '*.wav')!r} in {folder}"
        )
    results = infer_recordings(
        paths,
        seld_model,
        window_seconds=float(inference["window_seconds"]),
        hop_seconds=float(inference["hop_seconds"]),
        batch_size=int(inference["batch_size"]),
        device=inference.get("device", "auto"),
        array=ArrayGeometry.from_params(array),
    )
    logger.info("Inference: %d windows of %d files", len(results), len(paths))
    return results
