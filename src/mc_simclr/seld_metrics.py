"""The DCASE sound event localisation and detection (SELD) metrics, for recordings labelled every 100 ms.

Reference and prediction are tables of DCASE rows, one per active event per label frame:
``frame`` (the 100 ms frame index), ``class`` (class index), ``source`` (the reference's source
index; a prediction's track index), ``azimuth`` and ``elevation`` (degrees, azimuth counter-clockwise
in [-180, 180], elevation up in [-90, 90]) and, for the 2024 set, ``distance`` (any one unit, the same
on both sides: the relative error is unitless, the absolute error is in that unit).

Two sets, each accumulated over all recordings of an evaluation and then averaged over classes
(``macro``, as the task ranks):

* **2024** (:func:`dcase2024_scores`, frame-based). In each frame and class the reference and
  predicted directions are matched by the Hungarian algorithm on their great-circle distance. A match
  is a true positive when its direction error is at most ``doa_threshold`` (20 degrees) and its
  relative distance error ``|d_pred - d_ref| / d_ref`` at most ``reldist_threshold`` (1.0); a match
  outside either is a spatial false positive (the reference is found at the wrong place). Unmatched
  references are false negatives, unmatched predictions false positives. Per class the
  location-aware F-score is ``TP / (TP + FP_spatial + (FP + FN) / 2)``; the direction error (DOAE)
  and the relative distance error (RDE) average over all matches, within the thresholds or not. The
  SELD score is the mean of ``1 - F``, ``DOAE / 180`` and ``RDE`` per class, then over classes.
* **2023** (:func:`dcase2023_scores`, segment-based, 1 s segments of 10 frames). In each segment and
  class the number of reference tracks is the most references of that class in one of its frames
  (likewise for the prediction). In the frames where both are active, the directions are matched
  per frame (Hungarian) and each reference track's errors are averaged over the segment; that
  average decides the true positive (at most 20 degrees) or spatial false positive, and counts
  towards the localisation error (LE) and recall (LR). Extra predicted tracks are false positives,
  missing ones false negatives. The error rate is ``(S + D + I) / N_ref`` with substitutions,
  deletions and insertions counted per segment over all classes; the SELD score is the mean of ER,
  ``1 - F``, ``LE / 180`` and ``1 - LR``.

Where the task's reference code leaves a corner open, this module decides, and says so here:
a class with neither reference nor prediction in the whole evaluation is left out of the class
averages (the reference code counts it as F = 0); an error rate without any reference event is
undefined (NaN); a direction error equal to the threshold, up to 1e-9 degrees of rounding, is within
it; when a class is active in a segment on both sides but never in the same frame, its reference
tracks are false negatives and its predicted tracks false positives; the tracks of a segment are the
positions of the directions in each frame, ordered by source index (as the reference code does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from mc_simclr.acoustics.array import direction_vectors

#: Seconds per label frame in the DCASE SELD format.
FRAME_SECONDS = 0.1
#: Label frames per segment of the 2023 set (1 s).
SEGMENT_FRAMES = 10
#: The columns of a DCASE row table (``distance`` only where distances are scored).
COLUMNS = ("frame", "class", "source", "azimuth", "elevation")
_TOLERANCE = 1e-9  # degrees / relative units of rounding allowed at a threshold


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distance in degrees between every row of ``a`` (N, 3) and of ``b`` (M, 3): (N, M)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(a @ b.T, -1.0, 1.0)))


def check_rows(rows: pd.DataFrame, name: str, n_classes: int, distance: bool = False) -> pd.DataFrame:
    """``rows`` with its columns checked: present, whole frames and classes in range, angles in range.

    ``name`` names the table in an error (a file name, "prediction of <recording>"); the row in the
    message is the table's own index (a CSV reader numbers it by line).
    """
    required = COLUMNS + (("distance",) if distance else ())
    missing = [c for c in required if c not in rows.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; expected {list(required)}")
    checks = {
        "frame (a whole number >= 0)": (rows["frame"] >= 0) & (rows["frame"] % 1 == 0),
        f"class (a whole number in [0, {n_classes}))": (rows["class"] >= 0)
        & (rows["class"] < n_classes)
        & (rows["class"] % 1 == 0),
        "azimuth (degrees in [-180, 180])": rows["azimuth"].between(-180, 180),
        "elevation (degrees in [-90, 90])": rows["elevation"].between(-90, 90),
    }
    if distance:
        checks["distance (> 0)"] = rows["distance"] > 0
    for what, ok in checks.items():
        bad = ~ok.to_numpy(dtype=bool)
        if bad.any():
            index = rows.index[bad][0]
            value = rows.loc[index, what.split(" ")[0]]
            raise ValueError(f"{name}: row {index}: {what.split(' ')[0]} = {value}; expected {what}")
    return rows


@dataclass
class _Frame:
    """The events of one class in one frame: source/track ids, unit vectors and distances."""

    ids: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray | None


def _by_frame(rows: pd.DataFrame, distance: bool) -> dict[int, dict[int, _Frame]]:
    out: dict[int, dict[int, _Frame]] = {}
    if rows.empty:
        return out
    ordered = rows.sort_values(["frame", "class", "source"], kind="stable")
    vectors = direction_vectors(ordered["azimuth"].to_numpy(), ordered["elevation"].to_numpy())
    frames, classes = ordered["frame"].to_numpy(int), ordered["class"].to_numpy(int)
    sources = ordered["source"].to_numpy()
    distances = ordered["distance"].to_numpy(float) if distance else None
    keys = np.stack([frames, classes], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)])
    ends = np.r_[starts[1:], len(keys)]
    for start, end in zip(starts, ends, strict=True):
        frame, cls = int(frames[start]), int(classes[start])
        out.setdefault(frame, {})[cls] = _Frame(
            sources[start:end], vectors[start:end], None if distances is None else distances[start:end]
        )
    return out


def _match(reference: _Frame, prediction: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian matching on great-circle distance: (reference rows, prediction rows, errors in degrees)."""
    cost = angular_distance(reference.vectors, prediction.vectors)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, cost[rows, cols]


