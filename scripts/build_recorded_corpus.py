"""Build a corpus of real recorded sounds, offline, from audio files installed by Debian packages.

The result is written in the FSDnoisy18k layout, so ``corpus.source=fsdnoisy18k`` reads it::

    OUT/FSDnoisy18k.audio_train/*.wav     unlabeled (noisy) and labeled (clean) clips
    OUT/FSDnoisy18k.audio_test/*.wav      test clips
    OUT/FSDnoisy18k.meta/train.csv        fname,label,aso_id,manually_verified,noisy_small
    OUT/FSDnoisy18k.meta/test.csv         fname,label,aso_id
    OUT/FSDnoisy18k.meta/sources.csv      fname,label,split,package,source,duration (attribution)

Usage::

    python scripts/build_recorded_corpus.py --list                 # packages to install, files found
    apt-get install --no-install-recommends hydrogen-drumkits megaglest-data tuxpaint-stamps-default widelands-data
    python scripts/build_recorded_corpus.py --out /path/to/recorded_corpus

Every class of :data:`CLASSES` is a consistent kind of recorded sound, defined by glob patterns
over the files its Debian package installs (``**`` spans folders; ``exclude`` patterns match file
names). Identical files (Debian packages often ship one sound under several names, as links) count
once. Nothing is downloaded: the script reads what ``apt-get install`` put on disk, or, with
``--root``, a tree unpacked with ``dpkg-deb -x PACKAGE.deb ROOT`` (no installation needed).

For each class the found files are shuffled with ``--seed`` and decoded in that order (soundfile:
wav, ogg vorbis, flac) until ``--max-per-class`` usable clips are collected. A clip is mono,
resampled to ``--sample-rate``, stripped of leading and trailing silence (quieter than
``--silence-db`` below its peak), cut to ``--max-seconds`` and written as 16-bit PCM wav. Files
shorter than ``--min-seconds`` after stripping, silent files and files that cannot be decoded are
skipped and counted. Each class's clips are then split (seeded) into ``unlabeled`` (noisy,
``manually_verified=0``), ``labeled`` (clean, ``manually_verified=1``) and ``test`` by
``--fractions``. The project's reader later holds out ``corpus.fsdnoisy18k.validation_size``
labeled clips for validation; the summary suggests a value (a third of the labeled clips, the
proportion of the project's embedded corpus).

The corpus is built in a hidden folder next to ``--out`` and renamed into place when complete, so
an interrupted run never leaves a corpus that looks finished.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mc_simclr.audio.io import AudioReadError, read_mono, write_audio_atomic

logger = logging.getLogger("build_recorded_corpus")

TRAIN_DIR = "FSDnoisy18k.audio_train"
TEST_DIR = "FSDnoisy18k.audio_test"
META_DIR = "FSDnoisy18k.meta"
LAYOUT = (TRAIN_DIR, TEST_DIR, META_DIR)
SPLITS = ("unlabeled", "labeled", "test")


@dataclass(frozen=True)
class ClassSource:
    """Where the recordings of one class come from.

    Attributes:
        description: what the clips are, for people.
        patterns: absolute glob patterns of the files (``**`` matches any number of folders), each
            below a folder of :data:`PACKAGE_PATHS`.
        exclude: file-name patterns (fnmatch) dropped from the matches.
    """

    description: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = field(default=())

    @property
    def packages(self) -> tuple[str, ...]:
        """The Debian packages that install this class's files."""
        return tuple(sorted({package_of(pattern) for pattern in self.patterns}))


# --------------------------------------------------------------------------------------------
# The classes. Paths are those of Debian bookworm's packages:
#   tuxpaint-stamps-default 2022.06.04-1  (GPL-2; spoken stamp descriptions, animal recordings)
#   megaglest-data 3.13.0-3               (CC-BY-SA-3.0; unit voices, animal sounds)
#   widelands-data 2:1.1-3                (GPL-2+; animal and farm sounds)
#   hydrogen-drumkits 2017.09.19~dfsg-1   (GPL-2 / GPL-2+; recorded acoustic drum kits, one hit a file)
# --------------------------------------------------------------------------------------------
_TUXPAINT = "/usr/share/tuxpaint/stamps"
_MEGAGLEST = "/usr/share/games/megaglest"
_MEGAPACK = f"{_MEGAGLEST}/techs/megapack"
_WIDELANDS = "/usr/share/games/widelands/data/sound"
_DRUMKITS = "/usr/share/hydrogen/data/drumkits"

