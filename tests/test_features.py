"""Tests for ``mc_simclr.features.FeatureExtractor``: log-Mel + GCC-PHAT against an independent
NumPy/SciPy reference, batching, shapes, the GCC symmetry, the GCC peak of simulated sources, and
input validation.

Measured on the 2-core CPU this was written on (float32 library vs float64 reference):

* log-Mel: max |difference| of the logarithm (= relative error of the Mel power) 1.4e-5 with the
  default parameters, 5.5e-5 with ``n_fft 512 / hop 160 / n_mels 96``, 1.3e-4 on a tonal clip
  (weak bands next to strong tones); asserted below 5e-4.
* GCC-PHAT: max |difference| 5.0e-7 on white noise (asserted below 1e-5); 5.8e-5 on the tonal
  clip (asserted below 2e-4). Nearly all of the latter is where ``eps`` sits: the reference divides
  by ``|X_i||X_j| + eps`` as the textbook formula does, the library whitens each microphone by
  ``|X| + eps``; on the weakest bins (|X| ~ 3e-5) the two differ by ~1.6 %. Against a float64
  reference that whitens per microphone the library is within 6.0e-6 on the same clip.
* GCC peak of a torchrir source 2 m away (RT60 0.15 s, 6 azimuths x 6 pairs): the integer peak is
  the rounded expected delay in 35 of 36 cases and 1 lag off in one; the parabolic sub-lag peak is
  within 0.21 lag of the exact delay (rms 0.13; max 0.40 at RT60 0.2 s; at RT60 0.3 s an early
  reflection took over one pair, 2.8 lags off, in a trial with another clip); asserted below 0.35.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import get_window

from mc_simclr.acoustics.rir import get_backend, spatialize
from mc_simclr.acoustics.scene import SPEED_OF_SOUND, make_scene
from mc_simclr.features import FeatureExtractor, mic_pairs

FS = 16000
PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]

LOG_MEL_TOL = 5e-4  # |log(a) - log(b)| ~ relative error of the Mel power
GCC_TOL_NOISE = 1e-5
GCC_TOL_TONAL = 2e-4  # includes the eps-placement difference, see the module docstring
PEAK_SUBLAG_TOL = 0.35


# --------------------------------------------------------------------------------------------
# Independent reference (float64 NumPy/SciPy, one clip at a time)
# --------------------------------------------------------------------------------------------
def hz_to_mel_htk(freq):
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def reference_mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``(n_fft/2 + 1, n_mels)`` triangles on the HTK Mel scale, peak 1, no area normalisation."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz_htk(np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2))
    bank = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - left) / (centre - left)
        falling = (right - freqs) / (right - centre)
        bank[:, m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


def reference_features(
    clip: np.ndarray,
    sample_rate: int = FS,
    n_fft: int = 1024,
    hop: int = 320,
    n_mels: int = 64,
    f_min: float = 50.0,
    f_max: float | None = None,
    eps: float = 1e-8,
    window: str = "hann",
) -> np.ndarray:
    """Features ``(M + M(M-1)/2, T, n_mels)`` of one clip ``(M, N)`` in float64."""
    clip = np.asarray(clip, dtype=np.float64)
    f_max = sample_rate / 2.0 if f_max is None else f_max
    win = get_window(window, n_fft, fftbins=True)  # periodic window, as for an STFT
    padded = np.pad(clip, ((0, 0), (n_fft // 2, n_fft // 2)))  # centred frames, zero padding
    n_frames = 1 + (padded.shape[1] - n_fft) // hop  # N // hop + 1 for an even n_fft
    frames = np.stack([padded[:, t * hop : t * hop + n_fft] for t in range(n_frames)], axis=1)
    spec = np.fft.rfft(frames * win, axis=-1)  # (M, T, n_fft/2 + 1)
    bank = reference_mel_filterbank(n_fft, sample_rate, n_mels, f_min, f_max)
    channels = list(np.log(np.abs(spec) ** 2 @ bank + eps))
    lag_index = np.arange(-(n_mels // 2), n_mels - n_mels // 2) % n_fft
    n_mics = clip.shape[0]
    for i in range(n_mics):
        for j in range(i + 1, n_mics):
            cross = spec[i] * np.conj(spec[j])
            cross = cross / (np.abs(spec[i]) * np.abs(spec[j]) + eps)
            gcc = np.fft.irfft(cross, n=n_fft, axis=-1)  # (T, n_fft), lag 0 at index 0
            channels.append(gcc[:, lag_index])
    return np.stack(channels)


def noise(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run(extractor: FeatureExtractor, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return extractor(torch.from_numpy(x)).numpy()


# --------------------------------------------------------------------------------------------
# Against the reference
# --------------------------------------------------------------------------------------------
def test_reference_filterbank_matches_torchaudio_semantics():
    """Sanity check of the test's own filterbank (float32 torchaudio vs float64 NumPy)."""
    import torchaudio

    ours = reference_mel_filterbank(1024, FS, 64, 50.0, 8000.0)
    theirs = torchaudio.functional.melscale_fbanks(513, 50.0, 8000.0, 64, FS, norm=None, mel_scale="htk").numpy()
    assert np.abs(ours - theirs).max() < 1e-4  # measured 6.1e-6


