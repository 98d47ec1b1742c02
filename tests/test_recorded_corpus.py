"""scripts/build_recorded_corpus.py on tiny wav files written here (no Debian package needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mc_simclr.audio.corpora import read_fsdnoisy18k

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_recorded_corpus.py"


@pytest.fixture(scope="module")
def brc():
    """The script imported as a module (it lives outside the package)."""
    spec = importlib.util.spec_from_file_location("build_recorded_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _tone(path: Path, seconds: float, rate: int = 22050, channels: int = 1, freq: float = 440.0, amp: float = 0.5):
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype="PCM_16" if path.suffix == ".wav" else None)
    return path


def _class_files(src: Path) -> dict[str, list[Path]]:
    """Three classes of four usable files each, plus one short, one corrupt and one silent file."""
    files = {}
    for c, (label, rate, fmt) in enumerate([("alpha", 22050, "wav"), ("beta", 44100, "flac"), ("gamma", 48000, "ogg")]):
        files[label] = [
            _tone(src / label / f"{label}{i}.{fmt}", 0.6 + 0.3 * i, rate, channels=1 + i % 2, freq=200.0 * (c + 1) + i)
            for i in range(4)
        ]
    files["alpha"].append(_tone(src / "alpha" / "too_short.wav", 0.2))
    corrupt = src / "beta" / "corrupt.flac"
    corrupt.write_bytes(b"fLaC not really a flac stream" * 20)
    files["beta"].append(corrupt)
    files["gamma"].append(_tone(src / "gamma" / "silent.wav", 1.0, amp=0.0))
    return files


def test_builds_the_fsdnoisy18k_layout_that_the_reader_reads(brc, tmp_path):
    out = tmp_path / "corpus"
    summary = brc.build_corpus(
        _class_files(tmp_path / "src"),
        out,
        fractions=(0.5, 0.25, 0.25),
        max_per_class=10,
        min_per_class=4,
        max_seconds=1.0,
        sample_rate=16000,
        seed=3,
    )
    summary = summary.set_index("class")
    assert list(summary.index) == ["alpha", "beta", "gamma"]
    assert summary["files"].tolist() == [5, 5, 5]
    assert summary.loc["alpha", "short"] == 1
    assert summary.loc["beta", "unreadable"] == 1
    assert summary.loc["gamma", "silent"] == 1
    assert summary[["unlabeled", "labeled", "test"]].values.tolist() == [[2, 1, 1]] * 3

    assert sorted(p.name for p in out.iterdir()) == sorted(brc.LAYOUT)
    assert not list(tmp_path.glob(".corpus*")), "the staging folder is gone"
    train = pd.read_csv(out / "FSDnoisy18k.meta" / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(out / "FSDnoisy18k.meta" / "test.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["fname", "label", "aso_id", "manually_verified", "noisy_small"]
    assert list(test.columns) == ["fname", "label", "aso_id"]
    assert len(train) == 9
    assert len(test) == 3
    assert sorted(train["manually_verified"].value_counts().items()) == [("0", 6), ("1", 3)]
    for folder, table in (("FSDnoisy18k.audio_train", train), ("FSDnoisy18k.audio_test", test)):
        assert sorted(p.name for p in (out / folder).iterdir()) == sorted(table["fname"])
        for fname in table["fname"]:
            info = sf.info(out / folder / fname)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert 0.5 <= info.duration <= 1.0 + 1e-9
    sources = pd.read_csv(out / "FSDnoisy18k.meta" / "sources.csv")
    assert len(sources) == 12
    assert not sources["source"].str.contains("too_short|corrupt|silent").any()

    clips, report = read_fsdnoisy18k(out, validation_size=1, seed=0)
    assert report.n_skipped == 0
    assert len(clips) == 12
    assert clips["split"].value_counts().to_dict() == {"unlabeled": 6, "test": 3, "labeled": 2, "validation": 1}
    assert set(clips["label"]) == {"alpha", "beta", "gamma"}
    assert (clips.groupby("label").size() == 4).all()


def test_same_seed_same_corpus_and_cap_per_class(brc, tmp_path):
    files = _class_files(tmp_path / "src")
    tables = []
    for name in ("a", "b"):
        brc.build_corpus(files, tmp_path / name, max_per_class=3, min_per_class=3, seed=7)
        tables.append(pd.read_csv(tmp_path / name / "FSDnoisy18k.meta" / "sources.csv"))
    pd.testing.assert_frame_equal(*tables)
    assert (tables[0].groupby("label").size() == 3).all()


def test_too_few_usable_clips_names_the_class_and_leaves_nothing(brc, tmp_path):
    out = tmp_path / "corpus"
    with pytest.raises(ValueError, match=r"class beta: only 4 usable clips of 5 files, 5 needed \(install: pkg-b\)"):
        brc.build_corpus(
            {"beta": _class_files(tmp_path / "src")["beta"]}, out, min_per_class=5, install_hint={"beta": "pkg-b"}
        )
    assert not out.exists()
    assert not list(tmp_path.glob(".corpus*"))


def test_non_empty_out_needs_overwrite_and_only_replaces_a_corpus(brc, tmp_path):
    files = _class_files(tmp_path / "src")
    out = tmp_path / "corpus"
    brc.build_corpus(files, out, min_per_class=1, seed=0)
    with pytest.raises(FileExistsError, match="is not empty.*--overwrite"):
        brc.build_corpus(files, out, min_per_class=1)
    brc.build_corpus(files, out, min_per_class=1, overwrite=True, max_per_class=2)
    assert len(pd.read_csv(out / "FSDnoisy18k.meta" / "sources.csv")) == 6
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt.*refusing to delete"):
        brc.build_corpus(files, out, min_per_class=1, overwrite=True)
    assert (out / "notes.txt").is_file()


def test_bad_parameters_are_named(brc, tmp_path):
    files = _class_files(tmp_path / "src")
    with pytest.raises(ValueError, match="--fractions"):
        brc.build_corpus(files, tmp_path / "x", fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="--min-seconds"):
        brc.build_corpus(files, tmp_path / "x", min_seconds=2.0, max_seconds=1.0)


def _fake_install(root: Path, counts: dict[str, int]) -> None:
    """Files where two classes' patterns look, below ``root`` (drum and cymbal of hydrogen-drumkits)."""
    kit = root / "usr/share/hydrogen/data/drumkits/ForzeeStereo"
    for stem, n in counts.items():
        for i in range(n):
            _tone(kit / f"{stem}-{i}.wav", 0.7, freq=100.0 + 37 * i + len(stem))


