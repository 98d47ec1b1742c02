"""Frame-wise SELD: ADPIT targets and loss, decoding, the model on encoder frames, and training."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mc_simclr.framewise import (
    FrameSELDModel,
    FramewiseConfig,
    adpit_loss,
    adpit_targets,
    chunk,
    decode,
    evaluate_scenes,
    scene_data,
    train_framewise,
)
from mc_simclr.networks import EncoderConfig, build_encoder

COLUMNS = ["frame", "class", "source", "azimuth", "elevation", "distance"]


def _rows(values):
    return pd.DataFrame(values, columns=COLUMNS)


def test_adpit_targets_fill_one_slot_set_per_event_count():
    rows = _rows([(0, 1, 0, 90, 0, 250), (1, 1, 0, 0, 0, 100), (1, 1, 1, 180, 0, 100), (1, 0, 2, 0, 90, 500)])
    t = adpit_targets(rows, n_frames=3, n_classes=2, distance_scale_m=5.0)
    assert t.shape == (3, 6, 5, 2)
    np.testing.assert_allclose(t[0, 0, :, 1], [1, 0, 1, 0, 0.5], atol=1e-7)  # A0: one event, 2.5 m / 5 m
    assert t[0, 1:, 0, :].sum() == 0 and t[2].sum() == 0
    np.testing.assert_allclose(t[1, 1, :4, 1], [1, 1, 0, 0], atol=1e-7)  # B0 and B1: two events of class 1
    np.testing.assert_allclose(t[1, 2, :4, 1], [1, -1, 0, 0], atol=1e-7)
    assert t[1, 0, 0, 1] == 0
    np.testing.assert_allclose(t[1, 0, :, 0], [1, 0, 0, 1, 1.0], atol=1e-7)  # class 0 alone: A0, straight up


def _output_from(vectors):
    """A model output (1, 1, 3, 4, 1) whose three tracks are ``vectors`` (each [x, y, z, d])."""
    return torch.tensor(vectors, dtype=torch.float32).reshape(1, 1, 3, 4, 1)


def test_adpit_loss_is_zero_for_every_exact_assignment_and_positive_otherwise():
    one = torch.as_tensor(adpit_targets(_rows([(0, 0, 0, 0, 0, 100)]), 1, 1))[None]
    a = [1, 0, 0, 0.2]
    assert float(adpit_loss(_output_from([a, a, a]), one)) == pytest.approx(0.0, abs=1e-12)
    assert float(adpit_loss(_output_from([a, a, [0, 0, 0, 0]]), one)) > 0.01
    two = torch.as_tensor(adpit_targets(_rows([(0, 0, 0, 0, 0, 100), (0, 0, 1, 90, 0, 100)]), 1, 1))[None]
    b0, b1 = [1, 0, 0, 0.2], [0, 1, 0, 0.2]
    for tracks in ([b0, b1, b1], [b1, b0, b1], [b0, b0, b1], [b1, b1, b0]):
        assert float(adpit_loss(_output_from(tracks), two)) == pytest.approx(0.0, abs=1e-12)
    assert float(adpit_loss(_output_from([b0, b0, b0]), two)) > 0.01  # one of the two events missing
    none = torch.zeros(1, 1, 6, 5, 1)
    assert float(adpit_loss(torch.zeros(1, 1, 3, 4, 1), none)) == 0.0


@pytest.mark.parametrize("apart", [180.0, 120.0])
def test_adpit_has_no_false_perfect_answer_for_two_events_of_one_class(apart):
    """Two sources of one class: neither silence (their vectors cancel at 180 degrees) nor one vector
    at their mid-direction (120 degrees) is a perfect answer."""
    two = torch.as_tensor(adpit_targets(_rows([(0, 0, 0, 0, 0, 100), (0, 0, 1, apart, 0, 300)]), 1, 1))[None]
    nothing = [[0, 0, 0, 0.8]] * 3
    mid = math.radians(apart / 2)
    middle = [[math.cos(mid), math.sin(mid), 0, 0.8]] * 3
    for tracks in (nothing, middle):
        assert float(adpit_loss(_output_from(tracks), two)) > 0.05


def test_chunks_cover_a_recording_back_to_back_and_end_at_its_end():
    from mc_simclr.framewise import chunk_starts

    assert chunk_starts(600, 50) == list(range(0, 551, 50))
    assert chunk_starts(620, 50) == [*range(0, 551, 50), 570]
    assert chunk_starts(30, 50) == [0] and chunk_starts(50, 50) == [0]


class _IndexEncoder(torch.nn.Module):
    """A stand-in encoder whose output frame j is the number j (time pooled by ``stride``)."""

    def __init__(self, stride):
        super().__init__()
        self.config = EncoderConfig(pools=[[stride, 1]], filters=[1])
        self.frame_dim = 1
        self.stride = stride

    def frames(self, x):
        n = -(-x.shape[2] // self.stride)
        return torch.arange(n, dtype=torch.float32).reshape(1, n, 1).repeat(x.shape[0], 1, 1)


@pytest.mark.parametrize("stride", [4, 5])
def test_each_label_frame_reads_the_encoder_frames_of_its_own_100_ms(stride):
    model = FrameSELDModel(_IndexEncoder(stride), n_classes=1, label_frames=10, frames_per_label=5)
    pooled = model.pooled(torch.zeros(1, 1, 50, 2))[0, :, 0]
    expected = [np.mean([f // stride for f in range(5 * i, 5 * i + 5)]) for i in range(10)]
    np.testing.assert_allclose(pooled.numpy(), expected)


def test_decode_thresholds_and_merges_tracks():
    out = np.zeros((2, 3, 4, 2), dtype=np.float32)
    out[0, 0, :, 1] = [0.0, 0.9, 0.0, 0.4]  # class 1 at azimuth 90, 2 m
    out[0, 1, :, 1] = [0.05, 0.9, 0.0, 0.4]  # the same class 3 degrees away: merged
    out[0, 2, :, 1] = [0.9, 0.0, 0.0, 0.4]  # 87 degrees away: a second event
    out[1, 0, :, 0] = [0.3, 0.0, 0.0, 0.4]  # below the threshold
    rows = decode(out, threshold=0.5, merge_deg=15.0, distance_scale_m=5.0)
    assert list(rows["frame"]) == [0, 0] and list(rows["class"]) == [1, 1]
    assert sorted(np.round(rows["azimuth"])) == [0.0, 88.0]  # the merged pair's mean direction
    assert np.allclose(rows["distance"], 200.0)


def _encoder(architecture="crnn"):
    config = EncoderConfig(
        architecture=architecture,
        in_channels=3,
        mel_channels=1,
        filters=[4, 4],
        pools=[[2, 2], [1, 2]],
        gru_hidden=6,
        embedding_dim=8,
    )
    return build_encoder(config, n_bins=8)


@pytest.mark.parametrize("architecture", ["crnn", "split_crnn"])
def test_the_model_predicts_every_label_frame_of_a_chunk(architecture):
    encoder = _encoder(architecture)
    model = FrameSELDModel(encoder, n_classes=3, label_frames=10)
    out = model(torch.randn(2, 3, 50, 8))
    assert out.shape == (2, 10, 3, 4, 3)
    assert out[..., :3, :].abs().max() <= 1 and out[..., 3, :].min() >= 0


def _toy_scenes(n, seed, frames_per_label=5, n_frames=20):
    """Scenes whose feature level in channel 0 says the class-0 event is on, channel 1 its side."""
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(n):
        active = rng.random(n_frames) < 0.5
        side = rng.choice([-90.0, 90.0], n_frames)
        feats = 0.1 * torch.randn(3, n_frames * frames_per_label + 1, 8, generator=torch.Generator().manual_seed(i))
        for f in range(n_frames):
            span = slice(f * frames_per_label, (f + 1) * frames_per_label)
            feats[0, span] += 2.0 * active[f]
            feats[1, span] += 2.0 * active[f] * np.sign(side[f])
        rows = _rows([(f, 0, 0, side[f], 0, 200) for f in range(n_frames) if active[f]])
        scenes.append(scene_data(f"s{seed}_{i}", feats, rows, n_frames, 2, frames_per_label))
    return scenes


def test_chunks_pad_past_the_end():
    scene = _toy_scenes(1, 0, n_frames=12)[0]
    feats, targets = chunk(scene, 10, 10)
    assert feats.shape == (3, 50, 8) and targets.shape == (10, 6, 5, 2)
    assert feats[:, 11:].abs().sum() == 0 and targets[2:].sum() == 0


def test_training_visits_every_chunk_of_every_recording(monkeypatch):
    from mc_simclr import framewise

    seen = []
    real = framewise.chunk
    monkeypatch.setattr(
        framewise, "chunk", lambda scene, start, n: seen.append((scene.name, start)) or real(scene, start, n)
    )
    train, validation = _toy_scenes(2, 0, n_frames=35), _toy_scenes(1, 1)
    config = FramewiseConfig(device="cpu", chunk_seconds=1.0, batch_size=3, epochs=1, hidden=4)
    train_framewise(_encoder(), train, validation, 2, config, "scratch", progress=False)
    visited = {(n, s) for n, s in seen if n.startswith("s0_")}
    assert visited == {(f"s0_{i}", s) for i in range(2) for s in (0, 10, 20, 25)}


def test_training_learns_a_toy_task_and_each_mode_trains_what_it_says():
    train, validation = _toy_scenes(6, 0), _toy_scenes(2, 1)
    config = FramewiseConfig(device="cpu", chunk_seconds=1.0, batch_size=4, epochs=15, lr=1e-2, hidden=16)
    torch.manual_seed(0)
    encoder = _encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model, history = train_framewise(encoder, train, validation, 2, config, "scratch", progress=False)
    assert len(history) == 15 and history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    scores = evaluate_scenes(model, validation, 2, config)
    assert scores["dcase2024"]["f_score"] > 0.9 and scores["dcase2024"]["doa_error"] < 10
    assert scores["dcase2023"]["error_rate"] < 0.5
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key  # the given encoder is untouched
    short = dataclasses.replace(config, epochs=1)
    frozen, _ = train_framewise(encoder, train, validation, 2, short, "frozen", progress=False)
    for key, value in frozen.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and BatchNorm statistics
    tuned, _ = train_framewise(encoder, train, validation, 2, short, "finetune", progress=False)
    assert any(not torch.equal(v, before[k]) for k, v in tuned.encoder.state_dict().items())
    with pytest.raises(ValueError, match="seld mode"):
        train_framewise(encoder, train, validation, 2, short, "linear", progress=False)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"chunk_seconds": 0.25}, "chunk_seconds"),
        ({"threshold": 1.0}, "threshold"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_training_parameters_are_refused_by_name(params, name):
    with pytest.raises(ValueError, match=rf"seld.training.{name}"):
        FramewiseConfig.from_params(params)


def test_a_frozen_encoder_trains_on_cached_frames_as_on_features():
    """The frozen row computes the encoder's frames once; the head sees the same inputs either way."""
    train, validation = _toy_scenes(3, 0), _toy_scenes(1, 1)
    config = FramewiseConfig(device="cpu", chunk_seconds=1.0, batch_size=4, epochs=2, lr=1e-2, hidden=16)
    torch.manual_seed(0)
    encoder = _encoder()
    model, _ = train_framewise(encoder, train, validation, 2, config, "frozen", progress=False)
    from mc_simclr.framewise import pooled_chunks, predict_scene

    direct = predict_scene(model, validation[0], config)
    cached = predict_scene(model, validation[0], config, pooled_chunks(model, validation[0], config))
    np.testing.assert_allclose(direct, cached, atol=1e-6)


