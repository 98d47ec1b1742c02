"""Tests of the procedural sound event corpus ``mc_simclr.audio.synthetic``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from mc_simclr.audio.synthetic import (
    CLASSES,
    _karplus_strong,
    instance_params,
    parse_label,
    synthesize_clip,
    synthesize_event,
    variant_labels,
)

SAMPLE_RATE = 16000
PEAK_TOLERANCE = 1e-4


def _band_edges() -> np.ndarray:
    """32 bands: everything below 125 Hz, then log-spaced up to 7 kHz."""
    return np.concatenate([[30.0], np.geomspace(125.0, 7000.0, 32)])


def _clip_features(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Hand-made clip descriptors: a spectral shape and three temporal-structure statistics.

    Returns the mean power in 32 bands (dB re the loudest band) and ``[log CV of frame energy,
    mean frame-to-frame change of the log-frequency centroid (sweep direction), log of the
    power-weighted mean frame-to-frame change of the bin levels in dB (spectral flux)]``; the last
    two are measured over consecutive frames within 20 dB of the loudest one.
    """
    freqs, _, stft = signal.stft(x.astype(np.float64), fs=sample_rate, nperseg=1024, noverlap=512)
    power, freqs = np.abs(stft[1:]) ** 2, freqs[1:]
    edges = _band_edges()
    bands = np.stack([power[(freqs >= lo) & (freqs < hi)].sum(0) for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    spectrum = 10.0 * np.log10(bands.mean(1) + 1e-12)
    energy = power.sum(0)
    active = energy > 0.01 * energy.max()
    pairs = active[1:] & active[:-1]
    if not pairs.any():
        pairs = active[1:] | active[:-1]
    centroid = (power * np.log2(freqs)[:, None]).sum(0) / (energy + 1e-20)
    sweep = np.diff(centroid)[pairs].mean()
    level_change = np.abs(np.diff(10.0 * np.log10(power + 1e-12), axis=1))[:, pairs]
    weights = (power[:, 1:] + power[:, :-1])[:, pairs]
    flux = (level_change * weights).sum() / weights.sum()
    temporal = np.array([np.log(energy.std() / energy.mean()), sweep, np.log(flux)])
    return spectrum - spectrum.max(), temporal


def _leave_one_out_nearest_centroid(features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of a nearest-class-mean classifier, each sample left out of its class mean."""
    correct = 0
    for i in range(labels.size):
        keep = np.arange(labels.size) != i
        centroids = np.stack([features[keep & (labels == k)].mean(0) for k in range(len(CLASSES))])
        correct += int(np.argmin(((centroids - features[i]) ** 2).sum(1)) == labels[i])
    return correct / labels.size


def test_every_class_name_is_its_own_sound_and_unknown_names_are_refused() -> None:
    # the same seed through two class names must never give the same audio (a name mapped to
    # another class's generator would)
    clips = {label: synthesize_clip(label, 1.5, SAMPLE_RATE, 7) for label in CLASSES}
    for i, a in enumerate(CLASSES):
        for b in CLASSES[i + 1 :]:
            assert not np.allclose(clips[a], clips[b], atol=1e-3), (a, b)
    with pytest.raises(ValueError, match="label must be one of pluck_low"):
        synthesize_clip("violin", 1.0, SAMPLE_RATE, 0)


@pytest.mark.parametrize("label", CLASSES)
def test_clip_is_deterministic_and_seed_dependent(label: str) -> None:
    first = synthesize_clip(label, 1.5, SAMPLE_RATE, 123)
    np.testing.assert_array_equal(first, synthesize_clip(label, 1.5, SAMPLE_RATE, 123))
    np.testing.assert_array_equal(first, synthesize_clip(label, 1.5, SAMPLE_RATE, np.random.SeedSequence(123)))
    np.testing.assert_array_equal(first, synthesize_clip(label, 1.5, SAMPLE_RATE, np.random.default_rng(123)))
    assert not np.array_equal(first, synthesize_clip(label, 1.5, SAMPLE_RATE, 124))


@pytest.mark.parametrize("label", CLASSES)
@pytest.mark.parametrize(("duration_s", "sample_rate"), [(3.0, 16000), (0.3, 16000), (1.0, 44100)])
def test_clip_shape_dtype_and_level(label: str, duration_s: float, sample_rate: int) -> None:
    for seed in range(3):
        clip = synthesize_clip(label, duration_s, sample_rate, seed)
        assert clip.shape == (round(duration_s * sample_rate),)
        assert clip.dtype == np.float32
        assert np.isfinite(clip).all()
        assert 0.3 - PEAK_TOLERANCE <= np.abs(clip).max() <= 0.9 + PEAK_TOLERANCE
        # An event is audible: the clip is far louder than its -60 dB noise floor.
        assert np.sqrt(np.mean(clip.astype(np.float64) ** 2)) > 10.0 * 1e-3 * np.abs(clip).max()


@pytest.mark.parametrize("label", CLASSES)
def test_nothing_reaches_nyquist(label: str) -> None:
    clip = synthesize_clip(label, 3.0, SAMPLE_RATE, 7).astype(np.float64)
    freqs, psd = signal.welch(clip, fs=SAMPLE_RATE, nperseg=2048)
    assert psd[freqs > 0.46 * SAMPLE_RATE].sum() < 0.01 * psd.sum()


@pytest.mark.parametrize("label", CLASSES)
def test_events_jitter_around_the_clip_instance(label: str) -> None:
    rng = np.random.default_rng(5)
    instance = instance_params(label, rng)
    assert all(isinstance(value, float) for value in instance.values())
    assert ("event_rate" in instance) == (label != "engine")
    first = synthesize_event(label, rng, SAMPLE_RATE, instance)
    second = synthesize_event(label, rng, SAMPLE_RATE, instance)
    for event in (first, second):
        assert event.ndim == 1
        assert event.size > 0
        assert np.isfinite(event).all()
    assert first.size != second.size or not np.allclose(first, second)


@pytest.mark.parametrize("period", [2, 17, 55, 56, 57, 160])
def test_karplus_strong_matches_the_direct_recursion(period: int) -> None:
    excitation = np.zeros(3000)
    excitation[:period] = np.random.default_rng(period).standard_normal(period)
    denominator = np.zeros(period + 2)
    denominator[[0, period, period + 1]] = [1.0, -0.495, -0.495]
    np.testing.assert_allclose(
        _karplus_strong(excitation, period, 0.99),
        signal.lfilter([1.0], denominator, excitation),
        atol=1e-12,
    )


def test_classes_are_separable_by_a_nearest_centroid_classifier() -> None:
    clips_per_class = 8
    spectra, temporal, labels = [], [], []
    for k, label in enumerate(CLASSES):
        for i in range(clips_per_class):
            spectrum, stats = _clip_features(synthesize_clip(label, 2.0, SAMPLE_RATE, 1000 * k + i))
            spectra.append(spectrum)
            temporal.append(stats)
            labels.append(k)
    spectra_arr, temporal_arr = np.array(spectra), np.array(temporal)
    # One global scale for the spectrum; each temporal statistic standardised, weighted x2.
    features = np.hstack(
        [
            (spectra_arr - spectra_arr.mean()) / spectra_arr.std(),
            2.0 * (temporal_arr - temporal_arr.mean(0)) / temporal_arr.std(0),
        ]
    )
    accuracy = _leave_one_out_nearest_centroid(features, np.array(labels))
    # Measured 0.902 (101 of 112) with these seeds, 0.82-0.94 with other seed sets; chance: 1/14.
    assert accuracy >= 0.85, f"leave-one-out nearest-centroid accuracy {accuracy:.3f}"


def test_crops_of_a_long_clip_hear_different_events() -> None:
    seeds = range(6)
    both_crops_active = 0
    for label in CLASSES:
        for seed in seeds:
            clip = synthesize_clip(label, 10.0, SAMPLE_RATE, seed).astype(np.float64)
            first = clip[2 * SAMPLE_RATE : 3 * SAMPLE_RATE]
            second = clip[6 * SAMPLE_RATE : 7 * SAMPLE_RATE]
            # Not the same waveform at any lag (measured at most 0.71): events vary within a clip.
            xcorr = np.abs(signal.correlate(first, second, method="fft")).max()
            assert xcorr / np.sqrt((first @ first) * (second @ second)) < 0.9, (label, seed)
            # Signal above the -60 dB noise floor: some sample above -40 dB re the clip peak.
            threshold = 0.01 * np.abs(clip).max()
            both_crops_active += int(min(np.abs(first).max(), np.abs(second).max()) > threshold)
    # Measured 74 of 84: a gap between events occasionally covers a whole second.
    assert both_crops_active >= 0.8 * len(seeds) * len(CLASSES)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": "trumpet"}, "label"),
        ({"label": 3}, "label"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"duration_s": float("inf")}, "duration_s"),
        ({"duration_s": 1e-6}, "duration_s"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": -16000}, "sample_rate"),
        ({"sample_rate": 16000.5}, "sample_rate"),
        ({"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, match: str) -> None:
    arguments = {"label": "bell", "duration_s": 1.0, "sample_rate": SAMPLE_RATE, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        synthesize_clip(**arguments)


def test_invalid_label_raises_in_every_entry_point() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="label"):
        instance_params("trumpet", rng)
    with pytest.raises(ValueError, match="label"):
        synthesize_event("trumpet", rng, SAMPLE_RATE, {})
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize_event("bell", rng, 0, instance_params("bell", rng))


def test_near_neighbour_variants_split_the_first_parameter() -> None:
    assert variant_labels(("bell", "drum"), 3)[:3] == ("bell_1of3", "bell_2of3", "bell_3of3")
    assert variant_labels(("bell",), 1) == ("bell",)
    assert parse_label("bell") == ("bell", 1, 1)
    assert parse_label("pluck_low_2of3") == ("pluck_low", 2, 3)
    low = [instance_params("pluck_low_1of2", np.random.default_rng(s))["f0"] for s in range(30)]
    high = [instance_params("pluck_low_2of2", np.random.default_rng(s))["f0"] for s in range(30)]
    assert max(low) <= min(high)  # adjacent bands of one parameter: near neighbours
    base = [instance_params("pluck_low", np.random.default_rng(s))["f0"] for s in range(30)]
    assert min(base) < max(low)
    assert max(base) > min(high)
    clip = synthesize_clip("whistle_2of2", 1.0, SAMPLE_RATE, 3)
    assert clip.shape == (SAMPLE_RATE,)
    assert np.isfinite(clip).all()
    for bad in ("bell_3of2", "bell_0of2", "kazoo_1of2"):
        with pytest.raises(ValueError, match="label must be one of"):
            synthesize_clip(bad, 1.0, SAMPLE_RATE, 0)
