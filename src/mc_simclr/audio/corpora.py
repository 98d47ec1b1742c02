"""Source corpora: three readers with one output, the clip table.

The clip table has one row per mono source clip and the columns of :data:`CLIP_TABLE_COLUMNS`:

=============  ======================================================================
clip_id        unique string id (file stem, made unique)
split          one of ``unlabeled``, ``labeled``, ``validation``, ``test``
label          class name (empty for clips without a label)
path           absolute path of the audio file
duration       seconds, from the file header
sample_rate    the file's own sample rate (audio is resampled when it is read)
source         the file's path relative to the corpus root (moving the corpus keeps it)
file_size      bytes, and
file_mtime_ns  the modification time of the file: with ``source``, what identifies its content
               (an edited file is rendered again; see :func:`~mc_simclr.acoustics.render.plan_shards`)
=============  ======================================================================

Readers:

* :func:`generate_synthetic_corpus` + :func:`read_folder_corpus`: the embedded default, written to
  wav files and a CSV so that later steps read files exactly as they would read real data.
* :func:`read_fsdnoisy18k`: FSDnoisy18k in its released layout. Noisy clips become ``unlabeled``,
  clean (manually verified) clips ``labeled`` with ``validation_size`` of them held out for
  ``validation``, and the test set stays ``test`` (the paper's section 4.1).
* :func:`read_folder_corpus`: any folder of audio files with a CSV of ``filename,label[,split]``.

Each reader checks every file header. A file that cannot be used is skipped with a warning and
listed in the returned report, so one bad clip does not stop hours of work; structural problems
(missing folders, missing CSV columns, unknown split names) raise at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mc_simclr.audio.io import AudioReadError, audio_info, write_audio_atomic
from mc_simclr.audio.synthetic import CLASSES, synthesize_clip, variant_labels
from mc_simclr.utils import atomic_path

logger = logging.getLogger(__name__)

SPLITS = ("unlabeled", "labeled", "validation", "test", "confirmation")
CORPUS_SOURCES = ("synthetic", "fsdnoisy18k", "folder")
CLIP_TABLE_COLUMNS = (
    "clip_id",
    "split",
    "label",
    "path",
    "duration",
    "sample_rate",
    "source",
    "file_size",
    "file_mtime_ns",
)


@dataclass
class CorpusReport:
    """What a reader kept and what it skipped."""

    n_clips: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {"n_clips": self.n_clips, "n_skipped": self.n_skipped, "skipped": self.skipped}


def _require_dir(path: str | Path, parameter: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{parameter}: folder {path} does not exist (expected a folder of audio files)")
    return path


def _read_csv(path: Path, required: tuple[str, ...], parameter: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{parameter}: CSV file {path} does not exist")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected columns {list(required)}, found {list(table.columns)}"
        )
    return table


def _unique_ids(stems: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for stem in stems:
        count = seen.get(stem, 0)
        ids.append(stem if count == 0 else f"{stem}_{count}")
        seen[stem] = count + 1
    return ids


def _build_table(rows: list[dict[str, Any]], report: CorpusReport, root: Path) -> pd.DataFrame:
    """Check each row's file header; keep the usable ones (with their identity below ``root``) and
    record the others."""
    kept = []
    root = Path(root).resolve()
    for row in tqdm(rows, desc="checking audio files", unit="file", leave=False):
        try:
            duration, rate, _ = audio_info(row["path"])
        except AudioReadError as err:
            logger.warning("Skipping clip %s: %s", row["clip_id"], err)
            report.skipped.append({"clip_id": row["clip_id"], "path": str(row["path"]), "reason": err.reason})
            continue
        path = Path(row["path"]).resolve()
        stat = path.stat()
        source = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        kept.append(
            {
                **row,
                "path": str(path),
                "duration": duration,
                "sample_rate": rate,
                "source": source,
                "file_size": int(stat.st_size),
                "file_mtime_ns": int(stat.st_mtime_ns),
            }
        )
    table = pd.DataFrame(kept, columns=list(CLIP_TABLE_COLUMNS))
    report.n_clips = len(table)
    if report.n_skipped:
        logger.warning("Skipped %d of %d clips (see the corpus report)", report.n_skipped, len(rows))
    return table


def hold_out_validation(table: pd.DataFrame, size: int, seed: int, parameter: str) -> pd.DataFrame:
    """Move ``size`` randomly chosen (seeded) ``labeled`` clips to the ``validation`` split."""
    if size < 0:
        raise ValueError(f"{parameter} must be >= 0, got {size}")
    labeled = table.index[table["split"] == "labeled"]
    if size > len(labeled):
        raise ValueError(f"{parameter} = {size} exceeds the {len(labeled)} labeled clips")
    chosen = np.random.default_rng(seed).choice(np.asarray(labeled), size=size, replace=False)
    table = table.copy()
    table.loc[chosen, "split"] = "validation"
    return table


def read_folder_corpus(
    root: str | Path,
    csv: str | Path | None = None,
    default_split: str = "labeled",
    validation_size: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, CorpusReport]:
    """Read a folder of audio files described by a CSV of ``filename,label[,split]``.

    Args:
        root: folder holding the audio files (``filename`` is relative to it).
        csv: the CSV; defaults to ``root/clips.csv``.
        default_split: split of rows without a ``split`` value.
        validation_size: labeled clips moved to ``validation`` (seeded); 0 keeps the CSV's splits.
        seed: seed of that hold-out.
    """
    root = _require_dir(root, "corpus.folder.root")
    csv_path = Path(csv) if csv else root / "clips.csv"
    table = _read_csv(csv_path, ("filename", "label"), "corpus.folder.csv")
    if default_split not in SPLITS:
        raise ValueError(f"corpus.folder.default_split must be one of {SPLITS}, got {default_split!r}")
    splits = table["split"].where(table["split"] != "", default_split) if "split" in table else default_split
    table = table.assign(split=splits)
    bad = table.loc[~table["split"].isin(SPLITS)]
    if len(bad):
        first = bad.index[0]
        raise ValueError(f"{csv_path}: row {first + 2} has split {bad.loc[first, 'split']!r}; expected one of {SPLITS}")
    ids = _unique_ids([Path(f).stem for f in table["filename"]])
    rows = [
        {"clip_id": cid, "split": split, "label": label, "path": root / filename}
        for cid, split, label, filename in zip(ids, table["split"], table["label"], table["filename"], strict=True)
    ]
    report = CorpusReport()
    clips = _build_table(rows, report, root)
    if validation_size:
        clips = hold_out_validation(clips, validation_size, seed, "corpus.folder.validation_size")
    return clips, report


def read_fsdnoisy18k(root: str | Path, validation_size: int = 200, seed: int = 0) -> tuple[pd.DataFrame, CorpusReport]:
    """Read FSDnoisy18k in its released layout.

    Expected below ``root``: ``FSDnoisy18k.audio_train/``, ``FSDnoisy18k.audio_test/`` and
    ``FSDnoisy18k.meta/{train,test}.csv``.
    """
    root = _require_dir(root, "corpus.fsdnoisy18k.root")
    train_dir = _require_dir(root / "FSDnoisy18k.audio_train", "corpus.fsdnoisy18k.root")
    test_dir = _require_dir(root / "FSDnoisy18k.audio_test", "corpus.fsdnoisy18k.root")
    meta = root / "FSDnoisy18k.meta"
    train = _read_csv(
        meta / "train.csv", ("fname", "label", "aso_id", "manually_verified", "noisy_small"), "corpus.fsdnoisy18k.root"
    )
    test = _read_csv(meta / "test.csv", ("fname", "label", "aso_id"), "corpus.fsdnoisy18k.root")
    verified = train["manually_verified"].str.strip()
    if not verified.isin(["0", "1"]).all():
        raise ValueError(f"{meta / 'train.csv'}: manually_verified must be 0 or 1")
    rows = [
        {
            "clip_id": Path(fname).stem,
            "split": "labeled" if flag == "1" else "unlabeled",
            "label": label,
            "path": train_dir / fname,
        }
        for fname, label, flag in zip(train["fname"], train["label"], verified, strict=True)
    ]
    rows += [
        {"clip_id": Path(fname).stem, "split": "test", "label": label, "path": test_dir / fname}
        for fname, label in zip(test["fname"], test["label"], strict=True)
    ]
    for row, cid in zip(rows, _unique_ids([r["clip_id"] for r in rows]), strict=True):
        row["clip_id"] = cid
    report = CorpusReport()
    clips = _build_table(rows, report, root)
    clips = hold_out_validation(clips, validation_size, seed, "corpus.fsdnoisy18k.validation_size")
    return clips, report


def sample_durations(
    rng: np.random.Generator, n: int, mean_s: float, low_s: float = 0.3, high_s: float = 30.0, sigma: float = 0.8
) -> np.ndarray:
    """Clip durations from a log-normal truncated to [low_s, high_s], like FSDnoisy18k's lengths.

    The log-normal's location is set so that its untruncated mean is ``mean_s``; truncation at
    ``high_s`` lowers the mean slightly (a fraction of a second for the defaults).
    """
    if not (0 < low_s < high_s) or not (low_s <= mean_s <= high_s):
        raise ValueError(f"durations need 0 < low <= mean <= high, got low={low_s}, mean={mean_s}, high={high_s}")
    mu = math.log(mean_s) - sigma**2 / 2.0
    out = np.empty(0)
    while out.size < n:
        draw = rng.lognormal(mu, sigma, size=2 * n + 8)
        out = np.concatenate([out, draw[(draw >= low_s) & (draw <= high_s)]])
    return out[:n]


def generate_synthetic_corpus(
    root: str | Path,
    clips_per_split: dict[str, int],
    mean_duration_s: dict[str, float],
    duration_range_s: tuple[float, float] = (0.3, 30.0),
    sample_rate: int = 16000,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
    variants_per_class: int = 1,
    confirmation_seed: int | None = None,
) -> Path:
    """Write the embedded default corpus as wav files plus ``clips.csv`` (filename,label,split).

    Clips are spread evenly over the classes in every split: ``classes``, each split into
    ``variants_per_class`` near-neighbour variants (:func:`~mc_simclr.audio.synthetic.variant_labels`)
    when that is above 1. Everything is deterministic from ``seed``, except the ``confirmation``
    split, drawn from ``confirmation_seed`` (which must differ from ``seed``), so that it is a
    second test split that no earlier choice has seen. Files that already exist (they are written
    atomically, and their names carry a digest of seed, duration and sample rate) are kept, so an
    interrupted generation resumes. Returns the CSV path.
    """
    unknown = sorted(set(clips_per_split) - set(SPLITS))
    if unknown:
        raise ValueError(f"corpus.synthetic.clips_per_split has unknown split(s) {unknown}; expected {SPLITS}")
    missing = sorted(s for s in clips_per_split if s not in mean_duration_s)
    if missing:
        raise ValueError(f"corpus.synthetic.mean_duration_s lacks split(s) {missing}")
    bad_classes = sorted(set(classes) - set(CLASSES))
    if bad_classes:
        raise ValueError(f"corpus.synthetic.classes has unknown class(es) {bad_classes}; expected some of {CLASSES}")
    labels_of_corpus = variant_labels(tuple(classes), int(variants_per_class))
    if int(clips_per_split.get("confirmation", 0)) > 0:
        if confirmation_seed is None:
            raise ValueError("corpus.synthetic.confirmation_seed must be set when the confirmation split has clips")
        if int(confirmation_seed) == int(seed):
            raise ValueError(
                f"corpus.synthetic.confirmation_seed ({confirmation_seed}) must differ from corpus.synthetic.seed "
                "(the test split's seed): the confirmation split is a second, independent test split"
            )
    root = Path(root)
    audio_dir = root / "audio"
    records = []
    for split_index, split in enumerate(SPLITS):
        n = int(clips_per_split.get(split, 0))
        if n < 0:
            raise ValueError(f"corpus.synthetic.clips_per_split.{split} must be >= 0, got {n}")
        if n == 0:
            continue
        split_seed = int(confirmation_seed) if split == "confirmation" else seed
        rng = np.random.default_rng([split_seed, split_index])
        durations = sample_durations(rng, n, float(mean_duration_s[split]), *duration_range_s)
        labels = [labels_of_corpus[i % len(labels_of_corpus)] for i in range(n)]
        clip_seeds = rng.integers(0, 2**63 - 1, size=n)
        for i, (label, duration, clip_seed) in enumerate(zip(labels, durations, clip_seeds, strict=True)):
            # The name carries a digest of everything that shapes the audio, so files left by a run
            # with other settings are never mistaken for this run's.
            digest = hashlib.sha1(f"{clip_seed}:{duration:.6f}:{sample_rate}".encode()).hexdigest()[:8]
            records.append(
                (f"audio/{split}_{i:05d}_{label}_{digest}.wav", label, split, float(duration), int(clip_seed))
            )
    todo = [r for r in records if not (root / r[0]).is_file()]
    for filename, label, _, duration, clip_seed in tqdm(todo, desc="synthesizing clips", unit="clip"):
        write_audio_atomic(root / filename, synthesize_clip(label, duration, sample_rate, clip_seed), sample_rate)
    csv_path = root / "clips.csv"
    frame = pd.DataFrame([r[:3] for r in records], columns=["filename", "label", "split"])
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    logger.info("Synthetic corpus: %d clips (%d new) in %s", len(records), len(todo), audio_dir)
    return csv_path


def build_clip_table(corpus: dict[str, Any], sample_rate: int) -> tuple[pd.DataFrame, CorpusReport]:
    """The clip table of the corpus named by ``corpus.source`` (writing the synthetic one first).

    ``corpus`` is the ``corpus`` parameter block. Returns the table (columns
    :data:`CLIP_TABLE_COLUMNS`) and the report of skipped files; raises when no clip is usable.
    """
    source = corpus.get("source")
    if source == "synthetic":
        cfg = corpus["synthetic"]
        csv = generate_synthetic_corpus(
            root=cfg["root"],
            clips_per_split=cfg["clips_per_split"],
            mean_duration_s=cfg["mean_duration_s"],
            duration_range_s=tuple(cfg["duration_range_s"]),
            sample_rate=int(sample_rate),
            seed=int(cfg["seed"]),
            classes=tuple(cfg.get("classes") or CLASSES),
            variants_per_class=int(cfg.get("variants_per_class", 1)),
            confirmation_seed=cfg.get("confirmation_seed"),
        )
        table, report = read_folder_corpus(cfg["root"], csv)
    elif source == "fsdnoisy18k":
        cfg = corpus["fsdnoisy18k"]
        table, report = read_fsdnoisy18k(cfg["root"], int(cfg["validation_size"]), int(cfg["seed"]))
    elif source == "folder":
        cfg = corpus["folder"]
        table, report = read_folder_corpus(
            cfg["root"],
            cfg.get("csv"),
            cfg.get("default_split", "labeled"),
            int(cfg.get("validation_size", 0)),
            int(cfg.get("seed", 0)),
        )
    else:
        raise ValueError(f"corpus.source must be one of {CORPUS_SOURCES}, got {source!r}")
    if table.empty:
        raise ValueError(f"corpus.source={source!r} yielded no usable clip (skipped: {report.n_skipped})")
    return table[list(CLIP_TABLE_COLUMNS)], report


#: FSDnoisy18k as released: clips and mean duration (s) of its noisy (unlabeled), clean (labeled) and
#: test sets (15,813 noisy clips are 38.8 h; 20 classes; 44.1 kHz mono).
FSDNOISY18K_SIZES = {"noisy": (15_813, 8.83), "clean": (1_772, 4.9), "test": (947, 5.3)}
#: The stand-in's 20 classes: ten synthetic classes, each as two near neighbours.
STANDIN_CLASSES = ("pluck_low", "pluck_high", "bell", "chirp_up", "noise_low", "noise_high", "footsteps", "engine")
STANDIN_CLASSES += ("whistle", "buzz")


def write_fsdnoisy18k_standin(
    root: str | Path,
    fraction: float = 1.0,
    seed: int = 0,
    sample_rate: int = 44100,
    duration_range_s: tuple[float, float] = (0.3, 30.0),
) -> Path:
    """Write a synthetic stand-in of FSDnoisy18k in its released layout, ``fraction`` of its size.

    ``FSDnoisy18k.audio_train/`` (noisy and clean clips), ``FSDnoisy18k.audio_test/`` and
    ``FSDnoisy18k.meta/{train,test}.csv`` (``manually_verified`` 0 for noisy, 1 for clean clips), with
    the released clip counts times ``fraction`` and their mean durations (log-normal in
    ``duration_range_s``), 20 classes (:data:`STANDIN_CLASSES` as near-neighbour pairs), 16-bit wav
    at ``sample_rate``. :func:`read_fsdnoisy18k` reads it as it reads FSDnoisy18k. Files already
    there are kept (their names carry a digest of what shapes them), so an interrupted write
    resumes; the CSVs are written last. Returns ``root``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    root = Path(root)
    labels = variant_labels(STANDIN_CLASSES, 2)
    train, test, todo = [], [], []
    for index, (part, (count, mean_s)) in enumerate(FSDNOISY18K_SIZES.items()):
        n = max(2, int(round(count * fraction)))
        rng = np.random.default_rng([seed, 100 + index])
        durations = sample_durations(rng, n, mean_s, *duration_range_s)
        clip_seeds = rng.integers(0, 2**63 - 1, size=n)
        folder = "FSDnoisy18k.audio_test" if part == "test" else "FSDnoisy18k.audio_train"
        for i, (duration, clip_seed) in enumerate(zip(durations, clip_seeds, strict=True)):
            label = labels[i % len(labels)]
            digest = hashlib.sha1(f"{clip_seed}:{duration:.6f}:{sample_rate}:{label}".encode()).hexdigest()[:8]
            fname = f"{part}_{i:05d}_{digest}.wav"
            if part == "test":
                test.append({"fname": fname, "label": label, "aso_id": ""})
            else:
                verified = "1" if part == "clean" else "0"
                train.append(
                    {"fname": fname, "label": label, "aso_id": "", "manually_verified": verified, "noisy_small": "0"}
                )
            if not (root / folder / fname).is_file():
                todo.append((root / folder / fname, label, float(duration), int(clip_seed)))
    for path, label, duration, clip_seed in tqdm(todo, desc="writing the FSDnoisy18k stand-in", unit="clip"):
        write_audio_atomic(path, synthesize_clip(label, duration, sample_rate, clip_seed), sample_rate)
    meta = root / "FSDnoisy18k.meta"
    for name, rows in (("test.csv", test), ("train.csv", train)):
        with atomic_path(meta / name) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    logger.info(
        "FSDnoisy18k stand-in (%g of its size): %d clips (%d new) in %s",
        fraction,
        len(train) + len(test),
        len(todo),
        root,
    )
    return root