# The folder each package installs its data in (a class pattern must lie below one of them).
PACKAGE_PATHS: dict[str, str] = {
    "tuxpaint-stamps-default": "/usr/share/tuxpaint/",
    "megaglest-data": "/usr/share/games/megaglest/",
    "widelands-data": "/usr/share/games/widelands/",
    "hydrogen-drumkits": "/usr/share/hydrogen/data/drumkits/",
}


def package_of(path: str | Path) -> str:
    """The package of :data:`PACKAGE_PATHS` whose folder holds ``path`` (an installed path), else ``""``."""
    path = str(path)
    return next((package for package, folder in PACKAGE_PATHS.items() if path.startswith(folder)), "")


# MegaGlest units that speak with a human voice (animals, monsters and machines left out).
_MEGAGLEST_HUMANS = (
    "archer", "archmage", "axe_thrower", "battlemage", "cudgel", "guard", "horseman", "initiate", "princess",
    "shaman", "spearman", "stickfighter", "summoner", "swordman", "technician", "valkyrie", "warrior", "worker",
)  # fmt: skip


def _speech(language: str, name: str) -> ClassSource:
    return ClassSource(
        description=f"{name} speech: Tux Paint's spoken stamp descriptions (a name or a short sentence), recorded"
        " by one or two volunteers per language",
        patterns=(f"{_TUXPAINT}/**/*_desc_{language}.ogg",),
    )