@dataclass
class _Counts:
    """Per-class counts of one metric set over an evaluation, and its frame/segment S, D and I."""

    n_classes: int
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fp_spatial: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    n_ref: np.ndarray = field(init=False)
    n_pred: np.ndarray = field(init=False)
    matches: np.ndarray = field(init=False)  # matched (reference, prediction) pairs or tracks
    unmatched_ref: np.ndarray = field(init=False)
    angle_sum: np.ndarray = field(init=False)
    distance_sum: np.ndarray = field(init=False)
    reldist_sum: np.ndarray = field(init=False)
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    def __post_init__(self) -> None:
        for name in "tp fp fp_spatial fn n_ref n_pred matches unmatched_ref angle_sum distance_sum reldist_sum".split():
            setattr(self, name, np.zeros(self.n_classes))

    def close_unit(self, false_positives: int, false_negatives: int) -> None:
        """Substitutions, deletions and insertions of one frame (2024) or segment (2023)."""
        self.substitutions += min(false_positives, false_negatives)
        self.deletions += max(0, false_negatives - false_positives)
        self.insertions += max(0, false_positives - false_negatives)

    def class_scores(self) -> pd.DataFrame:
        """Per-class F-score, localisation recall and mean errors; classes without any event are NaN."""
        present = (self.n_ref + self.n_pred) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            f = self.tp / (self.tp + self.fp_spatial + 0.5 * (self.fp + self.fn))
            recall = self.matches / (self.matches + self.unmatched_ref)
            doa = self.angle_sum / self.matches
            dist = self.distance_sum / self.matches
            reldist = self.reldist_sum / self.matches
        f = np.where(present, np.nan_to_num(f, nan=0.0), np.nan)
        recall = np.where(present, np.nan_to_num(recall, nan=0.0), np.nan)
        table = pd.DataFrame(
            {
                "class": np.arange(self.n_classes),
                "n_reference": self.n_ref.astype(int),
                "n_prediction": self.n_pred.astype(int),
                "true_positives": self.tp.astype(int),
                "f_score": f,
                "doa_error": np.where(self.matches > 0, doa, np.nan),
                "distance_error": np.where(self.matches > 0, dist, np.nan),
                "relative_distance_error": np.where(self.matches > 0, reldist, np.nan),
                "localisation_recall": recall,
            }
        )
        return table

    def error_rate(self) -> float:
        total = self.n_ref.sum()
        if total == 0:
            return float("nan")
        return float((self.substitutions + self.deletions + self.insertions) / total)


