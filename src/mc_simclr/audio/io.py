"""Audio file I/O with soundfile: checked reads, mono downmix, resampling and atomic writes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from mc_simclr.utils import atomic_path


class AudioReadError(ValueError):
    """A clip that cannot be used: unreadable, empty or with non-finite samples."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # picklable as it was made, so that it reaches the driver from a worker process
        return (type(self), (self.path, self.reason))


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """Duration (s), native sample rate and channel count from the file header.

    Raises:
        AudioReadError: the file is missing, not a readable audio file, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(path, "file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioReadError(path, f"not a readable audio file ({err})") from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioReadError(path, "empty audio file (0 samples)")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis (identity when the rates match)."""
    if orig_rate == target_rate:
        return x
    ratio = Fraction(int(target_rate), int(orig_rate))
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def read_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate`` (channels averaged, then resampled).

    Raises:
        AudioReadError: unreadable or empty file, or non-finite samples.
    """
    path = Path(path)
    audio_info(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioReadError(path, f"could not decode audio ({err})") from err
    if data.size == 0:
        raise AudioReadError(path, "empty audio file (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioReadError(path, "audio contains NaN or infinite samples")
    mono = data.mean(axis=1)
    return resample(mono, int(rate), int(sample_rate)).astype(np.float32, copy=False)


def read_multichannel(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (channels, samples) with its sample rate."""
    path = Path(path)
    audio_info(path)
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if not np.all(np.isfinite(data)):
        raise AudioReadError(path, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(rate)


def write_audio_atomic(path: str | Path, data: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write a wav file under a temporary name in the same folder, then rename it into place.

    ``data`` is (samples,) or (channels, samples). An interrupted write never leaves a file that
    looks complete.
    """
    frames = data if data.ndim == 1 else data.T
    with atomic_path(path) as tmp:
        sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format="WAV")
