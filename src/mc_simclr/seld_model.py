"""The trained model as a Python object: embeddings, event classes and azimuths of multichannel audio.

:class:`SELDModel` wraps a model file written by the evaluation pipeline (``seld_model.pt``: the
fine-tuned encoder, its class and azimuth heads, the class names, the feature settings and the
array geometry). The inference pipeline and the served MLflow model both call it; use it directly
in your own code::

    import numpy as np
    import mc_simclr

    model = mc_simclr.load_model("data/06_models/seld_model.pt")     # or "models:/mc-simclr-seld/latest"
    audio = np.zeros((model.geometry["n_mics"], 3 * 48000), dtype=np.float32)  # 3 s of 4-channel audio
    embeddings = model.embed(audio, sample_rate=48000)                  # (3, 128): one per 1 s window
    table = model.predict(audio, sample_rate=48000)                     # window, class, probability, azimuth

Audio is ``(channels, samples)`` or ``(batch, channels, samples)``, as a NumPy array or a torch
tensor, at any sample rate (it is resampled to the model's). It is cut into windows of
``window_seconds`` every ``hop_seconds`` from the start; the last window is zero-padded. Audio
shorter than one window (:attr:`SELDModel.min_seconds`) is refused: a window that is mostly
zeros would be answered as if it were a sound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.audio.crops import pad_or_trim
from mc_simclr.audio.io import resample
from mc_simclr.devices import resolve_device
from mc_simclr.model_files import model_geometry, unpack_seld_model

#: Prediction columns of every model; the direction columns follow (:func:`direction_columns`).
PREDICTION_COLUMNS = ("item", "window", "start_s", "end_s", "class", "class_probability")


def direction_columns(labels: DirectionLabels) -> tuple[str, ...]:
    """The direction columns of a model's predictions: ``azimuth_deg`` for the paper's array, also
    ``elevation_deg`` for a 3-D array, ``axis_angle_deg`` (angle to the axis) for a linear one."""
    return {"azimuth": ("azimuth_deg",), "direction": ("azimuth_deg", "elevation_deg"), "axis": ("axis_angle_deg",)}[
        labels.kind
    ]


#: How far (metres) two microphone positions may differ and still be the same array.
GEOMETRY_TOLERANCE = 1e-4


def same_array(a: ArrayGeometry, b: ArrayGeometry) -> bool:
    """Whether two geometries have the same microphones at the same places (array frame), whatever
    their kind or orientation in a room."""
    return a.n_mics == b.n_mics and bool(np.abs(a.array - b.array).max() <= GEOMETRY_TOLERANCE)


def windows(audio: np.ndarray, length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(k, M, length)`` every ``hop`` samples from the start; the last one is zero-padded."""
    if length < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {length} and {hop}")
    n = audio.shape[-1]
    starts = np.arange(0, max(n - length, 0) + 1, hop, dtype=np.int64)
    if starts[-1] + length < n:
        starts = np.append(starts, starts[-1] + hop)
    return np.stack([pad_or_trim(audio[:, s : s + length], length) for s in starts]), starts


