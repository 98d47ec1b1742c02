"""Render shards are identified by what shapes their audio: not the project's location, but the files' content."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import soundfile as sf

from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips
from mc_simclr.audio.corpora import read_folder_corpus

RATE = 16000
SIMULATION = {"seed": 0, "backend": "torchrir", "peak": 0.9, "shard_size": 2, "scene": {"rt60": [0.1, 0.2]}}


def _corpus(root):
    root.mkdir(parents=True)
    for i in range(4):
        sf.write(str(root / f"c{i}.wav"), 0.1 * np.sin(np.arange(RATE // 4) * (0.1 + i)), RATE)
    pd.DataFrame({"filename": [f"c{i}.wav" for i in range(4)], "label": ["a", "b", "a", "b"]}).to_csv(
        root / "clips.csv", index=False
    )
    return root


def _plan(root):
    table, _ = read_folder_corpus(root)
    return set(plan_render_shards(table, scenes_for_clips(table, SIMULATION), SIMULATION, RATE))


def test_editing_a_source_file_renders_its_shard_again_and_moving_the_corpus_does_not(tmp_path):
    root = _corpus(tmp_path / "corpus")
    before = _plan(root)
    assert len(before) == 2
    moved = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(root, moved)  # copies keep the files' modification times
    assert _plan(moved) == before

    edited = root / "c3.wav"
    stat = edited.stat()
    sf.write(str(edited), 0.2 * np.sin(np.arange(RATE // 4) * 0.7), RATE)  # same length, new sound
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = _plan(root)
    assert len(after & before) == 1
    assert len(after - before) == 1  # only the shard holding c3 changes