def test_pair_order():
    assert mic_pairs(4) == PAIRS
    assert FeatureExtractor().n_channels == 10


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"hop_length": 160, "n_mels": 96, "n_fft": 512},
        {"window": "hamming"},
        {"window": "blackman", "f_min": 100.0, "f_max": 7000.0, "n_mels": 40},
        {"n_fft": 1023},
        {"n_fft": 1000, "hop_length": 250, "n_mels": 63},
    ],
    ids=["default", "paper-hop160-mels96-fft512", "hamming", "blackman-40mels", "odd-fft", "odd-mels"],
)
def test_matches_numpy_reference(params):
    x = noise((2, 4, FS), seed=1)
    out = run(FeatureExtractor(**params), x)
    for b in range(x.shape[0]):
        ref = reference_features(
            x[b],
            n_fft=params.get("n_fft", 1024),
            hop=params.get("hop_length", 320),
            n_mels=params.get("n_mels", 64),
            f_min=params.get("f_min", 50.0),
            f_max=params.get("f_max"),
            window=params.get("window", "hann"),
        )
        assert out[b].shape == ref.shape
        mel_err = np.abs(out[b, :4] - ref[:4]).max()
        gcc_err = np.abs(out[b, 4:] - ref[4:]).max()
        assert mel_err < LOG_MEL_TOL, mel_err
        assert gcc_err < GCC_TOL_NOISE, gcc_err


def test_matches_numpy_reference_on_tonal_clip():
    """Tones plus weak noise: weak bins, where float32 rounding and the eps placement show."""
    t = np.arange(FS) / FS
    tones = np.stack(
        [0.1 * np.sin(2 * np.pi * 440.0 * t + k) + 0.05 * np.sin(2 * np.pi * 1250.0 * t) for k in range(4)]
    )
    x = (tones + 1e-3 * noise((4, FS), seed=2)).astype(np.float32)[None]
    out = run(FeatureExtractor(), x)[0]
    ref = reference_features(x[0])
    assert np.abs(out[:4] - ref[:4]).max() < LOG_MEL_TOL
    assert np.abs(out[4:] - ref[4:]).max() < GCC_TOL_TONAL


def test_float64_input_is_computed_in_float32():
    x = noise((1, 4, 4000), seed=3)
    fe = FeatureExtractor()
    out64 = fe(torch.from_numpy(x.astype(np.float64)))
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, fe(torch.from_numpy(x)))