def test_find_class_files_counts_identical_files_once(brc, tmp_path):
    tmp_path = tmp_path / "root [unpacked]"  # glob metacharacters in --root are taken literally
    _fake_install(tmp_path, {"Kick": 3, "Crash18": 2})
    kit = tmp_path / "usr/share/hydrogen/data/drumkits/ForzeeStereo"
    (kit / "Snare-0.wav").write_bytes((kit / "Kick-0.wav").read_bytes())
    (kit / "Tom-0.wav").symlink_to(kit / "Kick-1.wav")
    classes = {name: brc.CLASSES[name] for name in ("drum", "cymbal")}
    found = brc.find_class_files(classes, tmp_path)
    assert [p.name for p in found["drum"]] == ["Kick-0.wav", "Kick-1.wav", "Kick-2.wav"]
    assert [p.name for p in found["cymbal"]] == ["Crash18-0.wav", "Crash18-1.wav"]
    with pytest.raises(ValueError, match=r"class cymbal: 2 files found, 3 needed \(install: hydrogen-drumkits\)"):
        brc.require_min_files(found, 3, classes)


def test_command_line_list_and_build(brc, tmp_path, capsys):
    root = tmp_path / "root"
    _fake_install(root, {"Kick": 4, "HiHatOpen": 4})
    assert brc.main(["--list", "--root", str(root), "--classes", "drum", "cymbal"]) == 0
    printed = capsys.readouterr().out
    assert "apt-get install --no-install-recommends hydrogen-drumkits" in printed
    assert "hydrogen-drumkits: NOT installed" in printed

    out = tmp_path / "corpus"
    argv = ["--root", str(root), "--out", str(out), "--classes", "drum", "cymbal", "--seed", "1"]
    assert brc.main([*argv, "--min-per-class", "5"]) == 2
    assert "class drum: 4 files found, 5 needed (install: hydrogen-drumkits)" in capsys.readouterr().err
    assert not out.exists()

    assert brc.main([*argv, "--min-per-class", "4", "--fractions", "0.5", "0.25", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "corpus.fsdnoisy18k.validation_size=1" in printed
    sources = pd.read_csv(out / "FSDnoisy18k.meta" / "sources.csv")
    assert set(sources["package"]) == {"hydrogen-drumkits"}
    assert sources["source"].str.startswith("/usr/share/hydrogen/data/drumkits/ForzeeStereo/").all()
    assert brc.main([*argv, "--min-per-class", "4"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_every_class_pattern_lies_in_a_package_folder(brc):
    assert brc.packages() == ["hydrogen-drumkits", "megaglest-data", "tuxpaint-stamps-default", "widelands-data"]
    assert len(brc.CLASSES) >= 8
    for label, source in brc.CLASSES.items():
        assert source.packages and all(source.packages), label


def test_split_counts_and_strip_silence(brc):
    assert brc.split_counts(10, (0.6, 0.2, 0.2)) == (6, 2, 2)
    assert brc.split_counts(3, (0.9, 0.05, 0.05)) == (1, 1, 1)
    assert brc.split_counts(2, (0.0, 0.0, 1.0)) == (0, 0, 2)
    x = np.concatenate([np.zeros(5), [0.5, -1.0, 0.2], np.full(4, 1e-5)])
    np.testing.assert_array_equal(brc.strip_silence(x, 60.0), [0.5, -1.0, 0.2])
    assert brc.strip_silence(np.zeros(4), 60.0).size == 0


def test_installed_paths_in_sources_csv(brc, tmp_path):
    assert brc._installed_path(Path("/usr/share/a.ogg"), Path("/")) == "/usr/share/a.ogg"
    assert brc._installed_path(tmp_path / "usr/share/a.ogg", tmp_path) == "/usr/share/a.ogg"
    assert brc.package_of("/usr/share/games/megaglest/x.wav") == "megaglest-data"
    assert brc.package_of("/somewhere/else.wav") == ""
