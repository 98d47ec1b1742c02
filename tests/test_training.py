"""Pretraining loop: schedule, determinism, checkpoint + resume, and clear checkpoint errors."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mc_simclr import pretraining
from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.features import FeatureExtractor
from mc_simclr.losses import spatial_reconstruction_loss, spatial_target
from mc_simclr.model_files import package_encoder, unpack_encoder
from mc_simclr.networks import EncoderConfig, build_encoder
from mc_simclr.pretraining import (
    CheckpointError,
    CropPairs,
    EpochShuffle,
    PretrainConfig,
    pretrain,
    scaled_lr,
    warmup_cosine,
)
from mc_simclr.shards import ShardData, ShardedAudio, write_shard

from conftest import conf_parameters

# The test suite's sizes (conf/test: a tiny split CRNN) and conf/base's augmentations.
PARAMS = conf_parameters("test")
AUGMENT = PARAMS["augmentations"]
SPLIT = EncoderConfig.from_params(PARAMS["encoder"]).for_array(4)
ENCODER = EncoderConfig.from_params({**PARAMS["encoder"], "architecture": "crnn"}).for_array(4)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    data = ShardData()
    for i, seconds in enumerate([0.5, 1.0, 1.7, 2.3, 0.8, 3.1, 1.2, 2.0]):
        row = {"clip_id": f"c{i}", "array": ArrayGeometry.circular().to_json()}  # the scene table's array column
        data.add(row, (0.1 * rng.standard_normal((4, int(seconds * 8000)))).astype(np.float32))
    write_shard(root, "s0", data)
    return ShardedAudio(root)


def _run(audio, tmp_path, **overrides):
    params = {"epochs": 3, "batch_size": 4, "warmup_epochs": 1, "device": "cpu", "seed": 3, **overrides}
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    return pretrain(
        audio,
        [f"c{i}" for i in range(8)],
        extractor,
        ENCODER,
        AUGMENT,
        PretrainConfig.from_params(params),
        progress=False,
    )


def test_schedule_and_scaling_rule():
    assert scaled_lr(0.2, 512, 512) == pytest.approx(0.2)
    assert scaled_lr(0.2, 128, 512) == pytest.approx(0.05)
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_crops_are_one_second_zero_padded_and_seeded(audio):
    pairs = CropPairs(audio, ["c0", "c5"], crop_samples=8000, seed=1)
    short1, short2 = pairs[(0, 0)]
    assert short1.shape == (4, 8000)
    assert torch.equal(short1, short2)  # 0.5 s clip: both crops = padded clip
    assert torch.count_nonzero(short1[:, 4000:]) == 0
    a1, a2 = pairs[(0, 1)]
    assert not torch.equal(a1, a2)
    assert torch.equal(a1, pairs[(0, 1)][0])
    assert not torch.equal(a1, pairs[(1, 1)][0])


def test_epoch_shuffle_is_seeded_per_epoch():
    sampler = EpochShuffle(10, seed=4)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10))
    assert {e for e, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert {e for e, _ in second} == {1}
    assert [i for _, i in second] != [i for _, i in first]


def test_deterministic_and_resume_equals_uninterrupted(audio, tmp_path):
    full = _run(audio, tmp_path, checkpoint_path=str(tmp_path / "full.pt"))
    again = _run(audio, tmp_path)
    for key, value in full.encoder.state_dict().items():
        assert torch.equal(value, again.encoder.state_dict()[key]), key
    assert [h["loss"] for h in full.history] == [h["loss"] for h in again.history]

    # interrupt a run after its first epoch's checkpoint, then resume it for the remaining two
    partial_path = tmp_path / "partial.pt"
    original = pretraining.save_checkpoint
    calls = []

    def stop_after_first(path, payload):
        original(path, payload)
        calls.append(payload["epoch"])
        if payload["epoch"] == 1:
            raise KeyboardInterrupt

    pretraining.save_checkpoint = stop_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(audio, tmp_path, checkpoint_path=str(partial_path))
    finally:
        pretraining.save_checkpoint = original
    assert calls == [1]
    resumed = _run(audio, tmp_path, checkpoint_path=str(partial_path))
    assert resumed.resumed_from_epoch == 1
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for key, value in full.encoder.state_dict().items():
        assert torch.equal(value, resumed.encoder.state_dict()[key]), key

    # a finished run is not trained again
    done = _run(audio, tmp_path, checkpoint_path=str(partial_path))
    assert done.resumed_from_epoch == 3
    assert len(done.history) == 3


def test_checkpoint_errors(audio, tmp_path):
    path = tmp_path / "ck.pt"
    _run(audio, tmp_path, checkpoint_path=str(path), epochs=1, warmup_epochs=0)
    with pytest.raises(CheckpointError, match="other settings"):
        _run(audio, tmp_path, checkpoint_path=str(path), epochs=1, warmup_epochs=0, base_lr=0.1)
    restarted = _run(audio, tmp_path, checkpoint_path=str(path), epochs=1, warmup_epochs=0, base_lr=0.1, restart=True)
    assert restarted.resumed_from_epoch == 0
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        _run(audio, tmp_path, checkpoint_path=str(path), epochs=1, warmup_epochs=0, base_lr=0.1)


class _Payload:
    """Unpickling this creates a file: a stand-in for a checkpoint that would run code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_a_pickled_object_is_refused_unread(audio, tmp_path):
    path, marker = tmp_path / "ck.pt", tmp_path / "code-ran"
    _run(audio, tmp_path, checkpoint_path=str(path), epochs=1, warmup_epochs=0)
    state = torch.load(path, weights_only=True)  # what mc_simclr writes loads safely
    assert "rng" not in state
    assert state["epoch"] == 1
    torch.save({**state, "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused unread, since loading it could run code"):
        _run(audio, tmp_path, checkpoint_path=str(path), epochs=2, warmup_epochs=0)
    assert not marker.exists()


def test_config_errors():
    with pytest.raises(ValueError, match="pretraining.batch_size"):
        PretrainConfig.from_params({"batch_size": 1})
    with pytest.raises(ValueError, match="pretraining.optimizer"):
        PretrainConfig.from_params({"optimizer": "adam"})
    with pytest.raises(ValueError, match=r"pretraining.precision \(one of float32, bf16\)"):
        PretrainConfig.from_params({"precision": "fp16"})


def test_precision_and_layout_in_the_fingerprint_only_where_they_change_the_weights():
    # float32 runs keep the fingerprint (and checkpoints) of runs from before the setting existed
    float32 = PretrainConfig.from_params({"precision": "float32", "cuda_channels_last": True}).trained_settings()
    assert float32 == PretrainConfig().trained_settings()
    assert "precision" not in float32
    assert "cuda_channels_last" not in float32
    assert PretrainConfig.from_params({"precision": "bf16"}).trained_settings()["precision"] == "bf16"


def test_bf16_pretraining_runs_on_cpu_close_to_float32(audio, tmp_path):
    config = PretrainConfig.from_params({"precision": "bf16", "device": "cpu"})
    encoder = pretraining.build_encoder(ENCODER, 16)
    model = pretraining.ContrastiveModel(encoder, pretraining.make_projectors(encoder, config)).train()
    f1, f2 = torch.randn(6, 10, 12, 16), torch.randn(6, 10, 12, 16)
    with pretraining.autocast(f1.device, "bf16"):
        assert model(f1)["joint"].dtype == torch.bfloat16  # the model really runs in bfloat16
    mixed = pretraining.contrastive_loss(model, f1, f2, config)
    full = pretraining.contrastive_loss(model, f1, f2, PretrainConfig())
    assert mixed.dtype == torch.float32
    assert mixed.item() != full.item()
    assert mixed.item() == pytest.approx(full.item(), rel=0.05)
    mixed.backward()
    assert all(
        p.grad is None or (p.grad.dtype == torch.float32 and p.grad.isfinite().all()) for p in model.parameters()
    )

    # a whole bf16 run: finite losses, float32 weights, other weights than float32, resumable
    path = tmp_path / "bf16.pt"
    run = _run(audio, tmp_path, precision="bf16", checkpoint_path=str(path))
    reference = _run(audio, tmp_path)
    assert all(math.isfinite(h["loss"]) for h in run.history)
    weights = run.encoder.state_dict()
    assert all(v.dtype == reference.encoder.state_dict()[k].dtype for k, v in weights.items())
    assert any(not torch.equal(v, reference.encoder.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(CheckpointError, match="other settings"):  # a bf16 checkpoint is not a float32 run's
        _run(audio, tmp_path, checkpoint_path=str(path))
    assert _run(audio, tmp_path, precision="bf16", checkpoint_path=str(path)).resumed_from_epoch == 3


def test_cuda_channels_last_reaches_the_encoder(audio):
    from mc_simclr.networks import CRNNEncoder

    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    ids = [f"c{i}" for i in range(8)]
    for enabled in (False, True):
        config = PretrainConfig.from_params({"device": "cpu", "batch_size": 4, "cuda_channels_last": enabled})
        run = pretraining.build_pretraining(audio, ids, extractor, ENCODER, AUGMENT, config)
        (encoder,) = [m for m in run.encoder.modules() if isinstance(m, CRNNEncoder)]
        assert encoder.cuda_channels_last is enabled
        weight = encoder.conv[0].weight
        assert weight.is_contiguous(memory_format=torch.channels_last if enabled else torch.contiguous_format)
    with pytest.raises(ValueError, match="pretraining.cuda_channels_last"):
        PretrainConfig.from_params({"cuda_channels_last": "false"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_channels_last_matches_contiguous(monkeypatch):
    from mc_simclr.networks import set_cuda_channels_last

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # both layouts in full float32
    encoder = pretraining.build_encoder(ENCODER, 16).cuda().eval()
    x = torch.randn(8, 10, 24, 16, device="cuda")
    with torch.no_grad():
        plain = encoder(x)
        fast = set_cuda_channels_last(encoder, True)(x)
    torch.testing.assert_close(fast, plain, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_step_on_cuda():
    """The GRU and convolutions in bfloat16 through cuDNN, forward and backward."""
    config = PretrainConfig.from_params({"precision": "bf16", "device": "cuda"})
    encoder = pretraining.build_encoder(ENCODER, 16).cuda()
    model = pretraining.ContrastiveModel(encoder, pretraining.make_projectors(encoder, config).cuda()).train()
    f1, f2 = torch.randn(8, 10, 24, 16, device="cuda"), torch.randn(8, 10, 24, 16, device="cuda")
    loss = pretraining.contrastive_loss(model, f1, f2, config)
    loss.backward()
    assert loss.dtype == torch.float32
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(pretraining.contrastive_loss(model, f1, f2, PretrainConfig()).item(), rel=0.05)
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())


def test_encoder_package_round_trip(audio, tmp_path):
    result = _run(audio, tmp_path, epochs=1, warmup_epochs=0)
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    params = {"n_fft": 256, "hop_length": 128, "n_mels": 16}
    encoder, rebuilt = unpack_encoder(package_encoder(result.encoder, extractor, params))
    x = torch.randn(2, 4, 8000)
    with torch.no_grad():
        assert torch.allclose(encoder(rebuilt(x)), result.encoder(extractor(x)))


def test_split_encoder_branches_see_their_channels():
    from mc_simclr.networks import SplitCRNNEncoder, build_encoder

    encoder = build_encoder(SPLIT, n_bins=16).eval()
    assert isinstance(encoder, SplitCRNNEncoder)
    x = torch.randn(3, 10, 12, 16)
    mel, gcc = encoder.parts(x)
    assert mel.shape == (3, 8)
    assert gcc.shape == (3, 8)
    changed = x.clone()
    changed[:, 4:] += 1.0  # GCC channels only
    with torch.no_grad():
        assert torch.equal(encoder.parts(changed)[0], mel)
        assert not torch.equal(encoder.parts(changed)[1], gcc)
        assert torch.equal(encoder(x), torch.cat([mel, gcc], dim=1))


def test_split_pretraining_with_branch_losses_resumes(audio, tmp_path):
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    ids = [f"c{i}" for i in range(8)]

    def run(**overrides):
        params = {
            "epochs": 2,
            "batch_size": 4,
            "warmup_epochs": 1,
            "device": "cpu",
            "joint_loss_weight": 0.0,
            "branch_loss_weight": 1.0,
            **overrides,
        }
        return pretrain(audio, ids, extractor, SPLIT, AUGMENT, PretrainConfig.from_params(params), progress=False)

    full = run(checkpoint_path=str(tmp_path / "split.pt"))
    assert set(full.projectors) == {"mel", "gcc"}
    assert np.isfinite(full.history[-1]["loss"])
    again = run(checkpoint_path=str(tmp_path / "split.pt"))
    assert again.resumed_from_epoch == 2
    encoder, _ = unpack_encoder(
        package_encoder(full.encoder, extractor, {"n_fft": 256, "hop_length": 128, "n_mels": 16})
    )
    x = torch.randn(2, 10, 63, 16)
    with torch.no_grad():
        assert torch.allclose(encoder(x), full.encoder(x))
    with pytest.raises(ValueError, match="pretraining.branch_loss_weight"):
        pretrain(
            audio,
            ids,
            extractor,
            ENCODER,
            AUGMENT,
            PretrainConfig.from_params({"epochs": 1, "batch_size": 4, "warmup_epochs": 0, "branch_loss_weight": 1.0}),
            progress=False,
        )


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(audio, tmp_path):
    """Data parallel on CPU (gloo): the loss curve and weights of one process with the same global batch;
    a checkpoint of two processes resumes in one."""
    kwargs = {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "seed": 5}
    one = _run(audio, tmp_path, **kwargs)
    two = _run(audio, tmp_path, devices=2, **kwargs)
    assert [h["epoch"] for h in two.history] == [1, 2]
    np.testing.assert_allclose([h["loss"] for h in two.history], [h["loss"] for h in one.history], rtol=1e-4)
    for (key, a), b in zip(one.encoder.state_dict().items(), two.encoder.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=key)
    assert two.fingerprint == one.fingerprint  # the number of processes does not shape the weights

    # two processes stop after one epoch (pretraining.max_steps: its 2 steps), one process finishes
    path = tmp_path / "ddp.pt"
    first = _run(audio, tmp_path, devices=2, max_steps=2, checkpoint_path=str(path), **kwargs)
    assert [h["epoch"] for h in first.history] == [1]
    resumed = _run(audio, tmp_path, checkpoint_path=str(path), **kwargs)
    assert resumed.resumed_from_epoch == 1
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    np.testing.assert_allclose([h["loss"] for h in resumed.history], [h["loss"] for h in one.history], rtol=1e-4)


@pytest.mark.slow
def test_two_processes_in_bf16_train_like_one(audio, tmp_path):
    """bf16 autocast under data parallelism (global BatchNorm, gathered projections): the loss curve of
    one bf16 process with the same global batch, to bfloat16's precision."""
    kwargs = {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "seed": 5, "precision": "bf16"}
    one = _run(audio, tmp_path, **kwargs)
    two = _run(audio, tmp_path, devices=2, **kwargs)
    assert all(math.isfinite(h["loss"]) for h in two.history)
    np.testing.assert_allclose([h["loss"] for h in two.history], [h["loss"] for h in one.history], rtol=0.05)


def test_max_steps_stops_within_an_epoch_without_a_checkpoint_of_it(audio, tmp_path):
    path = tmp_path / "ck.pt"
    result = _run(audio, tmp_path, max_steps=3, checkpoint_path=str(path))  # 2 steps per epoch
    assert [(h["epoch"], h["steps"]) for h in result.history] == [(1, 2), (2, 1)]
    assert result.history[-1]["partial"] == 1.0
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the partial epoch is not a checkpoint


def test_more_devices_than_gpus_is_a_clear_error(audio, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
        _run(audio, tmp_path, devices=2, device="cuda")
    from mc_simclr.distributed import check_devices

    with pytest.raises(ValueError, match=r"pretraining.devices = 3 but 0 CUDA device\(s\) are visible"):
        check_devices(3, torch.device("cuda"))


def test_spatial_target_is_each_pairs_standardised_lag_profile():
    features = torch.zeros(2, 10, 5, 16)
    features[:, :4] = torch.randn(2, 4, 5, 16)  # log-Mel: not part of the target
    for pair, lag in enumerate([3, 5, 7, 9, 11, 13]):
        features[0, 4 + pair, :, lag] = 1.0  # a peak at the pair's lag in every frame
    features[1, 4:] = torch.randn(1, 6, 5, 16)
    features[1, 6] = 0.0  # a dropped channel
    target = spatial_target(features, mel_channels=4).view(2, 6, 16)
    assert target.shape == (2, 6, 16)
    assert target[0].argmax(dim=1).tolist() == [3, 5, 7, 9, 11, 13]
    assert torch.allclose(target[0].mean(dim=1), torch.zeros(6), atol=1e-6)
    assert torch.allclose(target[0].std(dim=1), torch.ones(6), atol=1e-5)
    assert torch.equal(target[1, 2], torch.zeros(16))
    with pytest.raises(ValueError, match="mel_channels"):
        spatial_target(features, mel_channels=10)
    with pytest.raises(ValueError, match="does not match its target"):
        spatial_reconstruction_loss(torch.zeros(2, 5), target)


def test_spatial_target_weight_adds_a_head_that_learns_the_lag_profile(audio, tmp_path):
    assert "spatial_target_weight" not in PretrainConfig().trained_settings()  # old fingerprints stay
    assert PretrainConfig.from_params({"spatial_target_weight": 0.5}).trained_settings()["spatial_target_weight"] == 0.5
    with pytest.raises(ValueError, match="pretraining.spatial_target_weight"):
        PretrainConfig.from_params({"spatial_target_weight": -1.0})
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    for architecture, encoder_config in [("split_crnn", SPLIT), ("crnn", ENCODER)]:
        config = PretrainConfig.from_params(
            {"joint_loss_weight": 1.0, "branch_loss_weight": 0.0, "spatial_target_weight": 1.0}
        )
        encoder = build_encoder(encoder_config, 16)
        heads = pretraining.make_projectors(encoder, config)
        assert set(heads) == {"joint", "spatial"}, architecture
        model = pretraining.ContrastiveModel(encoder, heads)
        features = torch.randn(8, 10, 20, 16)
        target = spatial_target(features, 4)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(30):  # the head fits the batch's lag profiles: the target reaches the weights
            loss = spatial_reconstruction_loss(model(features)["spatial"], target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < 0.5 * losses[0], architecture
    run = pretrain(
        audio,
        [f"c{i}" for i in range(8)],
        extractor,
        SPLIT,
        AUGMENT,
        PretrainConfig.from_params(
            {
                "epochs": 1,
                "batch_size": 4,
                "warmup_epochs": 0,
                "device": "cpu",
                "joint_loss_weight": 0.0,
                "branch_loss_weight": 1.0,
                "spatial_target_weight": 1.0,
            }
        ),
        progress=False,
    )
    assert set(run.projectors) == {"mel", "gcc", "spatial"}
    assert np.isfinite(run.history[-1]["loss"])


def test_history_keeps_each_loss_term_apart(audio):
    """Every head's term before its weight, per epoch; their weighted sum is the logged loss."""
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    weights = {"joint_loss_weight": 0.5, "branch_loss_weight": 2.0, "spatial_target_weight": 3.0}
    params = {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "device": "cpu", **weights}
    ids = [f"c{i}" for i in range(8)]
    run = pretrain(audio, ids, extractor, SPLIT, AUGMENT, PretrainConfig.from_params(params), progress=False)
    for record in run.history:
        terms = {k: v for k, v in record.items() if k.startswith("loss_")}
        assert set(terms) == {"loss_joint", "loss_mel", "loss_gcc", "loss_spatial"}
        weighted = (
            0.5 * terms["loss_joint"] + 2.0 * (terms["loss_mel"] + terms["loss_gcc"]) + 3.0 * terms["loss_spatial"]
        )
        assert record["loss"] == pytest.approx(weighted, rel=1e-5)
        assert terms["loss_joint"] != terms["loss_mel"]
    metrics = pretraining.history_metrics(run.history)
    assert [p["step"] for p in metrics["loss_spatial"]] == [1, 2]
    assert metrics["loss_gcc"][1]["value"] == pytest.approx(run.history[1]["loss_gcc"])
    # histories written before the terms were kept log the totals only
    old = [{k: v for k, v in h.items() if not k.startswith("loss_")} for h in run.history]
    assert set(pretraining.history_metrics(old)) == {"loss", "lr", "clips_per_s"}


def test_max_clips_takes_a_seeded_subset_and_refuses_more_than_there_are(tmp_path):
    data = ShardData()
    for i in range(10):
        split = "unlabeled" if i < 8 else "labeled"
        data.add({"clip_id": f"c{i}", "split": split, "status": pretraining.OK}, np.zeros((4, 800), np.float32))
    write_shard(tmp_path, "s0", data)
    audio = ShardedAudio(tmp_path)
    everything = pretraining.pretraining_clips(audio, "unlabeled")
    assert len(everything) == 8
    four = pretraining.pretraining_clips(audio, "unlabeled", max_clips=4, seed=0)
    assert len(four) == 4
    assert set(four) < set(everything)
    assert four == pretraining.pretraining_clips(audio, "unlabeled", max_clips=4, seed=0)
    others = [pretraining.pretraining_clips(audio, "unlabeled", max_clips=4, seed=s) for s in range(1, 6)]
    assert any(set(o) != set(four) for o in others)
    for bad in (1, 9, 2.5, True):
        with pytest.raises(ValueError, match=r"pretraining.max_clips must be null or an integer in \[2, 8\]"):
            pretraining.pretraining_clips(audio, "unlabeled", max_clips=bad)


def test_optional_augmentations_enter_the_fingerprint_only_when_on():
    extractor = FeatureExtractor(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16)
    paper_blocks = {
        k: v for k, v in AUGMENT.items() if k in ("channel_swap", "mixup", "random_resized_crop", "channel_drop")
    }

    def digest(blocks):
        return pretraining.pretraining_fingerprint(["c0", "c1"], extractor, SPLIT, blocks, PretrainConfig())

    off = {**paper_blocks, "gain": {"enabled": False, "gain_db": 6.0}, "spectral_tilt": {"enabled": False}}
    assert digest(off) == digest(paper_blocks)  # runs from before the blocks existed keep their checkpoints
    on = {**off, "spectral_tilt": {"enabled": True, "tilt_db": 3.0}}
    assert digest(on) != digest(paper_blocks)
    assert digest({**paper_blocks, "mixup": {**paper_blocks["mixup"], "enabled": False}}) != digest(paper_blocks)
