"""Channel symmetries derived from any array geometry (mc_simclr.acoustics.array / .symmetry), proven
against simulation: the square, the regular hexagon, the tetrahedral "MIC format" and a uniform
linear array.

What a symmetry claims: swapping the channels by ``perm`` gives what the array records of the source
moved by ``R``. Two checks per geometry and symmetry:

* Free field (direct path only, exact fractional delays applied in the frequency domain): the swapped
  recording of a source at ``d`` equals the recording of a source at ``R d``. Measured: max
  difference 1e-8 or less (float32 rounding) for every symmetry of the four arrays.
* A reverberant room (pyroomacoustics, RT60 0.2 s, the array at the centre of a 6 x 5 x 3 m room, a
  source 1.5 m away): the room itself has none of these symmetries (its walls are not where the
  array's mirror images are), so the recordings are not equal; the direct path still decides where
  GCC-PHAT peaks. The GCC-PHAT peak lag of every microphone pair (on a 1/16-sample grid) of the
  swapped recording of ``d`` and of the recording of ``R d`` agree within 0.19 samples: three steps
  of the grid, 4.1 mm of path at 16 kHz, against the 4.7 samples a 0.1 m array spans. Measured
  worst over all symmetries: square 0.0625, hexagon 0.125, tetrahedral 0.0625, linear 0.0 samples.
  Moving the source by 5 degrees instead moves some pair's peak by 0.3125 / 0.375 / 0.25 / 0.375
  samples (checked below, so the test can fail).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mc_simclr.acoustics.array import MIC_FORMAT, ArrayGeometry
from mc_simclr.acoustics.rir import get_backend, spatialize
from mc_simclr.acoustics.scene import SceneConfig, make_scene
from mc_simclr.acoustics.symmetry import ArraySymmetries, DirectionLabels, direction_vectors
from mc_simclr.augment import ChannelSwap, FeatureChannelSwap
from mc_simclr.features import FeatureExtractor

FS = 16000
C = 343.0
REGULAR_TETRAHEDRON = [(45.0, 35.26438968), (-45.0, -35.26438968), (135.0, -35.26438968), (-135.0, 35.26438968)]
GEOMETRIES = {
    "square": ArrayGeometry.circular(4, 0.1),
    "hexagon": ArrayGeometry.circular(6, 0.1),
    "tetrahedral": ArrayGeometry.tetrahedral(),
    "linear": ArrayGeometry.linear(4, 0.04),
}
#: (azimuth, elevation) of the test sources; a planar array's labels do not depend on elevation, a
#: linear one's only on the angle to its axis.
DIRECTIONS = [(30.0, 0.0), (-100.0, 20.0), (150.0, -25.0)]


# --------------------------------------------------------------------------------------------
# The groups
# --------------------------------------------------------------------------------------------
def test_group_sizes_of_the_issue():
    sizes = {name: len(ArraySymmetries.of(g)) for name, g in GEOMETRIES.items()}
    assert sizes == {"square": 8, "hexagon": 12, "tetrahedral": 8, "linear": 2}
    assert len(ArraySymmetries.of(ArrayGeometry.circular(8))) == 16
    mic_format = ArraySymmetries.of(GEOMETRIES["tetrahedral"])
    assert mic_format.labels.kind == "direction"
    assert mic_format.fixes_vertical.all()
    assert mic_format.proper.sum() == 4  # D2d: all 8 fix the vertical axis
    regular = ArrayGeometry.tetrahedral(directions_deg=REGULAR_TETRAHEDRON)
    assert len(ArraySymmetries.of(regular)) == 24  # every permutation of a regular tetrahedron
    assert ArraySymmetries.of(regular).fixes_vertical.sum() == 8
    assert len(ArraySymmetries.of(regular, labels="azimuth")) == 8  # azimuth labels keep those 8 only


def test_an_irregular_array_has_only_the_identity():
    positions = [[0.05, 0.0, 0.0], [0.0, 0.03, 0.0], [-0.04, 0.0, 0.01], [-0.01, -0.03, -0.01]]
    positions = (np.asarray(positions) - np.mean(positions, axis=0)).tolist()
    symmetries = ArraySymmetries.of(ArrayGeometry.from_params({"kind": "custom", "custom": {"positions": positions}}))
    assert len(symmetries) == 1
    assert symmetries.permutation(0) == [0, 1, 2, 3]


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_every_symmetry_is_an_orthogonal_map_of_the_microphones(name):
    symmetries = ArraySymmetries.of(GEOMETRIES[name])
    p = GEOMETRIES[name].array
    assert symmetries.permutation(0) == list(range(len(p)))  # the identity first
    assert len({tuple(perm) for perm in symmetries.permutations}) == len(symmetries)
    for perm, rotation in zip(symmetries.permutations, symmetries.rotations, strict=True):
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(p[perm] @ rotation.T, p, atol=1e-12)


def test_the_square_keeps_its_classic_numbering_and_azimuth_map():
    """The paper's square: the same permutations and bit-identical azimuth maps as the closed form
    (rotation k: azimuth - 90 k; reflection 4 + k: -azimuth + 90 k), in NumPy and in float32 torch."""
    square = ArraySymmetries.of(4)
    for s in range(8):
        k = s % 4
        expected = [(m + k) % 4 for m in range(4)] if s < 4 else [(k - m) % 4 for m in range(4)]
        assert square.permutation(s) == expected
    rng = np.random.default_rng(0)
    azimuth, symmetry = rng.uniform(-180, 180, 500), rng.integers(0, 8, 500)
    k = symmetry % 4
    closed = np.where(symmetry >= 4, -azimuth + k * 90.0, azimuth - k * 90.0)
    closed = -((-closed + 180.0) % 360.0 - 180.0)
    assert np.array_equal(square.map_azimuth(azimuth, symmetry), closed)
    az32, sym = torch.tensor(azimuth, dtype=torch.float32), torch.tensor(symmetry)
    kf = torch.where(sym >= 4, sym - 4, sym).to(torch.float32)
    closed32 = torch.where(sym >= 4, -az32 + kf * 90.0, az32 - kf * 90.0)
    closed32 = -torch.remainder(-closed32 + 180.0, 360.0) + 180.0
    assert torch.equal(square.map_azimuth(az32, sym), closed32)


def test_a_custom_square_is_the_circular_square():
    """The square given as ``custom`` positions: the same symmetries, maps and labels."""
    custom = ArrayGeometry.from_params(
        {"kind": "custom", "custom": {"positions": [[0.05, 0, 0], [0, 0.05, 0], [-0.05, 0, 0], [0, -0.05, 0]]}}
    )
    a, b = ArraySymmetries.of(custom), ArraySymmetries.of(4)
    assert np.array_equal(a.permutations, b.permutations)
    assert a.labels == b.labels
    azimuth = np.linspace(-179.0, 180.0, 37)
    for s in range(8):
        assert np.array_equal(a.map_azimuth(azimuth, s), b.map_azimuth(azimuth, s))


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_map_directions_is_the_rotation_of_the_direction(name):
    symmetries = ArraySymmetries.of(GEOMETRIES[name])
    az, el = np.array([d[0] for d in DIRECTIONS]), np.array([d[1] for d in DIRECTIONS])
    for s, rotation in enumerate(symmetries.rotations):
        mapped_az, mapped_el = symmetries.map_directions(az, el, np.full(len(az), s))
        np.testing.assert_allclose(
            direction_vectors(mapped_az, mapped_el), direction_vectors(az, el) @ rotation.T, atol=1e-9
        )


def test_labels_follow_what_the_array_resolves():
    assert [DirectionLabels.of(g).kind for g in GEOMETRIES.values()] == ["azimuth", "azimuth", "direction", "axis"]
    linear = DirectionLabels.of(GEOMETRIES["linear"])
    assert linear.axis == (1.0, 0.0, 0.0)
    np.testing.assert_allclose(linear.axis_angle([0.0, 90.0, 180.0, 45.0], [0.0, 0.0, 0.0, 90.0]), [0, 90, 180, 90])
    reversal = ArraySymmetries.of(GEOMETRIES["linear"])
    assert reversal.permutation(1) == [3, 2, 1, 0]
    az, el = reversal.map_directions(np.array([30.0]), np.array([10.0]), np.array([1]))
    np.testing.assert_allclose(linear.axis_angle(az, el), 180.0 - linear.axis_angle([30.0], [10.0]), atol=1e-9)
    vectors = DirectionLabels("direction").vectors([30.0], [20.0])
    assert DirectionLabels("direction").decode(vectors)["pred_elevation"] == pytest.approx([20.0])


# --------------------------------------------------------------------------------------------
# Proven against simulation
# --------------------------------------------------------------------------------------------
_SPECTRUM = np.fft.rfft(np.random.default_rng(11).standard_normal(FS))
_SPECTRUM[-1] = 0.0  # no Nyquist bin: a fractional delay there would not stay real
_FREQS = np.fft.rfftfreq(FS, 1.0 / FS)


def free_field(geometry: ArrayGeometry, direction: np.ndarray, distance: float = 2.0) -> np.ndarray:
    """Direct path only: amplitude 1/r, delay r/c applied exactly (circularly) in the frequency domain."""
    ranges = np.linalg.norm(geometry.array - distance * np.asarray(direction), axis=1)
    return np.stack([np.fft.irfft(_SPECTRUM * np.exp(-2j * np.pi * _FREQS * r / C) / r, n=FS) for r in ranges]).astype(
        np.float32
    )


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_swap_equals_the_free_field_source_moved_by_the_symmetry(name):
    geometry = GEOMETRIES[name]
    symmetries = ArraySymmetries.of(geometry)
    swap = ChannelSwap(symmetries)
    worst = 0.0
    for az, el in DIRECTIONS:
        d = direction_vectors(az, el)
        x = torch.from_numpy(free_field(geometry, d))[None]
        for s, rotation in enumerate(symmetries.rotations):
            swapped, _ = swap(x, torch.tensor([s]))
            moved = free_field(geometry, rotation @ d)
            worst = max(worst, float(np.abs(swapped[0].numpy() - moved).max()))
            if s and not np.allclose(rotation @ d, d):
                assert np.abs(free_field(geometry, rotation @ d) - x[0].numpy()).max() > 1e-3  # it did move
    assert worst < 1e-6  # measured <= 1e-8


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_feature_swap_equals_features_of_the_swapped_waveforms(name):
    """FeatureChannelSwap (Mel channels and GCC pairs permuted, reversed pairs' lags flipped) on any array."""
    geometry = GEOMETRIES[name]
    symmetries = ArraySymmetries.of(geometry)
    extractor = FeatureExtractor(sample_rate=FS, n_mics=geometry.n_mics)
    x = torch.from_numpy(free_field(geometry, direction_vectors(-100.0, 20.0)))[None]
    with torch.no_grad():
        reference = extractor(x)
        for s in range(len(symmetries)):
            swapped, _ = ChannelSwap(symmetries)(x, torch.tensor([s]))
            features = FeatureChannelSwap(symmetries)(reference, torch.tensor([s]))
            assert (features[..., 1:] - extractor(swapped)[..., 1:]).abs().max().item() < 1e-4


def gcc_peak_lags(audio: np.ndarray, upsample: int = 16, max_lag: float = 8.0) -> np.ndarray:
    """GCC-PHAT peak lag (samples, 1/upsample resolution) of every microphone pair (i < j)."""
    spectra = np.fft.rfft(audio, n=2 * audio.shape[1])
    lags = []
    for i, j in itertools.combinations(range(len(audio)), 2):
        cross = spectra[i] * np.conj(spectra[j])
        cross /= np.abs(cross) + 1e-12
        correlation = np.fft.irfft(cross, n=2 * audio.shape[1] * upsample)
        window = int(max_lag * upsample)
        centred = np.concatenate([correlation[-window:], correlation[: window + 1]])
        lags.append((np.argmax(centred) - window) / upsample)
    return np.asarray(lags)


ROOM = np.array([6.0, 5.0, 3.0])
CENTRE = np.array([3.0, 2.5, 1.5])


def room_recording(geometry: ArrayGeometry, direction: np.ndarray, clip: np.ndarray) -> np.ndarray:
    scene = make_scene(ROOM, 0.2, CENTRE, CENTRE + 1.5 * np.asarray(direction), array=geometry)
    return spatialize(clip, get_backend("pyroomacoustics").simulate(scene, FS))


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_swap_matches_the_moved_source_in_a_room_at_the_gcc_peaks(name):
    geometry = GEOMETRIES[name]
    symmetries = ArraySymmetries.of(geometry)
    clip = np.random.default_rng(12).standard_normal(FS // 2).astype(np.float32)
    az, el = (-100.0, 20.0) if symmetries.labels.kind != "azimuth" else (-100.0, 0.0)
    d = direction_vectors(az, el)
    x = room_recording(geometry, d, clip)
    worst = 0.0
    for s, rotation in enumerate(symmetries.rotations):
        swapped = x[symmetries.permutation(s)]
        moved = room_recording(geometry, rotation @ d, clip)
        worst = max(worst, float(np.abs(gcc_peak_lags(swapped) - gcc_peak_lags(moved)).max()))
    assert worst < 0.19  # measured <= 0.125
    nearby = room_recording(geometry, direction_vectors(az + 5.0, el), clip)  # the check can fail
    assert np.abs(gcc_peak_lags(nearby) - gcc_peak_lags(x)).max() > 0.19


# --------------------------------------------------------------------------------------------
# Geometry from configuration, and its errors
# --------------------------------------------------------------------------------------------
def test_geometry_kinds_from_parameters():
    square = {"kind": "circular", "circular": {"n_mics": 4, "diameter": 0.1}}
    assert ArrayGeometry.from_params(square) == ArrayGeometry.circular()
    mic = ArrayGeometry.from_params({"kind": "tetrahedral"})
    np.testing.assert_allclose(np.linalg.norm(mic.array, axis=1), 0.042)
    az = np.degrees(np.arctan2(mic.array[:, 1], mic.array[:, 0]))
    np.testing.assert_allclose(az, [d[0] for d in MIC_FORMAT], atol=1e-9)
    linear = ArrayGeometry.from_params({"kind": "linear", "linear": {"n_mics": 3, "spacing": 0.05}})
    np.testing.assert_allclose(linear.array[:, 0], [-0.05, 0.0, 0.05])
    assert ArrayGeometry.from_json(mic.to_json()) == mic
    assert ArrayGeometry.from_dict(mic.summary()) == mic
    assert [g.resolves for g in GEOMETRIES.values()] == ["azimuth", "azimuth", "direction", "axis"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"circular": {"n_mics": 1}}, r"array\.circular\.n_mics must be >= 2"),
        ({"kind": "custom", "custom": {"positions": [[0.0, 0.0, 0.0]]}}, r"array\.custom\.positions needs at least 2"),
        ({"kind": "custom", "custom": {"positions": [[0, 0, 0.0], [0, 0, 0.0]]}}, "microphones 0 and 1 coincide"),
        ({"kind": "custom", "custom": {"positions": [[1.0, 0, 0], [1.1, 0, 0]]}}, r"custom\.positions must be centred"),
        ({"kind": "custom", "custom": {"positions": [[0.1, 0], [-0.1, 0]]}}, r"must be a list of \[x, y, z\]"),
        ({"kind": "custom"}, r"array\.custom\.positions must be a list"),
        ({"kind": "sphere"}, r"array\.kind must be one of"),
        ({"kind": "linear", "linear": {"n_mics": 4, "spacing": -0.1}}, r"array\.linear\.spacing must be > 0"),
        ({"circular": {"radius": 0.1}}, r"array\.circular\.radius"),
        ({"n_mics": 6}, r"array\.n_mics"),
    ],
)
def test_bad_arrays_are_refused_naming_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        ArrayGeometry.from_params(params)