class SELDModel:
    """A fine-tuned MC-SimCLR encoder with its class and azimuth heads.

    Build it with :func:`mc_simclr.load_model` (a file or an MLflow model URI) or
    :meth:`from_state`. ``device`` is ``"auto"`` (CUDA when available), ``"cpu"`` or a CUDA device.
    """

    def __init__(
        self,
        state: dict[str, Any],
        device: str | torch.device = "auto",
        window_seconds: float = 1.0,
        hop_seconds: float = 1.0,
        batch_size: int = 64,
    ) -> None:
        encoder, heads, extractor, class_names = unpack_seld_model(state)
        if window_seconds <= 0 or hop_seconds <= 0 or batch_size < 1:
            raise ValueError(
                f"window_seconds and hop_seconds must be > 0 and batch_size >= 1, got {window_seconds}, "
                f"{hop_seconds}, {batch_size}"
            )
        self.device = resolve_device(device)
        self.encoder = encoder.to(self.device).eval()
        self.heads = heads.to(self.device).eval()
        self.extractor = extractor.to(self.device)
        self.class_names = class_names
        self.window = int(round(window_seconds * extractor.sample_rate))
        self.hop = int(round(hop_seconds * extractor.sample_rate))
        self.batch_size = int(batch_size)
        self.array, self.labels = model_geometry(state)
        self._geometry = {**self.array.summary(), "labels": self.labels.to_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **kwargs: Any) -> SELDModel:
        """From the dict of a model file (what :func:`package_seld_model` returns)."""
        return cls(state, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SELDModel:
        """From a model file; it is loaded with ``weights_only=True`` (tensors and plain values only)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist (run the evaluation pipeline to write it)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - name the file whatever went wrong
            raise ValueError(f"{path} is not a readable model file ({type(err).__name__}: {err})") from err
        return cls(state, **kwargs)

    @property
    def min_seconds(self) -> float:
        """The shortest audio the model answers: one window (``window_seconds``)."""
        return self.window / self.sample_rate

    @property
    def sample_rate(self) -> int:
        """The rate the model works at; other rates are resampled to it."""
        return self.extractor.sample_rate

    @property
    def geometry(self) -> dict[str, Any]:
        """The microphone array the model was trained on: ``kind``, ``n_mics``, ``positions`` (metres,
        array frame), ``orientation_deg``, ``diameter_m``, ``resolves`` and the ``labels`` of its heads."""
        return dict(self._geometry)

    @property
    def prediction_columns(self) -> tuple[str, ...]:
        """The columns of :meth:`predict` (without ``embedding``)."""
        return (*PREDICTION_COLUMNS, *direction_columns(self.labels))

    def check_array(self, geometry: ArrayGeometry, name: str = "array") -> None:
        """Refuse recordings of another array than the one the model was trained on."""
        if not same_array(self.array, geometry):
            raise ValueError(
                f"{name}: the recordings' array ({geometry.describe()}) is not the one the model was trained on "
                f"({self.array.describe()}); its microphone positions differ. Use a model trained on this array "
                "(set the `array` block and run the pipelines) or recordings of the model's array"
            )

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def __repr__(self) -> str:
        return (
            f"SELDModel({len(self.class_names)} classes, {self.embedding_dim}-d embedding, {self.sample_rate} Hz, "
            f"geometry={self._geometry}, device={self.device})"
        )

    # ----------------------------------------------------------------------------------------
    def _as_batch(self, waveform: Any, sample_rate: int) -> np.ndarray:
        """``(batch, n_mics, samples)`` float32 at the model's rate, checked."""
        audio = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
        shape = tuple(audio.shape)
        if audio.ndim == 2:
            audio = audio[None]
        n_mics = self._geometry["n_mics"]
        if audio.ndim != 3 or audio.shape[1] != n_mics:
            raise ValueError(
                f"waveform must be (channels, samples) or (batch, channels, samples) with {n_mics} channels (one "
                f"per microphone of the array the model was trained on), got shape {shape}"
            )
        if audio.shape[-1] == 0:
            raise ValueError("waveform has no samples")
        if not np.issubdtype(audio.dtype, np.number) or not np.all(np.isfinite(audio)):
            raise ValueError("waveform must hold finite numbers (it has NaN, infinite or non-numeric values)")
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        seconds = audio.shape[-1] / int(sample_rate)
        if seconds < self.min_seconds - 0.5 / int(sample_rate):
            raise ValueError(
                f"the audio lasts {seconds:.4g} s, shorter than the model's window of {self.min_seconds:g} s "
                "(the shortest audio it answers); send at least one window"
            )
        return resample(audio.astype(np.float32), int(sample_rate), self.sample_rate).astype(np.float32)

    def _windows(self, waveform: Any, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``(batch, k, n_mics, window)`` and their start samples (at the model's rate)."""
        batch = self._as_batch(waveform, sample_rate)
        cut = [windows(item, self.window, self.hop) for item in batch]
        return np.stack([c for c, _ in cut]), cut[0][1]

    def _forward(self, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Embeddings, class probabilities and direction columns of windows ``(n, n_mics, window)``."""
        embeddings, probs, vectors = [], [], []
        with torch.no_grad():
            for i in range(0, len(cut), self.batch_size):
                h = self.encoder(self.extractor(torch.from_numpy(cut[i : i + self.batch_size]).to(self.device)))
                logits, vector = self.heads(h)
                embeddings.append(h.cpu())
                probs.append(logits.softmax(-1).cpu())
                vectors.append(vector.cpu())
        decoded = self.labels.decode(torch.cat(vectors).numpy())
        names = {"pred_azimuth": "azimuth_deg", "pred_elevation": "elevation_deg", "pred_axis_angle": "axis_angle_deg"}
        directions = {names[key]: value.astype(np.float64) for key, value in decoded.items()}
        return torch.cat(embeddings).numpy(), torch.cat(probs).numpy(), directions

    def embed(self, waveform: Any, sample_rate: int) -> np.ndarray:
        """The encoder's embedding of each window: ``(windows, D)``, or ``(batch, windows, D)`` for a batch."""
        cut, _ = self._windows(waveform, sample_rate)
        embeddings, _, _ = self._forward(cut.reshape(-1, *cut.shape[2:]))
        embeddings = embeddings.reshape(cut.shape[0], cut.shape[1], -1)
        return embeddings[0] if np.ndim(waveform) == 2 else embeddings

    def predict(self, waveform: Any, sample_rate: int, embeddings: bool = False) -> pd.DataFrame:
        """One row per window (of each item of a batch): ``item``, ``window``, ``start_s``, ``end_s``,
        ``class``, ``class_probability``, the direction (``azimuth_deg`` for the paper's array; see
        :func:`direction_columns`) and ``embedding`` when asked."""
        cut, starts = self._windows(waveform, sample_rate)
        batch, k = cut.shape[:2]
        embedding, probs, directions = self._forward(cut.reshape(-1, *cut.shape[2:]))
        best = probs.argmax(axis=1)
        table = pd.DataFrame(
            {
                "item": np.repeat(np.arange(batch), k),
                "window": np.tile(np.arange(k), batch),
                "start_s": np.tile(starts / self.sample_rate, batch),
                "end_s": np.tile((starts + self.window) / self.sample_rate, batch),
                "class": [self.class_names[i] for i in best],
                "class_probability": probs[np.arange(len(best)), best].astype(np.float64),
                **directions,
            }
        )
        if embeddings:
            table["embedding"] = [row.astype(np.float32).tolist() for row in embedding]
        return table
