"""What the served model reads and refuses, through the pyfunc as MLflow loads it (no server).

A ``path`` row is read only inside the folder of ``MC_SIMCLR_SERVE_AUDIO_DIR`` (after resolving
symbolic links and ``..``) and refused without one; a request holds at most
``MC_SIMCLR_SERVE_MAX_SECONDS`` of audio; audio shorter than a window is refused. Each refusal is a
:class:`~mc_simclr.serving.RequestRefused` (HTTP 400 when served) whose message names the row and the
rule; ``tests/test_serving.py`` sends the same requests to a real server.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from mlflow.models import ModelSignature
from test_model import RATE, seld_state

from mc_simclr import serving
from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.serving import (
    AUDIO_DIR_ENV,
    INPUT_SCHEMA,
    MAX_SECONDS_ENV,
    MODEL_NAME,
    RequestRefused,
    SELDPyfunc,
    ServingLimits,
    output_schema,
)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The pyfunc model saved as the evaluation pipeline logs it (without a tracking server)."""
    folder = tmp_path_factory.mktemp("pyfunc")
    model_path = folder / f"{MODEL_NAME}.pt"
    torch.save(seld_state(), model_path)
    target = folder / "model"
    mlflow.pyfunc.save_model(
        str(target),
        python_model=SELDPyfunc(),
        artifacts={MODEL_NAME: str(model_path)},
        signature=ModelSignature(inputs=INPUT_SCHEMA, outputs=output_schema(DirectionLabels())),
    )
    return target


@pytest.fixture
def files(tmp_path):
    """An allowed folder with one recording, a secret recording beside it, a link to the secret inside."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret.wav"
    allowed.mkdir()
    clip = (0.1 * np.random.default_rng(1).standard_normal((2 * RATE, 4))).astype(np.float32)
    sf.write(str(allowed / "take.wav"), clip, RATE, subtype="FLOAT")
    sf.write(str(secret), clip, RATE, subtype="FLOAT")
    (allowed / "link.wav").symlink_to(secret)
    return allowed, secret


@pytest.fixture
def opened(monkeypatch):
    """Every file the serving module reads a header or samples of."""
    seen = []
    header, samples = serving.audio_info, serving.read_multichannel
    monkeypatch.setattr(serving, "audio_info", lambda path: seen.append(str(path)) or header(path))
    monkeypatch.setattr(serving, "read_multichannel", lambda path: seen.append(str(path)) or samples(path))
    return seen


def _serve(saved_model, monkeypatch, **environment):
    for name in (AUDIO_DIR_ENV, MAX_SECONDS_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    return mlflow.pyfunc.load_model(str(saved_model))


def _audio_row(seconds: float, channels: int = 4) -> dict:
    samples = (0.1 * np.random.default_rng(2).standard_normal((channels, int(seconds * RATE)))).astype(np.float64)
    return {"audio": samples.tolist(), "sample_rate": RATE}


def test_without_a_folder_no_path_row_is_read(saved_model, files, opened, monkeypatch):
    allowed, secret = files
    model = _serve(saved_model, monkeypatch)
    for path in (str(secret), str(allowed / "take.wav"), "take.wav"):
        with pytest.raises(RequestRefused, match=r"row 0: 'path' rows are refused: this server reads only the audio"):
            model.predict(pd.DataFrame([{"path": path}]))
    assert opened == []
    assert len(model.predict(pd.DataFrame([_audio_row(2.0)]))) == 2  # audio sent in the request is answered


def test_inside_the_folder_only_after_resolving_links_and_dots(saved_model, files, opened, monkeypatch):
    allowed, secret = files
    model = _serve(saved_model, monkeypatch, **{AUDIO_DIR_ENV: allowed})
    for path in ("link.wav", "../secret.wav", str(secret), f"{allowed}/../secret.wav", "sub/../../secret.wav"):
        with pytest.raises(RequestRefused, match=r"row 0: path .* is outside the folder this server reads"):
            model.predict(pd.DataFrame([{"path": path}]))
    assert str(secret) not in opened
    assert opened == []
    by_name = model.predict(pd.DataFrame([{"path": "take.wav"}]))
    by_absolute = model.predict(pd.DataFrame([{"path": str(allowed / "take.wav")}]))
    assert len(by_name) == 2
    pd.testing.assert_frame_equal(by_name, by_absolute)
    with pytest.raises(RequestRefused, match=r"row 1: 'missing.wav': file not found"):
        model.predict(pd.DataFrame([{"path": "take.wav"}, {"path": "missing.wav"}]))


def test_a_request_longer_than_the_limit_is_refused_before_any_work(saved_model, files, opened, monkeypatch):
    allowed, _ = files
    model = _serve(saved_model, monkeypatch, **{AUDIO_DIR_ENV: allowed, MAX_SECONDS_ENV: 3})
    with pytest.raises(RequestRefused, match=r"holds 4\.0 s of audio; this server answers at most 3 s per request"):
        model.predict(pd.DataFrame([{"path": "take.wav"}, {"path": "take.wav"}]))
    assert opened == [str(allowed / "take.wav")] * 2  # their headers only: no samples were read
    with pytest.raises(RequestRefused, match=r"holds 4\.0 s of audio"):
        model.predict(pd.DataFrame([_audio_row(2.0), _audio_row(2.0)]))
    assert len(model.predict(pd.DataFrame([{"path": "take.wav"}]))) == 2
    assert len(model.predict(pd.DataFrame([_audio_row(1.0), _audio_row(2.0)]))) == 3


def test_too_short_audio_and_other_bad_rows_name_the_row_and_the_reason(saved_model, monkeypatch):
    model = _serve(saved_model, monkeypatch)
    bad = {
        r"row 1: the audio lasts 0\.05 s, shorter than the model's window of 1 s": [_audio_row(1.0), _audio_row(0.05)],
        r"row 0: waveform must be .* with 4 channels": [_audio_row(1.0, channels=2)],
        r"row 0 has neither 'audio' .* nor 'path'": [{"sample_rate": RATE}],
        r"row 0: sample_rate must be a positive number of Hz, got -1": [{**_audio_row(1.0), "sample_rate": -1}],
    }
    for message, rows in bad.items():
        with pytest.raises(RequestRefused, match=message) as refused:
            model.predict(pd.DataFrame(rows))
        assert refused.value.get_http_status_code() == 400
        assert refused.value.serialize_as_json().count("row") == 1


def test_the_reason_stays_the_message_when_mlflow_prefixes_the_request():
    refused = RequestRefused("row 0: 2 channels")
    refused.message = "Failed to predict data '<the whole request>'. \nError: row 0: 2 channels"
    assert refused.message == "row 0: 2 channels"
    assert str(refused) == "row 0: 2 channels"


def test_limits_from_the_environment_are_checked(tmp_path):
    assert ServingLimits.from_environment({}) == ServingLimits(None, serving.DEFAULT_MAX_SECONDS)
    assert ServingLimits.from_environment({MAX_SECONDS_ENV: "30"}).max_seconds == 30.0
    assert ServingLimits.from_environment({AUDIO_DIR_ENV: str(tmp_path)}).audio_dir == tmp_path.resolve()
    for value in ("0", "-5", "soon", "nan"):
        with pytest.raises(ValueError, match=f"{MAX_SECONDS_ENV} must be a positive number of seconds"):
            ServingLimits.from_environment({MAX_SECONDS_ENV: value})
    with pytest.raises(ValueError, match=f"{AUDIO_DIR_ENV}=.*: not a folder"):
        ServingLimits.from_environment({AUDIO_DIR_ENV: str(tmp_path / "nowhere")})
