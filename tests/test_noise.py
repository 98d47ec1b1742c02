"""Diffuse background noise: the field's coherence, the SNR it is added at, and its settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import coherence

from mc_simclr.acoustics.noise import NoiseConfig, add_diffuse_noise, diffuse_noise
from mc_simclr.acoustics.scene import SPEED_OF_SOUND

RATE = 16000


def test_diffuse_field_coherence_follows_the_sinc_of_the_spacing():
    spacing = 0.1
    mics = np.array([[0.0, 0.0, 0.0], [spacing, 0.0, 0.0]])
    noise = diffuse_noise(8 * RATE, mics, RATE, np.random.default_rng(0), color="white")
    assert noise.shape == (2, 8 * RATE)
    assert np.mean(noise**2) == pytest.approx(1.0, rel=1e-3)
    freqs, measured = coherence(noise[0], noise[1], fs=RATE, nperseg=512)
    expected = np.sinc(2 * freqs * spacing / SPEED_OF_SOUND) ** 2  # np.sinc(x) = sin(pi x) / (pi x)
    band = (freqs > 100) & (freqs < 6000)
    assert np.abs(measured[band] - expected[band]).mean() < 0.05
    # far apart microphones hear nearly independent noise, unlike coincident ones
    far = diffuse_noise(8 * RATE, mics * 20, RATE, np.random.default_rng(0), color="white")
    assert coherence(far[0], far[1], fs=RATE, nperseg=512)[1][band].mean() < 0.1


def test_pink_noise_falls_with_frequency():
    noise = diffuse_noise(4 * RATE, np.zeros((1, 3)), RATE, np.random.default_rng(1), color="pink")[0]
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(noise.size, 1 / RATE)
    low, high = spectrum[(freqs > 200) & (freqs < 400)].mean(), spectrum[(freqs > 3200) & (freqs < 6400)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(16), abs=1.5)  # 3 dB per octave, 4 octaves


def test_noise_is_added_at_the_drawn_snr_and_depends_on_the_clip_only():
    rng = np.random.default_rng(2)
    audio = (0.3 * rng.standard_normal((4, RATE))).astype(np.float32)
    mics = np.array([[0.05 * np.cos(a), 0.05 * np.sin(a), 0.0] for a in np.arange(4) * np.pi / 2])
    config = NoiseConfig(enabled=True, snr_db=(5.0, 5.0))
    noisy, snr = add_diffuse_noise(audio, mics, RATE, config, seed=3, clip_id="c1")
    assert snr == 5.0
    measured = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean((noisy - audio).astype(np.float64) ** 2))
    assert measured == pytest.approx(5.0, abs=0.01)
    again, _ = add_diffuse_noise(audio, mics, RATE, config, seed=3, clip_id="c1")
    other, _ = add_diffuse_noise(audio, mics, RATE, config, seed=3, clip_id="c2")
    assert np.array_equal(noisy, again)
    assert not np.array_equal(noisy, other)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"snr_db": [20.0, 0.0]}, r"simulation.noise.snr_db.*min must not exceed max"),
        ({"snr_db": [5.0]}, r"simulation.noise.snr_db: expected \[min, max\]"),
        ({"color": "brown"}, r"simulation.noise.color"),
        ({"snr": [0, 1]}, r"simulation.noise.snr"),
    ],
)
def test_noise_settings_are_checked(params, message):
    with pytest.raises(ValueError, match=message):
        NoiseConfig.from_params(params)
    assert NoiseConfig.from_params(None) == NoiseConfig()


def test_render_plan_with_noise(tmp_path):
    import soundfile as sf

    from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips

    sf.write(str(tmp_path / "a.wav"), 0.3 * np.sin(np.arange(RATE // 2) * 0.3), RATE)
    clips = pd.DataFrame({"clip_id": ["a"], "split": ["test"], "label": ["x"], "path": [str(tmp_path / "a.wav")]})
    simulation = {"seed": 0, "backend": "torchrir", "peak": 0.9, "shard_size": 4, "scene": {"rt60": [0.1, 0.2]}}
    scenes = scenes_for_clips(clips, simulation)
    quiet = plan_render_shards(clips, scenes, simulation, RATE)
    assert set(quiet) == set(plan_render_shards(clips, scenes, {**simulation, "noise": {"enabled": False}}, RATE))
    noisy_plan = plan_render_shards(clips, scenes, {**simulation, "noise": {"enabled": True, "snr_db": [3, 3]}}, RATE)
    assert set(noisy_plan).isdisjoint(quiet)  # other settings, other shards
    clean, noisy = next(iter(quiet.values()))(), next(iter(noisy_plan.values()))()
    assert "noise_snr_db" not in clean.rows[0]
    assert noisy.rows[0]["noise_snr_db"] == 3.0
    assert noisy.audio[0].shape == clean.audio[0].shape
    assert not np.allclose(noisy.audio[0], clean.audio[0])