CLASSES: dict[str, ClassSource] = {
    "speech_fr": _speech("fr", "French"),
    "speech_ru": _speech("ru", "Russian"),
    "speech_es": _speech("es", "Spanish"),
    "speech_el": _speech("el", "Greek"),
    "voice_command": ClassSource(
        description="short spoken replies of MegaGlest's human units when selected or given an order, acted",
        patterns=tuple(
            f"{_MEGAPACK}/**/{unit}_{kind}*.wav" for unit in _MEGAGLEST_HUMANS for kind in ("ack", "select")
        ),
    ),
    "scream": ClassSource(
        description="death cries and screams of MegaGlest's human units, acted",
        patterns=tuple(f"{_MEGAPACK}/**/{unit}_die*.wav" for unit in _MEGAGLEST_HUMANS),
    ),
    "bird": ClassSource(
        description="bird calls and songs (songbirds, crows, owls, ducks, hens, roosters, ...)",
        patterns=(
            f"{_TUXPAINT}/animals/birds/**/*.ogg",
            f"{_WIDELANDS}/animals/bird*.ogg",
            f"{_MEGAPACK}/**/chicken*.wav",
            f"{_MEGAGLEST}/tilesets/*/sounds/chicken.wav",
            f"{_MEGAGLEST}/tilesets/*/sounds/hawk.ogg",
            f"{_MEGAGLEST}/tilesets/*/sounds/owl.ogg",
            f"{_MEGAGLEST}/tilesets/*/sounds/rooster.ogg",
        ),
        exclude=("*_desc*",),
    ),
    "mammal": ClassSource(
        description="mammal calls (cows, sheep, pigs, horses, wolves, elephants, deer, apes, whales, ...)",
        patterns=(
            f"{_TUXPAINT}/animals/mammals/**/*.ogg",
            f"{_TUXPAINT}/animals/marsupials/**/*.ogg",
            f"{_WIDELANDS}/animals/boar.ogg",
            f"{_WIDELANDS}/animals/coyote_*.ogg",
            f"{_WIDELANDS}/animals/moose_*.ogg",
            f"{_WIDELANDS}/animals/stag_*.ogg",
            f"{_WIDELANDS}/animals/wolf_*.ogg",
            f"{_WIDELANDS}/farm/donkey.ogg",
            f"{_WIDELANDS}/farm/farm_animal_*.ogg",
            f"{_WIDELANDS}/farm/horse_*.ogg",
            f"{_WIDELANDS}/farm/ox_*.ogg",
            f"{_WIDELANDS}/farm/sheep_*.ogg",
            *(f"{_MEGAPACK}/**/{animal}*.wav" for animal in ("cow_", "bull_", "pig_", "sheep", "ele")),
            f"{_MEGAGLEST}/tilesets/*/sounds/wolf.wav",
            f"{_MEGAGLEST}/tilesets/*/sounds/mudchute_cow_*.ogg",
        ),
        exclude=("*_desc*", "*walk*"),
    ),
    "drum": ClassSource(
        description="acoustic drums struck once: kick, snare, rimshot, side stick, toms (several velocities)",
        patterns=(
            *(f"{_DRUMKITS}/ForzeeStereo/{drum}*.wav" for drum in ("Kick", "Snare", "RimClick", "Tom")),
            *(f"{_DRUMKITS}/The Black Pearl 1.0/Pearl{drum}*.wav" for drum in ("Kick", "Snare", "SideStick", "Tom")),
            *(f"{_DRUMKITS}/ColomboAcousticDrumkit/{drum}*.flac" for drum in ("bassdrum", "snare", "tom", "stick")),
            *(
                f"{_DRUMKITS}/Millo_MultiLayered2/{drum}*.flac"
                for drum in ("bd", "jsnare", "rsnare", "tom", "floortom", "rim")
            ),
        ),
    ),
    "cymbal": ClassSource(
        description="cymbals struck once: hi-hat (closed, open, pedal), crash, ride, bell, splash, china",
        patterns=(
            *(f"{_DRUMKITS}/ForzeeStereo/{cymbal}*.wav" for cymbal in ("China", "Crash", "HiHat", "Ride", "Splash")),
            *(f"{_DRUMKITS}/The Black Pearl 1.0/{maker}*.wav" for maker in ("Sabian", "Zildjian", "Paiste")),
            *(f"{_DRUMKITS}/ColomboAcousticDrumkit/{cymbal}*.flac" for cymbal in ("crash", "hihat")),
            *(f"{_DRUMKITS}/Millo_MultiLayered2/{cymbal}*.flac" for cymbal in ("crash", "ride", "hh")),
        ),
    ),
}


def packages(classes: dict[str, ClassSource] = CLASSES) -> list[str]:
    """The Debian packages the classes read, sorted, each once."""
    return sorted({name for source in classes.values() for name in source.packages})


def find_class_files(classes: dict[str, ClassSource] = CLASSES, root: str | Path = "/") -> dict[str, list[Path]]:
    """The files of each class below ``root``, sorted, identical files counted once.

    Links are followed; two files with the same bytes count once, for the first class (in table
    order) and the first path (sorted) that has them.
    """
    root = Path(root)
    seen: set[str] = set()
    found: dict[str, list[Path]] = {}
    for label, source in classes.items():
        matches: set[Path] = set()
        for pattern in source.patterns:
            if not package_of(pattern):
                raise ValueError(
                    f"class {label}: pattern {pattern!r} lies in no package folder {sorted(PACKAGE_PATHS.values())}"
                )
            for name in glob.glob(glob.escape(str(root).rstrip("/")) + pattern, recursive=True):
                path = Path(name)
                if path.is_file() and not any(path.match(e) for e in source.exclude):
                    matches.add(path)
        files = []
        for path in sorted(matches):
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                files.append(path)
        found[label] = files
    return found


