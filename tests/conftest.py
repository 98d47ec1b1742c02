"""Shared fixtures: a throw-away copy of the Kedro project for pipeline runs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from mc_simclr.params import load_parameters

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = PROJECT_ROOT / "benchmarks"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def conf_parameters(env: str | None = None) -> dict:
    """The project's parameters of ``conf/base`` merged with ``conf/<env>`` (what a pipeline run gets)."""
    return load_parameters(PROJECT_ROOT / "conf", env)


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (benchmarks are not a package).

    Its folder goes on ``sys.path`` first, as when the script runs, so that it finds ``setups``.
    """
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses of the script look their module up there
    spec.loader.exec_module(module)
    return module


def make_project_copy(path: Path) -> Path:
    """The project's ``pyproject.toml`` and ``conf/`` (without ``conf/local``) in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", path / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "data").mkdir()
    (path / "src").mkdir()  # bootstrap_project expects it; the package itself is installed
    # MLflow caches one store per tracking URI, so a relative sqlite URI would send every copy's
    # runs to the first database opened in this process: give each copy an absolute one.
    mlflow_yml = path / "conf" / "test" / "mlflow.yml"
    mlflow_yml.write_text(mlflow_yml.read_text().replace("sqlite:///mlflow.db", tracking_uri(path)))
    return path


def tracking_uri(project: Path) -> str:
    """The MLflow tracking URI of a project copy."""
    return f"sqlite:///{project / 'mlflow.db'}"


@pytest.fixture
def kedro_project(tmp_path, monkeypatch):
    """A fresh project copy in a temporary folder, made the working directory.

    Pipeline runs write their data, MLflow database and artifacts there, never into the checkout.
    """
    make_project_copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def project_after(path: Path, pipeline: str) -> Path:
    """A project copy at ``path`` after one run of ``pipeline`` on conf/test (run from its folder)."""
    make_project_copy(path)
    cwd = os.getcwd()
    os.chdir(path)
    try:
        run_pipeline(path, pipeline)
    finally:
        os.chdir(cwd)
    return path


@pytest.fixture(scope="session")
def _simulated_template(tmp_path_factory):
    """A project copy on which ``data_simulation`` ran once (conf/test), shared read-only."""
    return project_after(tmp_path_factory.mktemp("simulated") / "project", "data_simulation")


@pytest.fixture
def simulated_project(_simulated_template, tmp_path, monkeypatch):
    """A private copy of the simulated project, made the working directory."""
    path = tmp_path / "project"
    shutil.copytree(_simulated_template, path, symlinks=True)
    mlflow_yml = path / "conf" / "test" / "mlflow.yml"
    mlflow_yml.write_text(mlflow_yml.read_text().replace(tracking_uri(_simulated_template), tracking_uri(path)))
    monkeypatch.chdir(path)
    return path


def run_pipeline(project: Path, pipeline: str, env: str = "test", **kwargs):
    """Run one pipeline of the project copy in a fresh Kedro session; returns the run's outputs."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, env=env, **kwargs) as session:
            return session.run(pipeline_names=[pipeline])
    finally:
        # kedro-mlflow closes its run in the tracking store, but MLflow's thread-local stack of
        # active runs can keep a stale entry; clear it so that the next session starts afresh.
        while mlflow.active_run():
            mlflow.end_run()
