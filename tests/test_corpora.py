"""The three corpus readers produce one clip table; bad input gets clear errors or is skipped."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mc_simclr.audio.corpora import (
    CLIP_TABLE_COLUMNS,
    STANDIN_CLASSES,
    generate_synthetic_corpus,
    read_folder_corpus,
    read_fsdnoisy18k,
    sample_durations,
)
from mc_simclr.audio.io import AudioReadError, read_mono
from mc_simclr.audio.synthetic import variant_labels

from conftest import PROJECT_ROOT


def _tone(path, seconds=0.5, rate=16000, channels=1, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate)


def test_read_mono_downmixes_and_resamples(tmp_path):
    _tone(tmp_path / "stereo.wav", seconds=1.0, rate=44100, channels=2, freq=1000.0)
    x = read_mono(tmp_path / "stereo.wav", 16000)
    assert x.dtype == np.float32
    assert abs(len(x) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 16000 / len(x) - 1000.0) < 2.0


def test_read_mono_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioReadError, match="junk.wav: not a readable audio file"):
        read_mono(tmp_path / "junk.wav", 16000)
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    with pytest.raises(AudioReadError, match="empty"):
        read_mono(tmp_path / "empty.wav", 16000)
    bad = np.zeros(100, np.float32)
    bad[10] = np.nan
    sf.write(str(tmp_path / "nan.wav"), bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN"):
        read_mono(tmp_path / "nan.wav", 16000)
    with pytest.raises(AudioReadError, match="file not found"):
        read_mono(tmp_path / "missing.wav", 16000)


def test_folder_corpus(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        _tone(tmp_path / "audio" / name)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"garbage")
    pd.DataFrame(
        {
            "filename": ["audio/a.wav", "audio/b.wav", "audio/c.wav", "audio/d.wav", "audio/broken.wav"],
            "label": ["dog", "dog", "cat", "cat", "cat"],
            "split": ["unlabeled", "", "test", "labeled", "labeled"],
        }
    ).to_csv(tmp_path / "clips.csv", index=False)
    table, report = read_folder_corpus(tmp_path)
    assert list(table.columns) == list(CLIP_TABLE_COLUMNS)
    assert list(table["split"]) == ["unlabeled", "labeled", "test", "labeled"]
    assert report.n_skipped == 1
    assert report.skipped[0]["clip_id"] == "broken"
    assert np.allclose(table["duration"], 0.5)
    assert set(table["sample_rate"]) == {16000}

    held, _ = read_folder_corpus(tmp_path, validation_size=1, seed=3)
    assert (held["split"] == "validation").sum() == 1
    assert (held["split"] == "labeled").sum() == 1


def test_folder_corpus_structural_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.folder.root"):
        read_folder_corpus(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="clips.csv"):
        read_folder_corpus(tmp_path)
    pd.DataFrame({"file": ["a.wav"], "label": ["x"]}).to_csv(tmp_path / "clips.csv", index=False)
    with pytest.raises(ValueError, match=r"clips.csv: missing column\(s\) \['filename'\]"):
        read_folder_corpus(tmp_path)
    pd.DataFrame({"filename": ["a.wav"], "label": ["x"], "split": ["train"]}).to_csv(
        tmp_path / "clips.csv", index=False
    )
    with pytest.raises(ValueError, match="row 2 has split 'train'"):
        read_folder_corpus(tmp_path)


def _fsd_layout(root, n_noisy=6, n_clean=5, n_test=3):
    train = []
    for i in range(n_noisy + n_clean):
        name = f"{1000 + i}.wav"
        _tone(root / "FSDnoisy18k.audio_train" / name, rate=44100, seconds=0.4)
        train.append(
            {
                "fname": name,
                "label": "Engine" if i % 2 else "Bass_guitar",
                "aso_id": "/m/x",
                "manually_verified": int(i >= n_noisy),
                "noisy_small": 0,
            }
        )
    test = []
    for i in range(n_test):
        name = f"{2000 + i}.wav"
        _tone(root / "FSDnoisy18k.audio_test" / name, rate=44100, seconds=0.4)
        test.append({"fname": name, "label": "Engine", "aso_id": "/m/x"})
    (root / "FSDnoisy18k.meta").mkdir(parents=True)
    pd.DataFrame(train).to_csv(root / "FSDnoisy18k.meta" / "train.csv", index=False)
    pd.DataFrame(test).to_csv(root / "FSDnoisy18k.meta" / "test.csv", index=False)


def test_fsdnoisy18k_layout_with_bad_file(tmp_path):
    _fsd_layout(tmp_path)
    # one noisy clip is corrupt, one clean clip is empty
    (tmp_path / "FSDnoisy18k.audio_train" / "1000.wav").write_bytes(b"RIFF....WAVEjunk")
    sf.write(str(tmp_path / "FSDnoisy18k.audio_train" / "1010.wav"), np.zeros(0), 44100)
    table, report = read_fsdnoisy18k(tmp_path, validation_size=2, seed=0)
    assert report.n_skipped == 2
    assert {s["clip_id"] for s in report.skipped} == {"1000", "1010"}
    counts = table["split"].value_counts().to_dict()
    assert counts == {"unlabeled": 5, "labeled": 2, "validation": 2, "test": 3}
    assert set(table["sample_rate"]) == {44100}
    again, _ = read_fsdnoisy18k(tmp_path, validation_size=2, seed=0)
    pd.testing.assert_frame_equal(table, again)


def test_fsdnoisy18k_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.fsdnoisy18k.root"):
        read_fsdnoisy18k(tmp_path / "missing")
    _fsd_layout(tmp_path)
    train = pd.read_csv(tmp_path / "FSDnoisy18k.meta" / "train.csv").drop(columns=["manually_verified"])
    train.to_csv(tmp_path / "FSDnoisy18k.meta" / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"train.csv: missing column\(s\) \['manually_verified'\]"):
        read_fsdnoisy18k(tmp_path)


def test_fsdnoisy18k_validation_larger_than_clean(tmp_path):
    _fsd_layout(tmp_path)
    with pytest.raises(ValueError, match="corpus.fsdnoisy18k.validation_size"):
        read_fsdnoisy18k(tmp_path, validation_size=50)


def test_durations_follow_fsdnoisy18k():
    d = sample_durations(np.random.default_rng(0), 4000, mean_s=8.8)
    assert d.min() >= 0.3
    assert d.max() <= 30.0
    assert 7.5 < d.mean() < 9.0


def test_synthetic_corpus_is_deterministic_and_resumes(tmp_path):
    sizes = {"unlabeled": 3, "labeled": 2, "test": 2}
    means = {"unlabeled": 1.0, "labeled": 0.8, "test": 0.8}
    csv = generate_synthetic_corpus(tmp_path / "a", sizes, means, (0.3, 2.0), seed=5)
    table, report = read_folder_corpus(tmp_path / "a", csv)
    assert report.n_skipped == 0
    assert len(table) == 7
    assert table["label"].nunique() >= 3
    assert table["duration"].between(0.3, 2.0).all()
    first = {p: sf.read(p)[0] for p in table["path"]}

    # delete one file: a second call rewrites it identically and keeps the others
    victim = table["path"].iloc[0]
    mtimes = {p: (tmp_path / p).stat().st_mtime_ns for p in table["path"][1:]}
    (tmp_path / victim).unlink()
    generate_synthetic_corpus(tmp_path / "a", sizes, means, (0.3, 2.0), seed=5)
    np.testing.assert_array_equal(sf.read(victim)[0], first[victim])
    assert all((tmp_path / p).stat().st_mtime_ns == m for p, m in mtimes.items())

    # another directory, same seed: the same audio
    generate_synthetic_corpus(tmp_path / "b", sizes, means, (0.3, 2.0), seed=5)
    other, _ = read_folder_corpus(tmp_path / "b")
    for p, q in zip(table["path"], other["path"], strict=True):
        np.testing.assert_array_equal(sf.read(p)[0], sf.read(q)[0])


def test_synthetic_corpus_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="clips_per_split has unknown split"):
        generate_synthetic_corpus(tmp_path, {"train": 2}, {"train": 1.0})
    with pytest.raises(ValueError, match="mean_duration_s lacks"):
        generate_synthetic_corpus(tmp_path, {"test": 2}, {})
    with pytest.raises(ValueError, match="unknown class"):
        generate_synthetic_corpus(tmp_path, {"test": 2}, {"test": 1.0}, classes=("kazoo",))


def test_confirmation_split_has_its_own_seed(tmp_path):
    sizes = {"test": 4, "confirmation": 4}
    means = {"test": 1.0, "confirmation": 1.0}
    csv = generate_synthetic_corpus(tmp_path / "a", sizes, means, (0.3, 2.0), seed=5, confirmation_seed=6)
    table = pd.read_csv(csv)
    assert (table["split"] == "confirmation").sum() == 4
    # the test split does not depend on the confirmation seed, and the confirmation split does
    other = pd.read_csv(
        generate_synthetic_corpus(tmp_path / "b", sizes, means, (0.3, 2.0), seed=5, confirmation_seed=7)
    )
    assert list(table.loc[table["split"] == "test", "filename"]) == list(
        other.loc[other["split"] == "test", "filename"]
    )
    assert set(table.loc[table["split"] == "confirmation", "filename"]).isdisjoint(other["filename"])
    with pytest.raises(ValueError, match="corpus.synthetic.confirmation_seed .* must differ"):
        generate_synthetic_corpus(tmp_path / "c", sizes, means, (0.3, 2.0), seed=5, confirmation_seed=5)
    with pytest.raises(ValueError, match="corpus.synthetic.confirmation_seed must be set"):
        generate_synthetic_corpus(tmp_path / "d", sizes, means, (0.3, 2.0), seed=5)


def test_near_neighbour_variants_split_each_class(tmp_path):
    csv = generate_synthetic_corpus(
        tmp_path, {"labeled": 8}, {"labeled": 1.0}, (0.3, 1.0), seed=1, classes=("bell", "drum"), variants_per_class=2
    )
    assert sorted(set(pd.read_csv(csv)["label"])) == ["bell_1of2", "bell_2of2", "drum_1of2", "drum_2of2"]
    with pytest.raises(ValueError, match="corpus.synthetic.variants_per_class"):
        generate_synthetic_corpus(tmp_path, {"labeled": 2}, {"labeled": 1.0}, variants_per_class=0)


def test_fsdnoisy18k_standin_has_the_released_layout_at_a_fraction(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("standin", PROJECT_ROOT / "scripts" / "make_fsdnoisy18k_standin.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root = script.main(["--out", str(tmp_path / "fsd"), "--fraction", "0.001", "--sample-rate", "16000"])
    assert sorted(p.name for p in root.iterdir()) == [
        "FSDnoisy18k.audio_test",
        "FSDnoisy18k.audio_train",
        "FSDnoisy18k.meta",
    ]
    train = pd.read_csv(root / "FSDnoisy18k.meta" / "train.csv", dtype=str)
    assert list(train.columns) == ["fname", "label", "aso_id", "manually_verified", "noisy_small"]
    assert (train["manually_verified"] == "0").sum() == 16
    assert (train["manually_verified"] == "1").sum() == 2
    table, report = read_fsdnoisy18k(root, validation_size=1, seed=0)
    assert report.n_skipped == 0
    assert table["split"].value_counts().to_dict() == {"unlabeled": 16, "test": 2, "labeled": 1, "validation": 1}
    assert (
        set(table["label"]) <= set(variant_labels(STANDIN_CLASSES, 2)) and len(variant_labels(STANDIN_CLASSES, 2)) == 20
    )
    # a second call writes nothing new and gives the same corpus
    stamp = max(p.stat().st_mtime_ns for p in (root / "FSDnoisy18k.audio_train").iterdir())
    script.main(["--out", str(root), "--fraction", "0.001", "--sample-rate", "16000"])
    assert max(p.stat().st_mtime_ns for p in (root / "FSDnoisy18k.audio_train").iterdir()) == stamp
    with pytest.raises(SystemExit):
        script.main(["--out", str(root), "--fraction", "2"])
