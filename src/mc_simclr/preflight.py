"""Every parameter block checked at once, before a run writes anything.

A run that would fail on a bad value in its third node (an unknown RIR backend, an SNR range
backwards, a misspelt augmentation option) fails here instead, before the first node replaces a
clip table or a scene table. The Kedro project calls :func:`check_parameters` when its context is
created (``mc_simclr.hooks``); each check is the one the node itself would make, with the same
message naming the parameter.
"""

from __future__ import annotations

from typing import Any

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.noise import NoiseConfig
from mc_simclr.acoustics.rir import BACKENDS
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.acoustics.scene_set import SceneSetConfig
from mc_simclr.audio.corpora import CORPUS_SOURCES
from mc_simclr.augment import MultiLevelAugmentation
from mc_simclr.evaluation import SupervisedConfig, batchnorm_mode, parse_subsets
from mc_simclr.execution import ExecutionConfig
from mc_simclr.features import FeatureExtractor
from mc_simclr.framewise import FramewiseConfig
from mc_simclr.networks import EncoderConfig
from mc_simclr.pretraining import PretrainConfig
from mc_simclr.seld_study import StudyConfig
from mc_simclr.shards import STORAGE_DTYPES
from mc_simclr.sweeps import check_sweep

SWEEPS = ("ablations", "seeds")


def check_parameters(params: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the parameter for the first invalid value of any block present."""
    corpus = params.get("corpus")
    if corpus is not None and corpus.get("source") not in CORPUS_SOURCES:
        raise ValueError(f"corpus.source must be one of {list(CORPUS_SOURCES)}, got {corpus.get('source')!r}")
    geometry = ArrayGeometry.from_params(params["array"]) if "array" in params else ArrayGeometry.circular()
    simulation = params.get("simulation")
    if simulation is not None:
        if simulation.get("backend") not in BACKENDS:
            raise ValueError(f"simulation.backend must be one of {sorted(BACKENDS)}, got {simulation.get('backend')!r}")
        SceneConfig.from_params(simulation.get("scene", {}), geometry)
        NoiseConfig.from_params(simulation.get("noise"))
        if simulation.get("storage_dtype", "float32") not in STORAGE_DTYPES:
            raise ValueError(
                f"simulation.storage_dtype must be one of {list(STORAGE_DTYPES)}, got {simulation['storage_dtype']!r}"
            )
    extractor = None
    if "features" in params and "audio" in params:
        extractor = FeatureExtractor.from_params(
            params["features"], int(params["audio"]["sample_rate"]), n_mics=geometry.n_mics
        )
    if "encoder" in params:
        EncoderConfig.from_params(params["encoder"]).for_array(geometry.n_mics)
    if "pretraining" in params:
        PretrainConfig.from_block(params["pretraining"])
    if "augmentations" in params and extractor is not None:
        MultiLevelAugmentation.from_params(params["augmentations"], extractor, geometry)
    if "execution" in params:
        ExecutionConfig.from_params(params["execution"])
    evaluation = params.get("evaluation")
    if evaluation is not None:
        SupervisedConfig.from_params(evaluation.get("supervised", {}))
        batchnorm_mode(evaluation)
        parse_subsets(evaluation.get("subsets"))
    for sweep in SWEEPS:
        if sweep in params:
            check_sweep(params[sweep], sweep)
    if "scenes" in params:
        SceneSetConfig.from_params(params["scenes"])
    if "seld" in params:
        StudyConfig.from_params(params["seld"])
        FramewiseConfig.from_params((params["seld"] or {}).get("training") or {})