# --------------------------------------------------------------------------------------------
# Batching and shapes
# --------------------------------------------------------------------------------------------
def test_batched_equals_per_item():
    x = torch.from_numpy(noise((3, 4, FS), seed=4))
    x[1] *= 1e-3  # different levels per item
    x[2, :, : FS // 2] = 0.0  # and a half-silent one
    fe = FeatureExtractor()
    with torch.no_grad():
        batched = fe(x)
        single = torch.cat([fe(x[b : b + 1]) for b in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "params, n_samples",
    [
        ({}, FS),
        ({"hop_length": 160, "n_mels": 96, "n_fft": 512}, FS),
        ({"hop_length": 160}, 12345),
        ({"n_mels": 63}, 8000),  # odd F: lags -31 .. 31
        ({"n_fft": 512, "n_mels": 80, "hop_length": 256}, 2 * FS),
    ],
)
def test_shapes(params, n_samples):
    fe = FeatureExtractor(**params)
    out = run(fe, noise((2, 4, n_samples), seed=5))
    hop = params.get("hop_length", 320)
    n_mels = params.get("n_mels", 64)
    assert out.shape == (2, 10, n_samples // hop + 1, n_mels)
    assert fe.n_frames(n_samples) == n_samples // hop + 1
    assert np.isfinite(out).all()


def test_n_frames_matches_output_for_odd_n_fft():
    # a centred STFT pads n_fft // 2 on each side: 1 + (n - 1) // hop frames for an odd n_fft
    fe = FeatureExtractor(n_fft=1023)
    assert run(fe, noise((1, 4, 8000), seed=5)).shape[2] == fe.n_frames(8000)


def test_other_microphone_counts():
    fe = FeatureExtractor(n_mics=3)
    out = run(fe, noise((1, 3, 4000), seed=6))
    assert out.shape == (1, 3 + 3, 4000 // 320 + 1, 64)


# --------------------------------------------------------------------------------------------
# GCC properties
# --------------------------------------------------------------------------------------------
def test_gcc_of_swapped_pair_is_lag_reversed():
    """``GCC_ji(tau) = GCC_ij(-tau)``: swap microphones and compare on the lags both maps hold."""
    x = noise((2, 4, FS), seed=7)
    fe = FeatureExtractor()
    F = fe.n_mels
    half = F // 2
    out = run(fe, x)
    # Reversing all four microphones turns every pair (i, j) into (3 - i, 3 - j) with 3 - i > 3 - j.
    swapped = run(fe, np.ascontiguousarray(x[:, ::-1]))
    index = {pair: 4 + p for p, pair in enumerate(PAIRS)}
    # Index k holds lag k - F/2; the symmetric range -F/2+1 .. F/2-1 is indices 1 .. F-1.
    for (i, j), channel in index.items():
        gcc_ij = out[:, channel]
        gcc_ji = swapped[:, index[(3 - j, 3 - i)]]  # channels (3-j, 3-i) of swapped = mics (j, i)
        lags = np.arange(-half + 1, half)
        np.testing.assert_allclose(gcc_ji[..., lags + half], gcc_ij[..., -lags + half], atol=1e-5)
    # Log-Mel channels follow the microphones.
    np.testing.assert_allclose(swapped[:, :4], out[:, 3::-1], atol=1e-5)


def test_gcc_peak_of_pure_integer_delay():
    """Channel i = noise delayed by d_i samples: the GCC_ij peak is at d_i - d_j exactly."""
    base = noise(FS + 100, seed=8)
    delays = [0, 3, -2, 5]
    x = np.stack([np.roll(base, d)[50 : 50 + FS] for d in delays])[None]
    gcc = run(FeatureExtractor(), x)[0, 4:].mean(axis=1)
    for p, (i, j) in enumerate(PAIRS):
        assert int(np.argmax(gcc[p])) - 32 == delays[i] - delays[j]


def parabolic_peak(profile: np.ndarray) -> float:
    k = int(np.argmax(profile))
    a, b, c = profile[k - 1], profile[k], profile[k + 1]
    return k + 0.5 * (a - c) / (a - 2 * b + c)


def test_gcc_peak_matches_source_azimuth():
    """Simulated source 2 m away in the horizontal plane of the array, RT60 0.15 s."""
    room = np.array([6.0, 5.0, 3.0])
    centre = np.array([2.5, 2.0, 1.5])
    backend = get_backend("torchrir", device="cpu")
    source = noise(FS, seed=9)
    fe = FeatureExtractor()
    half = fe.n_mels // 2
    int_errors, sub_errors = [], []
    for azimuth in (0, 45, 90, 135, 200, 300):
        direction = np.array([math.cos(math.radians(azimuth)), math.sin(math.radians(azimuth)), 0.0])
        scene = make_scene(room, 0.15, centre, centre + 2.0 * direction)
        x = spatialize(source, backend.simulate(scene, FS))[None]
        gcc = run(fe, x)[0, 4:].mean(axis=1)  # (pairs, lags), averaged over time
        distances = np.linalg.norm(np.asarray(scene.mic_positions) - np.asarray(scene.source_position), axis=1)
        for p, (i, j) in enumerate(PAIRS):
            expected = (distances[i] - distances[j]) / SPEED_OF_SOUND * FS
            assert abs(expected) < 4.7  # a 0.1 m array spans at most +-4.66 lags
            int_errors.append(int(np.argmax(gcc[p])) - half - round(expected))
            sub_errors.append(parabolic_peak(gcc[p]) - half - expected)
    assert np.abs(int_errors).max() <= 1, int_errors
    assert np.abs(sub_errors).max() < PEAK_SUBLAG_TOL, np.round(sub_errors, 3)


# --------------------------------------------------------------------------------------------
# Validation and repr
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(4, 16000), (1, 3, 16000), (1, 5, 16000), (1, 1, 4, 16000), (16000,)],
)
def test_invalid_input_shape(shape):
    with pytest.raises(ValueError, match=r"expects \(batch, 4, samples\)"):
        FeatureExtractor()(torch.zeros(shape))


@pytest.mark.parametrize(
    "params, name",
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"n_fft": 8}, "n_fft"),
        ({"hop_length": 0}, "hop_length"),
        ({"hop_length": 2048}, "hop_length"),
        ({"win_length": 2048}, "win_length"),
        ({"n_mels": 0}, "n_mels"),
        ({"n_mels": 2000}, "n_mels"),
        ({"f_min": 9000.0}, "f_min/f_max"),
        ({"f_min": -1.0}, "f_min/f_max"),
        ({"f_max": 9000.0}, "f_min/f_max"),
        ({"f_min": 400.0, "f_max": 300.0}, "f_min/f_max"),
        ({"n_mics": 1}, "n_mics"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_invalid_parameters(params, name):
    with pytest.raises(ValueError, match="Invalid parameter") as info:
        FeatureExtractor(**params)
    assert repr(f"features.{name}") in str(info.value)


def test_invalid_window_and_unknown_parameter():
    with pytest.raises(ValueError, match="window must be one of"):
        FeatureExtractor(window="kaiser")
    with pytest.raises(ValueError, match=r"features\.n_fftt"):
        FeatureExtractor.from_params({"n_fftt": 512}, sample_rate=FS)
    fe = FeatureExtractor.from_params({"n_fft": 512, "hop_length": 160, "n_mels": 96}, sample_rate=FS)
    assert (fe.n_fft, fe.hop_length, fe.n_mels, fe.sample_rate) == (512, 160, 96, FS)


def test_repr_shows_parameters():
    text = repr(FeatureExtractor(hop_length=160, n_mels=96, n_fft=512))
    for part in ("sample_rate=16000", "n_fft=512", "hop_length=160", "n_mels=96", "window=hann", "n_mics=4"):
        assert part in text