def test_an_array_that_does_not_fit_the_smallest_room_is_refused():
    wide = {"kind": "custom", "custom": {"positions": [[1.2, 0, 0], [-1.2, 0, 0]]}}
    with pytest.raises(ValueError, match=r"array: its microphones reach 1\.200 m .* smallest room"):
        SceneConfig.from_params({}, wide)
    tall = {"kind": "custom", "custom": {"positions": [[0, 0, 0.6], [0, 0, -0.6]]}}
    with pytest.raises(ValueError, match=r"array: its microphones reach 0\.600 m above and below"):
        SceneConfig.from_params({}, tall)
    assert SceneConfig.from_params({}, {"kind": "tetrahedral"}).array.kind == "tetrahedral"


def test_scenes_place_any_array_and_keep_it_in_their_records():
    geometry = ArrayGeometry.tetrahedral(orientation_deg=30.0)
    scene = make_scene(ROOM, 0.3, CENTRE, CENTRE + np.array([0.0, 2.0, 1.0]), array=geometry)
    offsets = np.asarray(scene.mic_positions) - CENTRE
    turn = math.radians(30.0)
    rz = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]])
    np.testing.assert_allclose(offsets, geometry.array @ rz.T, atol=1e-12)
    assert scene.azimuth_deg == pytest.approx(60.0)
    assert scene.elevation_deg == pytest.approx(26.565, abs=1e-3)
    assert type(scene).from_record(scene.to_record()) == scene


