"""Diagnostics of a pretrained encoder where sounds are hard (docs/experiments/hard.md).

Three questions, each answered from what the pipelines already wrote, without new training of the
encoder:

* *Are the direction cues in the input?* Scores of clip predictions per band of the clips' SNR
  (:func:`scores_by_band`): SRP-PHAT, which learns nothing, and a supervised azimuth model.
* *Does pretraining take a shortcut?* How well a linear map of the frozen embedding predicts a
  nuisance of the clip that both views of a pair share, its SNR and its level
  (:func:`linear_r2`): a high R² with a small class margin says the encoder spends its capacity on
  what makes two views agree for the wrong reason.
* *Do the views agree through their shared noise?* NT-Xent's instance task (each view's nearest
  other view is its pair's, :func:`instance_accuracy`) on pairs whose views share their noise
  realisation, as in pretraining, against pairs whose second view carries another clip's noise
  (:func:`noisy_views`): a large drop says the encoder matches views by their noise.
* *Which array symmetries negate elevation?* (:func:`elevation_symmetries`) and how the scenes'
  elevations spread (:func:`elevation_spread`).

Kedro- and MLflow-free; ``scripts/diagnose_hard.py`` runs them on a project's data folder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mc_simclr.acoustics.noise import noise_gain
from mc_simclr.acoustics.scene import SceneConfig, sample_scene
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.metrics import clip_scores

#: SNR bands (dB) of the hard setting's 0-20 dB noise: [low, high) each.
SNR_BANDS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0))


def band_labels(values: np.ndarray, bands: tuple[tuple[float, float], ...] = SNR_BANDS) -> np.ndarray:
    """``"low-high dB"`` of each value's band (the last band includes its upper edge); ``""`` outside all."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, "", dtype=object)
    for i, (low, high) in enumerate(bands):
        upper = values <= high if i == len(bands) - 1 else values < high
        out[(values >= low) & upper] = f"{low:g}-{high:g} dB"
    return out


def scores_by_band(clips: pd.DataFrame, column: str = "noise_snr_db", bands=SNR_BANDS) -> pd.DataFrame:
    """:func:`~mc_simclr.metrics.clip_scores` of clip predictions per band of ``column`` and over all
    clips: one row per band with ``clips`` (how many) and the scores."""
    if column not in clips:
        raise ValueError(f"the clip predictions have no {column!r} column to band by")
    labels = band_labels(clips[column].to_numpy(), bands)
    rows = []
    for low, high in bands:
        name = f"{low:g}-{high:g} dB"
        chosen = clips[labels == name]
        if len(chosen):
            rows.append({"band": name, "clips": len(chosen), **clip_scores(chosen)})
    rows.append({"band": "all", "clips": len(clips), **clip_scores(clips)})
    return pd.DataFrame(rows)


def linear_r2(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray, ridge: float = 1e-2
) -> float:
    """R² on ``test`` of a ridge regression from features to ``y`` fitted on ``train``.

    Features are standardised with the training set's statistics; ``ridge`` is the penalty per
    training sample on the standardised weights. R² = 1 - SSE / SST with the test targets' own mean
    (0: no better than predicting the mean; it can be negative).
    """
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    train_y, test_y = np.asarray(train_y, np.float64), np.asarray(test_y, np.float64)
    if len(train) != len(train_y) or len(test) != len(test_y):
        raise ValueError("features and targets must have as many rows")
    if len(train) < 2 or len(test) < 2:
        raise ValueError("linear_r2 needs at least two training and two test rows")
    mean, std = train.mean(0), train.std(0)
    std[std < 1e-12] = 1.0
    x, xt = (train - mean) / std, (test - mean) / std
    y_mean = train_y.mean()
    weights = np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(x.shape[1]), x.T @ (train_y - y_mean))
    predicted = xt @ weights + y_mean
    total = np.sum((test_y - test_y.mean()) ** 2)
    return float(1.0 - np.sum((test_y - predicted) ** 2) / total) if total > 0 else float("nan")


