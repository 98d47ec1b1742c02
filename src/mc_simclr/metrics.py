"""Evaluation metrics: accuracy, wrapped azimuth error, and their breakdowns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mc_simclr.acoustics.scene import wrap_degrees


def accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    """Percentage of correct class predictions."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.size == 0:
        raise ValueError(f"accuracy needs two non-empty arrays of one shape, got {predicted.shape} and {target.shape}")
    return float(100.0 * np.mean(predicted == target))


def azimuth_error(predicted_deg: np.ndarray, target_deg: np.ndarray) -> np.ndarray:
    """Absolute azimuth error in degrees, wrapped so that it lies in [0, 180]."""
    return np.abs(wrap_degrees(np.asarray(predicted_deg, dtype=np.float64) - np.asarray(target_deg, dtype=np.float64)))


def mean_azimuth_error(predicted_deg: np.ndarray, target_deg: np.ndarray) -> float:
    """Mean absolute wrapped azimuth error in degrees."""
    return float(np.mean(azimuth_error(predicted_deg, target_deg)))


def azimuth_from_vector(vector: np.ndarray) -> np.ndarray:
    """Azimuth in degrees from ``(..., 2)`` = (cos, sin) predictions."""
    vector = np.asarray(vector, dtype=np.float64)
    return np.degrees(np.arctan2(vector[..., 1], vector[..., 0]))


def azimuth_to_vector(azimuth_deg: np.ndarray) -> np.ndarray:
    """(cos, sin) targets ``(..., 2)`` for azimuths in degrees."""
    radians = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=-1)


def clip_scores(clips: pd.DataFrame) -> dict[str, float]:
    """Accuracy (%) and mean azimuth error (degrees) of clip-level predictions.

    ``clips`` has ``class_index``, ``pred_class``, ``azimuth_deg`` and ``pred_azimuth``. Accuracy
    counts the clips with a known class (``class_index >= 0``) and a predicted one; it is NaN when
    no clip has both (a method that does not classify).
    """
    scored = clips["pred_class"].notna() & (clips["class_index"] >= 0)
    return {
        "accuracy": accuracy(clips.loc[scored, "pred_class"].to_numpy(), clips.loc[scored, "class_index"].to_numpy())
        if scored.any()
        else float("nan"),
        "azimuth_error": mean_azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]),
    }


def breakdown(clips: pd.DataFrame, rt60_bins: list[float] | None = None) -> dict[str, pd.DataFrame]:
    """Accuracy and azimuth error overall, per RT60 bin and per class.

    ``clips`` has ``label``, ``class_index``, ``pred_class``, ``azimuth_deg``, ``pred_azimuth`` and
    ``rt60``; rows whose ``class_index`` is -1 count for azimuth only. Class columns are NaN for
    a method that does not classify.
    """
    rt60_bins = rt60_bins or [0.1, 0.4, 0.7, 1.0]

    def summary(group: pd.DataFrame) -> pd.Series:
        if group.empty:
            return pd.Series({"clips": 0, "accuracy": np.nan, "azimuth_error": np.nan})
        return pd.Series({"clips": len(group), **clip_scores(group)})

    edges = list(rt60_bins)
    labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    bins = pd.cut(clips["rt60"], bins=edges, labels=labels, include_lowest=True)
    return {
        "overall": summary(clips).to_frame().T,
        "rt60": clips.groupby(bins, observed=False).apply(summary, include_groups=False).reset_index(names="rt60_bin"),
        "class": clips.groupby("label").apply(summary, include_groups=False).reset_index(),
    }
