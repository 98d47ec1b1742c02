"""kedro-viz builds the project's graph with every pipeline and the catalog layers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mc_simclr.sweeps import parse_variants

from conftest import conf_parameters

pytestmark = pytest.mark.slow  # builds kedro-viz (pytest -m "not slow" skips it)


def test_kedro_viz_build_shows_every_pipeline(kedro_project):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    result = subprocess.run(
        [str(kedro), "viz", "build"], cwd=kedro_project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    graph = json.loads((kedro_project / "build" / "api" / "main").read_text())
    assert {p["id"] for p in graph["pipelines"]} >= {
        "__default__",
        "data_simulation",
        "feature_extraction",
        "pretraining",
        "evaluation",
        "inference",
        "ablations",
    }
    # the main graph is the default pipeline; inference (not in the default run) has its own
    layers = {n.get("layer") for n in graph["nodes"] if n.get("layer")}
    assert layers >= {"intermediate", "primary", "feature", "models", "reporting"}
    names = {n["name"] for n in graph["nodes"]}
    assert {"spatialize_clips", "extract_features", "pretrain_encoder", "build_report"} <= names
    inference = json.loads((kedro_project / "build" / "api" / "pipelines" / "inference").read_text())
    assert {(n["name"], n.get("layer")) for n in inference["nodes"]} >= {
        ("run_inference", None),
        ("seld_model", "models"),
        ("inference_results", "model_output"),
    }

    # the ablations: one collapsible namespace per variant of conf/base, each with its template
    ablations = json.loads((kedro_project / "build" / "api" / "pipelines" / "ablations").read_text())
    modular = {n["id"] for n in ablations["nodes"] if n.get("type") == "modularPipeline"}
    variants = [variant.name for variant in parse_variants(conf_parameters()["ablations"])]
    assert {"ablations", *(f"ablations.{v}" for v in variants)} <= modular
    names = {n["name"] for n in ablations["nodes"]}
    assert {"pretrain_variant", "evaluate_variant", "build_sweep_report"} <= names
    layers = {(n["name"], n.get("layer")) for n in ablations["nodes"]}
    assert ("ablations.cs.encoder", "models") in layers
    assert ("ablations.table1", "reporting") in layers
