"""Spectral and spatial input features: log-Mel per microphone and GCC-PHAT per microphone pair.

:class:`FeatureExtractor` maps a batch of M-channel waveforms ``(B, M, N)`` to ``(B, C, T, F)``
with ``C = M + M (M - 1) / 2`` (10 for 4 microphones): the M log-Mel spectrograms first, then one
GCC-PHAT map per pair in the order (0,1), (0,2), (0,3), (1,2), (1,3), (2,3). Following the paper's
equation (1)::

    GCC_ij(tau, t) = IFFT_f[ X_i(f, t) X_j*(f, t) / (|X_i(f, t)| |X_j(f, t)|) ]

The GCC is cropped to F lags centred on lag 0 (lags ``-F/2 .. F/2 - 1``) so that it stacks with the
F Mel bands. Its peak sits at ``tau = t_i - t_j``: positive when the sound reaches microphone i
after microphone j. Hence ``GCC_ji(tau) = GCC_ij(-tau)``.

Defaults (each a parameter in ``parameters_feature_extraction.yml``):

* ``sample_rate`` 16000: see ``audio.sample_rate``.
* ``n_fft`` 1024 (64 ms) with a Hann window of the same length: frequency resolution for the Mel
  bands, and a GCC whose circular lag range (+-32 ms) is far beyond any inter-microphone delay.
* ``hop_length`` 320 (20 ms): 51 frames per 1 s patch, sized for a CPU; the paper configuration
  uses 160 (10 ms, 101 frames) as in Fonseca et al.'s CRNN front end.
* ``n_mels`` 64, ``f_min`` 50 Hz, ``f_max`` = Nyquist: the usual SELD front end; GCC keeps 64 lags
  (+-2 ms), which holds the +-0.29 ms a 0.1 m array can produce several times over.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchaudio
from torch import nn

from mc_simclr.acoustics.array import mic_pairs
from mc_simclr.acoustics.scene import table_geometry
from mc_simclr.audio.crops import fixed_patches
from mc_simclr.devices import resolve_device
from mc_simclr.params import check_keys, check_values
from mc_simclr.shards import OK, FeatureShard, ShardedAudio

logger = logging.getLogger(__name__)

#: Splits with precomputed features (pretraining computes its own on the fly); ``confirmation``
#: is optional (the embedded corpus has it, FSDnoisy18k does not).
EVALUATION_SPLITS = ("labeled", "validation", "test", "confirmation")

# Metadata carried from the simulation table to every feature item.
ITEM_COLUMNS = (
    "clip_id",
    "split",
    "label",
    "duration",
    "azimuth_deg",
    "elevation_deg",
    "distance_m",
    "rt60",
    "room_x",
    "room_y",
    "room_z",
)


class FeatureExtractor(nn.Module):
    """Waveforms ``(B, M, N)`` -> features ``(B, M + M(M-1)/2, T, F)``: log-Mel then GCC-PHAT.

    Batched on whatever device the input is on; no Python loop over items. ``eps`` guards the PHAT
    normalisation and the logarithm.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 320,
        win_length: int | None = None,
        window: str = "hann",
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = None,
        n_mics: int = 4,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        f_max = float(f_max) if f_max is not None else sample_rate / 2.0
        checks = {
            "sample_rate": sample_rate > 0,
            "n_fft": n_fft >= 16,
            "hop_length": 0 < hop_length <= n_fft,
            "win_length": 0 < win_length <= n_fft,
            "n_mels": 0 < n_mels <= n_fft,
            "f_min/f_max": 0 <= f_min < f_max <= sample_rate / 2.0,
            "n_mics": n_mics >= 2,
            "eps": eps > 0,
        }
        check_values(
            checks,
            "features",
            f"sample_rate={sample_rate}, n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}, "
            f"n_mels={n_mels}, f_min={f_min}, f_max={f_max}, n_mics={n_mics}, eps={eps}",
        )
        windows = {"hann": torch.hann_window, "hamming": torch.hamming_window, "blackman": torch.blackman_window}
        if window not in windows:
            raise ValueError(f"features.window must be one of {sorted(windows)}, got {window!r}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.window_name = window
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = f_max
        self.n_mics = int(n_mics)
        self.eps = float(eps)
        self.pairs = mic_pairs(self.n_mics)
        self.register_buffer("window", windows[window](self.win_length, periodic=True), persistent=False)
        fbanks = torchaudio.functional.melscale_fbanks(
            n_freqs=self.n_fft // 2 + 1,
            f_min=self.f_min,
            f_max=self.f_max,
            n_mels=self.n_mels,
            sample_rate=self.sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.register_buffer("mel_fbanks", fbanks, persistent=False)  # (n_freqs, n_mels)
        # Inverse real DFT restricted to lags -F/2 .. F/2 - 1: gcc[l] = sum_f w_f Re(C_f e^{2 pi i f l / N}) / N,
        # with w_f = 1 at DC and Nyquist and 2 elsewhere (the Hermitian half that irfft implies).
        freqs = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        lags = torch.arange(-(self.n_mels // 2), self.n_mels - self.n_mels // 2, dtype=torch.float64)
        weights = torch.full_like(freqs, 2.0)
        weights[0] = 1.0
        if self.n_fft % 2 == 0:
            weights[-1] = 1.0
        phase = 2.0 * torch.pi * freqs[:, None] * lags[None, :] / self.n_fft
        self.register_buffer("lag_cos", (weights[:, None] * torch.cos(phase) / self.n_fft).float(), persistent=False)
        self.register_buffer("lag_sin", (weights[:, None] * torch.sin(phase) / self.n_fft).float(), persistent=False)

    @property
    def n_channels(self) -> int:
        return self.n_mics + len(self.pairs)

    def n_frames(self, n_samples: int) -> int:
        """Frames T for an input of ``n_samples`` (centred STFT: ``n_fft // 2`` zeros on each side)."""
        return 1 + (n_samples + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length

    @classmethod
    def from_params(cls, params: dict[str, Any], sample_rate: int, n_mics: int = 4) -> FeatureExtractor:
        """Build from the ``features`` parameter block."""
        check_keys(
            params, ("n_fft", "hop_length", "win_length", "window", "n_mels", "f_min", "f_max", "eps"), "features"
        )
        return cls(sample_rate=sample_rate, n_mics=n_mics, **params)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"window={self.window_name}, n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, "
            f"n_mics={self.n_mics}, pairs={self.pairs}"
        )

    def stft(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of the centred STFT, each ``(B, M, T, n_fft/2 + 1)``."""
        batch, mics, samples = waveforms.shape
        spec = torch.stft(
            waveforms.reshape(batch * mics, samples),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        parts = torch.view_as_real(spec).reshape(batch, mics, spec.shape[-2], spec.shape[-1], 2)
        return parts[..., 0].transpose(-1, -2).contiguous(), parts[..., 1].transpose(-1, -2).contiguous()

    def log_mel(self, power: torch.Tensor) -> torch.Tensor:
        """``log(Mel power + eps)`` ``(B, M, T, n_mels)`` from the power spectrum ``(B, M, T, n_freqs)``."""
        return torch.log(power @ self.mel_fbanks + self.eps)

    def gcc_phat(self, real: torch.Tensor, imag: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
        """GCC-PHAT ``(B, P, T, n_mels)`` over lags ``-F/2 .. F/2 - 1`` for every microphone pair.

        Each microphone's spectrum is whitened once (``X / (|X| + eps)``), the cross-spectra of the
        pairs are formed in real arithmetic, and only the kept lags of the inverse real DFT are
        evaluated, as one matrix product with a cosine/sine basis: the same values as a full
        ``irfft`` followed by the crop, without computing the lags that are thrown away.
        """
        inv = 1.0 / (power.sqrt() + self.eps)
        real, imag = real * inv, imag * inv
        # Pairs (i, j > i) are built one microphone i at a time by broadcasting against all j > i:
        # the same order as mic_pairs, with far smaller temporaries than gathering all pairs at once.
        out = []
        for i in range(self.n_mics - 1):
            re_i, im_i = real[:, i : i + 1], imag[:, i : i + 1]
            re_j, im_j = real[:, i + 1 :], imag[:, i + 1 :]
            cross_re = torch.addcmul(re_i * re_j, im_i, im_j)  # Re(X_i X_j*)
            cross_im = torch.addcmul(im_i * re_j, re_i, im_j, value=-1.0)  # Im(X_i X_j*)
            out.append(cross_re @ self.lag_cos - cross_im @ self.lag_sin)
        return torch.cat(out, dim=1)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.ndim != 3 or waveforms.shape[1] != self.n_mics:
            raise ValueError(f"FeatureExtractor expects (batch, {self.n_mics}, samples), got {tuple(waveforms.shape)}")
        real, imag = self.stft(waveforms.to(torch.float32))
        power = real.square() + imag.square()
        return torch.cat([self.log_mel(power), self.gcc_phat(real, imag, power)], dim=1)


def featurize_clips(
    clips: Iterable[tuple[dict[str, Any], np.ndarray]],
    extractor: FeatureExtractor,
    patch_samples: int,
    max_patches: int,
    class_index: dict[str, int],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    keep_columns: tuple[str, ...] = ITEM_COLUMNS,
) -> FeatureShard:
    """Features of fixed 1 s patches of each clip, with one metadata row per patch.

    ``clips`` yields ``(metadata row, audio (M, n))``; rows keep ``keep_columns`` plus ``patch``,
    ``start`` (sample) and ``class_index`` (-1 for a label outside ``class_index``).
    """
    patches, rows = [], []
    for row, audio in clips:
        cut, starts = fixed_patches(audio, patch_samples, max_patches)
        patches.append(cut)
        for p, start in enumerate(starts):
            rows.append(
                {
                    **{k: row[k] for k in keep_columns if k in row},
                    "patch": p,
                    "start": int(start),
                    "class_index": class_index.get(row.get("label"), -1),
                }
            )
    if not patches:
        raise ValueError("no clips to featurize")
    waves = torch.from_numpy(np.concatenate(patches).astype(np.float32, copy=False))
    extractor = extractor.to(device)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(waves), batch_size):
            outputs.append(extractor(waves[start : start + batch_size].to(device)).cpu())
    return FeatureShard(torch.cat(outputs).numpy(), pd.DataFrame(rows))


def class_names(metadata: pd.DataFrame) -> list[str]:
    """Sorted class names of the rendered labeled clips: the class index of every later step."""
    labeled = metadata.loc[(metadata["split"] == "labeled") & (metadata["status"] == OK), "label"]
    names = sorted({str(v) for v in labeled if str(v)})
    if not names:
        raise ValueError("the rendered corpus has no labeled clip: evaluation needs a labeled split")
    return names


def featurize_shard(
    audio: ShardedAudio, clip_ids: list[str], extractor: FeatureExtractor, options: dict[str, Any]
) -> FeatureShard:
    """:func:`featurize_clips` of the rendered clips ``clip_ids`` of ``audio``."""
    clips = ((row.to_dict(), waveform) for row, waveform in audio.iter_clips(clip_ids))
    return featurize_clips(clips, extractor=extractor, **options)


def plan_feature_shards(
    audio: ShardedAudio,
    classes: list[str],
    features: dict[str, Any],
    feature_extraction: dict[str, Any],
    sample_rate: int,
) -> dict[str, Callable[[], FeatureShard]]:
    """One feature shard per audio shard of the ``feature_extraction.splits`` clips, computed lazily.

    ``features`` and ``feature_extraction`` are the parameter blocks; their settings and the class
    index are part of every shard id, so shards of other settings are never reused.
    """
    splits = list(feature_extraction.get("splits", EVALUATION_SPLITS))
    unknown = sorted(set(splits) - {"unlabeled", *EVALUATION_SPLITS})
    if unknown:
        raise ValueError(f"feature_extraction.splits has unknown split(s) {unknown}")
    sample_rate = int(sample_rate)
    meta = audio.metadata
    geometry = table_geometry(meta)
    extractor = FeatureExtractor.from_params(features, sample_rate=sample_rate, n_mics=geometry.n_mics)
    options = {
        "patch_samples": int(round(float(feature_extraction["patch_seconds"]) * sample_rate)),
        "max_patches": int(feature_extraction["max_patches_per_clip"]),
        "class_index": {name: i for i, name in enumerate(classes)},
        "batch_size": int(feature_extraction["batch_size"]),
        "device": resolve_device(feature_extraction.get("device", "auto")),
    }
    salt = {"features": features, "sr": sample_rate, **{k: str(v) for k, v in options.items() if k != "device"}}
    digest = hashlib.sha1(json.dumps(salt, sort_keys=True).encode("utf-8")).hexdigest()[:8]
    rendered = meta[(meta["status"] == OK) & meta["split"].isin(splits)]
    plan = {
        f"{shard_id}-{digest}": partial(featurize_shard, audio, list(rows["clip_id"]), extractor, options)
        for shard_id, rows in rendered.groupby("shard_id", sort=True)
    }
    if not plan:
        raise ValueError(f"no rendered clip in the splits {splits}")
    logger.info("Feature extraction: %d clips of %s in %d shards", len(rendered), splits, len(plan))
    return plan