def _recordings(recordings) -> Iterable[tuple[pd.DataFrame, pd.DataFrame, int | None]]:
    for item in recordings:
        if len(item) == 2:
            yield item[0], item[1], None
        else:
            yield item


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def dcase2024_scores(
    recordings: Iterable,
    n_classes: int,
    doa_threshold: float = 20.0,
    reldist_threshold: float = 1.0,
    distance: bool = True,
) -> dict:
    """The DCASE 2024 SELD metrics (frame-based, macro over classes) of ``recordings``.

    ``recordings``: (reference rows, predicted rows) or (reference, prediction, n_frames) per
    recording (``n_frames`` is unused by the frame-based set and accepted for symmetry).
    ``distance=False`` scores direction only (no ``distance`` column needed; RDE is NaN and the SELD
    score the mean of ``1 - F`` and ``DOAE / 180``).

    Returns ``f_score`` (0-1), ``doa_error`` (degrees), ``distance_error``, ``relative_distance_error``,
    ``seld_score``, ``error_rate``, ``localisation_recall`` and ``per_class`` (a table).
    """
    counts = _Counts(n_classes)
    for index, (reference, prediction, _) in enumerate(_recordings(recordings)):
        check_rows(reference, f"reference of recording {index}", n_classes, distance)
        check_rows(prediction, f"prediction of recording {index}", n_classes, distance)
        ref_frames, pred_frames = _by_frame(reference, distance), _by_frame(prediction, distance)
        for frame in sorted(set(ref_frames) | set(pred_frames)):
            refs, preds = ref_frames.get(frame, {}), pred_frames.get(frame, {})
            frame_fp = frame_fn = 0
            for cls in set(refs) | set(preds):
                ref, pred = refs.get(cls), preds.get(cls)
                n_ref = 0 if ref is None else len(ref.ids)
                n_pred = 0 if pred is None else len(pred.ids)
                counts.n_ref[cls] += n_ref
                counts.n_pred[cls] += n_pred
                extra, missing = max(0, n_pred - n_ref), max(0, n_ref - n_pred)
                spatial = 0
                if ref is not None and pred is not None:
                    rows, cols, errors = _match(ref, pred)
                    outside = errors > doa_threshold + _TOLERANCE
                    if distance:
                        dist_err = np.abs(pred.distances[cols] - ref.distances[rows])
                        rel_err = dist_err / ref.distances[rows]
                        outside |= rel_err > reldist_threshold + _TOLERANCE
                        counts.distance_sum[cls] += dist_err.sum()
                        counts.reldist_sum[cls] += rel_err.sum()
                    spatial = int(outside.sum())
                    counts.tp[cls] += len(errors) - spatial
                    counts.matches[cls] += len(errors)
                    counts.angle_sum[cls] += errors.sum()
                counts.fp_spatial[cls] += spatial
                counts.fp[cls] += extra
                counts.fn[cls] += missing
                counts.unmatched_ref[cls] += missing
                frame_fp += spatial + extra
                frame_fn += missing
            counts.close_unit(frame_fp, frame_fn)
    table = counts.class_scores()
    if not distance:
        table["distance_error"] = np.nan
        table["relative_distance_error"] = np.nan
    parts = [1.0 - table["f_score"], table["doa_error"] / 180.0]
    if distance:
        parts.append(table["relative_distance_error"])
    stacked = np.stack([p.to_numpy(float) for p in parts])
    seld = np.full(n_classes, np.nan)
    scored = np.isfinite(stacked).any(axis=0)  # classes with any event
    seld[scored] = np.nanmean(stacked[:, scored], axis=0)
    table["seld_score"] = seld
    return {
        "f_score": _nanmean(table["f_score"]),
        "doa_error": _nanmean(table["doa_error"]),
        "distance_error": _nanmean(table["distance_error"]),
        "relative_distance_error": _nanmean(table["relative_distance_error"]),
        "seld_score": _nanmean(table["seld_score"]),
        "error_rate": counts.error_rate(),
        "localisation_recall": _nanmean(table["localisation_recall"]),
        "per_class": table,
    }


