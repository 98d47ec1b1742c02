"""The DCASE SELD layout: written and read back, a hand-written recording, and bad input."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mc_simclr.audio.dcase import (
    METADATA_COLUMNS,
    label_frames,
    read_class_list,
    read_metadata,
    scan_layout,
    write_class_list,
    write_recording,
)

RATE = 8000


def _rows(values):
    return pd.DataFrame(values, columns=list(METADATA_COLUMNS))


def test_a_recording_written_is_read_back(tmp_path):
    rows = _rows([(0, 1, 0, 30, -10, 150), (0, 2, 1, -120, 20, 300), (7, 1, 0, 35, -10, 150)])
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (4, RATE))  # 1 s: 10 label frames
    wav, csv = write_recording(tmp_path, "fold1_room1_mix001", audio, RATE, rows, folder="dev-train")
    assert wav == tmp_path / "mic_dev/dev-train/fold1_room1_mix001.wav"
    assert csv.read_text().splitlines() == ["0,1,0,30,-10,150", "0,2,1,-120,20,300", "7,1,0,35,-10,150"]
    assert not list(tmp_path.rglob("*.tmp"))
    write_class_list(tmp_path, ["a", "b", "c"])
    table, report = scan_layout(tmp_path, n_channels=4)
    assert report.n_skipped == 0 and list(table["recording"]) == ["fold1_room1_mix001"]
    assert table.loc[0, "fold"] == 1 and table.loc[0, "n_frames"] == 10 and table.loc[0, "folder"] == "dev-train"
    read = read_metadata(table.loc[0, "metadata"], n_classes=3, n_frames=10)
    pd.testing.assert_frame_equal(read, rows.astype({"azimuth": float, "elevation": float, "distance": float}))
    assert read_class_list(tmp_path) == ["a", "b", "c"]
    back, rate = sf.read(wav, always_2d=True)
    assert rate == RATE and back.shape == (RATE, 4)
    np.testing.assert_allclose(back.T, audio, atol=2**-22)


def test_a_hand_written_recording_of_the_2023_format(tmp_path):
    (tmp_path / "mic_dev/dev-test-sony").mkdir(parents=True)
    (tmp_path / "metadata_dev/dev-test-sony").mkdir(parents=True)
    sf.write(tmp_path / "mic_dev/dev-test-sony/fold4_room23_mix001.wav", np.zeros((int(2.05 * RATE), 4)), RATE)
    (tmp_path / "metadata_dev/dev-test-sony/fold4_room23_mix001.csv").write_text(
        "3,12,0,-45,0\n4,12,0,-44,1\n\n20,0,2,180,-90\n"
    )
    table, report = scan_layout(tmp_path, n_channels=4)
    assert report.n_skipped == 0 and table.loc[0, "fold"] == 4 and table.loc[0, "n_frames"] == 21
    rows = read_metadata(table.loc[0, "metadata"], n_classes=13, n_frames=21)
    assert list(rows.columns) == list(METADATA_COLUMNS[:5])
    assert rows.values.tolist() == [[3, 12, 0, -45, 0], [4, 12, 0, -44, 1], [20, 0, 2, 180, -90]]


@pytest.mark.parametrize(
    "line, message",
    [
        ("10,0,0,0,0", r"line 2: frame 10 is past the audio's end \(10 frames\)"),
        ("1,3,0,0,0", r"line 2: class 3: expected a class index in \[0, 3\)"),
        ("1,0,0,181,0", r"line 2: azimuth 181: expected degrees in \[-180, 180\]"),
        ("1,0,0,0,-91", r"line 2: elevation -91: expected degrees in \[-90, 90\]"),
        ("1,0,0,0", r"line 2: 4 fields"),
        ("1,zero,0,0,0", r"line 2: .* is not all numbers"),
        ("1,0,0,0,0,0", r"line 2: distance 0: expected centimetres > 0"),
    ],
)
def test_a_bad_row_is_refused_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "fold1_room1_mix001.csv"
    path.write_text("0,0,0,10,0\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_metadata(path, n_classes=3, n_frames=10)
    assert str(path) in str(err.value)


def test_recordings_that_cannot_be_used_are_counted_skips(tmp_path):
    rows = _rows([(0, 0, 0, 0, 0, 100)])
    write_recording(tmp_path, "fold1_room1_mix001", np.zeros((4, RATE)), RATE, rows, folder="dev-train")
    write_recording(tmp_path, "fold1_room1_mix002", np.zeros((2, RATE)), RATE, rows, folder="dev-train")
    sf.write(tmp_path / "mic_dev/dev-train/fold1_room1_mix003.wav", np.zeros((RATE, 4)), RATE)  # no CSV
    (tmp_path / "mic_dev/dev-train/fold1_room1_mix004.wav").write_bytes(b"not audio")
    (tmp_path / "metadata_dev/dev-train/fold1_room1_mix004.csv").write_text("0,0,0,0,0\n")
    table, report = scan_layout(tmp_path, n_channels=4)
    assert list(table["recording"]) == ["fold1_room1_mix001"] and report.n_recordings == 1
    reasons = {s["recording"]: s["reason"] for s in report.skipped}
    assert reasons["fold1_room1_mix002"] == "2 channels; the array has 4"
    assert reasons["fold1_room1_mix003"].startswith("no metadata file")
    assert "not a readable audio file" in reasons["fold1_room1_mix004"]
    with pytest.raises(FileNotFoundError, match=r"foa_dev does not exist"):
        scan_layout(tmp_path, n_channels=4, fmt="foa")


def test_writing_refuses_rows_past_the_audio_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"frame 10, past the audio's 10 label frames"):
        write_recording(tmp_path, "r", np.zeros((4, RATE)), RATE, _rows([(10, 0, 0, 0, 0, 100)]), folder="f")
    assert not list(tmp_path.rglob("*"))
    assert label_frames(1.0) == 10 and label_frames(1.01) == 11 and label_frames(0.01) == 1


def test_the_class_list_comes_from_a_parameter_or_the_file(tmp_path):
    assert read_class_list(tmp_path, ["x", "y"]) == ["x", "y"]
    with pytest.raises(FileNotFoundError, match=r"classes.csv does not exist: give the class names"):
        read_class_list(tmp_path)
