"""The Python API: a model file as an object that embeds and predicts multichannel audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import mc_simclr
from mc_simclr.audio.io import resample
from mc_simclr.features import FeatureExtractor
from mc_simclr.inference import infer_recordings
from mc_simclr.model_files import package_seld_model
from mc_simclr.networks import EncoderConfig, SELDHeads, build_encoder
from mc_simclr.seld_model import PREDICTION_COLUMNS, SELDModel

from conftest import conf_parameters

RATE = 16000
CLASSES = ["bell", "drum", "whistle"]


def seld_state(classes: list[str] = CLASSES) -> dict:
    """A model file's dict: conf/test's encoder, random weights (seeded), linear heads, the square."""
    params = conf_parameters("test")
    extractor = FeatureExtractor.from_params(params["features"], RATE)
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig.from_params(params["encoder"]).for_array(4), extractor.n_mels).eval()
    heads = SELDHeads(encoder.embedding_dim, len(classes)).eval()
    geometry = {"kind": "circular", "n_mics": 4, "diameter_m": 0.1, "orientation_deg": 0.0}
    return package_seld_model(encoder, heads, extractor, params["features"], classes, {"geometry": geometry})


@pytest.fixture(scope="module")
def state():
    return seld_state()


@pytest.fixture(scope="module")
def audio():
    return (0.1 * np.random.default_rng(0).standard_normal((4, int(2.5 * RATE)))).astype(np.float32)


def test_load_embed_and_predict(state, audio, tmp_path):
    path = tmp_path / "seld_model.pt"
    torch.save(state, path)
    model = mc_simclr.load_model(path, device="cpu")
    assert model.sample_rate == RATE
    assert model.geometry["n_mics"] == 4
    assert model.geometry["diameter_m"] == 0.1
    embeddings = model.embed(audio, RATE)
    assert embeddings.shape == (3, model.embedding_dim)  # 2.5 s: three 1 s windows, the last padded
    table = model.predict(audio, RATE)
    assert list(table.columns) == [*PREDICTION_COLUMNS, "azimuth_deg"]
    assert len(table) == 3
    assert table["end_s"].tolist() == [1.0, 2.0, 3.0]
    assert set(table["class"]) <= set(CLASSES)
    assert table["class_probability"].between(0, 1).all()
    assert table["azimuth_deg"].between(-180, 180).all()
    # torch input, a batch, and another sample rate give the same answers
    np.testing.assert_allclose(model.embed(torch.from_numpy(audio), RATE), embeddings, atol=1e-6)
    batch = model.embed(np.stack([audio, audio[::-1].copy()]), RATE)
    assert batch.shape == (2, 3, model.embedding_dim)
    np.testing.assert_allclose(batch[0], embeddings, atol=1e-5)
    upsampled = resample(audio, RATE, 48000).astype(np.float32)
    assert np.abs(model.embed(upsampled, 48000) - embeddings).max() < 0.05 * np.abs(embeddings).max()
    assert model.predict(np.stack([audio, audio]), RATE)["item"].tolist() == [0, 0, 0, 1, 1, 1]


def test_bad_audio_is_refused_with_a_clear_error(state, audio):
    model = SELDModel(state, device="cpu")
    with pytest.raises(ValueError, match=r"with 4 channels .* got shape \(2, 40000\)"):
        model.embed(audio[:2], RATE)
    broken = audio.copy()
    broken[1, 10] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.predict(broken, RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        model.embed(audio, 0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mc_simclr.load_model("no/such/seld_model.pt")


def test_audio_shorter_than_one_window_is_refused_naming_the_minimum(state, audio):
    model = SELDModel(state, device="cpu")
    assert model.min_seconds == 1.0
    for short in (audio[:, : int(0.05 * RATE)], audio[:, : RATE - 1]):
        with pytest.raises(ValueError, match=r"lasts 0\.\d+ s, shorter than the model's window of 1 s"):
            model.predict(short, RATE)
        with pytest.raises(ValueError, match="shorter than the model's window"):
            model.embed(short, RATE)
    assert len(model.predict(audio[:, :RATE], RATE)) == 1  # exactly one window
    assert len(model.predict(resample(audio[:, :RATE], RATE, 44100), 44100)) == 1  # one second at another rate


def test_the_inference_pipeline_refuses_a_too_short_recording_by_name(state, audio, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(str(short), audio[:, : RATE // 2].T, RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"short\.wav: the audio lasts 0\.5 s, shorter than the model's window"):
        infer_recordings([short], state, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_answers(state, audio):
    cpu, cuda = SELDModel(state, device="cpu"), SELDModel(state, device="cuda")
    np.testing.assert_allclose(cuda.embed(audio, RATE), cpu.embed(audio, RATE), atol=1e-4)
