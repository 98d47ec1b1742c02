"""The trained model as an MLflow model: a ``pyfunc`` that serves :class:`~mc_simclr.seld_model.SELDModel`.

Logged by the evaluation pipeline into its MLflow run (``seld_model``) and registered in the model
registry, so that ``mlflow models serve -m models:/mc-simclr-seld/latest --env-manager local``
answers requests with the same predictions as the Python API. A request is a table with one row per
recording: either ``audio`` (a list of channels, each a list of samples) with its ``sample_rate``,
or the ``path`` of an audio file on the serving machine. The answer has one row per window, as
:meth:`~mc_simclr.seld_model.SELDModel.predict` gives it, with ``item`` the row of the request.

Why a plain ``pyfunc`` and not kedro-mlflow's ``pipeline_ml_factory``: the model's input is audio
as it arrives (an array or a file), not a catalog dataset, and the served model must run where
neither Kedro nor the project's ``conf/`` is installed; the model file, the class names and this
wrapper are all it needs. This module imports MLflow; the rest of the library does not.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema

from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.audio.io import read_multichannel
from mc_simclr.model_files import model_geometry
from mc_simclr.seld_model import SELDModel, direction_columns

#: The name of the model in its run and of its file among the model's artifacts.
MODEL_NAME = "seld_model"

INPUT_SCHEMA = Schema(
    [
        ColSpec(Array(Array("double")), "audio", required=False),
        ColSpec("long", "sample_rate", required=False),
        ColSpec("string", "path", required=False),
    ]
)


def output_schema(labels: DirectionLabels) -> Schema:
    """The predictions' schema; its direction columns follow the model's labels (``azimuth_deg`` for
    the paper's array)."""
    columns = [
        ColSpec("long", "item"),
        ColSpec("long", "window"),
        ColSpec("double", "start_s"),
        ColSpec("double", "end_s"),
        ColSpec("string", "class"),
        ColSpec("double", "class_probability"),
    ]
    return Schema(columns + [ColSpec("double", name) for name in direction_columns(labels)])


#: The schema of the paper's array.
OUTPUT_SCHEMA = output_schema(DirectionLabels())


class SELDPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` of :class:`~mc_simclr.seld_model.SELDModel` for a table of recordings (see the module)."""

    def load_context(self, context) -> None:
        self.model = SELDModel.from_file(context.artifacts[MODEL_NAME], device="auto")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_table(self.model, model_input)


def predict_table(model: SELDModel, requests: pd.DataFrame) -> pd.DataFrame:
    """Predictions for every row of ``requests`` (``audio`` + ``sample_rate``, or ``path``)."""
    tables = []
    for item, row in enumerate(requests.to_dict("records")):
        path = row.get("path")
        if isinstance(path, str) and path:
            audio, rate = read_multichannel(path)
        elif row.get("audio") is not None:
            audio = np.asarray([np.asarray(channel, dtype=np.float32) for channel in row["audio"]])
            rate = row.get("sample_rate")
            rate = model.sample_rate if rate is None or (isinstance(rate, float) and np.isnan(rate)) else int(rate)
        else:
            raise ValueError(f"request row {item} has neither 'audio' (with 'sample_rate') nor 'path'")
        tables.append(model.predict(audio, rate).assign(item=item))
    return pd.concat(tables, ignore_index=True)[list(model.prediction_columns)]


def model_file(source: str) -> Path:
    """The model file inside an MLflow model: a local model folder, or a URI (``models:/...``, ``runs:/...``)."""
    folder = Path(source) if Path(source).is_dir() else Path(mlflow.artifacts.download_artifacts(artifact_uri=source))
    found = sorted(folder.rglob(f"{MODEL_NAME}.pt"))
    if not found:
        raise FileNotFoundError(f"{source}: no {MODEL_NAME}.pt among the model's files; not a model of mc_simclr")
    return found[0]


def log_seld_model(state: dict[str, Any], registered_name: str | None = None) -> Any:
    """Log the model file as a ``pyfunc`` model (``seld_model``) in the active MLflow run, with its
    signature, its feature settings and geometry as metadata and the class names as an artifact;
    register it as ``registered_name`` when given. Returns MLflow's model info."""
    geometry, labels = model_geometry(state)
    metadata = {
        "features": dict(state["features"]),
        "sample_rate": int(state["sample_rate"]),
        "geometry": {**geometry.summary(), "labels": labels.to_dict()},
        "class_names": list(state["class_names"]),
        "encoder": dict(state["encoder_config"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / f"{MODEL_NAME}.pt"
        torch.save(state, model_path)
        names_path = Path(tmp) / "class_names.json"
        names_path.write_text(json.dumps(list(state["class_names"]), indent=2))
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=SELDPyfunc(),
            artifacts={MODEL_NAME: str(model_path), "class_names": str(names_path)},
            signature=ModelSignature(inputs=INPUT_SCHEMA, outputs=output_schema(labels)),
            metadata=json.loads(json.dumps(metadata, default=str)),
            registered_model_name=registered_name,
            pip_requirements=[
                "mc-simclr",
                f"torch=={torch.__version__.split('+')[0]}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
