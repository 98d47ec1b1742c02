"""The exploration notebook runs top to bottom on a project whose pipelines have run (conf/test)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import PROJECT_ROOT, run_pipeline

pytestmark = pytest.mark.slow  # executes the notebook after the pipelines (pytest -m "not slow" skips it)


def test_notebook_executes(simulated_project, monkeypatch):
    for pipeline in ("feature_extraction", "pretraining"):
        run_pipeline(simulated_project, pipeline)
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "explore.ipynb", as_version=4)
    monkeypatch.setenv("KEDRO_ENV", "test")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's default: inline figures
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(simulated_project)}}
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "environment test" in text
    assert "embeddings (" in text
    assert "no results yet" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 5
    assert Path(os.getcwd()) == simulated_project  # the notebook ran in the project copy
