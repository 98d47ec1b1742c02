"""Spatially diffuse background noise at a chosen signal-to-noise ratio (the hard embedded setting).

In a diffuse (spherically isotropic) noise field, two microphones ``d`` apart hear noise whose
complex coherence at frequency ``f`` is ``sinc(2 pi f d / c)``. The noise is generated as such a
field is in array-processing work (Habets and Gannot's method): independent noise spectra (white,
or pink: power falling as 1/f), mixed at every frequency by a square root of the microphones'
coherence matrix. The microphones then hear noise correlated between them as in a room, not the
independent noise of a sensor floor, so it blurs GCC-PHAT the way background sound does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mc_simclr.acoustics.scene import SPEED_OF_SOUND, clip_rng
from mc_simclr.params import check_keys, check_values

COLORS = ("white", "pink")


@dataclass(frozen=True)
class NoiseConfig:
    """The ``simulation.noise`` parameter block."""

    enabled: bool = False
    snr_db: tuple[float, float] = (0.0, 20.0)
    color: str = "pink"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, name: str = "simulation.noise") -> NoiseConfig:
        params = dict(params or {})
        check_keys(params, ("enabled", "snr_db", "color"), name)
        snr = params.get("snr_db", cls.snr_db)
        if not (isinstance(snr, (list, tuple)) and len(snr) == 2 and all(isinstance(v, (int, float)) for v in snr)):
            raise ValueError(f"{name}.snr_db: expected [min, max] in dB, got {snr!r}")
        config = cls(
            enabled=bool(params.get("enabled", False)),
            snr_db=(float(snr[0]), float(snr[1])),
            color=str(params.get("color", cls.color)),
        )
        check_values(
            {
                "snr_db": config.snr_db[0] <= config.snr_db[1],
                "color": config.color in COLORS,
            },
            name,
            f"snr_db={list(config.snr_db)} (min must not exceed max), color={config.color!r} (one of {list(COLORS)})",
        )
        return config

    def settings(self) -> dict[str, Any]:
        """What shapes the rendered audio (part of the render shards' identity)."""
        return {"snr_db": list(self.snr_db), "color": self.color}


#: Frame of the short-time synthesis: 64 ms at 16 kHz, a coherence bin every 15.6 Hz.
FRAME = 1024


@functools.lru_cache(maxsize=16)
def _mixing(distances: tuple[tuple[float, ...], ...], sample_rate: int, frame: int) -> np.ndarray:
    """``A(f)`` ``(F, M, M)`` with ``A A^T`` the diffuse-field coherence ``sinc(2 pi f d_ij / c)`` (eigendecomposition,
    so that the singular matrix at low frequencies is no problem)."""
    freqs = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    coherence = np.sinc(2.0 * freqs[:, None, None] * np.asarray(distances)[None] / SPEED_OF_SOUND)
    values, vectors = np.linalg.eigh(coherence)
    return vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]


def diffuse_noise(
    n_samples: int,
    mic_positions: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    color: str = "pink",
) -> np.ndarray:
    """Diffuse noise ``(n_mics, n_samples)`` at the microphones ``mic_positions`` ``(n_mics, 3)`` (metres).

    Short-time synthesis: in every frame of :data:`FRAME` samples (Hann, half overlap), the
    microphones' spectra are ``A(f) n``, with ``n`` independent complex Gaussian values (shaped
    white or pink) and ``A(f) A(f)^T`` the coherence matrix of the microphones in a diffuse field;
    the frames are overlap-added. The result has unit power per microphone on average.
    """
    if color not in COLORS:
        raise ValueError(f"simulation.noise.color must be one of {list(COLORS)}, got {color!r}")
    mics = np.asarray(mic_positions, dtype=np.float64)
    distances = np.linalg.norm(mics[:, None, :] - mics[None, :, :], axis=-1)
    mixing = _mixing(tuple(map(tuple, np.round(distances, 9))), int(sample_rate), FRAME)  # (F, M, M)
    hop = FRAME // 2
    n_frames = n_samples // hop + 2
    shape = (n_frames, mixing.shape[0], len(mics))
    spectra = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if color == "pink":
        freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
        weight = np.zeros_like(freqs)
        weight[1:] = 1.0 / np.sqrt(freqs[1:] / freqs[1])
        spectra *= weight[None, :, None]
    frames = np.fft.irfft(np.einsum("fij,tfj->tif", mixing, spectra), n=FRAME, axis=-1)  # (T, M, FRAME)
    frames *= np.hanning(FRAME + 1)[:-1]  # periodic Hann: half-overlapped copies sum to a constant
    out = np.zeros((len(mics), (n_frames + 1) * hop))
    for t in range(n_frames):
        out[:, t * hop : t * hop + FRAME] += frames[t]
    noise = out[:, hop : hop + n_samples]
    power = float(np.mean(noise**2))
    return (noise / np.sqrt(power) if power > 0 else noise).astype(np.float32)


def noise_gain(signal_power: float, snr_db: float) -> np.floating:
    """The factor that puts unit-power noise ``snr_db`` below a signal of mean power ``signal_power``."""
    return np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))


def clip_noise(
    n_samples: int, mic_positions: np.ndarray, sample_rate: int, config: NoiseConfig, seed: int, clip_id: str
) -> tuple[np.ndarray, float]:
    """A clip's unit-power diffuse noise ``(n_mics, n_samples)`` and its SNR drawn from ``config.snr_db``.

    The draw depends only on ``seed`` and ``clip_id``, so a clip's noise does not depend on the order
    clips are rendered in (and can be drawn again apart from the clip, as the diagnostics do)."""
    rng = clip_rng(seed, f"{clip_id}/diffuse-noise")
    snr_db = float(rng.uniform(*config.snr_db))
    return diffuse_noise(n_samples, mic_positions, sample_rate, rng, config.color), snr_db


def add_diffuse_noise(
    audio: np.ndarray,
    mic_positions: np.ndarray,
    sample_rate: int,
    config: NoiseConfig,
    seed: int,
    clip_id: str,
) -> tuple[np.ndarray, float]:
    """``audio`` ``(n_mics, n)`` plus the clip's diffuse noise (:func:`clip_noise`); and its SNR.

    The SNR is the ratio of the clip's mean power (all channels, the whole clip) to the noise's.
    """
    noise, snr_db = clip_noise(audio.shape[1], mic_positions, sample_rate, config, seed, clip_id)
    signal_power = float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))
    return (audio + noise_gain(signal_power, snr_db) * noise).astype(np.float32), snr_db
