"""Kedro datasets for sharded audio and features (see :mod:`mc_simclr.shards`).

Why custom datasets rather than ``PartitionedDataset``: they keep items in few large
memory-mapped files instead of one file per clip, they skip shards that are already complete
*before* computing them (a partitioned dataset would call every lazy partition again), and they
remove shards of an earlier configuration so that a folder always matches its catalog entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from mc_simclr.shards import (
    FeatureShard,
    FeatureShards,
    ShardData,
    ShardedAudio,
    complete_shards,
    save_shards,
    write_feature_shard,
    write_shard,
)


class _ShardsDataset(AbstractDataset):
    """``save`` takes ``{shard_id: data or a callable returning it}`` and writes each missing shard."""

    _writer: Callable[[Path, str, Any], Path]
    #: The pipeline whose node writes this kind of dataset, for the error when it is missing.
    _written_by: str

    def _check_exists(self) -> None:
        if not self._path.is_dir():
            raise DatasetError(
                f"{self._path} does not exist: the {self._written_by} pipeline writes it. Run "
                "`kedro run --pipelines=data_simulation,feature_extraction` first (a run restricted with "
                "--namespaces or --nodes does not run the nodes that write its inputs)."
            )

    def __init__(self, path: str, overwrite: bool = False, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._overwrite = overwrite
        self.metadata = metadata

    def _save(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"{self._path}: expected a mapping of shard id to shard data, got {type(data).__name__}")
        save_shards(
            self._path, data, overwrite=self._overwrite, desc=f"writing {self._path.name}", writer=type(self)._writer
        )

    def _exists(self) -> bool:
        return bool(complete_shards(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "overwrite": self._overwrite}


class MultichannelAudioShardsDataset(_ShardsDataset):
    """Sharded multichannel clips: saves ``{id: ShardData | thunk}``, loads a lazy ``ShardedAudio``.

    Example catalog entry::

        spatial_audio:
          type: mc_simclr.datasets.MultichannelAudioShardsDataset
          path: data/03_primary/spatial_audio
    """

    _writer = staticmethod(write_shard)
    _written_by = "data_simulation"

    def _load(self) -> ShardedAudio:
        self._check_exists()
        return ShardedAudio(self._path)


class FeatureShardsDataset(_ShardsDataset):
    """Sharded feature patches: saves ``{id: FeatureShard | thunk}``, loads ``FeatureShards``."""

    _writer = staticmethod(write_feature_shard)
    _written_by = "feature_extraction"

    def _load(self) -> FeatureShards:
        self._check_exists()
        return FeatureShards(self._path)


__all__ = ["FeatureShard", "FeatureShardsDataset", "MultichannelAudioShardsDataset", "ShardData"]
