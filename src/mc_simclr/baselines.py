"""Classical localisation baseline: SRP-PHAT (no learning at all).

For a horizontal planar array it searches azimuth on a 1-degree circle with pyroomacoustics; for a
linear array the angle to its axis the same way (a circle in a plane that holds the axis; the array
cannot tell more). For a 3-D array it searches azimuth and elevation on a ``grid_3d_deg`` grid
(1 degree by default, 65,160 directions) in the time-domain form of SRP-PHAT: the sum over
microphone pairs of each pair's GCC-PHAT (frames averaged, 1/16-sample lag grid, linear
interpolation) at the time differences a far-field source in that direction makes. The frequency-
domain search of pyroomacoustics on such a grid takes seconds per clip; this one about 0.1 s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import stft
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry, direction_vectors, mic_pairs
from mc_simclr.acoustics.scene import SPEED_OF_SOUND, table_geometry, wrap_degrees
from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.shards import ShardedAudio


def active_frames(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """STFT ``(M, F, T)`` of ``audio`` (half-overlapping frames) without its near-silent frames."""
    _, _, spec = stft(audio, nperseg=n_fft, noverlap=n_fft // 2, boundary=None, padded=True)
    energy = np.sum(np.abs(spec) ** 2, axis=(0, 1))
    return spec[:, :, energy > 1e-3 * energy.max()] if energy.max() > 0 else spec


class GridSRP:
    """Time-domain SRP-PHAT of a 3-D array over an azimuth x elevation grid (see the module doc)."""

    def __init__(
        self,
        positions: np.ndarray,
        sample_rate: int,
        n_fft: int,
        freq_range: tuple[float, float],
        grid_deg: float = 1.0,
        upsample: int = 16,
    ) -> None:
        if grid_deg <= 0:
            raise ValueError(f"evaluation.srp_phat.grid_3d_deg must be > 0, got {grid_deg}")
        self.azimuth = np.arange(-180.0, 180.0, grid_deg)
        self.elevation = np.arange(-90.0, 90.0 + grid_deg / 2, grid_deg)
        az, el = np.meshgrid(self.azimuth, self.elevation, indexing="ij")
        directions = direction_vectors(az, el).reshape(-1, 3)
        self.pairs = mic_pairs(len(positions))
        baselines = np.array([positions[i] - positions[j] for i, j in self.pairs])  # (P, 3)
        # arrival time at a microphone: -p.d / c (nearer the source, earlier); GCC_ij peaks at t_i - t_j
        self.lags = -(directions @ baselines.T) / SPEED_OF_SOUND * sample_rate * upsample  # (G, P) fine lags
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        self.band = (freqs >= freq_range[0]) & (freqs <= freq_range[1])
        self.length = n_fft * upsample
        self.upsample = upsample

    def locate(self, spec: np.ndarray) -> tuple[float, float]:
        """Azimuth and elevation (degrees) of the grid direction of highest steered power."""
        power = np.zeros(len(self.lags))
        for p, (i, j) in enumerate(self.pairs):
            cross = spec[i] * np.conj(spec[j])  # (F, T)
            cross = np.where(self.band[:, None], cross / (np.abs(cross) + 1e-12), 0.0).mean(axis=1)
            correlation = np.fft.irfft(cross, n=self.length) * self.length  # lag k at index k (mod length)
            position = self.lags[:, p] % self.length
            low = np.floor(position).astype(np.int64)
            frac = position - low
            power += (1.0 - frac) * correlation[low % self.length] + frac * correlation[(low + 1) % self.length]
        best = int(np.argmax(power))
        a, e = np.unravel_index(best, (len(self.azimuth), len(self.elevation)))
        return float(self.azimuth[a]), float(self.elevation[e])


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
        grid_3d_deg: float = 1.0,
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
            self._grid = GridSRP(positions, sample_rate, n_fft, freq_range, grid_3d_deg)
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
        active = active_frames(audio, self.n_fft)
        if self.labels.kind == "direction":
            azimuth, elevation = self._grid.locate(active)
            return {"pred_azimuth": azimuth, "pred_elevation": elevation}
        self._doa.locate_sources(active, freq_range=self.freq_range)
        azimuth = float(wrap_degrees(np.degrees(self._doa.azimuth_recon[0])))
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
    ``evaluation.srp_phat`` block (``n_fft``, ``freq_range``, ``max_seconds``, ``grid_3d_deg``);
    the array comes from the rendered clips.
    """
    geometry = table_geometry(audio.metadata)
    srp = SRPPhat(
        sample_rate,
        int(params["n_fft"]),
        tuple(params["freq_range"]),
        geometry=geometry,
        grid_3d_deg=float(params.get("grid_3d_deg", 1.0)),
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