def require_min_files(
    class_files: dict[str, list[Path]], min_files: int, classes: dict[str, ClassSource] = CLASSES
) -> None:
    """Raise if a class has fewer than ``min_files`` files, naming the class and its package."""
    short = {label: len(files) for label, files in class_files.items() if len(files) < min_files}
    if short:
        lines = []
        for label, n in short.items():
            names = " ".join(classes[label].packages) if label in classes else "?"
            lines.append(f"  class {label}: {n} files found, {min_files} needed (install: {names})")
        raise ValueError(
            "too few source files:\n" + "\n".join(lines) + f"\nrun: apt-get install {' '.join(packages(classes))}"
        )


def strip_silence(audio: np.ndarray, silence_db: float) -> np.ndarray:
    """``audio`` without its leading and trailing samples quieter than ``silence_db`` below the peak."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio[:0]
    loud = np.flatnonzero(np.abs(audio) >= peak * 10.0 ** (-silence_db / 20.0))
    return audio[loud[0] : loud[-1] + 1]


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Clips per split (unlabeled, labeled, test) for ``n`` clips; labeled and test get at least one each
    when ``n >= 3`` and their fraction is positive."""
    labeled = int(round(n * fractions[1]))
    test = int(round(n * fractions[2]))
    if n >= 3:
        labeled = max(labeled, 1) if fractions[1] > 0 else 0
        test = max(test, 1) if fractions[2] > 0 else 0
    test = min(test, n)
    labeled = min(labeled, n - test)
    return n - labeled - test, labeled, test


def _check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"--fractions must be three non-negative numbers (unlabeled labeled test) that sum to 1, got {fractions}"
        )
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(f"--out {out} is not empty ({len(entries)} entries); pass --overwrite to replace it")
    foreign = [e for e in entries if e not in LAYOUT]
    if foreign:
        raise FileExistsError(
            f"--out {out} holds {foreign[:5]}, which this script did not write; refusing to delete it "
            f"(--overwrite replaces only a folder holding {list(LAYOUT)})"
        )


