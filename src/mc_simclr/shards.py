"""Sharded storage, readable without loading a whole corpus: audio clips and feature patches.

Audio: a shard is a folder ``<root>/<shard_id>/`` holding

* ``audio.npy``: ``(channels, total_samples)`` in the storage dtype, the shard's clips one after
  another (read with positional reads of just the samples a reader needs), and
* ``clips.parquet``: one row per clip with ``clip_id``, ``offset``, ``length``, ``status`` and any
  metadata columns (scene, label, split, ...).

A shard is written into a hidden temporary folder and renamed into place when complete; rename is
atomic on one file system, so a folder named like a shard is always whole. Clips that could not be
rendered stay in ``clips.parquet`` with ``length`` 0 and their reason in ``status``.

Features: a shard folder holds ``features.npy``, float32 ``(items, channels, T, F)``, and
``items.parquet`` with one row per item (clip id, patch index, labels, scene columns).

Both kinds are written through :func:`save_shards`: lazily, skipping complete shards, atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mc_simclr.execution import ExecutionConfig, run_tasks

logger = logging.getLogger(__name__)

AUDIO_FILE = "audio.npy"
TABLE_FILE = "clips.parquet"
FEATURES_FILE = "features.npy"
ITEMS_FILE = "items.parquet"
OK = "ok"


#: How rendered audio can be stored: float32, or half the disk as float16 or int16 (full scale 1.0).
STORAGE_DTYPES = ("float32", "float16", "int16")
INT16_SCALE = 32767.0


def to_storage(audio: np.ndarray, dtype: str) -> np.ndarray:
    """Float audio in the storage ``dtype`` (int16: rounded at full scale 1.0, clipped)."""
    if dtype == "int16":
        return np.clip(np.round(audio * INT16_SCALE), -INT16_SCALE, INT16_SCALE).astype(np.int16)
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"simulation.storage_dtype must be one of {list(STORAGE_DTYPES)}, got {dtype!r}")
    return audio.astype(dtype, copy=False)


def from_storage(audio: np.ndarray) -> np.ndarray:
    """Stored audio back as float32."""
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / np.float32(INT16_SCALE)
    return audio.astype(np.float32, copy=False)


@dataclass
class ShardData:
    """Clips of one shard: metadata rows and, for each, its audio or ``None`` with a reason; and the
    dtype the shard's audio is stored in (:data:`STORAGE_DTYPES`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    audio: list[np.ndarray | None] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    storage_dtype: str = "float32"

    def add(self, row: dict[str, Any], audio: np.ndarray | None, status: str = OK) -> None:
        if (audio is None) == (status == OK):
            raise ValueError("a clip has audio exactly when its status is 'ok'")
        self.rows.append(row)
        self.audio.append(audio)
        self.status.append(status)


def _is_shard_dir(path: Path) -> bool:
    # A shard folder only ever appears through the final rename, so any visible folder is whole.
    return path.is_dir() and not path.name.startswith(".")


