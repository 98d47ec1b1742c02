"""Every configuration environment builds valid settings objects."""

import pytest
from conftest import PROJECT_ROOT
from kedro.config import OmegaConfigLoader

from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.augment import MultiLevelAugmentation
from mc_simclr.evaluation import SupervisedConfig
from mc_simclr.features import FeatureExtractor
from mc_simclr.models import EncoderConfig
from mc_simclr.settings import CONFIG_LOADER_ARGS
from mc_simclr.training import PretrainConfig


@pytest.mark.parametrize("env", ["base", "test", "paper"])
def test_environment_parameters_are_valid(env):
    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS)[
        "parameters"
    ]
    SceneConfig.from_params(params["simulation"]["scene"])
    extractor = FeatureExtractor.from_params(params["features"], params["audio"]["sample_rate"])
    EncoderConfig.from_params(params["encoder"])
    PretrainConfig.from_params({k: v for k, v in params["pretraining"].items() if k != "split"})
    MultiLevelAugmentation.from_params(params["augmentations"], extractor)
    SupervisedConfig.from_params(params["evaluation"]["supervised"])
    assert params["corpus"]["source"] in ("synthetic", "fsdnoisy18k", "folder")


def test_paper_environment_matches_the_paper():
    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="paper", **CONFIG_LOADER_ARGS)["parameters"]
    pretraining = PretrainConfig.from_params({k: v for k, v in params["pretraining"].items() if k != "split"})
    assert (pretraining.batch_size, pretraining.epochs, pretraining.lr, pretraining.warmup_epochs) == (
        512,
        500,
        0.2,
        10,
    )
    assert (pretraining.momentum, pretraining.weight_decay, pretraining.temperature) == (0.9, 1e-4, 0.1)
    assert params["encoder"]["embedding_dim"] == 128 and params["encoder"]["filters"] == [128, 128, 128]
    assert params["encoder"]["architecture"] == "crnn"  # the paper's single encoder, one NT-Xent on h
    assert (pretraining.joint_loss_weight, pretraining.branch_loss_weight) == (1.0, 0.0)
    supervised = SupervisedConfig.from_params(params["evaluation"]["supervised"])
    assert (supervised.batch_size, supervised.lr, supervised.encoder_grad_scale) == (128, 0.01, 0.1)
    assert params["corpus"]["source"] == "fsdnoisy18k" and params["corpus"]["fsdnoisy18k"]["validation_size"] == 200
    augment = params["augmentations"]
    assert augment["channel_drop"]["p"] == 0.1 and augment["mixup"]["alpha_max"] == 0.01
    assert augment["random_resized_crop"]["scale"] == [0.8, 1.0] and augment["random_resized_crop"]["ratio"] == [
        0.8,
        1.25,
    ]