def test_the_seld_block_is_checked_by_name():
    from mc_simclr.seld_study import StudyConfig

    with pytest.raises(ValueError, match=r"seld.root"):
        StudyConfig.from_params({})
    with pytest.raises(ValueError, match=r"seld.rows"):
        StudyConfig.from_params({"root": "x", "rows": ["linear"]})
    with pytest.raises(ValueError, match=r"seld.fractions"):
        StudyConfig.from_params({"root": "x", "fractions": [0.0]})
    with pytest.raises(ValueError, match=r"seld.folders"):
        StudyConfig.from_params({"root": "x", "folders": {"train": ["a"], "validation": [], "test": ["b"]}})
    assert StudyConfig.from_params({"root": "x"}).rows == ["frozen", "finetune", "scratch", "seldnet"]


def test_channel_swapped_targets_are_the_symmetrys_directions():
    """Audio channel swapping: each symmetry of the tetrahedral MIC format turns the reference
    directions as ArraySymmetries.map_directions does; activity and distance stay."""
    from mc_simclr.acoustics.array import ArrayGeometry
    from mc_simclr.acoustics.symmetry import ArraySymmetries
    from mc_simclr.framewise import swap_targets

    symmetries = ArraySymmetries.of(ArrayGeometry.from_params({"kind": "tetrahedral"}))
    assert len(symmetries) == 8
    rows = _rows([(0, 0, 0, 30.0, 20.0, 150), (0, 0, 1, -120.0, -10.0, 300), (1, 1, 0, 170.0, 45.0, 80)])
    targets = torch.as_tensor(adpit_targets(rows, 2, 2))[None]
    for s in range(len(symmetries)):
        swapped = swap_targets(targets, torch.as_tensor(symmetries.rotations[s], dtype=torch.float32)[None])[0]
        az, el = symmetries.map_directions(rows["azimuth"].to_numpy(), rows["elevation"].to_numpy(), s)
        expected = adpit_targets(rows.assign(azimuth=az, elevation=el), 2, 2)
        np.testing.assert_allclose(swapped.numpy(), expected, atol=1e-5)


