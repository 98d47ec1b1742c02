"""The README's "Use the encoder in your code" and "Serve it", as written, after `kedro run --env=test`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import mc_simclr
from mc_simclr.serving import AUDIO_DIR_ENV, MAX_SECONDS_ENV
from mc_simclr.shards import ShardedAudio

from conftest import PROJECT_ROOT, project_after, tracking_uri

pytestmark = pytest.mark.slow  # runs the pipelines and serves the model (pytest -m "not slow" skips it)


def _readme_block(title: str, language: str) -> str:
    """The first ``language`` code block below the README section ``title``."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split(f"### {title}\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project copy after the default `kedro run` on conf/test (model file and MLflow model)."""
    return project_after(tmp_path_factory.mktemp("served") / "project", "__default__")


def test_readme_python_api(trained, monkeypatch, capsys):
    monkeypatch.chdir(trained)
    exec(compile(_readme_block("Use the encoder in your code", "python"), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "(3, 16)" in printed  # conf/test's 16-d embedding, three 1 s windows of 3 s
    assert "class_probability" in printed
    assert "azimuth_deg" in printed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(port: int, payload: dict) -> pd.DataFrame:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return pd.DataFrame(json.loads(answer.read())["predictions"])


def _refusals(port: int, project: Path, clip: np.ndarray) -> dict[str, tuple[int, str]]:
    """Bad requests to a served model: ``{expected reason (regex): (HTTP status, message)}``."""
    recordings = project / "data/01_raw/recordings"
    secret = project / "data/06_models/seld_model.pt"  # a file outside the allowed folder
    (recordings / "link.wav").symlink_to(secret)
    records = {
        r"row 0: path 'link.wav' is outside the folder this server reads": [{"path": "link.wav"}],
        r"row 0: path '\.\./\.\./06_models/seld_model.pt' is outside": [{"path": "../../06_models/seld_model.pt"}],
        rf"row 0: path '{re.escape(str(secret))}' is outside": [{"path": str(secret)}],
        r"row 0: the audio lasts 0\.05 s, shorter than the model's window of 1 s": [
            {"audio": clip[:, :800].tolist(), "sample_rate": 16000}
        ],
        r"row 0: waveform must be .* with 4 channels": [{"audio": clip[:2].tolist(), "sample_rate": 16000}],
        r"the request holds \d+\.\d s of audio; this server answers at most 10 s": [
            {"audio": np.tile(clip, int(np.ceil(11 * 16000 / clip.shape[1]))).tolist(), "sample_rate": 16000}
        ],
    }
    out = {}
    for reason, rows in records.items():
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_records": rows}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                out[reason] = (answer.status, answer.read().decode())
        except urllib.error.HTTPError as error:
            out[reason] = (error.code, json.loads(error.read())["message"])
    return out


def test_readme_serve_answers_like_the_python_api(trained):
    uri = tracking_uri(trained)
    mlflow.set_tracking_uri(uri)
    versions = mlflow.tracking.MlflowClient().search_model_versions("name='mc-simclr-seld'")
    assert len(versions) == 1  # the evaluation run registered its model
    run = mlflow.get_run(versions[0].run_id)
    assert run.data.tags["mlflow.runName"] == "default · test · split_crnn · seed 0"
    experiment = mlflow.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # the runs-table view with the key metrics, which the run has under those short names
    view = json.loads(experiment.tags["mlflow.sharedViewState.key-metrics"])
    assert "metrics.`MC LP acc`" in view["selectedColumns"]
    table = pd.read_csv(trained / "data/08_reporting/results.csv").set_index("encoder")
    assert run.data.metrics["MC LP acc"] == pytest.approx(table.loc["MC-SimCLR", "linear_probe_accuracy"])
    assert run.data.metrics["rand LP az err"] == pytest.approx(table.loc["random init", "linear_probe_azimuth_error"])

    serve, ask = [line for line in _readme_block("Serve it", "bash").splitlines() if line.strip()]
    port = _free_port()
    args = shlex.split(serve.replace("sqlite:///mlflow.db", uri).replace("--port 5001", f"--port {port}"))
    assignments, command = args[:2], args[2:]
    assert assignments == [f"{AUDIO_DIR_ENV}=data/01_raw/recordings", f"MLFLOW_TRACKING_URI={uri}"]
    assert command[:3] == ["mlflow", "models", "serve"]
    env = {
        **os.environ,
        **dict(assignment.split("=", 1) for assignment in assignments),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        MAX_SECONDS_ENV: "10",  # the request limit, small enough to test
    }
    # the recording the README's request names, in the folder the server may read
    audio = ShardedAudio(trained / "data/03_primary/spatial_audio")
    clip_id = audio.metadata.query("split == 'test'")["clip_id"].iloc[0]
    clip = audio.load_clip(clip_id)
    recording = trained / "data/01_raw/recordings/example.wav"
    recording.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(recording), clip.T, 16000, subtype="FLOAT")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *command[1:]],
        cwd=trained,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(server.stdout.read().decode(errors="replace")[-3000:]) from None
                time.sleep(1)

        assert '"path": "example.wav"' in ask  # the README's request, sent as written
        by_path = _post(port, json.loads(shlex.split(ask)[-1]))
        inline = _post(port, {"dataframe_records": [{"audio": clip.tolist(), "sample_rate": 16000}]})
        refused = _refusals(port, trained, clip)
        after = _post(port, {"dataframe_records": [{"audio": clip.tolist(), "sample_rate": 16000}]})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    for reason, (status, message) in refused.items():
        assert status == 400, (reason, message)
        assert re.match(reason, message), (reason, message)  # the project's reason comes first
    model = mc_simclr.load_model(trained / "data/06_models/seld_model.pt", device="cpu")
    expected = model.predict(clip, 16000)
    for served in (by_path, inline, after):
        assert list(served["class"]) == list(expected["class"])
        np.testing.assert_allclose(served["azimuth_deg"], expected["azimuth_deg"], atol=1e-3)
        np.testing.assert_allclose(served["class_probability"], expected["class_probability"], atol=1e-5)
    # the registered model loads through the Python API as well
    served_model = mc_simclr.load_model("models:/mc-simclr-seld/latest", device="cpu")
    np.testing.assert_allclose(served_model.embed(clip, 16000), model.embed(clip, 16000), atol=1e-6)
