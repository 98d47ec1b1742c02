"""Classical localisation baseline: SRP-PHAT azimuth with pyroomacoustics (no learning at all)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import stft
from tqdm.auto import tqdm

from mc_simclr.acoustics.scene import SPEED_OF_SOUND, circular_array, wrap_degrees
from mc_simclr.shards import ShardedAudio


class SRPPhat:
    """SRP-PHAT over a 1-degree azimuth grid for a horizontal circular array.

    Microphone positions are taken in the array's own frame (microphone 0 on the x axis), so the
    estimate is an azimuth in the project's convention (0 = towards microphone 0, counter-clockwise).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        freq_range: tuple[float, float] = (300.0, 6000.0),
        array_diameter: float = 0.1,
        n_mics: int = 4,
        resolution_deg: float = 1.0,
    ) -> None:
        import pyroomacoustics as pra

        if not 0 < freq_range[0] < freq_range[1] <= sample_rate / 2:
            raise ValueError(f"evaluation.srp_phat.freq_range must lie in (0, {sample_rate / 2}], got {freq_range}")
        mics = circular_array(np.zeros(3), array_diameter, n_mics, 0.0)[:, :2].T  # (2, M)
        self.grid = np.radians(np.arange(-180.0, 180.0, resolution_deg))
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.freq_range = list(freq_range)
        self._doa = pra.doa.algorithms["SRP"](mics, sample_rate, n_fft, c=SPEED_OF_SOUND, num_src=1, azimuth=self.grid)

    def __call__(self, audio: np.ndarray) -> float:
        """Azimuth (degrees) of the dominant source in ``audio`` ``(M, n)``."""
        _, _, spec = stft(audio, nperseg=self.n_fft, noverlap=self.n_fft // 2, boundary=None, padded=True)
        energy = np.sum(np.abs(spec) ** 2, axis=(0, 1))
        active = spec[:, :, energy > 1e-3 * energy.max()] if energy.max() > 0 else spec
        self._doa.locate_sources(active, freq_range=self.freq_range)
        return float(wrap_degrees(np.degrees(self._doa.azimuth_recon[0])))


def srp_phat_clips(
    audio: ShardedAudio,
    feature_index: pd.DataFrame,
    params: dict[str, Any],
    sample_rate: int,
    splits: tuple[str, ...] = ("test", "confirmation"),
) -> dict[str, pd.DataFrame]:
    """SRP-PHAT azimuth of every clip of ``splits`` in ``feature_index`` (its first ``params["max_seconds"]``).

    Clip-level predictions per split (those the index has) in the layout of
    :func:`mc_simclr.evaluation.clip_predictions`, with ``pred_class`` NaN. ``params`` is the
    ``evaluation.srp_phat`` block (``n_fft``, ``freq_range``, ``max_seconds``); the array's diameter
    and microphone count come from the rendered clips.
    """
    meta = audio.metadata.set_index("clip_id")
    diameter = float(meta["array_diameter"].iloc[0])
    n_mics = int(meta["n_mics"].iloc[0])
    srp = SRPPhat(sample_rate, int(params["n_fft"]), tuple(params["freq_range"]), diameter, n_mics)
    max_samples = int(float(params["max_seconds"]) * sample_rate)
    columns = ["clip_id", "label", "class_index", "azimuth_deg", "rt60"]
    out = {}
    for split in splits:
        clips = feature_index[feature_index["split"] == split].groupby("clip_id", sort=True).first().reset_index()
        if clips.empty:
            continue
        predictions = [
            srp(audio.load_clip(clip_id, 0, max_samples))
            for clip_id in tqdm(clips["clip_id"], desc=f"SRP-PHAT ({split})", unit="clip")
        ]
        out[split] = clips[columns].assign(pred_azimuth=predictions, pred_class=np.nan)
    return out