def complete_shards(root: str | Path) -> list[str]:
    """Ids of the complete shards below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _is_shard_dir(p))


def write_shard_atomically(root: str | Path, shard_id: str, write: Callable[[Path], None]) -> Path:
    """Call ``write(folder)`` on a hidden temporary folder, then rename it to ``root/shard_id``.

    Replaces an existing shard of that id; on any error the temporary folder is removed.
    """
    if not shard_id or shard_id.startswith(".") or "/" in shard_id:
        raise ValueError(f"invalid shard id {shard_id!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{shard_id}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        final = root / shard_id
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_shard(root: str | Path, shard_id: str, data: ShardData) -> Path:
    """Write one audio shard atomically; replaces an existing shard."""
    present = [a for a in data.audio if a is not None]
    channels = {a.shape[0] for a in present}
    if len(channels) > 1:
        raise ValueError(f"shard {shard_id}: clips have different channel counts {sorted(channels)}")
    n_channels = channels.pop() if channels else 0
    lengths = np.asarray([0 if a is None else a.shape[-1] for a in data.audio], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    audio = to_storage(
        np.concatenate([a.astype(np.float32, copy=False) for a in present], axis=1)
        if present
        else np.zeros((n_channels, 0), np.float32),
        data.storage_dtype,
    )
    table = pd.DataFrame(data.rows)
    table["offset"] = np.where(lengths > 0, offsets[: len(lengths)], -1)
    table["length"] = lengths
    table["status"] = data.status

    def write(folder: Path) -> None:
        np.save(folder / AUDIO_FILE, audio)
        table.to_parquet(folder / TABLE_FILE, index=False)

    return write_shard_atomically(root, shard_id, write)


def remove_stale_temporaries(root: str | Path) -> int:
    """Delete temporary folders left by interrupted writes; returns how many."""
    root = Path(root)
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(".") and ".tmp-" in p.name]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def save_shards(
    root: str | Path,
    shards: Mapping[str, Any],
    overwrite: bool = False,
    desc: str = "writing shards",
    writer: Callable[[Path, str, Any], Path] = write_shard,
) -> dict[str, int]:
    """Write a set of shards; the folder then holds exactly these shards.

    Each value (shard data, or a callable producing it) is written with ``writer(root, id, data)``.
    Callables make saving lazy: a shard that is already complete is
    skipped without calling it unless ``overwrite``, which makes an interrupted run resume where it
    stopped. Complete shards whose ids are not in ``shards`` are removed, since they belong to an
    earlier configuration. A :class:`~mc_simclr.execution.ShardPlan` is computed with its
    ``execution`` backend (a local pool, a Dask cluster); anything else here, one shard after the
    other. Each shard is retried once. Returns counts of written, skipped and removed shards.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    existing = set(complete_shards(root))
    counts = {"written": 0, "skipped": 0, "removed": 0}
    todo = [sid for sid in sorted(shards) if overwrite or sid not in existing]
    counts["skipped"] = len(shards) - len(todo)
    if counts["skipped"]:
        logger.info("%s: %d of %d shards already complete, skipped", root, counts["skipped"], len(shards))
    execution = getattr(shards, "execution", None) or ExecutionConfig()
    run_tasks(root, {sid: shards[sid] for sid in todo}, writer, execution, desc)
    counts["written"] = len(todo)
    for shard_id in sorted(existing - set(shards)):
        shutil.rmtree(root / shard_id)
        counts["removed"] += 1
    if counts["removed"]:
        logger.info("%s: removed %d shards of an earlier configuration", root, counts["removed"])
    return counts


def read_shard_tables(root: Path, table_file: str, what: str) -> tuple[list[str], pd.DataFrame]:
    """Ids of the complete shards below ``root`` and their ``table_file`` rows, concatenated.

    Each row gets its ``shard_id`` and its ``row`` position within the shard.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} does not exist")
    shard_ids = complete_shards(root)
    tables = [
        pd.read_parquet(root / sid / table_file).assign(shard_id=sid, row=lambda t: np.arange(len(t)))
        for sid in shard_ids
    ]
    return shard_ids, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def npy_layout(path: Path, ndim: int, what: str) -> tuple[int, tuple[int, ...], np.dtype]:
    """``(data offset in bytes, shape, dtype)`` of a C-order ``.npy`` file of ``ndim`` dimensions, from its header."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(file)
        if fortran or len(shape) != ndim:
            raise ValueError(f"{path}: expected a C-order {what} array, got shape {shape}")
        return file.tell(), tuple(int(n) for n in shape), np.dtype(dtype)


