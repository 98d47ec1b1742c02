"""The DCASE SELD metrics on hand-computed cases (mc_simclr.seld_metrics)."""

import numpy as np
import pandas as pd
import pytest

from mc_simclr.seld_metrics import dcase2023_scores, dcase2024_scores

N_CLASSES = 3


def rows(*events, frames=range(10)):
    """DCASE rows: each event (class, source, azimuth, elevation, distance) active in every frame."""
    out = [(f, c, s, az, el, d) for f in frames for (c, s, az, el, d) in events]
    return pd.DataFrame(out, columns=["frame", "class", "source", "azimuth", "elevation", "distance"])


def both(reference, prediction, n_frames=10, **kwargs):
    return (
        dcase2024_scores([(reference, prediction, n_frames)], N_CLASSES, **kwargs),
        dcase2023_scores([(reference, prediction, n_frames)], N_CLASSES),
    )


def test_a_perfect_prediction():
    reference = pd.concat(
        [rows((0, 0, 30, 0, 200), frames=range(10)), rows((1, 1, -90, 10, 150), frames=range(5, 15))],
        ignore_index=True,
    )
    s24, s23 = both(reference, reference.copy(), n_frames=20)
    assert s24["f_score"] == 1.0 and s24["error_rate"] == 0.0 and s24["localisation_recall"] == 1.0
    assert s24["doa_error"] == pytest.approx(0.0, abs=1e-5)
    assert s24["relative_distance_error"] == 0.0 and s24["seld_score"] == pytest.approx(0.0, abs=1e-7)
    assert s23["error_rate"] == 0.0 and s23["f_score"] == 1.0 and s23["localisation_recall"] == 1.0
    assert s23["localisation_error"] == pytest.approx(0.0, abs=1e-5)
    assert s23["seld_score"] == pytest.approx(0.0, abs=1e-7)
    # class 2 never occurs on either side: it is left out of the class averages
    assert np.isnan(s24["per_class"].loc[2, "f_score"]) and np.isnan(s23["per_class"].loc[2, "seld_score"])


def test_a_class_confusion_is_a_miss_and_a_false_alarm():
    s24, s23 = both(rows((0, 0, 0, 0, 100)), rows((1, 0, 0, 0, 100)))
    # every frame: class 0 missed (FN), class 1 a false alarm (FP): one substitution per frame
    assert s24["f_score"] == 0.0 and s24["error_rate"] == 1.0
    assert np.isnan(s24["doa_error"])  # nothing matched
    assert s24["seld_score"] == 1.0  # (1 - F) per class; the errors of unmatched classes are undefined
    table = s24["per_class"]
    assert list(table["n_reference"]) == [10, 0, 0] and list(table["n_prediction"]) == [0, 10, 0]
    # one segment: one substitution; no class localised anything, so LE is 180 and LR 0
    assert s23["error_rate"] == 1.0 and s23["f_score"] == 0.0
    assert s23["localisation_error"] == 180.0 and s23["localisation_recall"] == 0.0
    assert s23["seld_score"] == 1.0


@pytest.mark.parametrize("error", [20, 21])
@pytest.mark.parametrize("axis", ["azimuth", "elevation"])
def test_an_error_of_exactly_20_degrees_is_within_the_threshold_and_21_is_not(error, axis):
    reference = rows((0, 0, 0, 0, 100))
    prediction = rows((0, 0, error, 0, 100) if axis == "azimuth" else (0, 0, 0, error, 100))
    s24, s23 = both(reference, prediction)
    assert s24["doa_error"] == pytest.approx(error, abs=1e-6)
    assert s23["localisation_error"] == pytest.approx(error, abs=1e-6)
    assert s24["localisation_recall"] == 1.0 and s23["localisation_recall"] == 1.0
    if error == 20:
        assert s24["f_score"] == 1.0 and s24["error_rate"] == 0.0
        assert s24["seld_score"] == pytest.approx((0 + 20 / 180 + 0) / 3)
        assert s23["f_score"] == 1.0 and s23["error_rate"] == 0.0
        assert s23["seld_score"] == pytest.approx((0 + 0 + 20 / 180 + 0) / 4)
    else:
        # found at the wrong place: a spatial false positive, which weighs as a miss and a false alarm
        assert s24["f_score"] == 0.0
        assert s24["error_rate"] == 1.0  # one insertion per frame over one reference per frame
        assert s24["per_class"].loc[0, "true_positives"] == 0
        assert s24["seld_score"] == pytest.approx((1 + 21 / 180 + 0) / 3)
        assert s23["f_score"] == 0.0 and s23["error_rate"] == 1.0
        assert s23["seld_score"] == pytest.approx((1 + 1 + 21 / 180 + 0) / 4)


def test_the_azimuth_error_wraps_around_180_degrees():
    s24, _ = both(rows((0, 0, 179, 0, 100)), rows((0, 0, -179, 0, 100)))
    assert s24["doa_error"] == pytest.approx(2.0, abs=1e-6) and s24["f_score"] == 1.0


