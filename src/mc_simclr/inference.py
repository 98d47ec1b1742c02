"""Embeddings, event classes and azimuths for a user's own multichannel recordings (the inference pipeline).

Recordings must come from the same array geometry as the training data (as many microphones, in
the order and at the positions the model was trained on): the ``array`` block says which array the
recordings come from, and a model trained on another one is refused, as are a file with another
channel count and one shorter than the model's window (naming the file); a file at another sample
rate is resampled. The work is :class:`~mc_simclr.seld_model.SELDModel`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.audio.io import read_multichannel, resample
from mc_simclr.seld_model import SELDModel


def read_recording(path: str | Path, sample_rate: int, n_mics: int) -> np.ndarray:
    """A recording as float32 ``(n_mics, samples)`` at ``sample_rate``.

    Raises:
        ValueError: the file has another number of channels than the array.
        AudioReadError: the file is unreadable, empty or holds non-finite samples.
    """
    audio, rate = read_multichannel(path)
    if audio.shape[0] != n_mics:
        raise ValueError(
            f"{path}: {audio.shape[0]} channel(s), expected {n_mics} "
            "(one per microphone of the array the model was trained on)"
        )
    return resample(audio, rate, sample_rate).astype(np.float32, copy=False)


def infer_recordings(
    paths: list[Path],
    state: dict[str, Any],
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
    batch_size: int = 64,
    device: str = "auto",
    array: ArrayGeometry | None = None,
) -> pd.DataFrame:
    """One row per window of each recording: its file, window, start and end, embedding, class,
    class probability and direction (azimuth for the paper's array). ``array`` is the recordings'
    array; a model trained on another is refused."""
    model = SELDModel(
        state, device=device, window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size
    )
    if array is not None:
        model.check_array(array)
    tables = []
    for path in tqdm(paths, desc="inference", unit="file"):
        audio = read_recording(path, model.sample_rate, model.geometry["n_mics"])
        try:
            table = model.predict(audio, model.sample_rate, embeddings=True).drop(columns="item")
        except ValueError as err:  # too short for one window: name the file
            raise ValueError(f"{path}: {err}") from err
        tables.append(table.assign(file=str(path)))
    columns = ["file", *model.prediction_columns[1:], "embedding"]
    return pd.concat(tables, ignore_index=True)[columns]
