"""Node-level checks of the thin pipeline functions (errors name the parameter at fault)."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mc_simclr.pipelines.data_simulation.nodes import prepare_corpus, sample_scenes
from mc_simclr.pipelines.feature_extraction.nodes import class_names, extract_features

AUDIO = {"sample_rate": 16000}


def test_prepare_corpus_folder_and_unknown_source(tmp_path):
    for i in range(3):
        sf.write(str(tmp_path / f"c{i}.wav"), 0.1 * np.ones(8000), 16000)
    pd.DataFrame({"filename": [f"c{i}.wav" for i in range(3)], "label": ["a", "b", "a"]}).to_csv(
        tmp_path / "clips.csv", index=False
    )
    table, report = prepare_corpus({"source": "folder", "folder": {"root": str(tmp_path), "validation_size": 1}}, AUDIO)
    assert sorted(table["split"]) == ["labeled", "labeled", "validation"]
    assert report["n_skipped"] == 0
    with pytest.raises(ValueError, match="corpus.source must be one of"):
        prepare_corpus({"source": "youtube"}, AUDIO)


def test_sample_scenes_one_per_clip():
    clips = pd.DataFrame({"clip_id": ["a", "b", "c"]})
    square = {"kind": "circular", "circular": {"n_mics": 4, "diameter": 0.1}}
    scenes = sample_scenes(clips, {"seed": 1, "scene": {}}, square)
    assert list(scenes["clip_id"]) == ["a", "b", "c"]
    assert scenes["azimuth_deg"].between(-180, 180).all()
    assert set(scenes["n_mics"]) == {4}
    assert scenes["array"].nunique() == 1
    with pytest.raises(ValueError, match=r"simulation\.scene\.rt60"):
        sample_scenes(clips, {"seed": 1, "scene": {"rt60": [0.5, 0.1]}}, square)
    with pytest.raises(ValueError, match=r"simulation\.scene\.n_mics: the array is configured by the `array` block"):
        sample_scenes(clips, {"seed": 1, "scene": {"n_mics": 6}}, square)
    hexagon = sample_scenes(clips, {"seed": 1, "scene": {}}, {"circular": {"n_mics": 6, "diameter": 0.1}})
    assert set(hexagon["n_mics"]) == {6}


def test_class_names_and_feature_split_checks():
    meta = pd.DataFrame(
        {
            "split": ["labeled", "labeled", "labeled", "test", "unlabeled"],
            "label": ["b", "a", "e", "c", "d"],
            "status": ["ok", "ok", "skipped: unreadable", "ok", "ok"],
        }
    )
    assert class_names(meta) == ["a", "b"]  # a class without a rendered labeled clip is no class
    with pytest.raises(ValueError, match="no labeled clip"):
        class_names(meta.assign(split="test"))
    with pytest.raises(ValueError, match="feature_extraction.splits has unknown"):
        extract_features(None, ["a"], {}, {"splits": ["train"]}, AUDIO, {})
