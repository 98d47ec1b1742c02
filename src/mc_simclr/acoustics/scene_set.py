"""A set of synthesised recordings written in the DCASE layout, resumable (the ``scenes`` pipeline).

The labeled source clips of each split make the recordings of one folder, so that no clip crosses
splits: ``labeled`` clips make ``dev-train`` (fold 1), ``validation`` clips ``dev-val`` (fold 2),
``test`` clips ``dev-test`` (fold 3). Recording ``i`` of a fold is ``fold<f>_room<i>_mix001`` (one
room per recording). Each is drawn from the seed and its own name only
(:func:`~mc_simclr.acoustics.scenes.recording_rng`), so a rerun makes the same recordings and skips
the finished ones (a wav with its metadata CSV; the CSV is written last), and more recordings per
split can be asked for later. ``<root>/scenes.json`` holds the identity of the settings and of the
source clips: a folder written with other settings is refused, never mixed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from mc_simclr.acoustics.rir import get_backend
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.acoustics.scenes import SceneSynthesisConfig, plan_recording, synthesize_recording
from mc_simclr.audio.dcase import audio_path, metadata_path, write_class_list, write_recording
from mc_simclr.audio.io import read_mono
from mc_simclr.params import check_keys, check_values
from mc_simclr.utils import fingerprint, write_text_atomic

#: scene split -> (source clip split, DCASE folder, fold)
SPLITS = {
    "train": ("labeled", "dev-train", 1),
    "validation": ("validation", "dev-val", 2),
    "test": ("test", "dev-test", 3),
}
#: The moving events' RIR options over simulation.backend_options (torchrir): see conf/base.
MOVING_BACKEND_OPTIONS = {"diffuse_attenuation_db": 6.0, "frac_delay_length": 21}
TABLE_COLUMNS = (
    "recording",
    "split",
    "folder",
    "fold",
    "audio",
    "metadata",
    "rt60",
    "snr_db",
    "n_events",
    "n_moving",
    "duration_s",
)


@dataclass(frozen=True)
class SceneSetConfig:
    """The ``scenes`` parameter block."""

    root: str
    seed: int = 0
    recordings: dict[str, int] = field(default_factory=lambda: {"train": 12, "validation": 4, "test": 4})
    format: str = "mic"
    # moving events' RIRs: these options over simulation.backend_options (a path needs ten RIRs a
    # second: fewer image sources and shorter fractional-delay filters)
    moving_backend_options: dict[str, Any] = field(default_factory=lambda: dict(MOVING_BACKEND_OPTIONS))
    synthesis: SceneSynthesisConfig = field(default_factory=SceneSynthesisConfig)

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "scenes") -> SceneSetConfig:
        params = dict(params or {})
        check_keys(params, [f for f in cls.__dataclass_fields__], name)
        recordings = dict(params.get("recordings") or {})
        check_keys(recordings, SPLITS, f"{name}.recordings")
        config = cls(
            root=str(params["root"]) if params.get("root") else "",
            seed=int(params.get("seed", 0)),
            recordings={k: int(v) for k, v in recordings.items()},
            format=str(params.get("format", "mic")),
            moving_backend_options=dict(
                MOVING_BACKEND_OPTIONS
                if params.get("moving_backend_options") is None
                else params["moving_backend_options"]
            ),
            synthesis=SceneSynthesisConfig.from_params(params.get("synthesis") or {}, f"{name}.synthesis"),
        )
        check_values(
            {
                "root (a folder)": bool(config.root),
                "recordings (counts >= 0, at least one recording)": all(v >= 0 for v in config.recordings.values())
                and sum(config.recordings.values()) > 0,
                "format (mic or foa)": config.format in ("mic", "foa"),
                "moving_backend_options (a mapping)": isinstance(config.moving_backend_options, dict),
            },
            name,
        )
        return config


def recording_names(config: SceneSetConfig) -> list[tuple[str, str]]:
    """``(split, recording name)`` of every recording of the set, in order."""
    return [
        (split, f"fold{SPLITS[split][2]}_room{i + 1}_mix001")
        for split in SPLITS
        for i in range(config.recordings.get(split, 0))
    ]


def _backends(simulation: dict[str, Any], config: SceneSetConfig):
    """The static events' backend and the moving events' (its options with ``moving_backend_options``)."""
    options = dict(simulation.get("backend_options") or {})
    static = get_backend(simulation["backend"], **options)
    if not config.moving_backend_options:
        return static, static
    try:
        moving = get_backend(simulation["backend"], **{**options, **config.moving_backend_options})
    except ValueError as error:
        raise ValueError(f"scenes.moving_backend_options: {error} ({{}}: the static events' RIRs)") from error
    return static, moving


def write_scene_set(
    clip_table: pd.DataFrame,
    params: dict[str, Any],
    simulation: dict[str, Any],
    array: dict[str, Any],
    sample_rate: int,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Synthesise (or find finished) every recording of the ``scenes`` block below ``scenes.root``.

    Returns the recording table (:data:`TABLE_COLUMNS`) and a report (counts written and skipped).
    """
    config = SceneSetConfig.from_params(params)
    rooms = SceneConfig.from_params(simulation.get("scene", {}), array)
    labeled = clip_table[clip_table["label"].astype(str) != ""]
    class_names = sorted(labeled["label"].astype(str).unique())
    clips = {}
    for split, (source, _, _) in SPLITS.items():
        clips[split] = labeled[labeled["split"] == source].sort_values("clip_id").reset_index(drop=True)
        if config.recordings.get(split, 0) and clips[split].empty:
            raise ValueError(f"scenes.recordings.{split}: the clip table has no labeled '{source}' clips to draw from")
    identity = {
        "settings": {
            # a recording depends on the seed and its name only: the counts can grow or shrink
            **{k: v for k, v in asdict(config).items() if k not in ("root", "recordings")},
            "scene": asdict(rooms) | {"array": rooms.array.to_dict()},
            "backend": simulation["backend"],
            "backend_options": simulation.get("backend_options") or {},
            "sample_rate": int(sample_rate),
            "classes": class_names,
        },
        "clips": fingerprint(
            {"clips": labeled[["clip_id", "split", "source", "file_size", "file_mtime_ns"]].astype(str).values.tolist()}
        ),
    }
    key = fingerprint(identity)
    root = Path(config.root)
    manifest = root / "scenes.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text()).get("fingerprint")
        if found != key:
            raise ValueError(
                f"{root} holds recordings of other settings or source clips ({manifest}: {found}, now {key}); "
                "delete the folder or set scenes.root to another one"
            )
    else:
        write_text_atomic(manifest, json.dumps({"fingerprint": key, **identity}, indent=2, default=str))
    write_class_list(root, class_names)
    static, moving = _backends(simulation, config)
    paths = dict(zip(labeled["clip_id"], labeled["path"], strict=True))
    rows, written, found = [], 0, 0
    names = recording_names(config)
    for split, name in tqdm(names, desc="scenes", unit="recording", disable=not progress):
        _, folder, fold = SPLITS[split]
        plan = plan_recording(name, clips[split], class_names, config.synthesis, rooms, config.seed)
        wav = audio_path(root, name, folder, config.format)
        csv = metadata_path(root, name, folder)
        if wav.is_file() and csv.is_file():
            found += 1
        else:
            audio, events = synthesize_recording(
                plan,
                lambda clip_id: read_mono(paths[clip_id], sample_rate),
                rooms,
                config.synthesis,
                static,
                moving,
                sample_rate,
                config.seed,
            )
            write_recording(root, name, audio, sample_rate, events, folder=folder, fmt=config.format)
            written += 1
        rows.append(
            {
                "recording": name,
                "split": split,
                "folder": folder,
                "fold": fold,
                "audio": str(wav),
                "metadata": str(csv),
                "rt60": plan.room.rt60,
                "snr_db": plan.snr_db,
                "n_events": len(plan.events),
                "n_moving": sum(e.moving for e in plan.events),
                "duration_s": config.synthesis.duration_s,
            }
        )
    report = {"root": str(root), "written": written, "found": found, "classes": class_names, "fingerprint": key}
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), report
