"""Model files: the encoder file of a pretraining run and the SELD model file of an evaluation run.

An *encoder file* (``encoder.pt``) holds the encoder's weights and configuration, the feature
settings it was trained with and the microphone array (:func:`package_encoder`,
:func:`unpack_encoder`, :func:`encoder_geometry`). A *SELD model file* (``seld_model.pt``) is an
encoder file plus the fine-tuned class and direction heads, the class names and the direction
labels of the heads (:func:`package_seld_model`, :func:`unpack_seld_model`,
:func:`model_geometry`). Both are plain dicts of tensors and built-in values, saved with
``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Any

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.features import FeatureExtractor
from mc_simclr.networks import Encoder, EncoderConfig, SELDHeads, build_encoder


def package_encoder(
    encoder: Encoder,
    extractor: FeatureExtractor,
    features_params: dict[str, Any],
    extra: dict[str, Any] | None = None,
    geometry: ArrayGeometry | None = None,
) -> dict[str, Any]:
    """Everything needed to rebuild the encoder and its feature front end, as one dict, with the
    microphone array it was trained on (``array``; the paper's square when ``geometry`` is None)."""
    geometry = geometry or ArrayGeometry.circular(extractor.n_mics)
    if geometry.n_mics != extractor.n_mics:
        raise ValueError(f"the array has {geometry.n_mics} microphones, the features {extractor.n_mics}")
    return {
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "encoder_config": encoder.config.to_dict(),
        "n_bins": encoder.n_bins,
        "features": dict(features_params),
        "sample_rate": extractor.sample_rate,
        "n_mics": extractor.n_mics,
        "array": geometry.summary(),
        **(extra or {}),
    }


def encoder_geometry(state: dict[str, Any]) -> ArrayGeometry:
    """The microphone array of an encoder file (files without one: the circle of its ``n_mics``)."""
    return ArrayGeometry.from_dict(state.get("array") or {"n_mics": int(state.get("n_mics", 4))})


def unpack_encoder(state: dict[str, Any]) -> tuple[Encoder, FeatureExtractor]:
    """Rebuild the encoder (eval mode, CPU) and the FeatureExtractor it was trained with."""
    missing = [k for k in ("encoder", "encoder_config", "n_bins", "features", "sample_rate") if k not in state]
    if missing:
        raise ValueError(f"encoder file lacks {missing}: it was not written by mc_simclr's pretraining")
    encoder = build_encoder(EncoderConfig.from_params(dict(state["encoder_config"])), int(state["n_bins"]))
    encoder.load_state_dict(state["encoder"])
    extractor = FeatureExtractor.from_params(
        dict(state["features"]), int(state["sample_rate"]), int(state.get("n_mics", 4))
    )
    return encoder.eval(), extractor


def package_seld_model(
    encoder: Encoder,
    heads: SELDHeads,
    extractor: FeatureExtractor,
    features_params: dict[str, Any],
    class_names: list[str],
    extra: dict[str, Any] | None = None,
    geometry: ArrayGeometry | None = None,
) -> dict[str, Any]:
    """Encoder + heads + class names + feature settings + the array (``geometry``: its positions,
    what it resolves and the direction labels of the heads) + ``extra``, as one dict."""
    state = package_encoder(encoder, extractor, features_params, extra, geometry)
    array = encoder_geometry(state)
    state["geometry"] = {**array.summary(), "labels": DirectionLabels.of(array).to_dict()}
    state["heads"] = {k: v.detach().cpu() for k, v in heads.state_dict().items()}
    state["class_names"] = list(class_names)
    return state


def model_geometry(state: dict[str, Any]) -> tuple[ArrayGeometry, DirectionLabels]:
    """The array of a model file and the direction labels of its heads (older files: the square, azimuth)."""
    stored = state.get("geometry") or state.get("array") or {"n_mics": int(state.get("n_mics", 4))}
    geometry = ArrayGeometry.from_dict(stored)
    labels = DirectionLabels.from_dict(stored["labels"]) if "labels" in stored else DirectionLabels.of(geometry)
    return geometry, labels


def unpack_seld_model(state: dict[str, Any]) -> tuple[Encoder, SELDHeads, FeatureExtractor, list[str]]:
    """Rebuild what :func:`package_seld_model` stored (eval mode, CPU)."""
    if "heads" not in state or "class_names" not in state:
        raise ValueError("model file lacks heads or class names: it was not written by the evaluation pipeline")
    encoder, extractor = unpack_encoder(state)
    heads = SELDHeads(encoder.embedding_dim, len(state["class_names"]), model_geometry(state)[1].dim)
    heads.load_state_dict(state["heads"])
    return encoder, heads.eval(), extractor, list(state["class_names"])
