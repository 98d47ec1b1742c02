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


def bootstrap_interval(
    runs: list[pd.DataFrame],
    metric: str,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval over clips of a clip-level metric, averaged over ``runs``.

    ``runs`` are clip predictions of the same clips (one frame per pretraining seed, say), as
    :func:`clip_scores` takes them; ``metric`` is ``accuracy`` (%) or ``azimuth_error`` (degrees).
    Each resample draws the clips with replacement (the same draw for every run), takes the metric
    of every run on them and averages over the runs. Returns the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles; NaN for accuracy when no clip has a class and a prediction.
    """
    if metric not in ("accuracy", "azimuth_error"):
        raise ValueError(f"metric must be 'accuracy' or 'azimuth_error', got {metric!r}")
    if not runs:
        raise ValueError("bootstrap_interval needs at least one run")
    order = runs[0]["clip_id"].to_numpy()
    values = []
    for clips in runs:
        clips = clips.set_index("clip_id").loc[order]
        if metric == "azimuth_error":
            values.append(azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]))
        else:
            scored = clips["pred_class"].notna() & (clips["class_index"] >= 0)
            correct = (clips["pred_class"] == clips["class_index"]).astype(float) * 100.0
            values.append(np.where(scored, correct, np.nan))
    values = np.asarray(values, dtype=np.float64)  # (runs, clips)
    if np.isnan(values).all():
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, values.shape[1], size=(n_resamples, values.shape[1]))
    with np.errstate(invalid="ignore"):
        per_run = np.nanmean(values[:, draws], axis=2)  # (runs, resamples)
    statistic = np.nanmean(per_run, axis=0)
    low, high = np.nanquantile(statistic, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)
