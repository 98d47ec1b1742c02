"""Kedro dataset for sharded multichannel audio (see :mod:`mc_simclr.audio.shards`).

Why a custom dataset rather than ``PartitionedDataset``: it keeps clips of very different lengths
in few large memory-mapped files instead of one file per clip, it skips shards that are already
complete *before* computing them (a partitioned dataset would call every lazy partition again),
and it removes shards of an earlier configuration so that the folder always matches the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from mc_simclr.audio.shards import ShardData, ShardedAudio, complete_shards, save_shards


class MultichannelAudioShardsDataset(AbstractDataset[Mapping[str, ShardData | Callable[[], ShardData]], ShardedAudio]):
    """Sharded multichannel clips.

    ``save`` takes ``{shard_id: ShardData or a callable returning it}`` and writes each missing
    shard atomically; ``load`` returns a lazy :class:`~mc_simclr.audio.shards.ShardedAudio`.

    Example catalog entry::

        spatial_audio:
          type: mc_simclr.datasets.MultichannelAudioShardsDataset
          path: data/03_primary/spatial_audio
    """

    def __init__(self, path: str, overwrite: bool = False, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._overwrite = overwrite
        self.metadata = metadata

    def _load(self) -> ShardedAudio:
        return ShardedAudio(self._path)

    def _save(self, data: Mapping[str, ShardData | Callable[[], ShardData]]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"{self._path}: expected a mapping of shard id to shard data, got {type(data).__name__}")
        save_shards(self._path, data, overwrite=self._overwrite, desc=f"writing {self._path.name}")

    def _exists(self) -> bool:
        return bool(complete_shards(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "overwrite": self._overwrite}
