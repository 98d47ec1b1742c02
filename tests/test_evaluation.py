"""Metrics, supervised protocols and the SRP-PHAT baseline on tiny data."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mc_simclr import evaluation
from mc_simclr.acoustics.rir import get_backend, spatialize
from mc_simclr.acoustics.scene import azimuth_from_vector, azimuth_to_vector, make_scene
from mc_simclr.baselines import SRPPhat
from mc_simclr.evaluation import (
    Predictions,
    Split,
    SupervisedConfig,
    class_balanced_subset,
    clip_predictions,
    fine_tune,
    frozen_encoder,
    knn_predict,
    linear_probe,
    recalibrate_batchnorm,
    run_protocols,
    scale_gradients,
    supervised_azimuth,
)
from mc_simclr.metrics import (
    accuracy,
    azimuth_error,
    bootstrap_interval,
    breakdown,
    clip_scores,
    mean_azimuth_error,
)
from mc_simclr.networks import CRNNEncoder, EncoderConfig
from mc_simclr.shards import FeatureRows, FeatureShard, FeatureShards, write_feature_shard


def test_wrapped_azimuth_error():
    assert azimuth_error(179.0, -179.0) == pytest.approx(2.0)
    assert azimuth_error(-170.0, 170.0) == pytest.approx(20.0)
    assert azimuth_error(0.0, 180.0) == pytest.approx(180.0)
    truth = np.array([-179.0, -90.0, 0.0, 45.0, 180.0])
    assert mean_azimuth_error(truth, truth) == 0.0
    assert mean_azimuth_error(azimuth_from_vector(azimuth_to_vector(truth)), truth) == pytest.approx(0.0, abs=1e-9)
    assert accuracy(np.array([1, 2, 3]), np.array([1, 2, 0])) == pytest.approx(200 / 3)


def test_breakdown_bins_and_classes():
    clips = pd.DataFrame(
        {
            "label": ["a", "a", "b", "b"],
            "class_index": [0, 0, 1, 1],
            "pred_class": [0, 1, 1, 1],
            "azimuth_deg": [10.0, 20.0, 30.0, 40.0],
            "pred_azimuth": [10.0, 30.0, 30.0, 100.0],
            "rt60": [0.2, 0.3, 0.5, 0.9],
        }
    )
    tables = breakdown(clips, [0.1, 0.4, 0.7, 1.0])
    assert tables["overall"].iloc[0]["accuracy"] == pytest.approx(75.0)
    assert tables["overall"].iloc[0]["azimuth_error"] == pytest.approx(17.5)
    rt60 = tables["rt60"].set_index("rt60_bin")
    assert rt60.loc["0.1-0.4", "clips"] == 2
    assert rt60.loc["0.7-1.0", "azimuth_error"] == pytest.approx(60.0)
    assert tables["class"].set_index("label").loc["a", "accuracy"] == pytest.approx(50.0)


def test_clip_predictions_average_patches():
    items = pd.DataFrame(
        {
            "clip_id": ["x", "x", "y"],
            "label": ["a", "a", "b"],
            "class_index": [0, 0, 1],
            "azimuth_deg": [90.0] * 3,
            "rt60": [0.5] * 3,
        }
    )
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    vectors = azimuth_to_vector(np.array([80.0, 100.0, -90.0]))
    clips = clip_predictions(items, Predictions(probs, vectors))
    assert list(clips["clip_id"]) == ["x", "y"]
    assert clips.loc[0, "pred_class"] == 1  # mean probabilities (0.45, 0.55)
    assert clips.loc[0, "pred_azimuth"] == pytest.approx(90.0)


def _toy_splits(n_per_class=12, n_classes=3, seed=0):
    """Features whose first channel encodes the class and GCC-like channels the azimuth."""
    rng = np.random.default_rng(seed)

    def make(n, split):
        classes = np.repeat(np.arange(n_classes), n)
        azimuth = rng.uniform(-180, 180, len(classes))
        x = rng.normal(0, 0.1, (len(classes), 10, 8, 8)).astype(np.float32)
        x[:, 0] += classes[:, None, None]
        x[:, 4] += np.cos(np.radians(azimuth))[:, None, None]
        x[:, 5] += np.sin(np.radians(azimuth))[:, None, None]
        items = pd.DataFrame(
            {
                "clip_id": [f"{split}{i}" for i in range(len(classes))],
                "class_index": classes,
                "label": classes.astype(str),
                "azimuth_deg": azimuth,
                "rt60": 0.5,
                "duration": 1.0,
            }
        )
        return Split(torch.from_numpy(x), items)

    return make(n_per_class, "tr"), make(4, "va"), make(4, "te")


ENCODER = EncoderConfig(filters=[4], kernel_size=3, pools=[[2, 2]], gru_hidden=8, embedding_dim=16)
CONFIG = SupervisedConfig(
    device="cpu", batch_size=8, probe_epochs=5, finetune_epochs=3, warmup_epochs=1, channel_swap=False
)


def test_linear_probe_keeps_the_encoder_frozen():
    train, val, test = _toy_splits()
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    config = dataclasses.replace(CONFIG, probe_epochs=60, lr=0.1)
    out = linear_probe(encoder, train, val, {"test": test}, 3, config, progress=False)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert out["test"].class_probs.shape == (len(test.items), 3)
    assert out["test"].direction_vector.shape == (len(test.items), 2)
    # and the heads learn from the frozen embedding: chance is 33 % and 90 degrees
    scores = clip_scores(clip_predictions(test.items, out["test"]))
    assert scores["accuracy"] >= 75.0
    assert scores["azimuth_error"] < 45.0


def test_fine_tune_changes_a_copy_only():
    train, val, test = _toy_splits()
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    tuned = fine_tune(encoder, train, val, {"test": test}, 3, CONFIG, pretrained=True, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    assert set(tuned.predictions["test"].validation) >= {"loss", "accuracy", "azimuth_error"}
    assert any(not torch.equal(v, before[k]) for k, v in tuned.encoder.state_dict().items())
    with torch.no_grad():
        logits, vector = tuned.heads(tuned.encoder(test.features))
    np.testing.assert_allclose(vector.numpy(), tuned.predictions["test"].direction_vector, atol=1e-5)


def test_lp_ft_trains_the_heads_alone_first_then_the_whole_network():
    from mc_simclr.augment import FeatureChannelSwap
    from mc_simclr.evaluation.fine_tuning import _fine_tune_epoch
    from mc_simclr.evaluation.supervised import sgd_schedule
    from mc_simclr.networks import SELDHeads

    train, val, test = _toy_splits()
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    heads = SELDHeads(encoder.embedding_dim, 3, 2)
    frozen = {k: v.clone() for k, v in encoder.state_dict().items()}
    heads_before = {k: v.clone() for k, v in heads.state_dict().items()}
    optimizer, scheduler = sgd_schedule(list(heads.parameters()), CONFIG, 2, 1)
    swap = FeatureChannelSwap(4)
    _fine_tune_epoch(encoder, heads, train, swap, optimizer, scheduler, CONFIG, 0, torch.device("cpu"), False)
    for key, value in encoder.state_dict().items():  # weights and BatchNorm statistics alike
        assert torch.equal(value, frozen[key]), key
    assert any(not torch.equal(v, heads_before[k]) for k, v in heads.state_dict().items())

    lp_ft = dataclasses.replace(CONFIG, finetune_epochs=3, lp_epochs=2)
    tuned = fine_tune(encoder, train, val, {"test": test}, 3, lp_ft, pretrained=True, progress=False)
    joint = fine_tune(encoder, train, val, {"test": test}, 3, CONFIG, pretrained=True, progress=False)
    assert not np.allclose(tuned.predictions["test"].direction_vector, joint.predictions["test"].direction_vector)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    with pytest.raises(ValueError, match=r"lp_epochs.*lp_epochs=3, finetune_epochs=3"):
        SupervisedConfig.from_params({"finetune_epochs": 3, "lp_epochs": 3})
    with pytest.raises(ValueError, match=r"evaluation.supervised.lp_epochs"):
        SupervisedConfig.from_params({"lp_epochs": -1})


def test_finetune_lr_drives_fine_tuning_only(monkeypatch):
    """``finetune_lr`` sets both LP-FT phases' learning rate; the linear probe keeps ``lr``."""
    import importlib

    fine_tuning = importlib.import_module("mc_simclr.evaluation.fine_tuning")
    probe_module = importlib.import_module("mc_simclr.evaluation.linear_probe")
    seen = []
    real = fine_tuning.sgd_schedule

    def spy(params, config, steps, epochs, lr=None):
        optimizer, scheduler = real(params, config, steps, epochs, lr)
        seen.append(optimizer.defaults["lr"])
        return optimizer, scheduler

    monkeypatch.setattr(fine_tuning, "sgd_schedule", spy)
    monkeypatch.setattr(probe_module, "sgd_schedule", spy)
    train, val, test = _toy_splits()
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    config = dataclasses.replace(CONFIG, finetune_epochs=3, lp_epochs=1, finetune_lr=0.05)
    fine_tune(encoder, train, val, {"test": test}, 3, config, pretrained=True, progress=False)
    assert seen == [0.05, 0.05]
    seen.clear()
    linear_probe(encoder, train, val, {"test": test}, 3, config, progress=False)
    assert seen and set(seen) == {CONFIG.lr}
    assert SupervisedConfig.from_params({}).finetune_lr is None
    with pytest.raises(ValueError, match=r"evaluation.supervised.finetune_lr"):
        SupervisedConfig.from_params({"finetune_lr": 0})