def dcase2023_scores(
    recordings: Iterable,
    n_classes: int,
    doa_threshold: float = 20.0,
    segment_frames: int = SEGMENT_FRAMES,
) -> dict:
    """The DCASE 2023 SELD metrics (1 s segments; error rate micro, the rest macro over classes).

    ``recordings``: (reference rows, predicted rows, n_frames) per recording; ``n_frames`` (the
    recording's length in label frames, or None for the last active frame + 1) sets its segments.

    Returns ``error_rate``, ``f_score`` (0-1), ``localisation_error`` (degrees),
    ``localisation_recall`` (0-1), ``seld_score`` and ``per_class``.
    """
    if segment_frames < 1:
        raise ValueError(f"segment_frames = {segment_frames}; expected a whole number >= 1")
    counts = _Counts(n_classes)
    for index, (reference, prediction, n_frames) in enumerate(_recordings(recordings)):
        check_rows(reference, f"reference of recording {index}", n_classes)
        check_rows(prediction, f"prediction of recording {index}", n_classes)
        ref_frames, pred_frames = _by_frame(reference, False), _by_frame(prediction, False)
        last = max([*ref_frames, *pred_frames], default=-1)
        n_frames = last + 1 if n_frames is None else n_frames
        if last >= n_frames:
            raise ValueError(
                f"recording {index}: an event in frame {last}, past its n_frames = {n_frames}; "
                "expected frames below n_frames"
            )
        for start in range(0, n_frames, segment_frames):
            frames = range(start, min(start + segment_frames, n_frames))
            seg_fp = seg_fn = 0
            classes = {c for f in frames for c in ref_frames.get(f, {})} | {
                c for f in frames for c in pred_frames.get(f, {})
            }
            for cls in classes:
                ref = {f: ref_frames[f][cls] for f in frames if cls in ref_frames.get(f, {})}
                pred = {f: pred_frames[f][cls] for f in frames if cls in pred_frames.get(f, {})}
                n_ref = max((len(v.ids) for v in ref.values()), default=0)
                n_pred = max((len(v.ids) for v in pred.values()), default=0)
                counts.n_ref[cls] += n_ref
                counts.n_pred[cls] += n_pred
                track_errors: dict[int, list[float]] = {}
                for f in sorted(set(ref) & set(pred)):
                    rows, _, errors = _match(ref[f], pred[f])
                    for row, error in zip(rows, errors, strict=True):
                        track_errors.setdefault(int(row), []).append(float(error))
                if not track_errors:
                    # no common frame (or one side absent): misses and false alarms
                    counts.fn[cls] += n_ref
                    counts.unmatched_ref[cls] += n_ref
                    counts.fp[cls] += n_pred
                    seg_fn += n_ref
                    seg_fp += n_pred
                    continue
                for errors in track_errors.values():
                    mean = float(np.mean(errors))
                    counts.angle_sum[cls] += mean
                    counts.matches[cls] += 1
                    if mean <= doa_threshold + _TOLERANCE:
                        counts.tp[cls] += 1
                    else:
                        counts.fp_spatial[cls] += 1
                        seg_fp += 1
                if n_pred > n_ref:
                    counts.fp[cls] += n_pred - n_ref
                    seg_fp += n_pred - n_ref
                elif n_ref > n_pred:
                    counts.fn[cls] += n_ref - n_pred
                    counts.unmatched_ref[cls] += n_ref - n_pred
                    seg_fn += n_ref - n_pred
            counts.close_unit(seg_fp, seg_fn)
    table = counts.class_scores()
    present = (table["n_reference"] + table["n_prediction"]) > 0
    table = table.drop(columns=["distance_error", "relative_distance_error"]).rename(
        columns={"doa_error": "localisation_error"}
    )
    # a class that never localised a reference gets the largest error, as the task scores it
    table["localisation_error"] = np.where(present, table["localisation_error"].fillna(180.0), np.nan)
    error_rate = counts.error_rate()
    table["seld_score"] = (
        error_rate
        + (1.0 - table["f_score"])
        + table["localisation_error"] / 180.0
        + (1.0 - table["localisation_recall"])
    ) / 4.0
    return {
        "error_rate": error_rate,
        "f_score": _nanmean(table["f_score"]),
        "localisation_error": _nanmean(table["localisation_error"]),
        "localisation_recall": _nanmean(table["localisation_recall"]),
        "seld_score": _nanmean(table["seld_score"]),
        "per_class": table,
    }
