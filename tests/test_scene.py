"""Scene sampling follows the paper's distribution and its geometry is self-consistent."""

import math

import numpy as np
import pytest

from mc_simclr.acoustics.scene import (
    Scene,
    SceneConfig,
    circular_array,
    clip_rng,
    make_scene,
    relative_direction,
    sabine_absorption,
    sample_scene,
    wrap_degrees,
)


@pytest.fixture(scope="module")
def scenes():
    config = SceneConfig()
    return [sample_scene(np.random.default_rng(seed), config) for seed in range(400)]


def test_ranges_and_distances(scenes):
    for s in scenes:
        room = np.array(s.room_dims)
        assert 3.0 <= room[0] <= 10.0
        assert 3.0 <= room[1] <= 10.0
        assert 2.5 <= room[2] <= 4.0
        assert 0.1 <= s.rt60 <= 1.0
        assert sabine_absorption(room, s.rt60) <= 1.0
        for point in (np.array(s.source_position), *map(np.array, s.mic_positions)):
            assert np.all(point[:2] >= 0.5 - 0.051)
            assert np.all(point[:2] <= room[:2] - 0.5 + 0.051)
        for z in (s.source_position[2], s.array_center[2]):
            assert 0.5 <= z <= 2.0
        assert np.all(np.array(s.array_center[:2]) >= 0.55)
        assert np.all(np.array(s.array_center[:2]) <= room[:2] - 0.55)
        assert np.all(np.array(s.source_position[:2]) >= 0.5)
        assert np.linalg.norm(np.array(s.source_position) - np.array(s.array_center)) >= 0.5


def test_distribution_covers_ranges(scenes):
    rt60 = np.array([s.rt60 for s in scenes])
    az = np.array([s.azimuth_deg for s in scenes])
    assert rt60.min() < 0.2
    assert rt60.max() > 0.9
    # azimuth roughly uniform: every 45 degree sector is populated
    counts, _ = np.histogram(az, bins=8, range=(-180, 180))
    assert counts.min() > 0.4 * len(scenes) / 8


def test_azimuth_consistent_with_positions(scenes):
    for s in scenes:
        delta = np.array(s.source_position) - np.array(s.array_center)
        assert math.isclose(s.distance_m, float(np.linalg.norm(delta)), rel_tol=1e-9)
        expected = math.degrees(math.atan2(delta[1], delta[0]))
        assert abs(wrap_degrees(s.azimuth_deg - expected)) < 1e-9
        assert math.isclose(math.sin(math.radians(s.elevation_deg)) * s.distance_m, delta[2], abs_tol=1e-9)
        # mic 0 on the +x axis, counter-clockwise order, 0.1 m diameter
        mics = np.array(s.mic_positions) - np.array(s.array_center)
        assert np.allclose(mics[0], [0.05, 0, 0])
        assert np.allclose(mics[1], [0, 0.05, 0], atol=1e-12)


def test_azimuth_zero_points_at_mic_zero_for_any_orientation():
    center = np.array([3.0, 3.0, 1.5])
    for orientation in (0.0, 30.0, -120.0):
        mic0 = circular_array(center, 0.1, 4, orientation)[0]
        source = center + 20.0 * (mic0 - center)
        az, el, dist = relative_direction(center, source, orientation)
        assert abs(az) < 1e-9
        assert abs(el) < 1e-9
        assert math.isclose(dist, 1.0)


def test_same_seed_same_scenes_and_order_independent():
    config = SceneConfig()
    a = sample_scene(clip_rng(7, "clip_a"), config)
    b = sample_scene(clip_rng(7, "clip_a"), config)
    c = sample_scene(clip_rng(7, "clip_b"), config)
    assert a == b
    assert a != c


def test_record_round_trip():
    scene = make_scene([5, 4, 3], 0.5, [2, 2, 1.2], [4, 3, 1.5], array_orientation_deg=15.0)
    assert Scene.from_record(scene.to_record()) == scene


def test_infeasible_rooms_are_redrawn():
    # Small rooms with very short RT60 need absorption > 1 most of the time.
    config = SceneConfig(room_width=(3.0, 10.0), room_length=(3.0, 10.0), rt60=(0.1, 0.15))
    scenes = [sample_scene(np.random.default_rng(seed), config) for seed in range(50)]
    assert sum(s.redraws for s in scenes) > 0
    assert all(sabine_absorption(np.array(s.room_dims), s.rt60) <= 1.0 for s in scenes)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"room_width": [3.0, 0.8]}, "simulation.scene.room_width"),
        ({"room_width": [0.5, 0.9]}, "simulation.scene.room_width"),
        ({"rt60": [0.01, 0.02]}, "simulation.scene.rt60"),
        ({"array_diameter": 0}, "simulation.scene.array_diameter"),
        ({"object_height": [0.5, 3.9]}, "simulation.scene.object_height"),
        ({"colour": "red"}, "simulation.scene.colour"),
    ],
)
def test_impossible_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        SceneConfig.from_params(params)