def test_gradient_scaling_scales():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    layer(x).sum().backward()
    reference = layer.weight.grad.clone()
    layer.zero_grad()
    hooks = scale_gradients(layer, 0.1)
    layer(x).sum().backward()
    assert torch.allclose(layer.weight.grad, 0.1 * reference)
    for hook in hooks:
        hook.remove()
    layer.zero_grad()
    layer(x).sum().backward()
    assert torch.allclose(layer.weight.grad, reference)


def test_class_balanced_subsets():
    clips = pd.DataFrame(
        {"clip_id": [f"c{i}" for i in range(30)], "label": ["a"] * 20 + ["b"] * 10, "duration": [360.0] * 30}
    )
    half = class_balanced_subset(clips, 0.5, "fraction", seed=1)
    labels = clips.set_index("clip_id").loc[sorted(half), "label"]
    assert len(half) == 15
    assert abs((labels == "a").sum() - (labels == "b").sum()) <= 1
    assert half == class_balanced_subset(clips, 0.5, "fraction", seed=1)
    assert half != class_balanced_subset(clips, 0.5, "fraction", seed=2)
    assert len(class_balanced_subset(clips, 1.0, "hours", seed=0)) == 10  # 10 clips of 0.1 h
    assert len(class_balanced_subset(clips, 1.0, "fraction", seed=0)) == 30
    with pytest.raises(ValueError, match="evaluation.subsets.unit"):
        class_balanced_subset(clips, 0.5, "clips", seed=0)


