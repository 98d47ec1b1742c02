"""A run reaches no network: MLflow's telemetry is off for every run of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # runs a Kedro pipeline (pytest -m "not slow" skips it)

# Runs `kedro run` with an audit hook that logs and refuses every name lookup or connection that
# does not go to this machine.
RUN_WITHOUT_NETWORK = """
import os, sys
LOCAL = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", None}
def hook(event, args):
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.connect"):
        target = args[1] if event == "socket.connect" else args[0]
        host = target[0] if isinstance(target, tuple) else target
        if host not in LOCAL and not str(host).startswith("/"):
            with open(os.environ["NETWORK_LOG"], "a") as log:
                log.write(f"{event} {host}\\n")
            raise OSError(f"no network in this test: {event} {host}")
sys.addaudithook(hook)
from kedro.framework.cli import main
sys.argv = ["kedro", "run", "--env=test", "--pipeline=data_simulation"]
main()
"""


def test_a_kedro_run_tries_no_network(kedro_project):
    shutil.copy(PROJECT_ROOT / ".telemetry", kedro_project / ".telemetry")  # the project's own consent file
    log = kedro_project / "network.log"
    quiet = {"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY", "PYTEST_CURRENT_TEST", "CI"}
    env = {k: v for k, v in os.environ.items() if k not in quiet} | {"NETWORK_LOG": str(log)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_NETWORK],
        cwd=kedro_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not log.exists(), log.read_text()
    assert (kedro_project / "mlflow.db").is_file()  # MLflow did track the run, locally
