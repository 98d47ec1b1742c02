"""Every protocol for one encoder, and the evaluation of one pretraining run from its parameter block."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.augment import ArrayLike
from mc_simclr.devices import resolve_device
from mc_simclr.evaluation.batchnorm import BATCHNORM_MODES, batchnorm_mode, frozen_encoder
from mc_simclr.evaluation.fine_tuning import FineTuned, class_balanced_subset, fine_tune, parse_subsets
from mc_simclr.evaluation.knn import knn_predict
from mc_simclr.evaluation.linear_probe import linear_probe
from mc_simclr.evaluation.splits import Split, load_splits, report_splits
from mc_simclr.evaluation.supervised import (
    SupervisedConfig,
    clip_predictions,
    embed,
    split_scores,
)
from mc_simclr.features import FeatureExtractor
from mc_simclr.model_files import encoder_geometry, unpack_encoder
from mc_simclr.networks import Encoder, build_encoder

PROTOCOLS = ("linear_probe", "knn", "fine_tune")

logger = logging.getLogger(__name__)


def probe_key(batchnorm: str) -> str:
    """Key of the linear probe run with BatchNorm protocol ``batchnorm`` in :class:`ProtocolResults`."""
    return f"linear_probe_{batchnorm}"


@dataclass
class ProtocolResults:
    """Every protocol's clip-level predictions for one encoder, and what the report needs besides.

    ``clips[split][protocol]`` are clip predictions (:func:`clip_predictions`) on ``test`` and,
    when the corpus has it, ``confirmation``; the protocols are :data:`PROTOCOLS` (the linear probe
    and k-NN with the chosen BatchNorm protocol) and the linear probe under each protocol
    (:func:`probe_key`). ``validation[protocol]`` are the validation scores. ``subsets`` maps a
    labeled amount to the test predictions of subset fine-tuning; ``model`` is the fine-tuned
    encoder + heads; ``embeddings`` and ``embedding_items`` are the frozen encoder's test-patch
    embeddings and their rows; ``batchnorm`` is the chosen protocol.
    """

    clips: dict[str, dict[str, pd.DataFrame]]
    validation: dict[str, dict[str, float]]
    subsets: dict[float, pd.DataFrame]
    model: FineTuned
    embeddings: np.ndarray
    embedding_items: pd.DataFrame
    batchnorm: str = "keep"

    @property
    def test(self) -> dict[str, pd.DataFrame]:
        """Test-split clip predictions per protocol."""
        return self.clips["test"]


def run_protocols(
    encoder: Encoder,
    pretrained: bool,
    splits: dict[str, Split],
    n_classes: int,
    config: SupervisedConfig,
    subset_amounts: list[float],
    subset_unit: str = "fraction",
    subset_seed: int = 0,
    array: ArrayLike = 4,
    batchnorm: str = "keep",
) -> ProtocolResults:
    """Linear probing (under both BatchNorm protocols), k-NN, fine-tuning and subset fine-tuning of one
    encoder; clip-level results on the test (and confirmation) split.

    The frozen protocols use ``batchnorm``; the full-data point of the subset curve reuses the
    fine-tuning run instead of training it twice.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {batchnorm!r}")
    train, validation = splits["labeled"], splits["validation"]
    reported = report_splits(splits)
    device = resolve_device(config.device)
    clips: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in reported}
    validation_scores: dict[str, dict[str, float]] = {}
    frozen = {}
    for mode in (batchnorm, *(m for m in BATCHNORM_MODES if m != batchnorm)):
        frozen[mode] = frozen_encoder(encoder, train, mode, device)
        probe = linear_probe(frozen[mode], train, validation, reported, n_classes, config, array)
        for name, split in reported.items():
            clips[name][probe_key(mode)] = clip_predictions(split.items, probe[name])
        validation_scores[probe_key(mode)] = probe[next(iter(reported))].validation
    neighbours = knn_predict(frozen[batchnorm], train, {"validation": validation, **reported}, n_classes, config, array)
    tuned = fine_tune(encoder, train, validation, reported, n_classes, config, pretrained, array)
    for name, split in reported.items():
        clips[name]["linear_probe"] = clips[name][probe_key(batchnorm)]
        clips[name]["knn"] = clip_predictions(split.items, neighbours[name])
        clips[name]["fine_tune"] = clip_predictions(split.items, tuned.predictions[name])
    validation_scores["linear_probe"] = validation_scores[probe_key(batchnorm)]
    validation_scores["knn"] = split_scores(validation.items, neighbours["validation"])
    validation_scores["fine_tune"] = tuned.predictions["test"].validation

    test = splits["test"]
    subsets: dict[float, pd.DataFrame] = {}
    labeled_clips = train.items.groupby("clip_id", sort=True).first().reset_index()
    for amount in subset_amounts:
        chosen = class_balanced_subset(labeled_clips, float(amount), subset_unit, subset_seed)
        if len(chosen) == len(labeled_clips):
            subsets[float(amount)] = clips["test"]["fine_tune"]
            continue
        logger.info(
            "Subset fine-tuning on %d of %d labeled clips (%s %s)", len(chosen), len(labeled_clips), amount, subset_unit
        )
        subset = fine_tune(
            encoder, train.subset(chosen), validation, {"test": test}, n_classes, config, pretrained, array
        )
        subsets[float(amount)] = clip_predictions(test.items, subset.predictions["test"])
    embeddings = embed(frozen[batchnorm], test.features, device).numpy()
    return ProtocolResults(clips, validation_scores, subsets, tuned, embeddings, test.items, batchnorm)


