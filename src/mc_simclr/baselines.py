"""Classical localisation baseline: SRP-PHAT with pyroomacoustics (no learning at all).

For a horizontal planar array it searches azimuth on a 1-degree circle; for a 3-D array azimuth and
elevation on a 2-D grid (``grid_3d_deg``, 2 degrees by default); for a linear array the angle to its
axis (a circle in the plane of the axis; the array cannot tell more).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import stft
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import SPEED_OF_SOUND, table_geometry, wrap_degrees
from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.shards import ShardedAudio


class SRPPhat:
    """SRP-PHAT over a grid of directions in the array's own frame.

    Microphone positions are taken in the array frame (x towards the azimuth origin: microphone 0 of
    a circular array), so the estimate is in the project's convention (azimuth counter-clockwise from
    x, elevation up; the angle to the axis for a linear array). ``geometry`` defaults to the circular
    array of ``array_diameter`` and ``n_mics``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        freq_range: tuple[float, float] = (300.0, 6000.0),
        array_diameter: float = 0.1,
        n_mics: int = 4,
        resolution_deg: float = 1.0,
        geometry: ArrayGeometry | None = None,
        grid_3d_deg: float = 2.0,
    ) -> None:
        import pyroomacoustics as pra

        if not 0 < freq_range[0] < freq_range[1] <= sample_rate / 2:
            raise ValueError(f"evaluation.srp_phat.freq_range must lie in (0, {sample_rate / 2}], got {freq_range}")
        geometry = geometry or ArrayGeometry.circular(n_mics, array_diameter)
        self.labels = DirectionLabels.of(geometry)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.freq_range = list(freq_range)
        positions = geometry.array
        if self.labels.kind == "direction":
            azimuth = np.radians(np.arange(-180.0, 180.0, grid_3d_deg))
            colatitude = np.radians(np.arange(0.0, 180.0 + grid_3d_deg / 2, grid_3d_deg))
            self._doa = pra.doa.algorithms["SRP"](
                positions.T,
                sample_rate,
                n_fft,
                c=SPEED_OF_SOUND,
                num_src=1,
                dim=3,
                azimuth=azimuth,
                colatitude=colatitude,
            )
            return
        if self.labels.kind == "axis":  # a plane that holds the axis: the angle to it is all there is
            axis = np.asarray(self.labels.axis)
            other = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
            basis = np.stack([axis, other / np.linalg.norm(other)])  # (2, 3)
            positions = positions @ basis.T  # (M, 2) coordinates along the axis and across it
        self.grid = np.radians(np.arange(-180.0, 180.0, resolution_deg))
        mics = positions[:, :2].T  # (2, M)
        self._doa = pra.doa.algorithms["SRP"](mics, sample_rate, n_fft, c=SPEED_OF_SOUND, num_src=1, azimuth=self.grid)

    def locate(self, audio: np.ndarray) -> dict[str, float]:
        """The dominant source's direction in ``audio`` ``(M, n)``: ``pred_azimuth`` (and
        ``pred_elevation`` for a 3-D array) or ``pred_axis_angle`` (degrees)."""
        _, _, spec = stft(audio, nperseg=self.n_fft, noverlap=self.n_fft // 2, boundary=None, padded=True)
        energy = np.sum(np.abs(spec) ** 2, axis=(0, 1))
        active = spec[:, :, energy > 1e-3 * energy.max()] if energy.max() > 0 else spec
        self._doa.locate_sources(active, freq_range=self.freq_range)
        azimuth = float(wrap_degrees(np.degrees(self._doa.azimuth_recon[0])))
        if self.labels.kind == "direction":
            return {"pred_azimuth": azimuth, "pred_elevation": 90.0 - float(np.degrees(self._doa.colatitude_recon[0]))}
        if self.labels.kind == "axis":
            return {"pred_axis_angle": abs(azimuth)}
        return {"pred_azimuth": azimuth}

    def __call__(self, audio: np.ndarray) -> float:
        """Azimuth (degrees) of the dominant source in ``audio`` ``(M, n)`` (an array that resolves azimuth)."""
        return self.locate(audio)["pred_azimuth"]


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
    ``evaluation.srp_phat`` block (``n_fft``, ``freq_range``, ``max_seconds``, optionally
    ``grid_3d_deg``); the array comes from the rendered clips.
    """
    geometry = table_geometry(audio.metadata)
    srp = SRPPhat(
        sample_rate,
        int(params["n_fft"]),
        tuple(params["freq_range"]),
        geometry=geometry,
        grid_3d_deg=float(params.get("grid_3d_deg", 2.0)),
    )
    max_samples = int(float(params["max_seconds"]) * sample_rate)
    truth = ["azimuth_deg"] if srp.labels.kind == "azimuth" else ["azimuth_deg", "elevation_deg"]
    columns = ["clip_id", "label", "class_index", *truth, "rt60"]
    out = {}
    for split in splits:
        clips = feature_index[feature_index["split"] == split].groupby("clip_id", sort=True).first().reset_index()
        if clips.empty:
            continue
        predictions = pd.DataFrame(
            [
                srp.locate(audio.load_clip(clip_id, 0, max_samples))
                for clip_id in tqdm(clips["clip_id"], desc=f"SRP-PHAT ({split})", unit="clip")
            ],
            index=clips.index,
        )
        table = clips[columns].copy()
        for column, values in srp.labels.truth(table["azimuth_deg"].to_numpy(), table.get("elevation_deg")).items():
            table[column] = values
        out[split] = pd.concat([table, predictions], axis=1).assign(pred_class=np.nan)
    return out