def test_srp_phat_finds_azimuth_and_elevation_with_a_3d_array():
    """The time-domain SRP-PHAT on a 1-degree grid (the tetrahedral array's baseline): exact in the
    free field, within 2 degrees in the reverberant room (measured: 1), about 0.02 s a clip."""
    from mc_simclr.baselines import SRPPhat

    geometry = GEOMETRIES["tetrahedral"]
    srp = SRPPhat(FS, 1024, (300.0, 6000.0), geometry=geometry)
    clip = np.random.default_rng(1).standard_normal(FS).astype(np.float32)
    for az, el in [(30.0, 0.0), (-100.0, 20.0), (150.0, -25.0), (60.0, 60.0)]:
        d = direction_vectors(az, el)
        assert srp.locate(free_field(geometry, d)) == {"pred_azimuth": az, "pred_elevation": el}
        found = srp.locate(room_recording(geometry, d, clip))
        error = np.degrees(
            np.arccos(np.clip(direction_vectors(found["pred_azimuth"], found["pred_elevation"]) @ d, -1, 1))
        )
        assert error <= 2.0, (az, el, found)
    linear = SRPPhat(FS, 1024, (300.0, 6000.0), geometry=GEOMETRIES["linear"])
    axis_angle = linear.locate(free_field(GEOMETRIES["linear"], direction_vectors(-100.0, 20.0)))["pred_axis_angle"]
    assert axis_angle == pytest.approx(
        DirectionLabels.of(GEOMETRIES["linear"]).axis_angle([-100.0], [20.0])[0], abs=1.0
    )
