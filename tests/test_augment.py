"""Tests for ``mc_simclr.augment``: ChannelSwap (against simulated geometry), the square's azimuth map, Mixup,
RandomResizedCrop (identity, shared box, lag-0 shift), ChannelDrop, reprs, and CPU/CUDA runs.

Measured on the 2-core CPU this was written on:

* Free field (direct path only, exact fractional delays): swapping the channels of a source at
  ``phi`` and simulating the source at the azimuth the symmetry maps it to agree to 3.7e-9 in the
  waveforms and exactly (0.0) in the features, for all 8 symmetries and 6 azimuths.
* Reverberant rooms, microphones permuted (mic m placed where mic perm[m] was): ``pyroomacoustics``
  gives bit-identical RIRs. ``torchrir`` gives bit-identical RIRs up to the diffuse tail, but its
  tail differs (max 0.08-0.11 against a 0.48 direct peak): the tail noise is seeded with
  ``scene_seed``, a hash of the microphone positions *in order*, so permuting them draws another
  tail. The torchrir check is therefore restricted to the image-source part (before ``tdiff``).
* Square room with the array at its centre (invariant under the 8 symmetries), pyroomacoustics,
  source moved to the mapped azimuth: features agree to 2.4e-5 (log-Mel) and 1.4e-5 (GCC).
* RandomResizedCrop (defaults scale (0.8, 1), ratio (0.8, 1.25); T = 51, F = 64; 500 items;
  Gaussian peak of unit width at lag 0), shift of the peak (parabolic sub-bin): max |shift|
  0.07 / 1.04 / 2.03 lags for ``max_lag_shift`` 0 / 1 / 2. The excess over ``m`` is the half pixel
  between the module's lag-0 coordinate ``F/2`` and the centre ``F/2 + 0.5`` of bin F/2 under
  ``align_corners=False`` (``0.5 (F/w - 1) <= 0.125`` lags here) plus the interpolation error,
  well inside the asserted ``m + 0.5``. Unconstrained (``None``): median 1.47, 90th percentile
  3.95, 99th 5.96, max 7.28 lags; 4.4 % of the draws move lag 0 by more than the 4.7 lags a 0.1 m array can span.
* ChannelDrop(0.1) over 20000 channels: empirical rate 0.1007 (seeded).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mc_simclr import augment
from mc_simclr.acoustics.rir import get_backend, spatialize
from mc_simclr.acoustics.scene import make_scene
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.augment import (
    ChannelDrop,
    ChannelSwap,
    Mixup,
    MultiLevelAugmentation,
    RandomResizedCrop,
)
from mc_simclr.features import FeatureExtractor

FS = 16000
C = 343.0
RADIUS = 0.05  # 0.1 m diameter
MIC_XY = RADIUS * np.stack([np.cos(np.arange(4) * np.pi / 2), np.sin(np.arange(4) * np.pi / 2)], axis=1)
AZIMUTHS = (0.0, 30.0, 45.0, 100.0, 200.0, -170.0)
SYMMETRIES = list(range(8))

SQUARE = ArraySymmetries.of(4)  # the paper's square

CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))


def noise(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def features(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x)
    with torch.no_grad():
        return FeatureExtractor()(x if x.ndim == 3 else x[None])


def angular_difference(a, b) -> np.ndarray:
    return (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 180.0) % 360.0 - 180.0


# --------------------------------------------------------------------------------------------
# Geometry written in the test
# --------------------------------------------------------------------------------------------
def transform_of_symmetry(symmetry: int) -> np.ndarray:
    """The orthogonal 2x2 map ``G`` with ``G @ mic[perm[m]] = mic[m]`` (orthogonal Procrustes).

    Swapped channel ``m`` is what microphone ``perm[m]`` heard; a source moved by ``G`` is heard at
    microphone ``m`` exactly as the original source was at ``perm[m]``.
    """
    perm = SQUARE.permutation(symmetry)
    u, _, vt = np.linalg.svd(MIC_XY.T @ MIC_XY[perm])
    g = u @ vt
    np.testing.assert_allclose(g @ MIC_XY[perm].T, MIC_XY.T, atol=1e-12)
    return g


def geometric_azimuth(azimuth_deg: float, symmetry: int) -> float:
    direction = np.array([math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))])
    moved = transform_of_symmetry(symmetry) @ direction
    return math.degrees(math.atan2(moved[1], moved[0]))


_CLIP_SPECTRUM = np.fft.rfft(noise(FS, seed=11))
_CLIP_SPECTRUM[-1] = 0.0  # no Nyquist bin: a fractional delay there would not stay real
_FREQS = np.fft.rfftfreq(FS, 1.0 / FS)


def free_field(azimuth_deg: float, distance: float = 2.0) -> np.ndarray:
    """Direct path only: amplitude 1/r, delay r/c applied exactly (circularly) in the frequency domain."""
    source = distance * np.array([math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))])
    ranges = np.linalg.norm(MIC_XY - source, axis=1)
    return np.stack(
        [np.fft.irfft(_CLIP_SPECTRUM * np.exp(-2j * np.pi * _FREQS * r / C) / r, n=FS) for r in ranges]
    ).astype(np.float32)


def swap(x: np.ndarray | torch.Tensor, symmetry: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    out, returned = ChannelSwap()(x[None], torch.tensor([symmetry]))
    assert returned.tolist() == [symmetry]
    return out[0]


def test_test_geometry_matches_library_convention():
    """Mic m at 90 m degrees from mic 0, azimuth counter-clockwise from mic 0 (scene.py)."""
    scene = make_scene(np.array([6.0, 5.0, 3.0]), 0.3, np.array([2.0, 2.0, 1.5]), np.array([2.0, 4.0, 1.5]))
    np.testing.assert_allclose(np.asarray(scene.mic_positions)[:, :2] - 2.0, MIC_XY, atol=1e-12)
    assert scene.azimuth_deg == pytest.approx(90.0)


# --------------------------------------------------------------------------------------------
# ChannelSwap vs geometry
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("symmetry", SYMMETRIES)
def test_swap_equals_free_field_source_at_mapped_azimuth(symmetry):
    x = torch.from_numpy(np.stack([free_field(azimuth) for azimuth in AZIMUTHS]))
    y = torch.from_numpy(np.stack([free_field(geometric_azimuth(azimuth, symmetry)) for azimuth in AZIMUTHS]))
    swapped, _ = ChannelSwap()(x, torch.full((len(AZIMUTHS),), symmetry))
    assert (swapped - y).abs().max().item() < 1e-6  # measured 3.7e-9
    assert (features(swapped) - features(y)).abs().max().item() < 1e-4  # measured 0.0


def test_free_field_distinguishes_azimuths():
    """Guard against a vacuous comparison: another azimuth does change the features."""
    assert (features(free_field(30.0)) - features(free_field(35.0)))[:, 4:].abs().max().item() > 0.05


@pytest.mark.parametrize("symmetry", SYMMETRIES)
def test_square_map_azimuth_agrees_with_geometry(symmetry):
    expected = np.array([geometric_azimuth(a, symmetry) for a in AZIMUTHS])
    scalars = np.array([SQUARE.map_azimuth(a, symmetry) for a in AZIMUTHS])
    assert all(isinstance(SQUARE.map_azimuth(a, symmetry), float) for a in AZIMUTHS)
    as_numpy = SQUARE.map_azimuth(np.array(AZIMUTHS), symmetry)
    as_numpy_sym = SQUARE.map_azimuth(np.array(AZIMUTHS), np.full(len(AZIMUTHS), symmetry))
    as_torch = SQUARE.map_azimuth(torch.tensor(AZIMUTHS), torch.tensor(symmetry))
    as_torch_sym = SQUARE.map_azimuth(torch.tensor(AZIMUTHS), torch.full((len(AZIMUTHS),), symmetry))
    assert isinstance(as_numpy, np.ndarray)
    assert isinstance(as_torch, torch.Tensor)
    cases = ((scalars, 1e-9), (as_numpy, 1e-9), (as_numpy_sym, 1e-9), (as_torch, 1e-4), (as_torch_sym, 1e-4))
    for mapped, tol in cases:
        mapped = np.asarray(mapped, dtype=np.float64)
        assert np.abs(angular_difference(mapped, expected)).max() < tol
        assert np.all((mapped > -180.0) & (mapped <= 180.0))


def test_square_map_azimuth_elementwise_over_symmetries():
    azimuths = np.array([10.0, -20.0, 170.0, 180.0, 0.0, 95.0, -135.0, 60.0])
    symmetries = np.arange(8)
    expected = [geometric_azimuth(a, s) for a, s in zip(azimuths, symmetries, strict=True)]
    assert np.abs(angular_difference(SQUARE.map_azimuth(azimuths, symmetries), expected)).max() < 1e-9
    as_torch = SQUARE.map_azimuth(torch.tensor(azimuths), torch.tensor(symmetries)).numpy()
    assert np.abs(angular_difference(as_torch, expected)).max() < 1e-4
    assert SQUARE.map_azimuth(-180.0, 0) == 180.0


def test_symmetry_permutations_are_the_eight_square_symmetries():
    perms = {tuple(SQUARE.permutation(s)) for s in range(len(SQUARE))}
    assert len(perms) == 8
    assert SQUARE.permutation(0) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="symmetry must be in"):
        SQUARE.permutation(8)
    with pytest.raises(ValueError, match="symmetry must be in"):
        SQUARE.permutation(-1)


def _room_rirs(backend_name: str, scene):
    options = {"device": "cpu"} if backend_name == "torchrir" else {}
    return get_backend(backend_name, **options).simulate(scene, FS)


def _room_scene():
    centre = np.array([2.5, 2.0, 1.5])
    direction = np.array([math.cos(0.7), math.sin(0.7), 0.0])
    return make_scene(np.array([6.0, 5.0, 3.0]), 0.3, centre, centre + 2.0 * direction)


@pytest.mark.parametrize("backend_name", ["torchrir", "pyroomacoustics"])
def test_swap_equals_reverberant_simulation_with_permuted_microphones(backend_name):
    """Mic m placed where mic perm[m] was: its recording is the original channel perm[m]."""
    scene = _room_scene()
    clip = noise(FS, seed=12).astype(np.float32)
    rirs = _room_rirs(backend_name, scene)
    if backend_name == "torchrir":
        # The diffuse tail is seeded with a hash of the microphone positions in order (scene_seed),
        # so permuted microphones get another tail: compare the image-source part only. The tail
        # starts at tdiff >= diffuse_attenuation_db / 60 * RT60 = 12 / 60 * 0.3 s = 960 samples.
        n_exact = 900
    else:
        n_exact = rirs.shape[1]
    early = rirs[:, :n_exact]
    for symmetry in SYMMETRIES:
        perm = SQUARE.permutation(symmetry)
        permuted = dataclasses.replace(scene, mic_positions=tuple(scene.mic_positions[p] for p in perm))
        other = _room_rirs(backend_name, permuted)[:, :n_exact]
        swapped = swap(torch.from_numpy(early), symmetry).numpy()
        np.testing.assert_array_equal(swapped, other)
        np.testing.assert_array_equal(swap(spatialize(clip, early), symmetry).numpy(), spatialize(clip, other))


def test_swap_equals_square_room_source_at_mapped_azimuth():
    """A square room with the array at its centre has the 8 symmetries of the array itself."""
    room = np.array([5.0, 5.0, 3.0])
    centre = np.array([2.5, 2.5, 1.5])

    def at(azimuth):
        return centre + 2.0 * np.array([math.cos(math.radians(azimuth)), math.sin(math.radians(azimuth)), 0.0])

    clip = noise(FS, seed=13).astype(np.float32)
    azimuth = 30.0
    x = spatialize(clip, _room_rirs("pyroomacoustics", make_scene(room, 0.2, centre, at(azimuth))))
    reference = features(x)
    worst = 0.0
    for symmetry in SYMMETRIES:
        mapped = geometric_azimuth(azimuth, symmetry)
        y = spatialize(clip, _room_rirs("pyroomacoustics", make_scene(room, 0.2, centre, at(mapped))))
        diff = (features(swap(x, symmetry)) - features(y)).abs().max().item()
        worst = max(worst, diff)
        if symmetry:
            assert (features(y) - reference).abs().max().item() > 0.05  # the source did move
    assert worst < 5e-4  # measured 2.4e-5


# --------------------------------------------------------------------------------------------
# ChannelSwap mechanics
# --------------------------------------------------------------------------------------------
def test_swap_explicit_symmetry_is_reused_for_the_second_view():
    cs = ChannelSwap()
    g = torch.Generator().manual_seed(0)
    view1 = torch.randn(16, 4, 100, generator=g)
    view2 = torch.randn(16, 4, 100, generator=g)
    out1, sym = cs(view1, generator=g)
    out2, sym2 = cs(view2, sym)
    assert torch.equal(sym2, sym)
    assert sym.shape == (16,)
    assert sym.min() >= 0
    assert sym.max() < 8
    for b in range(16):
        perm = SQUARE.permutation(int(sym[b]))
        torch.testing.assert_close(out1[b], view1[b, perm])
        torch.testing.assert_close(out2[b], view2[b, perm])


def test_swap_batched_with_different_symmetries_equals_per_item():
    cs = ChannelSwap()
    x = torch.randn(8, 4, 3, 5)  # works on any trailing shape
    symmetries = torch.tensor([3, 0, 7, 5, 1, 6, 2, 4])
    batched, _ = cs(x, symmetries)
    single = torch.cat([cs(x[b : b + 1], symmetries[b : b + 1])[0] for b in range(8)])
    torch.testing.assert_close(batched, single, rtol=0, atol=0)


def test_swap_draws_all_symmetries_reproducibly():
    cs = ChannelSwap()
    a = cs.sample(4000, generator=torch.Generator().manual_seed(1))
    b = cs.sample(4000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    counts = torch.bincount(a, minlength=8)
    assert counts.min() > 400  # ~500 each


def test_swap_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"ChannelSwap expects \(batch, 4"):
        ChannelSwap()(torch.zeros(2, 3, 10))


# --------------------------------------------------------------------------------------------
# Mixup
# --------------------------------------------------------------------------------------------
def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean(dim=(1, 2)).sqrt()


def test_mixup_keeps_shape_rms_and_target_dominates():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 4, 4000, generator=g) * torch.logspace(-3, 1, 16)[:, None, None]
    x[:, 0] *= 3.0  # a level difference between microphones
    out = Mixup(alpha_max=0.01)(x, generator=g)
    assert out.shape == x.shape
    torch.testing.assert_close(_rms(out), _rms(x), rtol=1e-5, atol=0)
    flat_x, flat_out = x.flatten(1), out.flatten(1)
    corr = torch.nn.functional.cosine_similarity(
        flat_x - flat_x.mean(1, keepdim=True), flat_out - flat_out.mean(1, keepdim=True)
    )
    assert corr.min() >= 0.99, corr
    # one gain for all microphones: the inter-channel level ratio survives
    ratio = out[:, 0].square().mean(-1).sqrt() / out[:, 1:].square().mean((-1, -2)).sqrt()
    torch.testing.assert_close(ratio, torch.full_like(ratio, 3.0), rtol=0.05, atol=0)
    assert not torch.equal(out, x)


def test_mixup_identity_cases():
    x = torch.randn(4, 4, 500)
    torch.testing.assert_close(Mixup(alpha_max=0.0)(x), x, rtol=0, atol=0)
    torch.testing.assert_close(Mixup(alpha_max=0.5)(x[:1]), x[:1], rtol=0, atol=0)  # nothing to mix with


def test_mixup_strong_mix_still_keeps_rms():
    x = torch.randn(8, 4, 1000)
    out = Mixup(alpha_max=1.0)(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_rms(out), _rms(x), rtol=1e-5, atol=0)


def test_mixup_rejects_bad_alpha():
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match="alpha_max"):
            Mixup(alpha_max=alpha)


# --------------------------------------------------------------------------------------------
# RandomResizedCrop
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 10, 51, 64), (2, 10, 64, 64), (2, 1, 101, 96)])
def test_crop_full_box_is_identity(shape):
    x = torch.randn(shape)
    out = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # float32 grid coordinates are off by ~1e-6 bins, hence up to 3.8e-5 measured on N(0, 1) values
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-4)


def test_crop_keeps_shape_and_uses_one_box_for_all_channels():
    g = torch.Generator().manual_seed(4)
    image = torch.randn(32, 1, 51, 64, generator=g)
    x = image.expand(32, 10, 51, 64).contiguous()
    out = RandomResizedCrop(scale=(0.5, 1.0), ratio=(0.5, 2.0))(x, generator=g)
    assert out.shape == x.shape
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert not torch.allclose(out, x, atol=1e-3)  # the crops did something
    # different items get different boxes
    same = image[:1].expand(32, 1, 51, 64).contiguous()
    cropped = RandomResizedCrop(scale=(0.5, 1.0))(same, generator=g)
    assert (cropped - cropped[:1]).abs().amax(dim=(1, 2, 3)).gt(1e-3).sum() > 20


def _peak_positions(profile: torch.Tensor) -> np.ndarray:
    """Sub-bin argmax of ``(B, F)`` profiles by parabolic interpolation."""
    k = profile.argmax(dim=-1).clamp(1, profile.shape[-1] - 2)
    a, b, c = (profile.gather(-1, (k + d)[:, None])[:, 0].double() for d in (-1, 0, 1))
    denominator = a - 2 * b + c
    offset = torch.where(denominator.abs() > 0, 0.5 * (a - c) / denominator, torch.zeros_like(denominator))
    return (k.double() + offset).numpy()


def _lag_shifts(max_lag_shift, n_items: int = 500, T: int = 51, F: int = 64, seed: int = 0) -> np.ndarray:
    lags = torch.arange(F, dtype=torch.float64) - F // 2
    profile = torch.exp(-0.5 * lags.square()).float()  # unit-width peak at lag 0 (index F/2)
    images = profile.expand(n_items, 10, T, F).contiguous()
    out = RandomResizedCrop(max_lag_shift=max_lag_shift)(images, generator=torch.Generator().manual_seed(seed))
    assert out.shape == images.shape
    original = _peak_positions(profile[None])[0]
    assert original == pytest.approx(F // 2)
    return _peak_positions(out[:, 4:].mean(dim=(1, 2))) - original  # GCC channels, averaged over T


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_crop_bounds_the_lag_shift(bound):
    shifts = _lag_shifts(bound)
    # Bilinear resampling tolerance: the module measures lag 0 at coordinate F/2, the centre of bin
    # F/2 is at F/2 + 0.5, which adds up to 0.5 (F/w - 1) <= 0.125 lags here; parabolic interpolation of
    # a resampled peak adds a few hundredths. Measured max |shift|: 0.07, 1.04, 2.03.
    assert np.abs(shifts).max() <= bound + 0.5
    if bound:
        assert np.abs(shifts).max() >= 0.9 * bound  # the allowed range is actually explored


def test_unconstrained_crop_can_move_lag_zero_beyond_the_array_range():
    shifts = np.abs(_lag_shifts(None))
    # Measured: median 1.47, p90 3.95, p99 5.96, max 7.28 lags; 4.4 % above 4.7 lags.
    assert shifts.max() > 4.7
    assert (shifts > 4.7).mean() > 0.01
    assert shifts.max() < 32  # the peak stays in the image


def test_crop_rejects_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(scale=(0.9, 1.1))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCrop(ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="max_lag_shift"):
        RandomResizedCrop(max_lag_shift=-1)
    with pytest.raises(ValueError, match=r"expects \(batch, channels, T, F\)"):
        RandomResizedCrop()(torch.zeros(10, 51, 64))


# --------------------------------------------------------------------------------------------
# ChannelDrop
# --------------------------------------------------------------------------------------------
def test_channel_drop_extremes():
    x = torch.rand(4, 10, 5, 6) + 0.5
    torch.testing.assert_close(ChannelDrop(p=0.0)(x), x, rtol=0, atol=0)
    assert torch.equal(ChannelDrop(p=1.0)(x), torch.zeros_like(x))


def test_channel_drop_rate_and_whole_channels():
    x = torch.rand(2000, 10, 3, 4) + 0.5  # 20000 channels, no zeros
    out = ChannelDrop(p=0.1)(x, generator=torch.Generator().manual_seed(5))
    dropped = (out == 0).all(dim=(2, 3))
    untouched = (out == x).all(dim=(2, 3))
    assert torch.all(dropped ^ untouched)  # every channel is either all zero or unchanged
    rate = dropped.float().mean().item()
    assert abs(rate - 0.1) < 0.01, rate  # measured 0.1007


def test_channel_drop_rejects_bad_p():
    for p in (-0.1, 1.1):
        with pytest.raises(ValueError, match="channel_drop.p"):
            ChannelDrop(p)


# --------------------------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------------------------
def test_reprs_show_parameters():
    assert "p=0.1" in repr(ChannelDrop(0.1))
    assert "alpha_max=0.01" in repr(Mixup(0.01))
    text = repr(RandomResizedCrop(scale=(0.8, 1.0), ratio=(0.8, 1.25), max_lag_shift=2))
    assert "scale=(0.8, 1.0)" in text
    assert "ratio=(0.8, 1.25)" in text
    assert "max_lag_shift=2" in text
    assert "max_lag_shift=None" in repr(RandomResizedCrop())
    text = repr(ChannelSwap())
    assert "n_mics=4" in text
    assert "symmetries=8" in text


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=["cpu", CUDA])
def device(request) -> torch.device:
    """Runs a test body on CPU and, when a CUDA device is available, on CUDA (skipped otherwise)."""
    return torch.device(request.param)


def test_modules_run_on_device(device):
    g = torch.Generator(device=device).manual_seed(0)
    waves = torch.from_numpy(noise((4, 4, FS), seed=14).astype(np.float32))
    fe = FeatureExtractor()
    reference = fe(waves)
    fe_dev = FeatureExtractor().to(device)
    with torch.no_grad():
        feats = fe_dev(waves.to(device))
    assert feats.device.type == device.type
    assert feats.shape == (4, 10, 51, 64)
    torch.testing.assert_close(feats.cpu(), reference, rtol=1e-4, atol=1e-4)

    swapped, sym = ChannelSwap().to(device)(waves.to(device), generator=g)
    assert swapped.device.type == device.type
    assert sym.device.type == device.type
    for b in range(4):
        torch.testing.assert_close(swapped[b].cpu(), waves[b, SQUARE.permutation(int(sym[b]))])
    mixed = Mixup(0.01)(waves.to(device), generator=g)
    assert mixed.shape == waves.shape
    assert mixed.device.type == device.type

    cropped = RandomResizedCrop(max_lag_shift=1)(feats, generator=g)
    assert cropped.shape == feats.shape
    assert cropped.device.type == device.type
    full = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(feats, generator=g)
    torch.testing.assert_close(full, feats, rtol=1e-4, atol=1e-4)
    dropped = ChannelDrop(0.5)(feats, generator=g)
    assert dropped.shape == feats.shape
    assert dropped.device.type == device.type
    kept = (dropped == feats).all(dim=(2, 3)) | (dropped == 0).all(dim=(2, 3))
    assert bool(kept.all())


def test_an_unknown_key_of_an_augmentation_block_is_named_with_its_path():
    blocks = {name: {"enabled": True} for name in ("channel_swap", "mixup", "random_resized_crop", "channel_drop")}
    blocks["mixup"]["alpha_maxx"] = 0.1
    with pytest.raises(ValueError, match=r"augmentations\.mixup\.alpha_maxx.*expected some of \['alpha_max'"):
        MultiLevelAugmentation.from_params(blocks, FeatureExtractor())


ALL_ON = {
    "channel_swap": {"enabled": True},
    "mixup": {"enabled": True, "alpha_max": 0.3},
    "random_resized_crop": {"enabled": True, "scale": [0.5, 1.0], "max_lag_shift": 2},
    "channel_drop": {"enabled": True, "p": 0.3},
}


@pytest.mark.parametrize("rows", [None, slice(1, 4)])
def test_the_chain_makes_the_papers_draws_in_the_papers_order(rows):
    """The chain built from the registry equals the paper's order written out by hand, draw for draw:
    one symmetry for both views, Mixup of view 1 then view 2, features, a box for view 1 then view 2,
    the drop mask of view 1 then view 2 (with ``rows``: draws for the whole batch, those rows kept)."""
    x1 = torch.from_numpy(noise((5, 4, FS // 2), seed=20).astype(np.float32))
    x2 = torch.from_numpy(noise((5, 4, FS // 2), seed=21).astype(np.float32))
    features = FeatureExtractor()
    chain = MultiLevelAugmentation.from_params(ALL_ON, features)
    f1, f2 = chain(x1, x2, torch.Generator().manual_seed(3), rows)

    g = torch.Generator().manual_seed(3)
    swap, mix = ChannelSwap(), Mixup(0.3)
    crop, drop = RandomResizedCrop(scale=(0.5, 1.0), max_lag_shift=2), ChannelDrop(0.3)
    a, symmetry = swap(x1, generator=g)
    b, _ = swap(x2, symmetry)
    a, b = mix(a, g), mix(b, g)
    part = None if rows is None else (rows, len(a))
    if rows is not None:
        a, b = a[rows], b[rows]
    a, b = features(a), features(b)
    a, b = crop(a, g, part), crop(b, g, part)
    a, b = drop(a, g, part), drop(b, g, part)
    assert torch.equal(f1, a)
    assert torch.equal(f2, b)


def test_an_augmentation_switched_off_is_skipped_and_named_by_its_entry():
    chain = MultiLevelAugmentation.from_params({**ALL_ON, "mixup": {"enabled": False}}, FeatureExtractor())
    assert chain.mixup is None
    assert isinstance(chain.channel_swap, ChannelSwap)
    assert [type(step) for step in chain.steps("waveform")] == [ChannelSwap]
    assert [type(step) for step in chain.steps("features")] == [RandomResizedCrop, ChannelDrop]


class _Gain(torch.nn.Module):
    """A made-up waveform augmentation: one random gain in [1 - depth, 1] per clip and view."""

    def __init__(self, depth: float = 0.5) -> None:
        super().__init__()
        self.depth = depth

    def forward(self, x, generator=None):
        return x * (1 - self.depth * torch.rand((len(x), 1, 1), generator=generator))

    def pair(self, x1, x2, generator=None, part=None):
        return self(x1, generator), self(x2, generator)


def test_adding_an_augmentation_is_one_registry_entry(monkeypatch):
    """An entry appended to the registry is read from its parameter block and applied in its stage."""
    entry = augment.Augmentation("wobble", "wo", "waveform", _Gain)
    monkeypatch.setattr(augment, "REGISTRY", (*augment.REGISTRY, entry))
    blocks = {name: {"enabled": False} for name in ("channel_swap", "mixup", "random_resized_crop", "channel_drop")}
    chain = MultiLevelAugmentation.from_params(
        {**blocks, "wobble": {"enabled": True, "depth": 0.25}}, FeatureExtractor()
    )
    assert isinstance(chain.wobble, _Gain)
    assert chain.wobble.depth == 0.25
    x1 = torch.from_numpy(noise((3, 4, FS // 4), seed=22).astype(np.float32))
    f1, f2 = chain(x1, x1.clone(), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    a, b = _Gain(0.25).pair(x1, x1.clone(), g)
    assert torch.equal(f1, FeatureExtractor()(a))
    assert torch.equal(f2, FeatureExtractor()(b))
    with pytest.raises(ValueError, match=r"augmentations\.wobble\.depht"):
        MultiLevelAugmentation.from_params({**blocks, "wobble": {"enabled": True, "depht": 0.25}}, FeatureExtractor())
    with pytest.raises(ValueError, match=r"augmentations\.wobble\.enabled must be set"):
        MultiLevelAugmentation.from_params(blocks, FeatureExtractor())  # not optional: its block is needed


def test_a_registry_entry_needs_a_known_stage_and_a_pair_method():
    with pytest.raises(ValueError, match="stage must be one of"):
        augment.Augmentation("gain", "ga", "spectrum", _Gain)
    with pytest.raises(ValueError, match="has no pair"):
        augment.Augmentation("plain", "pl", "waveform", torch.nn.Identity)


def test_diffuse_noise_gives_each_view_its_own_noise_at_the_drawn_snr():
    x = torch.from_numpy(noise((64, 4, FS // 2), seed=30).astype(np.float32))
    fixed = augment.DiffuseNoise(snr_db=(10.0, 10.0), bank_seconds=5.0)
    a, b = fixed.pair(x, x.clone(), torch.Generator().manual_seed(0))
    added_a, added_b = a - x, b - x
    ratio = added_a.square().mean(dim=(1, 2)) / x.square().mean(dim=(1, 2))
    assert float(ratio.median()) == pytest.approx(0.1, rel=0.15)  # 10 dB below each view's power
    assert not torch.allclose(added_a, added_b)  # the two views do not share a noise realisation
    coherence = np.corrcoef(added_a[:, 0].flatten().numpy(), added_a[:, 2].flatten().numpy())[0, 1]
    assert 0.05 < coherence < 0.95  # diffuse: partly coherent between microphones 0.1 m apart
    off = augment.DiffuseNoise(p=0.0, bank_seconds=1.0)
    assert torch.equal(off(x, torch.Generator().manual_seed(0)), x)


def test_random_gain_scales_each_view_within_its_range():
    x = torch.ones(200, 4, 10)
    scaled = augment.RandomGain(6.0)(x, torch.Generator().manual_seed(0))
    db = 20 * torch.log10(scaled[:, 0, 0])
    assert float(db.min()) >= -6.0
    assert float(db.max()) <= 6.0
    assert float(db.std()) > 2.0
    assert torch.equal(scaled[:, 0], scaled[:, 3])  # all channels alike


def test_spectral_tilt_tilts_the_spectrum_but_keeps_level_and_phase_differences():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, 8000, generator=g)
    tilt = augment.SpectralTilt(6.0, sample_rate=8000)
    y = tilt(x, torch.Generator().manual_seed(1))
    rms = lambda a: a.square().mean(dim=(1, 2)).sqrt()  # noqa: E731
    assert torch.allclose(rms(y), rms(x), rtol=1e-4)
    spectrum_x, spectrum_y = torch.fft.rfft(x), torch.fft.rfft(y)
    # the same real gain on every channel: cross-spectra keep their phase (GCC-PHAT is unchanged)
    cross_x = spectrum_x[:, 0] * spectrum_x[:, 1].conj()
    cross_y = spectrum_y[:, 0] * spectrum_y[:, 1].conj()
    band = slice(50, 3950)
    assert torch.allclose(torch.angle(cross_y[:, band]), torch.angle(cross_x[:, band]), atol=1e-3)

    # the slope: energy ratio between 2 kHz and 500 Hz (2 octaves) moves by 2 x tilt dB, |tilt| <= 6
    def octave_ratio_db(s):
        power = s.abs().square().mean(dim=1)
        return 10 * torch.log10(power[:, 1900:2100].mean(dim=1) / power[:, 400:600].mean(dim=1))

    change = octave_ratio_db(spectrum_y) - octave_ratio_db(spectrum_x)
    assert float(change.abs().max()) <= 2 * 6.0 + 0.5
    assert float(change.std()) > 3.0  # each view its own tilt, spread over the range
    assert torch.equal(augment.SpectralTilt(0.0, sample_rate=8000)(x, torch.Generator().manual_seed(1)), x)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"spectral_tilt": {"enabled": True, "tilt_db": -2}}, r"spectral_tilt\.tilt_db must be >= 0"),
        ({"spectral_tilt": {"enabled": True, "reference_hz": 9000.0}}, r"spectral_tilt needs .*reference_hz=9000"),
        ({"diffuse_noise": {"enabled": True, "snr_db": [20, 0]}}, r"diffuse_noise\.snr_db must be \[min, max\]"),
        ({"diffuse_noise": {"enabled": True, "p": 2}}, r"diffuse_noise\.p must be in \[0, 1\]"),
        ({"gain": {"enabled": True, "gain_db": -1}}, r"gain\.gain_db must be >= 0"),
        ({"mixup": {"enabled": True, "alpha_max": 1.5}}, r"mixup\.alpha_max must be in \[0, 1\]"),
    ],
)
def test_bad_per_view_settings_stop_the_preflight_naming_the_parameter(block, message):
    from mc_simclr.preflight import check_parameters

    from conftest import conf_parameters

    params = conf_parameters()
    params["augmentations"] = {**params["augmentations"], **block}
    with pytest.raises(ValueError, match=message):
        check_parameters(params)
