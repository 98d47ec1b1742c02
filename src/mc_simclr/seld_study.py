"""What MC-SimCLR pretraining is worth for frame-wise SELD on recordings in the DCASE layout.

Rows, each trained on the training recordings (all of them, or a seeded share) with the validation
recordings choosing its epoch, and scored on the test recordings with both DCASE metric sets:

* ``frozen``: the pretrained MC-SimCLR encoder, frozen, and the frame-wise head;
* ``finetune``: the same, the encoder trained too (at ``lr * encoder_lr_scale``);
* ``scratch``: the same network, freshly initialised, trained at full rate;
* ``seldnet``: the shape of the DCASE baseline (a SELDnet-style CRNN: three 64-filter convolution
  blocks pooling time to the 100 ms label rate, a bidirectional GRU) on the same log-Mel + GCC-PHAT
  input, from scratch.

The encoder file fixes the features (its FeatureExtractor) and the array: recordings with another
channel count are skipped by the layout reader, and another sample rate is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.audio.dcase import LABEL_FRAME_SECONDS, read_class_list, read_metadata, scan_layout
from mc_simclr.audio.io import read_multichannel
from mc_simclr.features import FeatureExtractor
from mc_simclr.framewise import (
    FramewiseConfig,
    SceneData,
    decode,
    evaluate_scenes,
    predict_scene,
    scene_data,
    train_framewise,
)
from mc_simclr.model_files import encoder_geometry, unpack_encoder
from mc_simclr.networks import Encoder, EncoderConfig, build_encoder
from mc_simclr.params import check_keys, check_values

#: row -> (label, training mode, which encoder)
ROWS = {
    "frozen": ("MC-SimCLR encoder frozen + head", "frozen", "pretrained"),
    "finetune": ("MC-SimCLR encoder fine-tuned", "finetune", "pretrained"),
    "scratch": ("same network from scratch", "scratch", "fresh"),
    "seldnet": ("SELDnet-style CRNN from scratch", "scratch", "seldnet"),
}
#: The DCASE baseline's shape on the project's input: time pooled 5 x (to 100 ms at a 20 ms hop).
SELDNET = {
    "architecture": "crnn",
    "filters": [64, 64, 64],
    "kernel_size": 3,
    "pools": [[5, 4], [1, 4], [1, 2]],
    "gru_hidden": 128,
    "embedding_dim": 128,
}
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class StudyConfig:
    """The ``seld`` parameter block (without ``training``, which is :class:`FramewiseConfig`)."""

    root: str
    format: str = "mic"
    dataset: str = "dev"
    folders: dict[str, list[str]] = field(
        default_factory=lambda: {"train": ["dev-train"], "validation": ["dev-val"], "test": ["dev-test"]}
    )
    class_names: list[str] | None = None
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    seldnet: dict[str, Any] = field(default_factory=lambda: dict(SELDNET))

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "seld") -> StudyConfig:
        params = {k: v for k, v in dict(params or {}).items() if k != "training"}
        check_keys(params, list(cls.__dataclass_fields__), name)
        values = {"root": "", **params}  # a missing root is refused below, by name
        if "folders" in values:
            check_keys(values["folders"] or {}, SPLITS, f"{name}.folders")
            values["folders"] = {k: list(v or []) for k, v in (values["folders"] or {}).items()}
        if values.get("seldnet"):
            values["seldnet"] = {**SELDNET, **values["seldnet"]}
        config = cls(**values)
        check_values(
            {
                "root (a folder)": bool(config.root),
                "folders (train, validation and test, each a list of folder names)": set(config.folders) == set(SPLITS)
                and all(config.folders[s] for s in SPLITS),
                f"rows (some of {list(ROWS)})": bool(config.rows) and set(config.rows) <= set(ROWS),
                "fractions (in (0, 1])": bool(config.fractions) and all(0 < f <= 1 for f in config.fractions),
                "seeds (at least one)": bool(config.seeds),
            },
            name,
        )
        return config


def load_split(
    table: pd.DataFrame,
    extractor: FeatureExtractor,
    n_classes: int,
    training: FramewiseConfig,
    progress: bool = True,
    desc: str = "recordings",
) -> list[SceneData]:
    """Features and targets of every recording of ``table`` (rows of :func:`scan_layout`)."""
    step = LABEL_FRAME_SECONDS * extractor.sample_rate / extractor.hop_length
    if abs(step - round(step)) > 1e-9:
        raise ValueError(
            f"features.hop_length = {extractor.hop_length}: a 100 ms label frame must be a whole number of "
            f"feature frames at {extractor.sample_rate} Hz"
        )
    scenes = []
    for _, row in tqdm(list(table.iterrows()), desc=desc, unit="recording", disable=not progress):
        audio, rate = read_multichannel(row["audio"])
        if rate != extractor.sample_rate:
            raise ValueError(
                f"{row['audio']}: {rate} Hz; the encoder's features are at {extractor.sample_rate} Hz "
                "(resample the recordings first)"
            )
        with torch.no_grad():
            features = extractor(torch.as_tensor(audio)[None])[0]
        rows = read_metadata(row["metadata"], n_classes, int(row["n_frames"]))
        scenes.append(
            scene_data(
                row["recording"],
                features,
                rows,
                int(row["n_frames"]),
                n_classes,
                int(round(step)),
                training.distance_scale_m,
            )
        )
    return scenes


def subset(scenes: list[SceneData], fraction: float, seed: int) -> list[SceneData]:
    """A seeded share of the recordings (at least one), in their order."""
    if fraction >= 1:
        return list(scenes)
    n = max(1, math.ceil(fraction * len(scenes)))
    keep = set(np.random.default_rng(seed).permutation(len(scenes))[:n].tolist())
    return [s for i, s in enumerate(scenes) if i in keep]


def encoder_for(row: str, pretrained: Encoder, seldnet: dict[str, Any], seed: int) -> Encoder:
    """The encoder a row starts from (a fresh one drawn from ``seed``)."""
    kind = ROWS[row][2]
    if kind == "pretrained":
        return pretrained
    torch.manual_seed(seed)
    if kind == "fresh":
        return build_encoder(pretrained.config, pretrained.n_bins)
    config = EncoderConfig.from_params(
        {**seldnet, "in_channels": pretrained.config.in_channels, "mel_channels": pretrained.config.mel_channels}
    )
    return build_encoder(config, pretrained.n_bins)


def run_study(
    encoder_state: dict[str, Any],
    params: dict[str, Any],
    progress: bool = True,
) -> dict[str, Any]:
    """Every row x fraction x seed of the ``seld`` block; returns the results table (one line per
    run, test scores of both metric sets), the per-class table of the full-data runs, the layout
    report, and the test predictions of the first test recording per row (seed 0, all data)."""
    config = StudyConfig.from_params(params)
    training = FramewiseConfig.from_params(params.get("training") or {})
    pretrained, extractor = unpack_encoder(encoder_state)
    symmetries = ArraySymmetries.of(encoder_geometry(encoder_state))
    layout, report = scan_layout(config.root, extractor.n_mics, config.format, config.dataset)
    class_names = read_class_list(config.root, config.class_names)
    n_classes = len(class_names)
    splits = {}
    for split in SPLITS:
        table = layout[layout["folder"].isin(config.folders[split])]
        if table.empty:
            raise ValueError(
                f"seld.folders.{split}: no usable recordings in {config.folders[split]} below {config.root}"
            )
        splits[split] = load_split(table, extractor, n_classes, training, progress, f"features ({split})")
    results, per_class, predictions = [], [], {}
    runs = [(r, f, s) for r in config.rows for f in config.fractions for s in config.seeds]
    for row, fraction, seed in tqdm(runs, desc="SELD rows", unit="run", disable=not progress):
        start = encoder_for(row, pretrained, config.seldnet, seed)
        run_config = FramewiseConfig(**{**training.__dict__, "seed": seed})
        model, history = train_framewise(
            start,
            subset(splits["train"], fraction, seed),
            splits["validation"],
            n_classes,
            run_config,
            ROWS[row][1],
            progress=False,
            symmetries=symmetries,
        )
        scores = evaluate_scenes(model, splits["test"], n_classes, run_config)
        s24, s23 = scores["dcase2024"], scores["dcase2023"]
        best = history.loc[history["val_seld_score"].idxmin()]
        results.append(
            {
                "row": row,
                "label": ROWS[row][0],
                "fraction": fraction,
                "seed": seed,
                "train_recordings": len(subset(splits["train"], fraction, seed)),
                "epoch": int(best["epoch"]),
                "val_seld_score": float(best["val_seld_score"]),
                "f_score": s24["f_score"],
                "doa_error": s24["doa_error"],
                "relative_distance_error": s24["relative_distance_error"],
                "seld_score": s24["seld_score"],
                "er_2023": s23["error_rate"],
                "f_2023": s23["f_score"],
                "le_2023": s23["localisation_error"],
                "lr_2023": s23["localisation_recall"],
                "seld_score_2023": s23["seld_score"],
            }
        )
        if fraction == max(config.fractions):
            table = s24["per_class"].assign(
                row=row, seed=seed, class_name=lambda t: [class_names[i] for i in t["class"]]
            )
            per_class.append(table)
            if seed == config.seeds[0]:
                scene = splits["test"][0]
                predictions[row] = decode(
                    predict_scene(model, scene, run_config),
                    run_config.threshold,
                    run_config.merge_deg,
                    run_config.distance_scale_m,
                )
    first = splits["test"][0]
    return {
        "results": pd.DataFrame(results),
        "per_class": pd.concat(per_class, ignore_index=True) if per_class else pd.DataFrame(),
        "report": {**report.to_dict(), "classes": class_names, **{s: len(v) for s, v in splits.items()}},
        "figure_scene": {"name": first.name, "reference": first.rows, "predicted": predictions},
    }


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per row and fraction (test split)."""
    metrics = ["f_score", "doa_error", "relative_distance_error", "seld_score", "er_2023", "f_2023", "le_2023"]
    grouped = results.groupby(["row", "label", "fraction"], sort=False)[metrics]
    table = grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).reset_index()
    table.insert(3, "seeds", grouped.size().to_numpy())
    return table