@pytest.mark.parametrize("azimuth", [-150.0, -60.0, 0.0, 75.0, 135.0])
def test_srp_phat_finds_a_source_in_a_dry_room(azimuth):
    center = np.array([3.0, 2.5, 1.4])
    source = center + 2.0 * np.array([np.cos(np.radians(azimuth)), np.sin(np.radians(azimuth)), 0.1])
    rirs = get_backend("pyroomacoustics").simulate(make_scene([6.0, 5.0, 3.0], 0.15, center, source), 16000)
    clip = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    estimate = SRPPhat()(spatialize(clip, rirs))
    assert azimuth_error(estimate, azimuth) <= 3.0


def test_inference_windows_and_channel_check(tmp_path):
    from mc_simclr.inference import read_recording
    from mc_simclr.seld_model import windows

    audio = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    cut, starts = windows(audio, length=10, hop=10)
    assert list(starts) == [0, 10, 20]
    assert cut.shape == (3, 2, 10)
    np.testing.assert_array_equal(cut[2, :, :5], audio[:, 20:])
    assert not cut[2, :, 5:].any()
    short, starts = windows(audio[:, :4], length=10, hop=5)
    assert list(starts) == [0]
    assert short.shape == (1, 2, 10)
    sf.write(str(tmp_path / "three.wav"), np.zeros((100, 3)), 16000)
    with pytest.raises(ValueError, match=r"three.wav: 3 channel\(s\), expected 4"):
        read_recording(tmp_path / "three.wav", 16000, 4)
    sf.write(str(tmp_path / "four.wav"), 0.1 * np.ones((441, 4)), 44100)
    assert read_recording(tmp_path / "four.wav", 16000, 4).shape == (4, 160)