def supervised_azimuth(
    encoder: Encoder, splits: dict[str, Split], n_classes: int, config: SupervisedConfig, array: ArrayLike = 4
) -> dict[str, pd.DataFrame]:
    """The azimuth ceiling: ``encoder`` trained from its current weights on azimuth alone (full
    rate, no class loss); clip-level predictions with ``pred_class`` NaN on the test (and
    confirmation) split."""
    azimuth_only = copy.deepcopy(config)
    azimuth_only.class_loss_weight = 0.0
    azimuth_only.azimuth_loss_weight = max(config.azimuth_loss_weight, 1e-12)
    reported = report_splits(splits)
    train, validation = splits["labeled"], splits["validation"]
    tuned = fine_tune(encoder, train, validation, reported, n_classes, azimuth_only, False, array)
    out = {}
    for name, split in reported.items():
        out[name] = clip_predictions(split.items, tuned.predictions[name]).assign(pred_class=np.nan)
    return out


def random_init_like(encoder: Encoder, seed: int) -> Encoder:
    """A freshly initialised encoder of the same shape (the no-pretraining baseline)."""
    torch.manual_seed(seed)
    return build_encoder(copy.deepcopy(encoder.config), encoder.n_bins).eval()


@dataclass
class EvaluationInputs:
    """What every evaluation step shares, loaded once: both encoders, the feature splits, the settings.

    ``pretrained`` is the encoder of the pretraining run and ``random`` a random-init encoder of the
    same shape (``evaluation.random_init_seed``); ``features`` and ``pretraining_run_id`` come from
    the encoder file, for the exported model and the report.
    """

    pretrained: Encoder
    random: Encoder
    extractor: FeatureExtractor
    splits: dict[str, Split]
    n_classes: int
    config: SupervisedConfig
    subset_amounts: list[float]
    subset_unit: str
    subset_seed: int
    features: dict[str, Any]
    pretraining_run_id: str = ""
    batchnorm: str = "keep"

    symmetries: ArraySymmetries | None = None  # None: the paper's square

    @property
    def n_mics(self) -> int:
        return self.extractor.n_mics

    @property
    def geometry(self) -> ArrayGeometry:
        """The array the encoder was trained on."""
        return self.symmetries.geometry if self.symmetries is not None else ArrayGeometry.circular(self.n_mics)


def prepare_evaluation(
    encoder_state: dict[str, Any], feature_patches, class_names: list[str], evaluation: dict[str, Any]
) -> EvaluationInputs:
    """Rebuild the pretrained encoder, build the random-init one and load the feature splits, once."""
    encoder, extractor = unpack_encoder(encoder_state)
    amounts, unit, seed = parse_subsets(evaluation.get("subsets"))
    return EvaluationInputs(
        pretrained=encoder,
        random=random_init_like(encoder, int(evaluation["random_init_seed"])),
        extractor=extractor,
        splits=load_splits(feature_patches),
        n_classes=len(class_names),
        config=SupervisedConfig.from_params(evaluation["supervised"]),
        subset_amounts=amounts,
        subset_unit=unit,
        subset_seed=seed,
        features=dict(encoder_state["features"]),
        pretraining_run_id=str(encoder_state.get("pretraining_run_id", "")),
        batchnorm=batchnorm_mode(evaluation),
        symmetries=ArraySymmetries.of(encoder_geometry(encoder_state)),
    )


def evaluate_encoder(inputs: EvaluationInputs, pretrained: bool) -> ProtocolResults:
    """All protocols, subsets included, on the pretrained (``True``) or the random-init encoder."""
    return run_protocols(
        inputs.pretrained if pretrained else inputs.random,
        pretrained,
        inputs.splits,
        inputs.n_classes,
        inputs.config,
        subset_amounts=inputs.subset_amounts,
        subset_unit=inputs.subset_unit,
        subset_seed=inputs.subset_seed,
        array=inputs.symmetries or inputs.n_mics,
        batchnorm=inputs.batchnorm,
    )


def azimuth_ceiling(inputs: EvaluationInputs) -> dict[str, pd.DataFrame]:
    """The supervised azimuth ceiling: the random-init encoder trained on azimuth alone."""
    return supervised_azimuth(
        inputs.random, inputs.splits, inputs.n_classes, inputs.config, inputs.symmetries or inputs.n_mics
    )
