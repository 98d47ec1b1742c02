"""Scene synthesis: moving and overlapping events, their DCASE rows, and the resumable scene set."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.signal import fftconvolve

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.rir import get_backend
from mc_simclr.acoustics.scene import SceneConfig, make_scene, relative_direction
from mc_simclr.acoustics.scene_set import write_scene_set
from mc_simclr.acoustics.scenes import (
    SceneSynthesisConfig,
    event_path,
    event_rows,
    path_scenes,
    plan_recording,
    render_moving,
    render_path,
    synthesize_recording,
)
from mc_simclr.audio.corpora import build_clip_table
from mc_simclr.audio.dcase import read_class_list, read_metadata, scan_layout

RATE = 8000
ROOMS = SceneConfig(rt60=(0.15, 0.25), array=ArrayGeometry.tetrahedral())


def _clips(n=6, classes=("a", "b", "c")):
    return pd.DataFrame(
        {
            "clip_id": [f"clip{i}" for i in range(n)],
            "label": [classes[i % len(classes)] for i in range(n)],
            "duration": [3.0] * n,
        }
    )


def _tone(clip_id, seconds=3.0):
    rng = np.random.default_rng(abs(hash(clip_id)) % 2**32)
    t = np.arange(int(seconds * RATE)) / RATE
    return np.sin(2 * np.pi * rng.uniform(200, 1500) * t) + 0.1 * rng.standard_normal(len(t))


def test_a_time_varying_rir_of_equal_rirs_is_plain_convolution():
    """The crossfade windows sum to one: with one RIR throughout, the output is the static one exactly
    (so the windowing itself adds nothing: no click)."""
    rng = np.random.default_rng(0)
    signal, rir = rng.standard_normal(2000), rng.standard_normal((4, 300))
    hop = 160
    rirs = [rir] * (math.ceil(len(signal) / hop) + 1)
    np.testing.assert_allclose(render_moving(signal, rirs, hop), fftconvolve(signal[None], rir, axes=-1), atol=1e-9)


def test_the_crossfade_glides_between_rirs():
    """A gain stepping from RIR to RIR reaches the output as a smooth raised-cosine ramp."""
    hop, n = 100, 1000
    gains = np.linspace(1.0, 2.0, n // hop + 1)
    out = render_moving(np.ones(n), [np.full((1, 1), g) for g in gains], hop)[0, :n]
    np.testing.assert_allclose(out[::hop], gains[:-1], atol=1e-12)  # at each point, its own RIR
    assert np.all(np.diff(out) >= -1e-12) and np.max(np.abs(np.diff(out))) <= (gains[1] - gains[0]) * 0.02 + 1e-12


def _path_scenes(points=7):
    centre = np.array([3.0, 2.5, 1.5])
    return [
        make_scene(
            np.array([6.0, 5.0, 3.0]),
            0.3,
            centre,
            centre + [1.5 * np.cos(a), 1.5 * np.sin(a), -0.1],
            array=ArrayGeometry.tetrahedral(),
        )  # fmt: skip
        for a in np.linspace(0.0, 1.0, points)
    ]


def test_a_path_keeps_each_points_image_sources_and_shares_one_tail():
    backend = get_backend("torchrir", device="cpu", diffuse_attenuation_db=6.0, frac_delay_length=21)
    scenes = _path_scenes()
    early, late = backend.simulate_path(scenes, RATE)
    whole = [backend.simulate(scene, RATE) for scene in scenes]
    n_early = early.shape[-1]
    assert early.shape == (7, 4, n_early) and late.shape == whole[0].shape and not np.any(late[:, :n_early])
    for k, rir in enumerate(whole):  # every point's image-source part is its own
        np.testing.assert_allclose(early[k], rir[:, :n_early], atol=1e-7)
    assert not np.allclose(early[0], early[-1])
    middle = np.concatenate([early[3], np.zeros((4, late.shape[1] - n_early), np.float32)], axis=1) + late
    np.testing.assert_allclose(middle, whole[3], atol=1e-7)  # the middle point: its RIR exactly
    ratios = [np.sum(rir[:, n_early:] ** 2) / np.sum(late**2) for rir in whole]
    assert max(abs(r - 1.0) for r in ratios) < 0.3, ratios  # one late field, the level of every point's


def test_a_moving_event_through_a_split_path_is_its_points_rirs_crossfaded():
    """render_event with simulate_path: the early parts crossfaded point to point plus the one tail
    through the whole signal; with a backend that has no simulate_path, whole RIRs per point."""
    from mc_simclr.acoustics.scenes import Event, render_event

    backend = get_backend("torchrir", device="cpu", diffuse_attenuation_db=6.0, frac_delay_length=21)
    room = _path_scenes(1)[0]
    event = Event(0, "c", "a", 0, 0.0, 1.0, 0.0, 0.0, room.source_position, 30.0, 0.0)
    signal = np.random.default_rng(0).standard_normal(RATE)  # broadband: its level does not hang on one frequency
    _, path = event_path(event, room, ROOMS, 0.1)
    out = render_event(event, signal, room, ROOMS, backend, RATE, 0.1)
    scenes = path_scenes(room, path)
    early, late = backend.simulate_path(scenes, RATE)
    expected = fftconvolve(signal[None], late, axes=-1)
    moving = render_moving(signal, list(early), 800)
    expected[:, : moving.shape[1]] += moving
    np.testing.assert_allclose(out, expected, atol=1e-9)
    np.testing.assert_allclose(render_path(signal, early, late, 800), expected, atol=1e-9)

    class Whole:  # the protocol's simulate only
        def simulate(self, scene, rate):
            return backend.simulate(scene, rate)

    whole = render_event(event, signal, room, ROOMS, Whole(), RATE, 0.1)
    reference = render_moving(signal, [backend.simulate(s, RATE) for s in scenes], 800)
    np.testing.assert_allclose(whole, reference, atol=1e-9)
    assert whole.shape == out.shape
    level_db = 10 * np.log10(np.sum(out**2) / np.sum(whole**2))
    assert abs(level_db) < 1.0, level_db  # the same sound level, tails apart


def test_a_plan_keeps_its_polyphony_and_is_drawn_from_its_name_only():
    config = SceneSynthesisConfig(duration_s=30.0, max_polyphony=2, moving_fraction=0.5, snr_db=None)
    plan = plan_recording("fold1_room1_mix001", _clips(), ["a", "b", "c"], config, ROOMS, seed=3)
    again = plan_recording("fold1_room1_mix001", _clips(), ["a", "b", "c"], config, ROOMS, seed=3)
    other = plan_recording("fold1_room2_mix001", _clips(), ["a", "b", "c"], config, ROOMS, seed=3)
    assert plan.to_dict() == again.to_dict() and plan.to_dict() != other.to_dict()
    assert len(plan.events) >= 6 and 0 < sum(e.moving for e in plan.events) < len(plan.events)
    times = np.arange(0, 30, 0.01)
    sounding = sum(((times >= e.onset_s) & (times < e.onset_s + e.duration_s)).astype(int) for e in plan.events)
    assert sounding.max() == 2
    assert all(0 <= e.onset_s and e.onset_s + e.duration_s <= 30.0 + 1e-9 for e in plan.events)
    for e in plan.events:
        assert config.event_duration_s[0] - 1e-9 <= e.duration_s <= config.event_duration_s[1]
        if e.moving:
            assert 10 <= abs(e.angular_speed_deg_s) <= 40


def test_a_moving_source_turns_about_the_array_and_stays_in_the_room():
    config = SceneSynthesisConfig(duration_s=40.0, moving_fraction=1.0, event_duration_s=(8.0, 8.0), snr_db=None)
    plan = plan_recording("fold1_room1_mix001", _clips(classes=("a",)), ["a"], config, ROOMS, seed=0)
    room, center = plan.room, np.asarray(plan.room.array_center)
    dims = np.asarray(room.room_dims)
    for event in plan.events:
        times, path = event_path(event, room, ROOMS, 0.1)
        assert len(times) == math.ceil(event.duration_s / 0.1) + 1
        assert np.all(path[:, :2] >= ROOMS.min_wall_distance - 1e-9)
        assert np.all(path[:, :2] <= dims[:2] - ROOMS.min_wall_distance + 1e-9)
        assert np.allclose(path[:, 2], path[0, 2])  # turns about the vertical axis
        radius = np.linalg.norm(path[:, :2] - center[:2], axis=1)
        assert np.allclose(radius, radius[0])  # no radial speed drawn
        steps = np.degrees(np.diff(np.unwrap(np.arctan2(*(path[:, 1::-1] - center[1::-1]).T))))
        moving_steps = steps[np.abs(steps) > 1e-9]
        np.testing.assert_allclose(np.abs(moving_steps), abs(event.angular_speed_deg_s) * 0.1, rtol=1e-6)
        rows = event_rows(event, room, ROOMS, 0.1, n_frames=400)
        assert len(rows) == math.ceil((event.onset_s + event.duration_s) * 10 - 1e-9) - math.floor(
            event.onset_s * 10 + 1e-9
        )
        first = relative_direction(center, np.asarray(event.start), room.array.orientation_deg)
        # the first frame's centre lies at most 0.1 s after the onset: within one step of the start
        off = abs((rows["azimuth"].iloc[0] - first[0] + 180) % 360 - 180)
        assert off <= abs(event.angular_speed_deg_s) * 0.1 + 1e-6
    assert len(plan.events) >= 3


def test_a_recording_is_rendered_with_its_rows(tmp_path):
    config = SceneSynthesisConfig(duration_s=6.0, max_polyphony=2, event_duration_s=(1.0, 2.5), snr_db=(20.0, 20.0))
    plan = plan_recording("fold1_room1_mix001", _clips(), ["a", "b", "c"], config, ROOMS, seed=1)
    backend = get_backend("torchrir", device="cpu", diffuse_attenuation_db=3.0)
    audio, rows = synthesize_recording(plan, _tone, ROOMS, config, backend, backend, RATE, seed=1)
    assert audio.shape == (4, 6 * RATE) and audio.dtype == np.float32
    assert np.max(np.abs(audio)) == pytest.approx(config.peak)
    assert set(rows["source"]) == {e.index for e in plan.events}
    assert rows["frame"].max() < 60 and rows.groupby("frame")["source"].nunique().max() <= 2
    static = [e for e in plan.events if not e.moving]
    for event in static:
        expected = relative_direction(np.asarray(plan.room.array_center), np.asarray(event.start), 0.0)
        got = rows[rows["source"] == event.index]
        assert np.allclose(got["azimuth"], expected[0]) and np.allclose(got["distance"], 100 * expected[2])


def _write_clips(root):
    import soundfile as sf

    rows = []
    for split in ("labeled", "validation", "test"):
        for i, label in enumerate(("a", "b", "a", "b")):
            path = root / f"{split}_{i}.wav"
            sf.write(path, 0.3 * _tone(f"{split}{i}", 2.0), RATE)
            rows.append({"filename": path.name, "label": label, "split": split})
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    corpus = {"source": "folder", "folder": {"root": str(root)}}
    table, _ = build_clip_table(corpus, RATE)
    return table


def test_a_scene_set_is_written_in_the_dcase_layout_and_resumed(tmp_path):
    (tmp_path / "clips").mkdir()
    table = _write_clips(tmp_path / "clips")
    params = {
        "root": str(tmp_path / "scenes"),
        "seed": 0,
        "recordings": {"train": 2, "test": 1},
        "moving_backend_options": {"diffuse_attenuation_db": 3.0, "frac_delay_length": 21},
        "synthesis": {"duration_s": 4.0, "event_duration_s": [1.0, 2.0], "gap_s": [0.2, 1.0]},
    }
    simulation = {"backend": "torchrir", "backend_options": {"device": "cpu"}, "scene": {"rt60": [0.15, 0.2]}}
    array = {"kind": "tetrahedral"}
    recordings, report = write_scene_set(table, params, simulation, array, RATE, progress=False)
    assert report["written"] == 3 and report["found"] == 0
    assert list(recordings["recording"]) == ["fold1_room1_mix001", "fold1_room2_mix001", "fold3_room1_mix001"]
    layout, skipped = scan_layout(tmp_path / "scenes", n_channels=4)
    assert skipped.n_skipped == 0 and sorted(layout["folder"]) == ["dev-test", "dev-train", "dev-train"]
    assert read_class_list(tmp_path / "scenes") == ["a", "b"]
    for _, row in layout.iterrows():
        events = read_metadata(row["metadata"], n_classes=2, n_frames=row["n_frames"])
        assert len(events) > 0 and (events["distance"] > 0).all()
    assert not list((tmp_path / "scenes").rglob("*.tmp"))
    # a rerun finds everything; a recording without its CSV (interrupted) is made again, identically
    csv = tmp_path / "scenes/metadata_dev/dev-train/fold1_room2_mix001.csv"
    text = csv.read_text()
    csv.unlink()
    again, report = write_scene_set(table, params, simulation, array, RATE, progress=False)
    assert report == {**report, "written": 1, "found": 2} and csv.read_text() == text
    pd.testing.assert_frame_equal(again, recordings)
    # more recordings later: the finished ones are kept, the new one is made
    more, report = write_scene_set(
        table, {**params, "recordings": {"train": 3, "test": 1}}, simulation, array, RATE, progress=False
    )
    assert report["written"] == 1 and report["found"] == 3 and len(more) == 4
    # other settings into the same folder: refused, nothing written
    before = json.loads((tmp_path / "scenes/scenes.json").read_text())["fingerprint"]
    other = {**params, "seed": 1}
    with pytest.raises(ValueError, match=r"holds recordings of other settings.*scenes.root"):
        write_scene_set(table, other, simulation, array, RATE, progress=False)
    assert json.loads((tmp_path / "scenes/scenes.json").read_text())["fingerprint"] == before


@pytest.mark.parametrize(
    "synthesis, message",
    [
        ({"gap_s": [2.0, 1.0]}, r"scenes.synthesis.ranges.*gap_s"),
        ({"max_polyphony": 4}, r"scenes.synthesis.max_polyphony"),
        ({"moving_fraction": 1.5}, r"scenes.synthesis.moving_fraction"),
        ({"rir_hop_s": 0.2}, r"scenes.synthesis.rir_hop_s"),
        ({"wobble": 1}, r"wobble"),
    ],
)
def test_bad_synthesis_parameters_are_refused_by_name(synthesis, message):
    from mc_simclr.acoustics.scene_set import SceneSetConfig

    with pytest.raises(ValueError, match=message):
        SceneSetConfig.from_params({"root": "x", "synthesis": synthesis})