class _ChannelMeans(torch.nn.Module):
    """A fixed "encoder": the means of the toy features' class and azimuth channels."""

    def forward(self, x):
        return x[:, [0, 4, 5]].mean(dim=(2, 3))


def test_knn_reads_class_and_direction_from_the_embedding_geometry():
    train, _, test = _toy_splits(n_per_class=16)
    clips = clip_predictions(test.items, knn_predict(_ChannelMeans(), train, {"test": test}, 3, CONFIG)["test"])
    assert accuracy(clips["pred_class"].to_numpy(), clips["class_index"].to_numpy()) >= 80.0  # chance: 33
    assert mean_azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]) < 30.0
    # shuffled training azimuths: the neighbours' directions say nothing about the query's
    shuffled = Split(
        train.features, train.items.assign(azimuth_deg=np.random.default_rng(1).permutation(train.items["azimuth_deg"]))
    )
    clips = clip_predictions(test.items, knn_predict(_ChannelMeans(), shuffled, {"test": test}, 3, CONFIG)["test"])
    assert mean_azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]) > 45.0


def test_knn_in_blocks_of_queries_finds_the_same_neighbours(monkeypatch):
    train, _, test = _toy_splits(n_per_class=16)
    config = dataclasses.replace(CONFIG, channel_swap=True)
    whole = knn_predict(_ChannelMeans(), train, {"test": test}, 3, config)["test"]
    monkeypatch.setattr(evaluation.knn, "KNN_BLOCK_VALUES", 3 * 8 * len(train))  # 3 queries per block
    blocks = knn_predict(_ChannelMeans(), train, {"test": test}, 3, config)["test"]
    np.testing.assert_array_equal(blocks.class_probs, whole.class_probs)
    np.testing.assert_array_equal(blocks.direction_vector, whole.direction_vector)


def test_supervised_azimuth_ceiling_trains_azimuth_only(monkeypatch):
    train, val, test = _toy_splits()
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, 8)
    config = SupervisedConfig(
        device="cpu", batch_size=8, lr=0.05, finetune_epochs=10, warmup_epochs=1, channel_swap=False
    )
    seen = []
    original = evaluation.fine_tune

    def spy(*args, **kwargs):
        seen.append(args[5])  # the config it trains with
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation.protocols, "fine_tune", spy)
    clips = supervised_azimuth(encoder, {"labeled": train, "validation": val, "test": test}, 3, config)["test"]
    assert [(c.class_loss_weight, c.azimuth_loss_weight) for c in seen] == [(0.0, 1.0)]
    assert config.class_loss_weight == 1.0  # the caller's settings are not modified
    assert clips["pred_class"].isna().all()
    assert len(clips) == test.items["clip_id"].nunique()
    # the toy azimuth is learnable: far better than chance (90 degrees)
    assert mean_azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]) < 30.0
    with pytest.raises(ValueError, match="class_loss_weight"):
        SupervisedConfig.from_params({"class_loss_weight": 0.0, "azimuth_loss_weight": 0.0})