def level_db(audio: np.ndarray) -> float:
    """RMS level (dB re full scale) of multichannel audio, all channels together."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(audio, np.float64)))))
    return 20.0 * np.log10(max(rms, 1e-12))


def elevation_symmetries(symmetries: ArraySymmetries) -> pd.DataFrame:
    """One row per symmetry: its permutation, whether it is a rotation, and what it does to
    elevation (``keeps``, ``negates`` or ``mixes`` it with azimuth)."""
    rows = []
    for s, rotation in enumerate(symmetries.rotations):
        vertical = rotation[2, 2]
        effect = "keeps" if np.isclose(vertical, 1.0) else "negates" if np.isclose(vertical, -1.0) else "mixes"
        rows.append(
            {
                "symmetry": s,
                "permutation": " ".join(map(str, symmetries.permutation(s))),
                "rotation": bool(np.linalg.det(rotation) > 0),
                "elevation": effect,
            }
        )
    return pd.DataFrame(rows)


def elevation_spread(config: SceneConfig, n: int = 4000, seed: int = 0) -> dict[str, float]:
    """Elevations (degrees) of ``n`` scenes drawn from ``config``: their spread and the mean absolute
    error of the best constant predictor (the median)."""
    rng = np.random.default_rng(seed)
    elevation = np.array([sample_scene(rng, config).elevation_deg for _ in range(n)])
    return {
        "scenes": float(n),
        "mean": float(elevation.mean()),
        "std": float(elevation.std()),
        "median_abs": float(np.median(np.abs(elevation))),
        "p5": float(np.percentile(elevation, 5)),
        "p95": float(np.percentile(elevation, 95)),
        "constant_mae": float(np.mean(np.abs(elevation - np.median(elevation)))),
    }


def constant_errors(items: pd.DataFrame, column: str = "elevation_deg", fit_split: str = "labeled") -> pd.DataFrame:
    """The best constant predictor of ``column`` (the median over the ``fit_split`` clips) and its mean
    absolute error per split, one value per clip: the floor a linear probe's error is read against.

    ``items`` holds ``clip_id``, ``split`` and ``column`` (one row per patch or per clip)."""
    missing = [c for c in ("clip_id", "split", column) if c not in items]
    if missing:
        raise ValueError(f"constant_errors: the items have no {missing} column(s)")
    clips = items.drop_duplicates("clip_id")
    fitted = clips.loc[clips["split"] == fit_split, column]
    if fitted.empty:
        raise ValueError(f"constant_errors: no {fit_split!r} clips to fit the constant on")
    constant = float(np.median(fitted))
    rows = [
        {
            "split": split,
            "clips": len(group),
            "constant": constant,
            "mae": float(np.mean(np.abs(group[column] - constant))),
        }
        for split, group in clips.groupby("split", sort=True)
    ]
    return pd.DataFrame(rows)


def instance_accuracy(z1: np.ndarray, z2: np.ndarray) -> float:
    """NT-Xent's instance task, top-1: of the 2N views of N pairs ``(z1[k], z2[k])``, the share whose
    most cosine-similar *other* view is their own pair's (chance: 1 / (2N - 1))."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    if z1.shape != z2.shape or z1.ndim != 2 or len(z1) < 2:
        raise ValueError(f"instance_accuracy needs two (N >= 2, D) arrays of one shape, got {z1.shape} and {z2.shape}")
    z = np.concatenate([z1, z2])
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    similarity = z @ z.T
    np.fill_diagonal(similarity, -np.inf)
    n = len(z1)
    positive = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return float(np.mean(similarity.argmax(axis=1) == positive))


def noisy_views(
    clean: np.ndarray, noise: np.ndarray, snr_db: float, other_noise: np.ndarray, other_snr_db: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The full-length signals ``(view 1, view 2)`` of one clip under four noise conditions.

    ``clean`` ``(M, n)`` is the clip's reverberant audio, ``noise`` its unit-power diffuse noise and
    ``snr_db`` its SNR (the clip as rendered is ``clean + gain(snr_db) * noise``, the gain relative to
    the clean audio's mean power); ``other_noise`` / ``other_snr_db`` another clip's (repeated or cut
    to ``n`` samples). View 1 is always the clip as rendered; view 2 is:

    * ``shared``: the clip as rendered (both views share noise, SNR and level, as in pretraining);
    * ``other noise``: the other clip's noise at this clip's SNR (another realisation, the same SNR);
    * ``other noise and SNR``: the other clip's noise at the other clip's SNR;
    * ``clean`` (both views): no noise at all.
    """
    clean = np.asarray(clean, np.float64)
    if noise.shape != clean.shape or other_noise.ndim != 2 or other_noise.shape[0] != clean.shape[0]:
        raise ValueError(
            f"noisy_views: clean {clean.shape}, noise {noise.shape} and other noise {other_noise.shape} "
            "must have the same microphones (and clean and noise the same length)"
        )
    n = clean.shape[1]
    other = np.take(np.asarray(other_noise, np.float64), np.arange(n) % other_noise.shape[1], axis=1)
    power = float(np.mean(clean**2))
    rendered = clean + noise_gain(power, snr_db) * np.asarray(noise, np.float64)
    return {
        "shared": (rendered, rendered),
        "other noise": (rendered, clean + noise_gain(power, snr_db) * other),
        "other noise and SNR": (rendered, clean + noise_gain(power, other_snr_db) * other),
        "clean": (clean, clean),
    }
