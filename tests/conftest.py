"""Shared fixtures: a throw-away copy of the Kedro project for pipeline runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def kedro_project(tmp_path, monkeypatch):
    """The project's ``pyproject.toml`` and ``conf/`` in a temporary folder, made the working directory.

    Pipeline runs write their data, MLflow database and artifacts there, never into the checkout.
    """
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "src").mkdir()  # bootstrap_project expects it; the package itself is installed
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_pipeline(project: Path, pipeline: str, env: str = "test", **kwargs):
    """Run one pipeline of the project copy in a fresh Kedro session; returns the run's outputs."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    import mlflow

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, env=env, **kwargs) as session:
            return session.run(pipeline_names=[pipeline])
    finally:
        # kedro-mlflow closes its run in the tracking store, but MLflow's thread-local stack of
        # active runs can keep a stale entry; clear it so that the next session starts afresh.
        while mlflow.active_run():
            mlflow.end_run()