def test_recalibrated_batchnorm_normalises_a_random_encoders_activations():
    train, _, _ = _toy_splits()
    features = train.features * 7.0 + 3.0  # far from the initial running statistics (0, 1)
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8).eval()
    outputs = []
    hook = lambda _module, _inputs, output: outputs.append(output.detach())  # noqa: E731

    def normalised(model):
        outputs.clear()
        handle = model.input_norm.register_forward_hook(hook)
        with torch.no_grad():
            model(features)
        handle.remove()
        x = outputs[0].transpose(0, 1).flatten(1)  # (channels, everything else)
        return x.mean(1), x.var(1)

    mean, var = normalised(encoder)
    assert mean.abs().min() > 1.0
    assert (var - 1.0).abs().max() > 0.4  # kept statistics: raw values pass
    recalibrated = recalibrate_batchnorm(encoder, features, torch.device("cpu"), batch_size=7)  # ordered classes
    mean, var = normalised(recalibrated)
    assert mean.abs().max() < 0.05
    assert (var - 1.0).abs().max() < 0.05
    assert not recalibrated.training
    assert encoder.input_norm.running_mean.abs().max() == 0  # a copy
    # only the statistics change: the same weights
    for (key, a), b in zip(encoder.state_dict().items(), recalibrated.state_dict().values(), strict=True):
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(a, b), key
    with pytest.raises(ValueError, match="evaluation.batchnorm"):
        frozen_encoder(encoder, train, "freeze", torch.device("cpu"))


def test_recalibration_sums_a_few_patches_at_a_time_to_the_same_statistics(monkeypatch):
    train, _, _ = _toy_splits()
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8).eval()
    whole = recalibrate_batchnorm(encoder, train.features, torch.device("cpu"), batch_size=36).state_dict()
    monkeypatch.setattr(evaluation.batchnorm, "RECALIBRATION_CHUNK", 5)  # 36 patches in chunks of 5
    chunked = recalibrate_batchnorm(encoder, train.features, torch.device("cpu"), batch_size=36).state_dict()
    for key, value in whole.items():
        torch.testing.assert_close(chunked[key], value, rtol=1e-6, atol=1e-7)


def test_run_protocols_reports_both_batchnorm_probes_and_the_confirmation_split():
    train, val, test = _toy_splits()
    confirmation = _toy_splits(seed=5)[2]
    confirmation.items["clip_id"] = "c" + confirmation.items["clip_id"]
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    splits = {"labeled": train, "validation": val, "test": test, "confirmation": confirmation}
    result = run_protocols(encoder, True, splits, 3, CONFIG, subset_amounts=[], batchnorm="recalibrate")
    assert set(result.clips) == {"test", "confirmation"}
    for split, clips in result.clips.items():
        assert {"linear_probe", "knn", "fine_tune", "linear_probe_keep", "linear_probe_recalibrate"} <= set(clips)
        assert clips["linear_probe"] is clips["linear_probe_recalibrate"]
        assert len(clips["fine_tune"]) == splits[split].items["clip_id"].nunique()
    assert result.validation["linear_probe"] == result.validation["linear_probe_recalibrate"]
    kept = run_protocols(encoder, True, {k: v for k, v in splits.items() if k != "confirmation"}, 3, CONFIG, [])
    assert set(kept.clips) == {"test"}
    assert kept.batchnorm == "keep"
    # the probe with the kept statistics is the same whichever protocol is chosen
    pd.testing.assert_frame_equal(kept.test["linear_probe_keep"], result.test["linear_probe_keep"])
    with pytest.raises(ValueError, match="evaluation.batchnorm"):
        run_protocols(encoder, True, splits, 3, CONFIG, [], batchnorm="sometimes")