def test_training_with_channel_swap_sees_every_symmetry(monkeypatch):
    """With the array's symmetries each training chunk is swapped by a drawn symmetry (all of them
    over a few epochs), in every mode; without symmetries or with channel_swap off, none is."""
    from mc_simclr import framewise
    from mc_simclr.acoustics.array import ArrayGeometry
    from mc_simclr.acoustics.symmetry import ArraySymmetries

    symmetries = ArraySymmetries.of(ArrayGeometry.linear(2, 0.05))  # 2 mel + 1 GCC channel, as the toy
    assert len(symmetries) == 2
    seen = []
    original = framewise.swap_targets
    monkeypatch.setattr(framewise, "swap_targets", lambda t, r: seen.append(r[:, 0, 0].tolist()) or original(t, r))
    train, validation = _toy_scenes(3, 0), _toy_scenes(1, 1)
    config = FramewiseConfig(device="cpu", chunk_seconds=1.0, batch_size=4, epochs=4, lr=1e-2, hidden=16)
    for mode in ("scratch", "frozen"):
        seen.clear()
        train_framewise(_encoder(), train, validation, 2, config, mode, progress=False, symmetries=symmetries)
        flat = {v for batch in seen for v in batch}
        assert flat == {1.0, -1.0}  # the identity and the swap (x -> -x) both drawn
    seen.clear()
    train_framewise(_encoder(), train, validation, 2, config, "scratch", progress=False)
    off = dataclasses.replace(config, channel_swap=False)
    train_framewise(_encoder(), train, validation, 2, off, "scratch", progress=False, symmetries=symmetries)
    assert not seen
