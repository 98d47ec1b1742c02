"""Embeddings, event classes and azimuths for a user's own 4-channel recordings.

The model file (``seld_model``) holds the fine-tuned encoder, its two linear heads, the class names
and the feature settings. Recordings must come from the same array geometry (4 microphones in the
order and spacing the model was trained on); a file with another channel count is refused, a file
at another sample rate is resampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mc_simclr.audio.crops import pad_or_trim
from mc_simclr.audio.io import read_multichannel, resample
from mc_simclr.devices import resolve_device
from mc_simclr.features import FeatureExtractor
from mc_simclr.metrics import azimuth_from_vector
from mc_simclr.models import Encoder, SELDHeads
from mc_simclr.training import package_encoder, unpack_encoder


def package_seld_model(
    encoder: Encoder,
    heads: SELDHeads,
    extractor: FeatureExtractor,
    features_params: dict[str, Any],
    class_names: list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encoder + heads + class names + feature settings as one dict for a torch state file."""
    state = package_encoder(encoder, extractor, features_params, extra)
    state["heads"] = {k: v.detach().cpu() for k, v in heads.state_dict().items()}
    state["class_names"] = list(class_names)
    return state


def unpack_seld_model(state: dict[str, Any]) -> tuple[Encoder, SELDHeads, FeatureExtractor, list[str]]:
    """Rebuild what :func:`package_seld_model` stored (eval mode, CPU)."""
    if "heads" not in state or "class_names" not in state:
        raise ValueError("model file lacks heads or class names: it was not written by the evaluation pipeline")
    encoder, extractor = unpack_encoder(state)
    heads = SELDHeads(encoder.embedding_dim, len(state["class_names"]))
    heads.load_state_dict(state["heads"])
    return encoder, heads.eval(), extractor, list(state["class_names"])


def read_recording(path: str | Path, sample_rate: int, n_mics: int) -> np.ndarray:
    """A recording as float32 ``(n_mics, samples)`` at ``sample_rate``.

    Raises:
        ValueError: the file has another number of channels than the array.
        AudioReadError: the file is unreadable, empty or holds non-finite samples.
    """
    audio, rate = read_multichannel(path)
    if audio.shape[0] != n_mics:
        raise ValueError(
            f"{path}: {audio.shape[0]} channel(s), expected {n_mics} "
            "(one per microphone of the array the model was trained on)"
        )
    return resample(audio, rate, sample_rate).astype(np.float32, copy=False)


def windows(audio: np.ndarray, length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(k, M, length)`` every ``hop`` samples from the start; the last one is zero-padded."""
    if length < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {length} and {hop}")
    n = audio.shape[-1]
    starts = np.arange(0, max(n - length, 0) + 1, hop, dtype=np.int64)
    if starts[-1] + length < n:
        starts = np.append(starts, starts[-1] + hop)
    return np.stack([pad_or_trim(audio[:, s : s + length], length) for s in starts]), starts


def infer_recordings(
    paths: list[Path],
    state: dict[str, Any],
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
    batch_size: int = 64,
    device: str = "auto",
) -> pd.DataFrame:
    """One row per window of each recording: its embedding, class, class probability and azimuth."""
    encoder, heads, extractor, class_names = unpack_seld_model(state)
    target = resolve_device(device)
    encoder, heads, extractor = encoder.to(target), heads.to(target), extractor.to(target)
    length = int(round(window_seconds * extractor.sample_rate))
    hop = int(round(hop_seconds * extractor.sample_rate))
    rows = []
    for path in tqdm(paths, desc="inference", unit="file"):
        cut, starts = windows(read_recording(path, extractor.sample_rate, extractor.n_mics), length, hop)
        embeddings, probs, vectors = [], [], []
        with torch.no_grad():
            for i in range(0, len(cut), batch_size):
                h = encoder(extractor(torch.from_numpy(cut[i : i + batch_size]).to(target)))
                logits, vector = heads(h)
                embeddings.append(h.cpu())
                probs.append(logits.softmax(-1).cpu())
                vectors.append(vector.cpu())
        embedding, prob = torch.cat(embeddings).numpy(), torch.cat(probs).numpy()
        azimuth = azimuth_from_vector(torch.cat(vectors).numpy())
        for k, start in enumerate(starts):
            best = int(prob[k].argmax())
            rows.append(
                {
                    "file": str(path),
                    "window": k,
                    "start_s": start / extractor.sample_rate,
                    "end_s": (start + length) / extractor.sample_rate,
                    "class": class_names[best],
                    "class_probability": float(prob[k, best]),
                    "azimuth_deg": float(azimuth[k]),
                    "embedding": embedding[k].astype(np.float32).tolist(),
                }
            )
    return pd.DataFrame(rows)