def test_bootstrap_interval_over_clips_and_seeds():
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(40)],
            "class_index": [0] * 40,
            "pred_class": [0] * 30 + [1] * 10,
            "azimuth_deg": [0.0] * 40,
            "pred_azimuth": [10.0] * 20 + [30.0] * 20,
        }
    )
    low, high = bootstrap_interval([clips], "accuracy")
    assert 55.0 < low < 75.0 < high < 90.0  # around 75 %, the point estimate
    low, high = bootstrap_interval([clips], "azimuth_error")
    assert 10.0 < low < 20.0 < high < 30.0
    perfect = clips.assign(pred_class=0, pred_azimuth=0.0)
    assert bootstrap_interval([perfect], "accuracy") == (100.0, 100.0)
    # two seeds: the interval of their mean; rows are matched by clip id, not by position
    low, high = bootstrap_interval([perfect, clips.iloc[::-1]], "azimuth_error")
    assert 5.0 < low < 10.0 < high < 15.0
    no_class = clips.assign(pred_class=np.nan)
    assert all(np.isnan(bootstrap_interval([no_class], "accuracy")))
    with pytest.raises(ValueError, match="metric"):
        bootstrap_interval([clips], "f1")


def test_no_subset_amounts_give_an_empty_curve_and_a_figure_that_says_so():
    import matplotlib.pyplot as plt

    from mc_simclr.reporting.run import plot_subsets, subset_table

    curves = subset_table({"MC-SimCLR": {}, "random init": {}}, "fraction")  # evaluation.subsets.amounts: []
    assert curves.empty
    assert {"encoder", "amount", "accuracy"} <= set(curves.columns)
    figure = plot_subsets(curves)
    assert "no subsets" in figure.axes[0].texts[0].get_text()
    plt.close(figure)


def test_protocols_read_from_feature_shards_as_from_memory(tmp_path):
    """load_splits leaves the patches in the shards; every protocol gives the in-memory results."""
    train, val, test = _toy_splits()
    in_memory = {"labeled": train, "validation": val, "test": test}
    for number, (name, split) in enumerate(in_memory.items()):  # two shards per split, rows interleaved
        order = np.r_[0 : len(split) : 2, 1 : len(split) : 2]
        items = split.items.assign(split=name)
        for part, rows in enumerate(np.array_split(order, 2)):
            shard = FeatureShard(split.features[rows].numpy(), items.iloc[rows].reset_index(drop=True))
            write_feature_shard(tmp_path, f"{name}-{part}-{number}", shard)
    streamed = evaluation.load_splits(FeatureShards(tmp_path))
    for name, split in streamed.items():
        assert isinstance(split.features, FeatureRows)
        assert len(split) == len(in_memory[name])
    # the same patches in the shards' order
    reordered = {}
    for name, split in streamed.items():
        position = {clip: i for i, clip in enumerate(in_memory[name].items["clip_id"])}
        rows = torch.tensor([position[c] for c in split.items["clip_id"]])
        reordered[name] = Split(in_memory[name].features[rows], split.items)
        np.testing.assert_array_equal(split.features[:], reordered[name].features.numpy())
    torch.manual_seed(0)
    encoder = CRNNEncoder(ENCODER, n_bins=8)
    config = dataclasses.replace(CONFIG, channel_swap=True)
    for batchnorm in ("keep", "recalibrate"):
        lazy = run_protocols(encoder, True, streamed, 3, config, [0.5], batchnorm=batchnorm)
        eager = run_protocols(encoder, True, reordered, 3, config, [0.5], batchnorm=batchnorm)
        for protocol, frame in eager.test.items():
            pd.testing.assert_frame_equal(lazy.test[protocol], frame)
        pd.testing.assert_frame_equal(lazy.subsets[0.5], eager.subsets[0.5])
        np.testing.assert_array_equal(lazy.embeddings, eager.embeddings)
