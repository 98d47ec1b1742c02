"""Every configuration environment builds valid settings objects."""

from dataclasses import asdict

import pytest
from kedro.config import OmegaConfigLoader

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.augment import MultiLevelAugmentation
from mc_simclr.evaluation import SupervisedConfig
from mc_simclr.features import FeatureExtractor
from mc_simclr.networks import EncoderConfig
from mc_simclr.pretraining import PretrainConfig
from mc_simclr.settings import CONFIG_LOADER_ARGS

from conftest import PROJECT_ROOT, conf_parameters


@pytest.mark.parametrize("env", ["base", "test", "paper", "hard", "recorded", "tetra", "hexagon"])
def test_environment_parameters_are_valid(env):
    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS)[
        "parameters"
    ]
    SceneConfig.from_params(params["simulation"]["scene"])
    extractor = FeatureExtractor.from_params(params["features"], params["audio"]["sample_rate"])
    EncoderConfig.from_params(params["encoder"])
    PretrainConfig.from_block(params["pretraining"])
    MultiLevelAugmentation.from_params(params["augmentations"], extractor)
    SupervisedConfig.from_params(params["evaluation"]["supervised"])
    assert params["corpus"]["source"] in ("synthetic", "fsdnoisy18k", "folder")


def test_paper_environment_matches_the_paper():
    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="paper", **CONFIG_LOADER_ARGS)["parameters"]
    pretraining = PretrainConfig.from_block(params["pretraining"])
    assert (pretraining.batch_size, pretraining.epochs, pretraining.lr, pretraining.warmup_epochs) == (
        512,
        500,
        0.2,
        10,
    )
    assert (pretraining.momentum, pretraining.weight_decay, pretraining.temperature) == (0.9, 1e-4, 0.1)
    assert params["encoder"]["embedding_dim"] == 128
    assert params["encoder"]["filters"] == [128, 128, 128]
    assert params["encoder"]["architecture"] == "crnn"  # the paper's single encoder, one NT-Xent on h
    assert (pretraining.joint_loss_weight, pretraining.branch_loss_weight) == (1.0, 0.0)
    supervised = SupervisedConfig.from_params(params["evaluation"]["supervised"])
    assert (supervised.batch_size, supervised.lr, supervised.encoder_grad_scale) == (128, 0.01, 0.1)
    assert params["corpus"]["source"] == "fsdnoisy18k"
    assert params["corpus"]["fsdnoisy18k"]["validation_size"] == 200
    augment = params["augmentations"]
    assert augment["channel_drop"]["p"] == 0.1
    assert augment["mixup"]["alpha_max"] == 0.01
    assert augment["random_resized_crop"]["scale"] == [0.8, 1.0] and augment["random_resized_crop"]["ratio"] == [
        0.8,
        1.25,
    ]


# Keys that say where and how a run stores its work, not what it computes.
RUN_TIME_KEYS = {"device", "num_workers", "checkpoint_path", "restart", "seed"}
SETTINGS = [
    (EncoderConfig, ("encoder",)),
    (PretrainConfig, ("pretraining",)),
    (SupervisedConfig, ("evaluation", "supervised")),
    (SceneConfig, ("simulation", "scene")),
]


def _block(params, path):
    for key in path:
        params = params[key]
    return params


@pytest.mark.parametrize("cls, path", SETTINGS, ids=[cls.__name__ for cls, _ in SETTINGS])
def test_every_setting_is_in_conf_base_and_defaults_are_conf_papers(cls, path):
    """One source of settings: every field of a settings class is a key of conf/base's block (with a
    comment there), and the class's defaults are the paper's, i.e. conf/paper's values."""
    base = _block(conf_parameters(), path)
    paper = _block(conf_parameters("paper"), path)
    defaults = asdict(cls())
    defaults.pop("array", None)  # SceneConfig's array is the `array` block (test below)
    assert set(defaults) <= set(base), f"{'.'.join(path)}: in code but not in conf/base: {set(defaults) - set(base)}"
    for key, value in defaults.items():
        if key in RUN_TIME_KEYS:
            continue
        if key in ("in_channels", "mel_channels") and paper[key] is None:  # derived from the array
            assert value == getattr(cls().for_array(4), key), f"{cls.__name__}.{key}: not the square's channels"
            continue
        expected = [list(v) if isinstance(v, tuple) else v for v in value] if isinstance(value, tuple) else value
        assert expected == paper[key], f"{cls.__name__}.{key} defaults to {value!r}, conf/paper says {paper[key]!r}"


def test_the_array_block_of_conf_base_is_the_papers_square():
    geometry = ArrayGeometry.from_params(conf_parameters()["array"])
    assert geometry == ArrayGeometry.circular(4, 0.1)
    assert SceneConfig().array == geometry
    assert conf_parameters("paper")["array"] == conf_parameters()["array"]


def test_feature_extractor_defaults_are_conf_bases_front_end():
    base = conf_parameters()
    extractor = FeatureExtractor(sample_rate=base["audio"]["sample_rate"])
    assert (
        extractor.extra_repr()
        == FeatureExtractor.from_params(base["features"], base["audio"]["sample_rate"]).extra_repr()
    )


@pytest.mark.parametrize("env", ["base", "test", "paper", "hard", "recorded", "tetra", "hexagon"])
def test_the_kedro_free_loader_reads_what_kedro_reads(env):
    kedro = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS)
    assert conf_parameters(None if env == "base" else env) == kedro["parameters"]


def test_environments_keep_their_data_apart():
    assert conf_parameters()["pretraining"]["checkpoint_path"].startswith("data/06_models/")
    hard = conf_parameters("hard")
    assert hard["pretraining"]["checkpoint_path"].startswith("data/hard/06_models/")
    assert hard["corpus"]["synthetic"]["root"] == "data/hard/01_raw/synthetic"
    catalog = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="hard", **CONFIG_LOADER_ARGS)["catalog"]
    assert catalog["spatial_audio"]["path"] == "data/hard/03_primary/spatial_audio"


@pytest.mark.parametrize(
    ("block", "key", "value", "message"),
    [
        ("evaluation", "supervised", {"finetune_epochs": 60, "lp_epochs": 60}, r"lp_epochs=60, finetune_epochs=60"),
        ("pretraining", "max_clips", 1, r"pretraining\.max_clips must be null or an integer >= 2"),
        ("pretraining", "spatial_target_weight", -0.5, r"pretraining\.spatial_target_weight"),
        ("evaluation", "subsets", {"amounts": [0.5, 0.5]}, r"evaluation\.subsets\.amounts: \[0\.5, 0\.5\] lists"),
        ("evaluation", "subsets", {"amounts": [1.5]}, r"evaluation\.subsets\.amounts: \[1\.5\] out of range"),
        ("evaluation", "subsets", {"unit": "minutes"}, r"evaluation\.subsets\.unit: expected one of"),
        ("evaluation", "subsets", {"fraction": 0.5}, r"evaluation\.subsets"),
    ],
)
def test_bad_remedy_settings_stop_the_preflight_naming_the_parameter(block, key, value, message):
    from mc_simclr.preflight import check_parameters

    params = conf_parameters()
    current = params[block].get(key)
    params[block] = {**params[block], key: {**current, **value} if isinstance(current, dict) else value}
    with pytest.raises(ValueError, match=message):
        check_parameters(params)
