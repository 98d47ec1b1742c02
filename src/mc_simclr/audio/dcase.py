"""The DCASE SELD dataset layout, written and read: STARSS23, TAU-NIGENS Spatial Sound Events and the
project's own scenes share it.

::

    <root>/<format>_<set>/<folder>/<recording>.wav     e.g. mic_dev/dev-train-sony/fold3_room21_mix001.wav
    <root>/metadata_<set>/<folder>/<recording>.csv     one row per active event per 100 ms frame
    <root>/classes.csv                                 index,name (written by the project; optional)

A metadata CSV has no header and the rows ``frame,class,source,azimuth,elevation[,distance]``:
the 100 ms frame index, the class index, the source (instance) index, azimuth (degrees,
counter-clockwise, in [-180, 180]), elevation (degrees, up, in [-90, 90]) and, from the 2024 task
on, the distance in centimetres. ``<format>`` is ``mic`` (the tetrahedral array's four capsules) or
``foa``; the fold is read from the recording name (``fold<N>_...``).

Writing is atomic per file and the audio is written before its metadata, so a recording whose CSV
exists is complete; an interrupted write leaves no file that looks complete. Reading checks every
row: a row that cannot be used raises an error naming the file and the line. A recording that
cannot be used as a whole (no CSV for the wav, another channel count than the array's, an
unreadable wav) is skipped and counted in the report.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mc_simclr.audio.io import AudioReadError, audio_info, write_audio_atomic
from mc_simclr.utils import write_text_atomic

logger = logging.getLogger(__name__)

#: Seconds per label frame.
LABEL_FRAME_SECONDS = 0.1
#: Columns of a metadata row (``distance`` from the 2024 task on).
METADATA_COLUMNS = ("frame", "class", "source", "azimuth", "elevation", "distance")
#: The 13 classes of STARSS23 (DCASE 2023 and 2024), in index order.
STARSS23_CLASSES = (
    "Female speech, woman speaking",
    "Male speech, man speaking",
    "Clapping",
    "Telephone",
    "Laughter",
    "Domestic sounds",
    "Walk, footsteps",
    "Door, open or close",
    "Music",
    "Musical instrument",
    "Water tap, faucet",
    "Bell",
    "Knock",
)
_FOLD = re.compile(r"fold(\d+)_")


def label_frames(duration_s: float) -> int:
    """Label frames (100 ms) that cover ``duration_s`` seconds of audio."""
    return max(1, math.ceil(round(duration_s / LABEL_FRAME_SECONDS, 6)))


def audio_path(root: str | Path, recording: str, folder: str, fmt: str = "mic", dataset: str = "dev") -> Path:
    return Path(root) / f"{fmt}_{dataset}" / folder / f"{recording}.wav"


def metadata_path(root: str | Path, recording: str, folder: str, dataset: str = "dev") -> Path:
    return Path(root) / f"metadata_{dataset}" / folder / f"{recording}.csv"


def format_metadata(rows: pd.DataFrame) -> str:
    """The CSV text of ``rows`` as DCASE writes it: whole numbers, no header, sorted by frame."""
    columns = [c for c in METADATA_COLUMNS if c in rows.columns]
    if columns[:5] != list(METADATA_COLUMNS[:5]):
        raise ValueError(f"metadata rows: columns {list(rows.columns)}; expected {list(METADATA_COLUMNS)}")
    ordered = rows.sort_values(["frame", "source", "class"], kind="stable")[columns]
    values = np.rint(ordered.to_numpy(dtype=np.float64)).astype(np.int64)
    return "".join(",".join(map(str, row)) + "\n" for row in values)


def write_recording(
    root: str | Path,
    recording: str,
    audio: np.ndarray,
    sample_rate: int,
    rows: pd.DataFrame,
    folder: str,
    fmt: str = "mic",
    dataset: str = "dev",
) -> tuple[Path, Path]:
    """Write one recording: its audio ``(channels, samples)`` as 24-bit wav, then its metadata CSV.

    Both go through a temporary name; the CSV comes last, so that it marks a finished recording.
    """
    if audio.ndim != 2:
        raise ValueError(f"{recording}: audio of shape {audio.shape}; expected (channels, samples)")
    frames = label_frames(audio.shape[1] / sample_rate)
    if len(rows) and int(rows["frame"].max()) >= frames:
        raise ValueError(
            f"{recording}: a row in frame {int(rows['frame'].max())}, past the audio's {frames} label frames"
        )
    wav = audio_path(root, recording, folder, fmt, dataset)
    csv = metadata_path(root, recording, folder, dataset)
    write_audio_atomic(wav, audio, sample_rate, subtype="PCM_24")
    write_text_atomic(csv, format_metadata(rows))
    return wav, csv


def write_class_list(root: str | Path, names: list[str] | tuple[str, ...]) -> Path:
    path = Path(root) / "classes.csv"
    write_text_atomic(path, pd.DataFrame({"index": range(len(names)), "name": list(names)}).to_csv(index=False))
    return path


def read_class_list(root: str | Path, class_names: list[str] | None = None) -> list[str]:
    """The class names: ``class_names`` if given, else ``<root>/classes.csv``."""
    if class_names:
        return list(class_names)
    path = Path(root) / "classes.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: give the class names (in index order) as a parameter, "
            "for example the 13 of STARSS23 (mc_simclr.audio.dcase.STARSS23_CLASSES)"
        )
    table = pd.read_csv(path)
    if list(table.columns) != ["index", "name"] or list(table["index"]) != list(range(len(table))):
        raise ValueError(f"{path}: expected the columns index,name with indices 0, 1, 2, ... in order")
    return table["name"].astype(str).tolist()


def read_metadata(path: str | Path, n_classes: int, n_frames: int | None = None) -> pd.DataFrame:
    """The rows of one metadata CSV (5 or 6 whole-number columns), checked line by line.

    Raises ``ValueError`` naming the file and the (1-based) line of the first row that is malformed,
    past the audio's end (``frame >= n_frames``), of an unknown class, or with an angle out of range.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        where = f"{path}, line {number}"
        if len(fields) not in (5, 6):
            raise ValueError(f"{where}: {len(fields)} fields; expected {','.join(METADATA_COLUMNS)} (5 or 6)")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{where}: {line!r} is not all numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: {line!r} has a value that is not finite")
        frame, cls, _, azimuth, elevation = values[:5]
        problems = [
            (frame < 0 or frame % 1, f"frame {fields[0]}: expected a whole number >= 0"),
            (
                n_frames is not None and frame >= n_frames,
                f"frame {fields[0]} is past the audio's end ({n_frames} frames)",
            ),
            (cls < 0 or cls >= n_classes or cls % 1, f"class {fields[1]}: expected a class index in [0, {n_classes})"),
            (not -180 <= azimuth <= 180, f"azimuth {fields[3]}: expected degrees in [-180, 180]"),
            (not -90 <= elevation <= 90, f"elevation {fields[4]}: expected degrees in [-90, 90]"),
            (len(values) == 6 and values[5] <= 0, f"distance {fields[-1]}: expected centimetres > 0"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(f"{where}: {message}")
        rows.append(values)
    columns = list(METADATA_COLUMNS[: len(rows[0])]) if rows else list(METADATA_COLUMNS)
    if rows and any(len(r) != len(columns) for r in rows):
        raise ValueError(f"{path}: rows of 5 and of 6 fields mixed; expected one or the other throughout")
    table = pd.DataFrame(rows, columns=columns)
    for column in ("frame", "class", "source"):
        table[column] = table[column].astype(np.int64)
    return table


@dataclass
class LayoutReport:
    """Recordings found, kept and skipped (with the reason) by :func:`scan_layout`."""

    n_recordings: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {"n_recordings": self.n_recordings, "n_skipped": self.n_skipped, "skipped": self.skipped}


def scan_layout(
    root: str | Path, n_channels: int, fmt: str = "mic", dataset: str = "dev"
) -> tuple[pd.DataFrame, LayoutReport]:
    """The recordings of a DCASE layout below ``root``: one row per usable wav with its metadata.

    Columns: ``recording``, ``folder``, ``fold``, ``audio``, ``metadata``, ``sample_rate``,
    ``duration``, ``n_frames``. Wavs without a CSV, with another channel count than ``n_channels`` or
    unreadable are skipped and listed in the report; a missing ``<fmt>_<dataset>`` folder is an error.
    """
    root = Path(root)
    audio_root = root / f"{fmt}_{dataset}"
    if not audio_root.is_dir():
        raise FileNotFoundError(
            f"{audio_root} does not exist: expected the DCASE layout <root>/{fmt}_{dataset}/<folder>/*.wav "
            f"and <root>/metadata_{dataset}/<folder>/*.csv"
        )
    report, kept = LayoutReport(), []
    for wav in sorted(audio_root.glob("*/*.wav")):
        folder, recording = wav.parent.name, wav.stem
        csv = metadata_path(root, recording, folder, dataset)
        reason = None
        if not csv.is_file():
            reason = f"no metadata file {csv}"
        else:
            try:
                duration, rate, channels = audio_info(wav)
            except AudioReadError as err:
                reason = err.reason
            else:
                if channels != n_channels:
                    reason = f"{channels} channels; the array has {n_channels}"
        if reason is not None:
            logger.warning("Skipping recording %s: %s", wav, reason)
            report.skipped.append({"recording": recording, "path": str(wav), "reason": reason})
            continue
        fold = _FOLD.match(recording)
        kept.append(
            {
                "recording": recording,
                "folder": folder,
                "fold": int(fold.group(1)) if fold else -1,
                "audio": str(wav),
                "metadata": str(csv),
                "sample_rate": rate,
                "duration": duration,
                "n_frames": label_frames(duration),
            }
        )
    report.n_recordings = len(kept)
    if report.n_skipped:
        logger.warning("Skipped %d recordings of %s (see the layout report)", report.n_skipped, root)
    return pd.DataFrame(kept, columns=list(_SCAN_COLUMNS)), report


_SCAN_COLUMNS = ("recording", "folder", "fold", "audio", "metadata", "sample_rate", "duration", "n_frames")
