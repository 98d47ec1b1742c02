"""The trained model as an MLflow model: a ``pyfunc`` that serves :class:`~mc_simclr.seld_model.SELDModel`.

Logged by the evaluation pipeline into its MLflow run (``seld_model``) and registered in the model
registry, so that ``mlflow models serve -m models:/mc-simclr-seld/latest --env-manager local``
answers requests with the same predictions as the Python API. A request is a table with one row per
recording: ``audio`` (a list of channels, each a list of samples) with its ``sample_rate``, or the
``path`` of an audio file on the serving machine. The answer has one row per window, as
:meth:`~mc_simclr.seld_model.SELDModel.predict` gives it, with ``item`` the row of the request.

A served model is reached by other people, so by default it reads only the audio it is sent
(:class:`ServingLimits`, set by environment variables when the server starts):

* ``path`` rows are refused unless :data:`AUDIO_DIR_ENV` names a folder; then a path (relative to
  that folder, or absolute) is read only when it lies inside the folder after resolving symbolic
  links and ``..``; nothing outside it is opened.
* A request holds at most :data:`MAX_SECONDS_ENV` seconds of audio, all rows together
  (:data:`DEFAULT_MAX_SECONDS` unless set), checked before any audio is read or processed.
* Audio shorter than the model's window is refused (:attr:`~mc_simclr.seld_model.SELDModel.min_seconds`).

A refused request is answered with HTTP 400 whose message is the reason, naming the row and the
rule (:class:`RequestRefused`); the server goes on answering.

Why a plain ``pyfunc`` and not kedro-mlflow's ``pipeline_ml_factory``: the model's input is audio
as it arrives (an array or a file), not a catalog dataset, and the served model must run where
neither Kedro nor the project's ``conf/`` is installed; the model file, the class names and this
wrapper are all it needs. This module imports MLflow; the rest of the library does not.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, Schema

from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.audio.io import AudioReadError, audio_info, read_multichannel
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


#: Environment variable of the serving process: the folder whose audio files ``path`` rows may name
#: (unset: ``path`` rows are refused).
AUDIO_DIR_ENV = "MC_SIMCLR_SERVE_AUDIO_DIR"
#: Environment variable of the serving process: the most seconds of audio one request may hold.
MAX_SECONDS_ENV = "MC_SIMCLR_SERVE_MAX_SECONDS"
#: Two minutes of audio: a few seconds of work for a 2-core server.
DEFAULT_MAX_SECONDS = 120.0


class RequestRefused(MlflowException):
    """A request the served model refuses: HTTP 400 whose message is the reason.

    MLflow's scoring server puts "Failed to predict data '<the whole request>'" before the message of
    an exception that reaches it; the reason stays the message here, so that it is what a client
    reads first, and the request (possibly megabytes of samples) is not echoed back.
    """

    def __init__(self, reason: str) -> None:
        self._reason = str(reason)
        super().__init__(self._reason, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:  # the scoring server's prefixed copy is not kept
        pass


@dataclass(frozen=True)
class ServingLimits:
    """What a served model accepts (see the module): the folder ``path`` rows may read (``None``: no
    ``path`` rows) and the most seconds of audio in one request."""

    audio_dir: Path | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if not (isinstance(self.max_seconds, int | float) and math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"{MAX_SECONDS_ENV} must be a positive number of seconds, got {self.max_seconds!r}")
        if self.audio_dir is not None and not Path(self.audio_dir).is_dir():
            raise ValueError(f"{AUDIO_DIR_ENV}={self.audio_dir}: not a folder (it must exist to allow 'path' rows)")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServingLimits:
        """The limits from :data:`AUDIO_DIR_ENV` and :data:`MAX_SECONDS_ENV` (defaults where unset)."""
        environ = os.environ if environ is None else environ
        folder = environ.get(AUDIO_DIR_ENV, "").strip()
        text = environ.get(MAX_SECONDS_ENV, "").strip()
        try:
            seconds = float(text) if text else DEFAULT_MAX_SECONDS
        except ValueError:
            raise ValueError(f"{MAX_SECONDS_ENV} must be a positive number of seconds, got {text!r}") from None
        return cls(Path(folder).resolve() if folder else None, seconds)

    def allowed_path(self, path: str, item: int) -> Path:
        """The file a ``path`` row may read, resolved; refused (naming the rule) unless it lies inside
        :attr:`audio_dir` after resolving symbolic links and ``..``. Opens nothing."""
        if self.audio_dir is None:
            raise RequestRefused(
                f"row {item}: 'path' rows are refused: this server reads only the audio sent in the request "
                f"(it allows files of one folder when started with {AUDIO_DIR_ENV}=<folder>)"
            )
        root = Path(self.audio_dir).resolve()
        resolved = (root / path).resolve()  # an absolute path replaces the root
        if not resolved.is_relative_to(root):
            raise RequestRefused(
                f"row {item}: path {path!r} is outside the folder this server reads ({AUDIO_DIR_ENV}), "
                "after resolving symbolic links and '..'"
            )
        return resolved


@dataclass
class _Row:
    """One request row, checked: its audio (or the file to read it from) and its length."""

    item: int
    seconds: float
    audio: np.ndarray | None = None
    rate: int | None = None
    path: Path | None = None
    name: str = ""


def _rate(value: Any, default: int, item: int) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or value <= 0:
        raise RequestRefused(f"row {item}: sample_rate must be a positive number of Hz, got {value!r}")
    return int(value)


def _checked_row(item: int, row: dict[str, Any], model: SELDModel, limits: ServingLimits) -> _Row:
    path = row.get("path")
    if isinstance(path, str) and path:
        file = limits.allowed_path(path, item)
        try:
            seconds, _, _ = audio_info(file)
        except AudioReadError as err:
            raise RequestRefused(f"row {item}: {path!r}: {err.reason}") from None
        return _Row(item, seconds, path=file, name=path)
    if row.get("audio") is not None:
        try:
            audio = np.asarray([np.asarray(channel, dtype=np.float32) for channel in row["audio"]])
        except (TypeError, ValueError) as err:
            raise RequestRefused(f"row {item}: audio must be a list of channels of equal length ({err})") from None
        rate = _rate(row.get("sample_rate"), model.sample_rate, item)
        return _Row(item, audio.shape[-1] / rate if audio.ndim == 2 else 0.0, audio=audio, rate=rate)
    raise RequestRefused(f"row {item} has neither 'audio' (with 'sample_rate') nor 'path'")


def predict_table(model: SELDModel, requests: pd.DataFrame, limits: ServingLimits | None = None) -> pd.DataFrame:
    """Predictions for every row of ``requests`` (``audio`` + ``sample_rate``, or ``path``) under
    ``limits`` (default: no ``path`` rows, :data:`DEFAULT_MAX_SECONDS`).

    Every row is checked, and the request's length summed, before any audio is processed or a file
    read past its header; a refused row raises :class:`RequestRefused` naming the row and the rule.
    """
    limits = limits or ServingLimits()
    rows = [_checked_row(item, row, model, limits) for item, row in enumerate(requests.to_dict("records"))]
    total = sum(row.seconds for row in rows)
    if total > limits.max_seconds:
        raise RequestRefused(
            f"the request holds {total:.1f} s of audio; this server answers at most {limits.max_seconds:g} s per "
            f"request ({MAX_SECONDS_ENV}): send it in parts"
        )
    tables = []
    for row in rows:
        try:
            if row.path is not None:
                audio, rate = read_multichannel(row.path)
            else:
                audio, rate = row.audio, row.rate
            tables.append(model.predict(audio, rate).assign(item=row.item))
        except AudioReadError as err:
            raise RequestRefused(f"row {row.item}: {row.name!r}: {err.reason}") from None
        except ValueError as err:
            raise RequestRefused(f"row {row.item}: {err}") from None
    return pd.concat(tables, ignore_index=True)[list(model.prediction_columns)]


class SELDPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` of :class:`~mc_simclr.seld_model.SELDModel` for a table of recordings, under the
    :class:`ServingLimits` of the serving process's environment (see the module)."""

    def load_context(self, context) -> None:
        self.limits = ServingLimits.from_environment()
        self.model = SELDModel.from_file(context.artifacts[MODEL_NAME], device="auto")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_table(self.model, model_input, getattr(self, "limits", None) or ServingLimits.from_environment())


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
