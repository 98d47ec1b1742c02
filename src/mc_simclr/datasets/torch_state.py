"""Kedro dataset for torch state dicts (weights plus the configuration to rebuild the model)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError

from mc_simclr.utils import torch_save_atomic


class TorchStateDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A dict of tensors and plain values saved with ``torch.save``, loaded with ``weights_only``.

    Saving writes a temporary file and renames it, so a crash never leaves a torn file. Wrap it in
    ``kedro_mlflow.io.artifacts.MlflowArtifactDataset`` to log the file as an MLflow artifact.

    Example catalog entry::

        encoder:
          type: mc_simclr.datasets.TorchStateDataset
          filepath: data/06_models/encoder.pt
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        path = Path(self._filepath)
        if not path.is_file():
            raise DatasetError(f"{path} does not exist: run the pipeline that produces it first")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - report any unpickling failure with the file name
            raise DatasetError(f"{path} is not a readable torch state file ({type(err).__name__}: {err})") from err

    def _save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DatasetError(f"{self._filepath}: expected a dict (state dict plus config), got {type(data).__name__}")
        torch_save_atomic(Path(self._filepath), data)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