class ShardedAudio:
    """Read-only view of a shard folder: metadata in memory, audio read on demand.

    A clip (or a crop of it) is read with positional reads of just its samples, channel by channel,
    and no memory map stays open: the process's resident memory does not grow with the audio it has
    read, however large the corpus.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.shard_ids, self.metadata = read_shard_tables(self.root, TABLE_FILE, "shard")
        meta = self.metadata
        self._index = {cid: i for i, cid in enumerate(meta["clip_id"])} if len(meta) else {}
        # Plain arrays for the per-crop lookups of the training loop (pandas rows are slow there).
        self._offset = meta["offset"].to_numpy(np.int64) if len(meta) else np.zeros(0, np.int64)
        self._length = meta["length"].to_numpy(np.int64) if len(meta) else np.zeros(0, np.int64)
        self._ok = (meta["status"] == OK).to_numpy() if len(meta) else np.zeros(0, bool)
        self._shard = meta["shard_id"].to_numpy() if len(meta) else np.zeros(0, object)
        self._layout: dict[str, tuple[int, int, int, np.dtype]] = {}

    def __len__(self) -> int:
        return len(self.metadata)

    def __repr__(self) -> str:
        return f"ShardedAudio(root={str(self.root)!r}, shards={len(self.shard_ids)}, clips={len(self)})"

    def layout(self, shard_id: str) -> tuple[int, int, int, np.dtype]:
        """``(data offset in bytes, channels, samples per channel, dtype)`` of a shard's ``audio.npy``."""
        if shard_id not in self._layout:
            offset, shape, dtype = npy_layout(self.root / shard_id / AUDIO_FILE, 2, "(channels, samples)")
            self._layout[shard_id] = (offset, int(shape[0]), int(shape[1]), dtype)
        return self._layout[shard_id]

    def shard_audio(self, shard_id: str) -> np.ndarray:
        """The shard's stored audio array, memory-mapped read-only (for inspection)."""
        return np.load(self.root / shard_id / AUDIO_FILE, mmap_mode="r")

    def _read(self, shard_id: str, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of every channel of a shard, as float32 (one positional read per channel)."""
        offset, n_channels, total, dtype = self.layout(shard_id)
        count = max(stop - start, 0)
        fd = os.open(self.root / shard_id / AUDIO_FILE, os.O_RDONLY)
        try:
            channels = [
                np.frombuffer(
                    os.pread(fd, count * dtype.itemsize, offset + (c * total + start) * dtype.itemsize),
                    dtype=dtype,
                    count=count,
                )
                for c in range(n_channels)
            ]
        finally:
            os.close(fd)
        return from_storage(np.stack(channels) if channels else np.zeros((0, count), dtype))

    def _position(self, clip_id: str) -> int:
        position = self._index.get(clip_id)
        if position is None:
            raise KeyError(f"clip {clip_id!r} is not in {self.root}")
        if not self._ok[position]:
            raise KeyError(f"clip {clip_id!r} was not rendered: {self.metadata['status'].iloc[position]}")
        return position

    def clip_length(self, clip_id: str) -> int:
        """Number of samples of a rendered clip."""
        return int(self._length[self._position(clip_id)])

    def load_clip(self, clip_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Audio (channels, samples) of one clip, or of ``length`` samples from ``start``, as float32.

        Only the requested samples are read.
        """
        position = self._position(clip_id)
        n = int(self._length[position])
        start = min(max(start, 0), n)
        end = n if length is None else min(n, start + length)
        offset = int(self._offset[position])
        return self._read(self._shard[position], offset + start, offset + end)

    def iter_clips(self, clip_ids: list[str] | None = None) -> Iterator[tuple[pd.Series, np.ndarray]]:
        """Yield ``(metadata row, audio)`` for rendered clips, shard by shard (bounded memory)."""
        table = self.metadata[self.metadata["status"] == OK] if len(self) else self.metadata
        if clip_ids is not None:
            table = table[table["clip_id"].isin(set(clip_ids))]
        for shard_id, rows in table.groupby("shard_id", sort=True):
            for _, row in rows.iterrows():
                yield row, self._read(shard_id, int(row["offset"]), int(row["offset"] + row["length"]))


@dataclass
class FeatureShard:
    """Fixed-size feature items ``(n, C, T, F)`` with one metadata row each."""

    features: np.ndarray
    items: pd.DataFrame

    def __post_init__(self) -> None:
        if self.features.ndim != 4 or len(self.features) != len(self.items):
            raise ValueError(
                f"features must be (items, C, T, F) with one row per item, got {self.features.shape} "
                f"and {len(self.items)} rows"
            )


def write_feature_shard(root: str | Path, shard_id: str, data: FeatureShard) -> Path:
    """Write one feature shard atomically; replaces an existing shard."""

    def write(folder: Path) -> None:
        np.save(folder / FEATURES_FILE, data.features.astype(np.float32, copy=False))
        data.items.to_parquet(folder / ITEMS_FILE, index=False)

    return write_shard_atomically(root, shard_id, write)


class FeatureShards:
    """Read-only view of feature shards: the item index in memory, features read on demand (:class:`FeatureRows`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.shard_ids, self.items = read_shard_tables(self.root, ITEMS_FILE, "feature")

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"FeatureShards(root={str(self.root)!r}, shards={len(self.shard_ids)}, items={len(self)})"

    def rows(self, mask: pd.Series | np.ndarray | None = None) -> tuple[FeatureRows, pd.DataFrame]:
        """The selected items (all when ``mask`` is None), shard by shard, as lazily read features
        (:class:`FeatureRows`, nothing read yet) and their item rows in the same order."""
        items = self.items if mask is None else self.items[np.asarray(mask, dtype=bool)]
        if items.empty:
            raise ValueError(f"{self.root}: no feature items selected")
        items = pd.concat([rows for _, rows in items.groupby("shard_id", sort=True)], ignore_index=True)
        return FeatureRows(self.root, items["shard_id"].to_numpy(), items["row"].to_numpy()), items

    def load(self, mask: pd.Series | np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Features ``(n, C, T, F)`` and their item rows for the selected rows (all when ``mask`` is None),
        read into memory."""
        rows, items = self.rows(mask)
        return rows[:], items


class FeatureRows:
    """Feature items ``(n, C, T, F)`` of feature shards, read when indexed.

    Indexing (an integer, a slice, an integer array or tensor, a boolean mask) returns a float32
    NumPy array of just those items, read with one positional read per run of consecutive rows of a
    shard; no memory map stays open and nothing is cached, so resident memory does not grow with
    the number of items (the operating system's page cache keeps repeated reads fast).
    """

    def __init__(
        self,
        root: str | Path,
        shard_ids: np.ndarray,
        rows: np.ndarray,
        layouts: dict[str, tuple[int, tuple[int, ...], np.dtype]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.shard_ids = np.asarray(shard_ids, dtype=object)
        self.rows = np.asarray(rows, dtype=np.int64)
        if self.shard_ids.shape != self.rows.shape or self.rows.ndim != 1:
            raise ValueError("FeatureRows needs one shard id per row")
        self._layouts = {} if layouts is None else layouts  # shared with selections

    def _layout(self, shard_id: str) -> tuple[int, tuple[int, ...], np.dtype]:
        if shard_id not in self._layouts:
            self._layouts[shard_id] = npy_layout(self.root / shard_id / FEATURES_FILE, 4, "(items, C, T, F)")
        return self._layouts[shard_id]

    @property
    def item_shape(self) -> tuple[int, ...]:
        """``(C, T, F)`` of one item."""
        if not len(self):
            raise ValueError(f"{self.root}: no feature items selected")
        return self._layout(self.shard_ids[0])[1][1:]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"FeatureRows(root={str(self.root)!r}, items={len(self)})"

    def _positions(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(len(self))[index]
        if hasattr(index, "numpy"):  # a torch tensor
            index = index.numpy()
        index = np.asarray(index)
        if index.size == 0:
            return np.zeros(0, np.int64)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"boolean index of shape {index.shape} for {len(self)} feature items")
            return np.flatnonzero(index)
        if not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"feature items are indexed by integers, slices or boolean masks, got {index.dtype}")
        positions = np.where(index < 0, index + len(self), index).astype(np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} feature items")
        return positions

    def select(self, index) -> FeatureRows:
        """The items at ``index`` as another lazy :class:`FeatureRows` (nothing is read)."""
        positions = self._positions(index)
        return FeatureRows(self.root, self.shard_ids[positions], self.rows[positions], self._layouts)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        positions = self._positions(index)
        out = np.empty((len(positions), *self.item_shape), dtype=np.float32)
        if not len(positions):
            return out
        shards, rows = self.shard_ids[positions], self.rows[positions]
        for shard_id in dict.fromkeys(shards):
            offset, shape, dtype = self._layout(shard_id)
            if tuple(shape[1:]) != out.shape[1:]:
                raise ValueError(f"{self.root / shard_id}: items of shape {shape[1:]}, expected {out.shape[1:]}")
            item_bytes = int(np.prod(shape[1:])) * dtype.itemsize
            where = np.flatnonzero(shards == shard_id)
            order = where[np.argsort(rows[where], kind="stable")]
            wanted = rows[order]
            if wanted[-1] >= shape[0]:
                raise IndexError(f"{self.root / shard_id}: row {wanted[-1]} of a shard of {shape[0]} items")
            breaks = np.flatnonzero(np.diff(wanted) != 1) + 1  # runs of consecutive rows, each one read
            fd = os.open(self.root / shard_id / FEATURES_FILE, os.O_RDONLY)
            try:
                for run in np.split(np.arange(len(order)), breaks):
                    first, count = int(wanted[run[0]]), len(run)
                    data = os.pread(fd, count * item_bytes, offset + first * item_bytes)
                    if len(data) != count * item_bytes:
                        path = self.root / shard_id / FEATURES_FILE
                        raise ValueError(f"{path}: the file ends before row {first + count}")
                    block = np.frombuffer(data, dtype=dtype, count=count * int(np.prod(shape[1:])))
                    out[order[run]] = block.reshape(count, *shape[1:])[wanted[run] - first]
            finally:
                os.close(fd)
        return out
