"""Evaluation metrics: accuracy, wrapped azimuth error (and elevation, angular and axis-angle errors
for the arrays that resolve them), and their breakdowns.

A clip table's localisation columns say what its array resolves: ``pred_azimuth`` (against
``azimuth_deg``) for a horizontal planar array; also ``pred_elevation`` (against ``elevation_deg``)
for a 3-D array, scored by azimuth, elevation and great-circle angular error; ``pred_axis_angle``
(against ``axis_angle_deg``) for a linear array, scored by the error of the angle to its axis.
"""

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


def angular_error(
    azimuth_deg: np.ndarray, elevation_deg: np.ndarray, target_azimuth_deg: np.ndarray, target_elevation_deg: np.ndarray
) -> np.ndarray:
    """Great-circle angle (degrees) between two directions given by azimuth and elevation."""
    a1, e1 = np.radians(np.asarray(azimuth_deg, dtype=np.float64)), np.radians(np.asarray(elevation_deg, np.float64))
    a2, e2 = (
        np.radians(np.asarray(target_azimuth_deg, np.float64)),
        np.radians(np.asarray(target_elevation_deg, np.float64)),
    )
    cosine = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(a1 - a2)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def location_metrics(clips: pd.DataFrame) -> tuple[str, ...]:
    """The localisation metrics of a clip table, from its prediction columns (see the module doc)."""
    if "pred_axis_angle" in clips:
        return ("axis_error",)
    if "pred_elevation" in clips:
        return ("azimuth_error", "elevation_error", "angular_error")
    return ("azimuth_error",)


def clip_errors(clips: pd.DataFrame, metric: str) -> np.ndarray:
    """Per-clip error (degrees) of a localisation metric of :func:`location_metrics`."""
    if metric == "azimuth_error":
        return azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"])
    if metric == "elevation_error":
        return np.abs(clips["pred_elevation"].to_numpy(np.float64) - clips["elevation_deg"].to_numpy(np.float64))
    if metric == "angular_error":
        return angular_error(
            clips["pred_azimuth"], clips["pred_elevation"], clips["azimuth_deg"], clips["elevation_deg"]
        )
    if metric == "axis_error":
        return np.abs(clips["pred_axis_angle"].to_numpy(np.float64) - clips["axis_angle_deg"].to_numpy(np.float64))
    raise ValueError(f"unknown localisation metric {metric!r}; expected one of {list(LOCATION_METRICS)}")


#: Every localisation metric, in table order.
LOCATION_METRICS = ("azimuth_error", "elevation_error", "angular_error", "axis_error")


def clip_scores(clips: pd.DataFrame) -> dict[str, float]:
    """Accuracy (%) and mean localisation errors (degrees) of clip-level predictions.

    ``clips`` has ``class_index``, ``pred_class`` and the localisation columns of its array (for the
    paper's: ``azimuth_deg`` and ``pred_azimuth``; see the module doc). Accuracy counts the clips
    with a known class (``class_index >= 0``) and a predicted one; it is NaN when no clip has both
    (a method that does not classify).
    """
    scored = clips["pred_class"].notna() & (clips["class_index"] >= 0)
    scores = {
        "accuracy": accuracy(clips.loc[scored, "pred_class"].to_numpy(), clips.loc[scored, "class_index"].to_numpy())
        if scored.any()
        else float("nan"),
    }
    for metric in location_metrics(clips):
        scores[metric] = float(np.mean(clip_errors(clips, metric)))
    return scores


def breakdown(clips: pd.DataFrame, rt60_bins: list[float] | None = None) -> dict[str, pd.DataFrame]:
    """Accuracy and azimuth error overall, per RT60 bin and per class.

    ``clips`` has ``label``, ``class_index``, ``pred_class``, ``azimuth_deg``, ``pred_azimuth`` and
    ``rt60``; rows whose ``class_index`` is -1 count for azimuth only. Class columns are NaN for
    a method that does not classify.
    """
    rt60_bins = rt60_bins or [0.1, 0.4, 0.7, 1.0]

    def summary(group: pd.DataFrame) -> pd.Series:
        if group.empty:
            return pd.Series({"clips": 0, "accuracy": np.nan, **dict.fromkeys(location_metrics(clips), np.nan)})
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
    :func:`clip_scores` takes them; ``metric`` is ``accuracy`` (%) or a localisation error (degrees).
    Each resample draws the clips with replacement (the same draw for every run), takes the metric
    of every run on them and averages over the runs. Returns the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles; NaN for accuracy when no clip has a class and a prediction.
    """
    if metric not in ("accuracy", *LOCATION_METRICS):
        raise ValueError(f"metric must be 'accuracy' or one of {list(LOCATION_METRICS)}, got {metric!r}")
    if not runs:
        raise ValueError("bootstrap_interval needs at least one run")
    order = runs[0]["clip_id"].to_numpy()
    values = []
    for clips in runs:
        clips = clips.set_index("clip_id").loc[order]
        if metric != "accuracy":
            values.append(clip_errors(clips, metric))
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