def test_two_overlapping_events_swapped_between_tracks_score_as_found():
    same_class = rows((0, 0, 30, 0, 100), (0, 1, -60, 0, 300))
    swapped = rows((0, 0, -60, 0, 300), (0, 1, 30, 0, 100))
    s24, s23 = both(same_class, swapped)
    assert s24["f_score"] == 1.0 and s24["doa_error"] == pytest.approx(0.0, abs=1e-5)
    assert s24["relative_distance_error"] == pytest.approx(0.0)
    assert s23["f_score"] == 1.0 and s23["error_rate"] == 0.0
    two_classes = rows((0, 0, 30, 0, 100), (2, 1, -60, 0, 300))
    tracks_swapped = rows((0, 1, 30, 0, 100), (2, 0, -60, 0, 300))
    s24, s23 = both(two_classes, tracks_swapped)
    assert s24["f_score"] == 1.0 and s24["error_rate"] == 0.0 and s23["f_score"] == 1.0
    # the same two events, each predicted at the other's place: both matched, both 90 degrees off
    crossed = rows((0, 0, -60, 0, 100), (2, 1, 30, 0, 300))
    s24, _ = both(two_classes, crossed)
    assert s24["f_score"] == 0.0 and s24["doa_error"] == pytest.approx(90.0)


def test_an_empty_reference():
    empty = rows(frames=[])
    s24, s23 = both(empty, rows((1, 0, 45, 0, 100), frames=range(5)))
    # false alarms only: F = 0 for the class that raised them; no reference, so no error rate
    assert s24["f_score"] == 0.0 and np.isnan(s24["error_rate"]) and np.isnan(s24["doa_error"])
    assert s24["seld_score"] == 1.0
    assert s23["f_score"] == 0.0 and np.isnan(s23["error_rate"])
    # nothing on either side: nothing to score
    s24, s23 = both(empty, empty.copy())
    assert np.isnan(s24["f_score"]) and np.isnan(s24["seld_score"]) and np.isnan(s23["seld_score"])


def test_the_relative_distance_threshold_of_the_2024_set():
    reference = rows((0, 0, 0, 0, 100))
    at_threshold = dcase2024_scores([(reference, rows((0, 0, 0, 0, 200)))], N_CLASSES)
    assert at_threshold["f_score"] == 1.0 and at_threshold["relative_distance_error"] == pytest.approx(1.0)
    assert at_threshold["distance_error"] == pytest.approx(100.0)
    beyond = dcase2024_scores([(reference, rows((0, 0, 0, 0, 201)))], N_CLASSES)
    assert beyond["f_score"] == 0.0 and beyond["relative_distance_error"] == pytest.approx(1.01)
    direction_only = dcase2024_scores([(reference, rows((0, 0, 0, 0, 201)))], N_CLASSES, distance=False)
    assert direction_only["f_score"] == 1.0 and np.isnan(direction_only["relative_distance_error"])


def test_segments_average_a_tracks_error_before_the_threshold_frames_do_not():
    reference = rows((0, 0, 0, 0, 100))
    prediction = pd.concat(
        [rows((0, 0, 25, 0, 100), frames=range(5)), rows((0, 0, 5, 0, 100), frames=range(5, 10))],
        ignore_index=True,
    )
    s24, s23 = both(reference, prediction)
    assert s23["f_score"] == 1.0 and s23["localisation_error"] == pytest.approx(15.0)
    # frame-based: 5 true positives, 5 spatial false positives: F = 5 / (5 + 5)
    assert s24["f_score"] == pytest.approx(0.5) and s24["doa_error"] == pytest.approx(15.0)


def test_an_extra_track_of_the_same_class_is_a_false_alarm():
    s24, s23 = both(rows((0, 0, 0, 0, 100)), rows((0, 0, 0, 0, 100), (0, 1, 90, 0, 100)))
    assert s24["f_score"] == pytest.approx(10 / (10 + 0.5 * 10))
    assert s24["error_rate"] == 1.0  # one insertion per frame
    assert s23["f_score"] == pytest.approx(1 / (1 + 0.5))


def test_scores_accumulate_over_recordings():
    good = (rows((0, 0, 0, 0, 100)), rows((0, 0, 0, 0, 100)), 10)
    missed = (rows((0, 0, 0, 0, 100)), rows(frames=[]), 10)
    s24 = dcase2024_scores([good, missed], N_CLASSES)
    assert s24["f_score"] == pytest.approx(10 / (10 + 0.5 * 10)) and s24["error_rate"] == pytest.approx(0.5)


def test_bad_rows_are_refused_naming_the_table_and_row():
    reference = rows((0, 0, 0, 0, 100))
    with pytest.raises(ValueError, match=r"prediction of recording 0: row 3: azimuth = 190.*\[-180, 180\]"):
        bad = reference.copy()
        bad.loc[3, "azimuth"] = 190
        dcase2024_scores([(reference, bad)], N_CLASSES)
    with pytest.raises(ValueError, match=r"reference of recording 0: row 0: class = 5.*\[0, 3\)"):
        bad = reference.copy()
        bad.loc[0, "class"] = 5
        dcase2023_scores([(bad, reference, 10)], N_CLASSES)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['distance'\]"):
        dcase2024_scores([(reference.drop(columns="distance"), reference)], N_CLASSES)
    with pytest.raises(ValueError, match=r"frame 9, past its n_frames = 5"):
        dcase2023_scores([(reference, reference, 5)], N_CLASSES)
