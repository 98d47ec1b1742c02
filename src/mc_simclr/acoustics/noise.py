"""Spatially diffuse background noise at a chosen signal-to-noise ratio (the hard embedded setting).

A diffuse (spherically isotropic) noise field is approximated by ``n_directions`` plane waves from
directions spread uniformly over the sphere, each an independent noise signal (white, or pink:
power falling as 1/f) that reaches every microphone with its own delay. The microphones then hear
noise that is correlated between them as a diffuse field is (coherence near ``sinc(2 pi f d / c)``
for microphones ``d`` apart), not the independent noise of a sensor floor, so it blurs GCC-PHAT the
way background sound in a real room does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mc_simclr.acoustics.scene import SPEED_OF_SOUND, clip_rng
from mc_simclr.config import check_keys, check_values

COLORS = ("white", "pink")


@dataclass(frozen=True)
class NoiseConfig:
    """The ``simulation.noise`` parameter block."""

    enabled: bool = False
    snr_db: tuple[float, float] = (0.0, 20.0)
    n_directions: int = 32
    color: str = "pink"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, name: str = "simulation.noise") -> NoiseConfig:
        params = dict(params or {})
        check_keys(params, ("enabled", "snr_db", "n_directions", "color"), name)
        snr = params.get("snr_db", cls.snr_db)
        if not (isinstance(snr, (list, tuple)) and len(snr) == 2 and all(isinstance(v, (int, float)) for v in snr)):
            raise ValueError(f"{name}.snr_db: expected [min, max] in dB, got {snr!r}")
        config = cls(
            enabled=bool(params.get("enabled", False)),
            snr_db=(float(snr[0]), float(snr[1])),
            n_directions=int(params.get("n_directions", cls.n_directions)),
            color=str(params.get("color", cls.color)),
        )
        check_values(
            {
                "snr_db": config.snr_db[0] <= config.snr_db[1],
                "n_directions": config.n_directions >= 1,
                "color": config.color in COLORS,
            },
            name,
            f"snr_db={list(config.snr_db)} (min must not exceed max), n_directions={config.n_directions}, "
            f"color={config.color!r} (one of {list(COLORS)})",
        )
        return config

    def settings(self) -> dict[str, Any]:
        """What shapes the rendered audio (part of the render shards' identity)."""
        return {"snr_db": list(self.snr_db), "n_directions": self.n_directions, "color": self.color}


def diffuse_noise(
    n_samples: int,
    mic_positions: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    n_directions: int = 32,
    color: str = "pink",
) -> np.ndarray:
    """Diffuse noise ``(n_mics, n_samples)`` at the microphones ``mic_positions`` ``(n_mics, 3)`` (metres).

    Each plane wave's delays are applied in the frequency domain (exact fractional delays, circular
    over the clip, which for delays of a fraction of a millisecond is inaudible); the result has unit
    power per microphone on average.
    """
    if color not in COLORS:
        raise ValueError(f"simulation.noise.color must be one of {list(COLORS)}, got {color!r}")
    mics = np.asarray(mic_positions, dtype=np.float64)
    mics = mics - mics.mean(axis=0, keepdims=True)
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    shape = np.ones_like(freqs)
    if color == "pink":
        shape[1:] = 1.0 / np.sqrt(freqs[1:] / freqs[1])
        shape[0] = 0.0
    directions = rng.standard_normal((n_directions, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    out = np.zeros((len(mics), len(freqs)), dtype=np.complex128)
    for direction in directions:
        spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
        delays = -(mics @ direction) / SPEED_OF_SOUND  # a wave from `direction` reaches nearer mics first
        out += spectrum[None, :] * np.exp(-2j * np.pi * freqs[None, :] * delays[:, None])
    noise = np.fft.irfft(out, n=n_samples, axis=1)
    power = float(np.mean(noise**2))
    return (noise / np.sqrt(power) if power > 0 else noise).astype(np.float32)


def add_diffuse_noise(
    audio: np.ndarray,
    mic_positions: np.ndarray,
    sample_rate: int,
    config: NoiseConfig,
    seed: int,
    clip_id: str,
) -> tuple[np.ndarray, float]:
    """``audio`` ``(n_mics, n)`` plus diffuse noise at an SNR drawn from ``config.snr_db``; and that SNR.

    The SNR is the ratio of the clip's mean power (all channels, the whole clip) to the noise's. The
    draw depends only on ``seed`` and ``clip_id``, so a clip's noise does not depend on the order
    clips are rendered in.
    """
    rng = clip_rng(seed, f"{clip_id}/diffuse-noise")
    snr_db = float(rng.uniform(*config.snr_db))
    noise = diffuse_noise(audio.shape[1], mic_positions, sample_rate, rng, config.n_directions, config.color)
    signal_power = float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))
    gain = np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    return (audio + gain * noise).astype(np.float32), snr_db
