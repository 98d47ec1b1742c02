"""The settings the benchmarks time, read from the project's ``conf/`` (no copy of them here).

* ``base``: conf/base as the default ``kedro run`` trains it (the split Mel/GCC CRNN with one
  NT-Xent per branch, the CPU-sized front end, all four augmentations);
* ``paper_crnn``: conf/base with the ablation variant ``paper_crnn`` applied
  (conf/base/parameters_ablations.yml: the paper's single CRNN and one NT-Xent on h, same sizes);
* ``paper``: conf/paper (the paper's CRNN of 128 filters 5 x 5, 10 ms hop, 96 Mel bands).

Imported by the benchmark scripts beside it (``python benchmarks/<script>.py`` puts this folder
on ``sys.path``). Imports only the Kedro-free library.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
try:  # the checkout's package when mc_simclr is not installed (a bare GPU machine)
    import mc_simclr  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "src"))

from mc_simclr.features import FeatureExtractor
from mc_simclr.networks import EncoderConfig
from mc_simclr.params import load_parameters
from mc_simclr.pretraining import PretrainConfig
from mc_simclr.sweeps import Variant, variant_blocks

SETUPS = ("base", "paper_crnn", "paper")
#: Keys of the pretraining block that describe where and how a pipeline run stores its work.
RUN_KEYS = ("split", "max_clips", "device", "num_workers", "checkpoint_path", "restart")


def load_setup(name: str) -> dict[str, Any]:
    """``{"features", "encoder", "pretraining", "augmentations", "sample_rate"}`` of one setup.

    ``pretraining`` holds the keys of :class:`~mc_simclr.pretraining.PretrainConfig` that shape
    training (batch size, loss weights, projection, ...), without the run-time keys of
    :data:`RUN_KEYS`.
    """
    if name not in SETUPS:
        raise ValueError(f"unknown setup {name!r}; expected one of {SETUPS}")
    params = load_parameters(CONF, "paper" if name == "paper" else None)
    pretraining, encoder, augmentations = params["pretraining"], params["encoder"], params["augmentations"]
    if name == "paper_crnn":
        ablations = params["ablations"]
        variant = Variant.from_params(name, ablations["variants"][name])
        pretraining, encoder, augmentations = variant_blocks(variant, pretraining, encoder, augmentations, ablations)
        pretraining = {**pretraining, "epochs": params["pretraining"]["epochs"]}
    return {
        "features": dict(params["features"]),
        "encoder": EncoderConfig.from_params(dict(encoder)).for_array(4).to_dict(),  # the paper's square
        "pretraining": {k: v for k, v in pretraining.items() if k not in RUN_KEYS},
        "augmentations": dict(augmentations),
        "sample_rate": int(params["audio"]["sample_rate"]),
    }


def extractor(setup: dict[str, Any], n_mics: int = 4) -> FeatureExtractor:
    """The setup's feature extractor."""
    return FeatureExtractor.from_params(setup["features"], setup["sample_rate"], n_mics)


def pretrain_config(setup: dict[str, Any], **overrides: Any) -> PretrainConfig:
    """The setup's pretraining settings with ``overrides`` (batch size, device, workers, ...)."""
    return PretrainConfig.from_params({**setup["pretraining"], **overrides})
