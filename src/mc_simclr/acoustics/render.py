"""Scene tables and rendering of mono clips to multichannel reverberant audio, shard by shard."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mc_simclr.acoustics.noise import NoiseConfig, add_diffuse_noise
from mc_simclr.acoustics.rir import RIRBackend, get_backend, normalize_peak, spatialize
from mc_simclr.acoustics.scene import Scene, SceneConfig, clip_rng, sample_scene
from mc_simclr.audio.io import AudioReadError, read_mono
from mc_simclr.shards import STORAGE_DTYPES, ShardData

logger = logging.getLogger(__name__)


def sample_scene_table(clip_ids: list[str], config: SceneConfig, seed: int) -> pd.DataFrame:
    """One scene per clip; each clip's scene depends only on ``seed`` and its id."""
    records = []
    for clip_id in clip_ids:
        scene = sample_scene(clip_rng(seed, clip_id), config)
        records.append({"clip_id": clip_id, **scene.to_record()})
    return pd.DataFrame.from_records(records)


def render_clip(
    path: str,
    scene: Scene,
    backend: RIRBackend,
    sample_rate: int,
    peak: float,
    noise: NoiseConfig | None = None,
    noise_seed: int = 0,
    clip_id: str = "",
) -> tuple[np.ndarray, float | None]:
    """Read a mono clip, convolve it with the scene's RIRs, add diffuse noise when ``noise`` is
    enabled, and normalise the peak (all channels jointly). Returns the audio and the SNR (dB) of
    the added noise (None without noise)."""
    clip = read_mono(path, sample_rate)
    rirs = backend.simulate(scene, sample_rate)
    audio, snr_db = spatialize(clip, rirs), None
    if noise is not None and noise.enabled:
        mics = np.asarray(scene.mic_positions, dtype=np.float64)
        audio, snr_db = add_diffuse_noise(audio, mics, sample_rate, noise, noise_seed, clip_id)
    return normalize_peak(audio, peak), snr_db


def render_shard(
    clips: pd.DataFrame,
    backend: RIRBackend,
    sample_rate: int,
    peak: float,
    noise: NoiseConfig | None = None,
    noise_seed: int = 0,
    storage_dtype: str = "float32",
) -> ShardData:
    """Render the clips of one shard; ``clips`` holds clip-table and scene columns per row.

    A clip that cannot be read (or renders to silence) is skipped with a warning and kept in the
    shard's table with its reason, so that it is counted rather than stopping the run. With noise,
    each row records the SNR of its noise (``noise_snr_db``).
    """
    shard = ShardData(storage_dtype=storage_dtype)
    for row in clips.to_dict("records"):
        before = dict(backend.stats)
        snr_db = None
        try:
            audio, snr_db = render_clip(
                row["path"], Scene.from_record(row), backend, sample_rate, peak, noise, noise_seed, row["clip_id"]
            )
            status = "ok"
        except (AudioReadError, ValueError) as err:
            logger.warning("Skipping clip %s: %s", row["clip_id"], err)
            audio, status = None, f"skipped: {err}"
        except Exception as err:  # noqa: BLE001 - anything else stops the shard: name the clip that broke it
            raise RuntimeError(f"clip {row['clip_id']} ({row['path']}): {type(err).__name__}: {err}") from err
        retries = backend.stats.get("tail_retries", 0) - before.get("tail_retries", 0)
        extra = (
            {"noise_snr_db": float("nan") if snr_db is None else snr_db} if noise is not None and noise.enabled else {}
        )
        shard.add({**row, "rir_retries": int(retries), **extra}, audio, status)
    return shard


def plan_shards(
    clips: pd.DataFrame, shard_size: int, render: Callable[[pd.DataFrame], ShardData], salt: str = ""
) -> dict[str, Callable[[], ShardData]]:
    """Group clips by split into shards of ``shard_size`` (sorted by clip id): ``{shard_id: thunk}``.

    Shard ids are ``<split>-<index>-<digest>``, the digest covering the shard's rows and ``salt``
    (the rendering settings), so a shard written under other settings is never taken as done. The
    rows' absolute ``path`` is left out of the digest (their ``source`` relative to the corpus root,
    size and modification time are in it), so moving the project keeps its shards, and editing a
    source file renders its shard again. Each thunk renders its shard when called (lazy saving).
    """
    if shard_size < 1:
        raise ValueError(f"simulation.shard_size must be >= 1, got {shard_size}")
    plan: dict[str, Callable[[], ShardData]] = {}
    for split, group in clips.sort_values("clip_id").groupby("split", sort=True):
        for start in range(0, len(group), shard_size):
            rows = group.iloc[start : start + shard_size]
            identity = rows.drop(columns=["path"], errors="ignore").to_csv(index=False)
            digest = hashlib.sha1((salt + identity).encode("utf-8")).hexdigest()[:8]
            plan[f"{split}-{start // shard_size:05d}-{digest}"] = partial(render, rows)
    return plan


def scenes_for_clips(
    clip_table: pd.DataFrame, simulation: dict[str, Any], array: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One scene per clip of ``clip_table`` from the ``simulation`` parameter block (``scene``, ``seed``)
    and the ``array`` block (the paper's square when None)."""
    config = SceneConfig.from_params(simulation.get("scene", {}), array)
    return sample_scene_table(list(clip_table["clip_id"]), config, int(simulation["seed"]))


def plan_render_shards(
    clip_table: pd.DataFrame, scenes: pd.DataFrame, simulation: dict[str, Any], sample_rate: int
) -> dict[str, Callable[[], ShardData]]:
    """Every clip through its scene's RIRs into shards, rendered lazily: ``{shard_id: thunk}``.

    ``simulation`` is the parameter block (``backend``, ``backend_options``, ``peak``, ``shard_size``,
    ``noise``);
    the rendering settings are part of every shard id, so shards of other settings are never reused.
    """
    backend = get_backend(simulation["backend"], **(simulation.get("backend_options") or {}))
    peak = float(simulation["peak"])
    noise = NoiseConfig.from_params(simulation.get("noise"))
    clips = clip_table.merge(scenes, on="clip_id", how="inner", validate="one_to_one")
    if len(clips) != len(clip_table):
        raise ValueError("scenes do not cover every clip of clip_table: re-run sample_scenes")
    settings = {
        "backend": simulation["backend"],
        "options": simulation.get("backend_options") or {},
        "sr": int(sample_rate),
        "peak": peak,
    }
    if noise.enabled:  # only then, so that the shards of the noise-free default keep their ids
        settings["noise"] = noise.settings()
    storage_dtype = str(simulation.get("storage_dtype", "float32"))
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"simulation.storage_dtype must be one of {list(STORAGE_DTYPES)}, got {storage_dtype!r}")
    if storage_dtype != "float32":
        settings["storage_dtype"] = storage_dtype
    render = partial(
        render_shard,
        backend=backend,
        sample_rate=int(sample_rate),
        peak=peak,
        noise=noise,
        noise_seed=int(simulation["seed"]),
        storage_dtype=storage_dtype,
    )
    return plan_shards(clips, int(simulation["shard_size"]), render, salt=json.dumps(settings, sort_keys=True))