def build_corpus(
    class_files: dict[str, list[Path]],
    out: str | Path,
    *,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    max_per_class: int = 80,
    min_per_class: int = 40,
    min_seconds: float = 0.5,
    max_seconds: float = 15.0,
    silence_db: float = 60.0,
    sample_rate: int = 16000,
    seed: int = 0,
    overwrite: bool = False,
    root: str | Path = "/",
    install_hint: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Write the corpus of ``class_files`` (label -> source files) to ``out`` in the FSDnoisy18k layout.

    Args:
        class_files: source audio files of each class.
        out: the corpus folder; it must not exist or be empty, unless ``overwrite`` (then it may
            only hold an earlier corpus).
        fractions: shares of each class's clips in (unlabeled, labeled, test).
        max_per_class: usable clips kept per class at most (the classes stay balanced).
        min_per_class: fewer usable clips in a class is an error.
        min_seconds: clips shorter than this after stripping silence are skipped.
        max_seconds: longer clips are cut to this length.
        silence_db: leading/trailing samples this many dB below the clip's peak are stripped; a
            clip whose peak is below -``silence_db`` dBFS counts as silent.
        sample_rate: rate of the written wav files.
        seed: seed of the shuffles (which files are used, and the splits).
        overwrite: replace an earlier corpus in ``out``.
        root: the folder the source files were found under; ``sources.csv`` gives their paths
            relative to it, as installed paths, and the package of each (see :func:`package_of`).
        install_hint: label -> packages to name when a class has too few usable clips.

    Returns:
        One row per class: files found, files skipped (short, silent, unreadable), clips per
        split and minutes of audio.
    """
    out = Path(out)
    fractions = _check_fractions(fractions)
    for name, value in (("--max-per-class", max_per_class), ("--sample-rate", sample_rate)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < --min-seconds <= --max-seconds, got {min_seconds} and {max_seconds}")
    if not class_files:
        raise ValueError("no classes given")
    bad_labels = [label for label in class_files if not label or any(c in label for c in ',/\\"\n')]
    if bad_labels:
        raise ValueError(f"class names must be non-empty without , / \\ or quotes, got {bad_labels}")
    _check_out(out, overwrite)
    install_hint = install_hint or {}
    min_peak = 10.0 ** (-silence_db / 20.0)

    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        rows, summary = [], []
        for class_index, (label, files) in enumerate(class_files.items()):
            order = np.random.default_rng([seed, class_index]).permutation(len(files))
            skipped = {"short": 0, "silent": 0, "unreadable": 0}
            kept: list[tuple[Path, np.ndarray]] = []
            bar = tqdm(total=min(max_per_class, len(files)), desc=f"{label:>14}", unit="clip", leave=False)
            for i in order:
                if len(kept) >= max_per_class:
                    break
                path = Path(files[i])
                try:
                    audio = read_mono(path, sample_rate)
                except AudioReadError as err:
                    logger.warning("skipping %s: %s", path, err.reason)
                    skipped["unreadable"] += 1
                    continue
                if audio.size == 0 or float(np.max(np.abs(audio))) < min_peak:
                    logger.warning("skipping %s: silent", path)
                    skipped["silent"] += 1
                    continue
                audio = strip_silence(audio, silence_db)
                if audio.size < min_seconds * sample_rate:
                    skipped["short"] += 1
                    continue
                audio = audio[: int(max_seconds * sample_rate)]
                peak = float(np.max(np.abs(audio)))
                if peak > 1.0:  # resampling can overshoot a full-scale source
                    audio = audio / peak
                kept.append((path, audio))
                bar.update()
            bar.close()
            if skipped["silent"] or skipped["unreadable"]:
                logger.warning(
                    "class %s: skipped %d silent and %d unreadable files (see the warnings above)",
                    label,
                    skipped["silent"],
                    skipped["unreadable"],
                )
            if len(kept) < min_per_class:
                hint = f" (install: {install_hint[label]})" if install_hint.get(label) else ""
                raise ValueError(
                    f"class {label}: only {len(kept)} usable clips of {len(files)} files, {min_per_class} needed{hint}"
                )
            counts = split_counts(len(kept), fractions)
            split_of = np.repeat(np.arange(3), counts)
            np.random.default_rng([seed, class_index, 1]).shuffle(split_of)
            seconds = dict.fromkeys(SPLITS, 0.0)
            for k, ((path, audio), s) in enumerate(zip(kept, split_of, strict=True)):
                split = SPLITS[s]
                fname = f"{label}_{k:04d}.wav"
                write_audio_atomic(staging / (TEST_DIR if split == "test" else TRAIN_DIR) / fname, audio, sample_rate)
                seconds[split] += audio.size / sample_rate
                source = _installed_path(path, Path(root))
                rows.append(
                    {
                        "fname": fname,
                        "label": label,
                        "split": split,
                        "package": package_of(source),
                        "source": source,
                        "duration": round(audio.size / sample_rate, 3),
                    }
                )
            summary.append(
                {
                    "class": label,
                    "files": len(files),
                    "short": skipped["short"],
                    "silent": skipped["silent"],
                    "unreadable": skipped["unreadable"],
                    **dict(zip(SPLITS, counts, strict=True)),
                    "minutes": round(sum(seconds.values()) / 60.0, 2),
                }
            )
        _write_tables(staging, pd.DataFrame(rows))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return pd.DataFrame(summary)


def _installed_path(path: Path, root: Path) -> str:
    """``path`` as it is installed: relative to ``root``, written from ``/``."""
    path = Path(os.path.abspath(path))
    root = Path(os.path.abspath(root))
    return "/" + path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _write_tables(root: Path, clips: pd.DataFrame) -> None:
    """``sources.csv``, then ``test.csv``, then ``train.csv`` (the reader's tables come last)."""
    meta = root / META_DIR
    for folder in (TRAIN_DIR, TEST_DIR):
        (root / folder).mkdir(parents=True, exist_ok=True)
    _write_csv(clips, meta / "sources.csv")
    test = clips[clips["split"] == "test"]
    _write_csv(pd.DataFrame({"fname": test["fname"], "label": test["label"], "aso_id": ""}), meta / "test.csv")
    train = clips[clips["split"] != "test"]
    _write_csv(
        pd.DataFrame(
            {
                "fname": train["fname"],
                "label": train["label"],
                "aso_id": "",
                "manually_verified": (train["split"] == "labeled").astype(int),
                "noisy_small": 0,
            }
        ),
        meta / "train.csv",
    )


def suggested_validation_size(summary: pd.DataFrame) -> int:
    """A third of the labeled clips (the embedded corpus holds out 56 of 168), at least 1 if any."""
    labeled = int(summary["labeled"].sum())
    return max(1, round(labeled / 3)) if labeled > 1 else 0


def installed(package: str, root: Path) -> bool:
    """Whether dpkg lists ``package`` as installed below ``root``."""
    info = root / "var/lib/dpkg/info"
    return (info / f"{package}.list").is_file() or any(info.glob(f"{package}:*.list"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build a corpus of real recordings from Debian packages, in the FSDnoisy18k layout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="print the packages to install and the files found")
    parser.add_argument("--out", type=Path, help="corpus folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier corpus in --out")
    parser.add_argument("--root", type=Path, default=Path("/"), help="folder the class patterns are looked up under")
    parser.add_argument(
        "--classes", nargs="+", choices=sorted(CLASSES), metavar="CLASS", help="only these classes (default: all)"
    )
    parser.add_argument(
        "--fractions",
        nargs=3,
        type=float,
        default=(0.6, 0.2, 0.2),
        metavar=("UNLABELED", "LABELED", "TEST"),
        help="shares of each class's clips per split",
    )
    parser.add_argument("--max-per-class", type=int, default=80, help="usable clips kept per class at most")
    parser.add_argument("--min-per-class", type=int, default=40, help="fewer files or usable clips is an error")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="shorter clips are skipped")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="longer clips are cut")
    parser.add_argument("--silence-db", type=float, default=60.0, help="silence threshold below the peak (dB)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="rate of the written wav files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file choice and the splits")
    args = parser.parse_args(argv)
    if not args.list and args.out is None:
        parser.error("give --out DIR to build the corpus, or --list")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    classes = {label: CLASSES[label] for label in (args.classes or CLASSES)}
    if not args.root.is_dir():
        raise SystemExit(f"error: --root {args.root} is not a folder")
    class_files = find_class_files(classes, args.root)
    if args.list:
        print("apt-get install --no-install-recommends " + " ".join(packages(classes)))
        for name in packages(classes):
            print(f"  {name}: {'installed' if installed(name, args.root) else 'NOT installed'}")
        table = pd.DataFrame(
            [
                {"class": label, "files": len(files), "packages": " ".join(classes[label].packages)}
                for label, files in class_files.items()
            ]
        )
        print(table.to_string(index=False))
        for label, source in classes.items():
            print(f"{label}: {source.description}")
        return 0
    try:
        require_min_files(class_files, args.min_per_class, classes)
        start = time.perf_counter()
        summary = build_corpus(
            class_files,
            args.out,
            fractions=tuple(args.fractions),
            max_per_class=args.max_per_class,
            min_per_class=args.min_per_class,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            silence_db=args.silence_db,
            sample_rate=args.sample_rate,
            seed=args.seed,
            overwrite=args.overwrite,
            root=args.root,
            install_hint={label: " ".join(source.packages) for label, source in classes.items()},
        )
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = {"class": "total", **{column: summary[column].sum() for column in summary.columns[1:]}}
    total["minutes"] = round(total["minutes"], 2)
    print(pd.concat([summary, pd.DataFrame([total])]).to_string(index=False))
    size_mb = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e6
    validation = suggested_validation_size(summary)
    print(f"\nwrote {args.out} ({size_mb:.1f} MB) in {time.perf_counter() - start:.0f} s")
    print(
        "run the default pipeline on it:\n"
        f"  kedro run --params=corpus.source=fsdnoisy18k,corpus.fsdnoisy18k.root={args.out.resolve()},"
        f"corpus.fsdnoisy18k.validation_size={validation}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
