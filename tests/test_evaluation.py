"""Metrics, supervised protocols and the SRP-PHAT baseline on tiny data."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mc_simclr import evaluation
from mc_simclr.acoustics.rir import get_backend, spatialize
from mc_simclr.acoustics.scene import make_scene
from mc_simclr.baselines import SRPPhat
from mc_simclr.evaluation import (
    Predictions,
    Split,
    SupervisedConfig,
    class_balanced_subset,
    clip_predictions,
    fine_tune,
    knn_predict,
    linear_probe,
    scale_gradients,
    supervised_azimuth,
)
from mc_simclr.metrics import (
    accuracy,
    azimuth_error,
    azimuth_from_vector,
    azimuth_to_vector,
    breakdown,
    clip_scores,
    mean_azimuth_error,
)
from mc_simclr.models import CRNNEncoder, EncoderConfig


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
    assert rt60.loc["0.1-0.4", "clips"] == 2 and rt60.loc["0.7-1.0", "azimuth_error"] == pytest.approx(60.0)
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
    assert out["test"].azimuth_vector.shape == (len(test.items), 2)
    # and the heads learn from the frozen embedding: chance is 33 % and 90 degrees
    scores = clip_scores(clip_predictions(test.items, out["test"]))
    assert scores["accuracy"] >= 75.0 and scores["azimuth_error"] < 45.0


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
    np.testing.assert_allclose(vector.numpy(), tuned.predictions["test"].azimuth_vector, atol=1e-5)


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
    assert len(half) == 15 and abs((labels == "a").sum() - (labels == "b").sum()) <= 1
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
    from mc_simclr.inference import read_recording, windows

    audio = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    cut, starts = windows(audio, length=10, hop=10)
    assert list(starts) == [0, 10, 20] and cut.shape == (3, 2, 10)
    np.testing.assert_array_equal(cut[2, :, :5], audio[:, 20:])
    assert not cut[2, :, 5:].any()
    short, starts = windows(audio[:, :4], length=10, hop=5)
    assert list(starts) == [0] and short.shape == (1, 2, 10)
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

    monkeypatch.setattr(evaluation, "fine_tune", spy)
    clips = supervised_azimuth(encoder, {"labeled": train, "validation": val, "test": test}, 3, config)
    assert [(c.class_loss_weight, c.azimuth_loss_weight) for c in seen] == [(0.0, 1.0)]
    assert config.class_loss_weight == 1.0  # the caller's settings are not modified
    assert clips["pred_class"].isna().all() and len(clips) == test.items["clip_id"].nunique()
    # the toy azimuth is learnable: far better than chance (90 degrees)
    assert mean_azimuth_error(clips["pred_azimuth"], clips["azimuth_deg"]) < 30.0
    with pytest.raises(ValueError, match="class_loss_weight"):
        SupervisedConfig.from_params({"class_loss_weight": 0.0, "azimuth_loss_weight": 0.0})
