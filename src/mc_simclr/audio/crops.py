"""Cutting fixed-length patches out of variable-length multichannel clips."""

from __future__ import annotations

import numpy as np


def pad_or_trim(audio: np.ndarray, length: int) -> np.ndarray:
    """``(M, length)``: the clip's start, zero-padded at the end when it is shorter."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    out = np.zeros(audio.shape[:-1] + (length,), dtype=audio.dtype)
    out[..., : audio.shape[-1]] = audio
    return out


def fixed_patches(audio: np.ndarray, length: int, max_patches: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_patches`` non-overlapping patches ``(k, M, length)`` spread evenly over the clip.

    A clip shorter than ``length`` gives one zero-padded patch; otherwise ``k = min(max_patches,
    n // length)`` patches whose starts are evenly spaced from 0 to ``n - length``. Returns the
    patches and their start samples.
    """
    if length < 1 or max_patches < 1:
        raise ValueError(f"patch length and max_patches must be >= 1, got {length} and {max_patches}")
    n = audio.shape[-1]
    if n <= length:
        return pad_or_trim(audio, length)[None], np.zeros(1, dtype=np.int64)
    k = min(max_patches, n // length)
    starts = np.round(np.linspace(0, n - length, k)).astype(np.int64)
    return np.stack([audio[..., s : s + length] for s in starts]), starts
