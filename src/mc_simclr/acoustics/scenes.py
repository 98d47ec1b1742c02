"""Recordings of moving and overlapping sound events (the DCASE SELD kind), synthesised from labeled
source clips in the paper's rooms.

One recording (:func:`synthesize_recording`) is one shoebox room with one array, drawn as the static
clips' scenes are (:func:`~mc_simclr.acoustics.scene.sample_scene`). Events are laid out in
``max_polyphony`` layers: each layer plays clips one after another with drawn gaps, so that at most
``max_polyphony`` events sound at once. Each event has its own source position, drawn as a static
clip's is; a ``moving_fraction`` of them move: the source turns about the array's vertical axis at a
drawn angular speed (and optionally changes its horizontal distance), reversing where the path would
come closer than ``min_wall_distance`` to a wall or ``min_source_array_distance`` to the array.

Rendering of a moving event: its path is sampled every ``rir_hop_s`` (at most 100 ms), a RIR is
simulated at each point, and the signal is cut into half-overlapping periodic-Hann windows centred
on the points (the windows sum to one), each window convolved with its point's RIR and overlap-added:
the source glides from RIR to RIR without a step in the signal. Moving events' RIRs use
``rir.diffuse_attenuation_db`` (the image sources up to that attenuation, then the statistical
tail): the cost of a room grows with its image count, and a path needs ten RIRs per second. With a
backend that splits a path's RIRs (``simulate_path``, torchrir), each point keeps its own image
sources and the diffuse tail, one for the whole path, is convolved with the whole signal.

Labels follow the DCASE format (:mod:`mc_simclr.audio.dcase`): every 100 ms frame in which an event
sounds has a row with its class, its source index (the event's number in the recording), and the
direction and distance of the source at the frame's centre as seen from the array (azimuth in the
array frame, counter-clockwise; elevation up; distance in centimetres).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.noise import diffuse_noise, noise_gain
from mc_simclr.acoustics.rir import RIRBackend, normalize_peak
from mc_simclr.acoustics.scene import Scene, SceneConfig, make_scene, relative_direction, sample_scene
from mc_simclr.audio.dcase import LABEL_FRAME_SECONDS, METADATA_COLUMNS, label_frames
from mc_simclr.params import check_values, dataclass_from_params

_RANGES = ("angular_speed_deg_s", "radial_speed_m_s", "event_duration_s", "gap_s", "snr_db", "event_gain_db")


@dataclass(frozen=True)
class SceneSynthesisConfig:
    """The ``scenes.synthesis`` parameter block: what one recording is made of."""

    duration_s: float = 60.0
    max_polyphony: int = 2
    moving_fraction: float = 0.5
    angular_speed_deg_s: tuple[float, float] = (10.0, 40.0)  # magnitude; the direction is drawn
    radial_speed_m_s: tuple[float, float] = (0.0, 0.0)  # magnitude of the change of distance
    event_duration_s: tuple[float, float] = (1.0, 8.0)  # an event plays its clip, cut to a drawn length
    gap_s: tuple[float, float] = (0.5, 4.0)  # silence between events of one layer
    event_gain_db: tuple[float, float] = (-6.0, 0.0)  # each event's level (clips are normalised first)
    snr_db: tuple[float, float] | None = (10.0, 30.0)  # diffuse background noise; null: none
    noise_color: str = "pink"
    rir_hop_s: float = 0.1  # a moving event's RIRs: one per hop (at most one label frame)
    peak: float = 0.9

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "scenes.synthesis") -> SceneSynthesisConfig:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(params or {}).items()}
        config = dataclass_from_params(cls, values, name)
        ranges = {k: getattr(config, k) for k in _RANGES if getattr(config, k) is not None}
        bad = [k for k, v in ranges.items() if not (len(v) == 2 and all(map(math.isfinite, v)) and v[0] <= v[1])]
        check_values(
            {
                "duration_s (> 0)": config.duration_s > 0,
                "max_polyphony (1 to 3)": 1 <= config.max_polyphony <= 3,
                "moving_fraction (in [0, 1])": 0.0 <= config.moving_fraction <= 1.0,
                "rir_hop_s (in (0, 0.1])": 0.0 < config.rir_hop_s <= LABEL_FRAME_SECONDS + 1e-12,
                "event_duration_s (0 < min <= max)": config.event_duration_s[0] > 0,
                "gap_s (min >= 0)": config.gap_s[0] >= 0,
                "angular_speed_deg_s (min >= 0)": config.angular_speed_deg_s[0] >= 0,
                "radial_speed_m_s (min >= 0)": config.radial_speed_m_s[0] >= 0,
                "noise_color (white or pink)": config.noise_color in ("white", "pink"),
                "peak (in (0, 1])": 0 < config.peak <= 1,
                f"ranges [min, max] with min <= max: {bad}": not bad,
            },
            name,
        )
        return config


@dataclass(frozen=True)
class Event:
    """One sound event of a recording: which clip, when, and where its source goes."""

    index: int  # the source index of the DCASE rows
    clip_id: str
    label: str
    class_index: int
    onset_s: float
    duration_s: float
    clip_offset_s: float  # where in the clip the event starts
    gain_db: float
    start: tuple[float, float, float]  # source position at the onset (room coordinates, metres)
    angular_speed_deg_s: float  # signed; 0 for a static source
    radial_speed_m_s: float  # signed

    @property
    def moving(self) -> bool:
        return self.angular_speed_deg_s != 0.0 or self.radial_speed_m_s != 0.0


@dataclass
class Recording:
    """The plan of one recording: its room (a :class:`Scene` with the array) and its events."""

    name: str
    room: Scene
    events: list[Event] = field(default_factory=list)
    snr_db: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "room": self.room.to_record(),
            "snr_db": self.snr_db,
            "events": [asdict(e) for e in self.events],
        }


def recording_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the recording's name."""
    digest = hashlib.sha256(f"scene/{name}".encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def _source_position(rng: np.random.Generator, room: Scene, config: SceneConfig) -> np.ndarray:
    dims, center, wall = np.asarray(room.room_dims), np.asarray(room.array_center), config.min_wall_distance
    for _ in range(config.max_draws):
        source = np.array(
            [rng.uniform(wall, dims[0] - wall), rng.uniform(wall, dims[1] - wall), rng.uniform(*config.object_height)]
        )
        if np.linalg.norm(source - center) >= config.min_source_array_distance:
            return source
    raise RuntimeError(
        f"no source position at least {config.min_source_array_distance} m from the array in "
        f"{config.max_draws} draws (room {room.room_dims}); lower scenes.room.min_source_array_distance"
    )


def plan_recording(
    name: str,
    clips: pd.DataFrame,
    class_names: list[str],
    synthesis: SceneSynthesisConfig,
    rooms: SceneConfig,
    seed: int,
) -> Recording:
    """Draw one recording: a room, then events from ``clips`` (``clip_id``, ``label``, ``duration``)."""
    if clips.empty:
        raise ValueError(f"recording {name}: no source clips to draw events from")
    rng = recording_rng(seed, name)
    room = sample_scene(rng, rooms)
    snr = None if synthesis.snr_db is None else float(rng.uniform(*synthesis.snr_db))
    classes = {c: i for i, c in enumerate(class_names)}
    recording = Recording(name, room, snr_db=snr)
    starts = []
    for _ in range(synthesis.max_polyphony):  # layers
        t = float(rng.uniform(0.0, synthesis.gap_s[1]))
        while t < synthesis.duration_s - synthesis.event_duration_s[0]:
            clip = clips.iloc[int(rng.integers(len(clips)))]
            length = min(
                float(rng.uniform(*synthesis.event_duration_s)), float(clip["duration"]), synthesis.duration_s - t
            )
            offset = float(rng.uniform(0.0, max(0.0, float(clip["duration"]) - length)))
            moving = rng.random() < synthesis.moving_fraction
            speed = float(rng.uniform(*synthesis.angular_speed_deg_s)) * rng.choice([-1.0, 1.0]) if moving else 0.0
            radial = float(rng.uniform(*synthesis.radial_speed_m_s)) * rng.choice([-1.0, 1.0]) if moving else 0.0
            starts.append(
                dict(
                    clip_id=str(clip["clip_id"]),
                    label=str(clip["label"]),
                    class_index=classes[str(clip["label"])],
                    onset_s=t,
                    duration_s=length,
                    clip_offset_s=offset,
                    gain_db=float(rng.uniform(*synthesis.event_gain_db)),
                    start=tuple(float(v) for v in _source_position(rng, room, rooms)),
                    angular_speed_deg_s=speed,
                    radial_speed_m_s=radial,
                )
            )
            t += length + float(rng.uniform(*synthesis.gap_s))
    starts.sort(key=lambda e: e["onset_s"])
    recording.events = [Event(index=i, **e) for i, e in enumerate(starts)]
    return recording


def _inside(position: np.ndarray, room: Scene, rooms: SceneConfig) -> bool:
    dims, wall = np.asarray(room.room_dims), rooms.min_wall_distance
    horizontal = np.linalg.norm(position[:2] - np.asarray(room.array_center)[:2])
    return bool(np.all(position[:2] >= wall) and np.all(position[:2] <= dims[:2] - wall)) and (
        np.linalg.norm(position - np.asarray(room.array_center)) >= rooms.min_source_array_distance
        and horizontal > 1e-6
    )


def event_path(event: Event, room: Scene, rooms: SceneConfig, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (s, from the event's onset) and room positions ``(K, 3)`` of the source, one per hop.

    A static source has one point. A moving one turns about the array's vertical axis at its angular
    speed and changes its horizontal distance at its radial speed; a step that would leave the allowed
    region reverses both (a step that fails both ways keeps the source where it is).
    """
    start = np.asarray(event.start, dtype=np.float64)
    if not event.moving:
        return np.zeros(1), start[None, :]
    center = np.asarray(room.array_center)
    n = int(math.ceil(event.duration_s / hop_s - 1e-9)) + 1
    positions = [start]
    omega, radial = math.radians(event.angular_speed_deg_s), event.radial_speed_m_s
    for _ in range(n - 1):
        here = positions[-1]
        for sign in (1.0, -1.0):
            offset = here[:2] - center[:2]
            radius = float(np.linalg.norm(offset))
            angle = math.atan2(offset[1], offset[0]) + sign * omega * hop_s
            new_radius = radius + sign * radial * hop_s
            step = np.array(
                [center[0] + new_radius * math.cos(angle), center[1] + new_radius * math.sin(angle), here[2]]
            )
            if new_radius > 0 and _inside(step, room, rooms):
                if sign < 0:
                    omega, radial = -omega, -radial
                positions.append(step)
                break
        else:
            positions.append(here.copy())
    return np.arange(n) * hop_s, np.stack(positions)


def _positions_at(times: np.ndarray, path_times: np.ndarray, path: np.ndarray) -> np.ndarray:
    if len(path) == 1:
        return np.repeat(path, len(times), axis=0)
    return np.stack([np.interp(times, path_times, path[:, d]) for d in range(3)], axis=1)


def event_rows(event: Event, room: Scene, rooms: SceneConfig, hop_s: float, n_frames: int) -> pd.DataFrame:
    """The DCASE rows of one event: one per 100 ms frame it sounds in, at the frame centre's position."""
    first = int(math.floor(event.onset_s / LABEL_FRAME_SECONDS + 1e-9))
    last = int(math.ceil((event.onset_s + event.duration_s) / LABEL_FRAME_SECONDS - 1e-9)) - 1
    frames = np.arange(first, min(last, n_frames - 1) + 1)
    centres = np.clip((frames + 0.5) * LABEL_FRAME_SECONDS - event.onset_s, 0.0, event.duration_s)
    path_times, path = event_path(event, room, rooms, hop_s)
    positions = _positions_at(centres, path_times, path)
    orientation = room.array.orientation_deg if room.array is not None else room.array_orientation_deg
    directions = [relative_direction(np.asarray(room.array_center), p, orientation) for p in positions]
    return pd.DataFrame(
        {
            "frame": frames,
            "class": event.class_index,
            "source": event.index,
            "azimuth": [d[0] for d in directions],
            "elevation": [d[1] for d in directions],
            "distance": [100.0 * d[2] for d in directions],
        },
        columns=list(METADATA_COLUMNS),
    )


def path_scenes(room: Scene, positions: np.ndarray) -> list[Scene]:
    """One scene of ``room`` (its room, RT60 and array) per source position of a path."""
    array = room.array or ArrayGeometry.circular(len(room.mic_positions), room.array_diameter)
    return [
        make_scene(np.asarray(room.room_dims), room.rt60, np.asarray(room.array_center), position, array=array)
        for position in positions
    ]


def render_moving(signal: np.ndarray, rirs: list[np.ndarray], hop: int) -> np.ndarray:
    """``signal`` (n,) through a time-varying RIR: ``rirs[k]`` holds around sample ``k * hop``.

    The signal is cut into periodic-Hann windows of ``2 hop`` centred on ``k * hop`` (which sum to
    one wherever two overlap), each convolved with its RIR and overlap-added. Returns
    ``(n_mics, n + longest RIR - 1)``.
    """
    n = len(signal)
    n_mics, longest = rirs[0].shape[0], max(r.shape[1] for r in rirs)
    window = np.hanning(2 * hop + 1)[:-1]  # periodic Hann
    padded = np.concatenate([np.zeros(hop), signal, np.zeros(2 * hop)])
    nfft = 1 << int(math.ceil(math.log2(2 * hop + longest - 1)))
    out = np.zeros((n_mics, n + 2 * hop + longest + 2 * hop))
    for k, rir in enumerate(rirs):
        block = padded[k * hop : k * hop + 2 * hop]
        if len(block) < 2 * hop:  # past the signal (a path longer than the signal)
            break
        spectrum = np.fft.rfft(block * window, nfft)
        wet = np.fft.irfft(spectrum[None, :] * np.fft.rfft(rir, nfft, axis=-1), nfft, axis=-1)
        length = 2 * hop + rir.shape[1] - 1
        out[:, k * hop : k * hop + length] += wet[:, :length]
    # padded sample hop is signal sample 0
    return out[:, hop : hop + n + longest - 1]


def render_event(
    event: Event,
    signal: np.ndarray,
    room: Scene,
    rooms: SceneConfig,
    backend: RIRBackend,
    sample_rate: int,
    hop_s: float,
) -> np.ndarray:
    """One event's multichannel audio ``(n_mics, n)`` from its onset (its reverberation included)."""
    from scipy.signal import fftconvolve

    _, path = event_path(event, room, rooms, hop_s)
    scenes = path_scenes(room, path)
    if len(scenes) == 1:
        return fftconvolve(signal[None, :], backend.simulate(scenes[0], sample_rate), axes=-1)
    hop = int(round(hop_s * sample_rate))
    if not hasattr(backend, "simulate_path"):  # a RIR per point, whole
        return render_moving(signal, [backend.simulate(scene, sample_rate) for scene in scenes], hop)
    early, late = backend.simulate_path(scenes, sample_rate)
    return render_path(signal, early, late, hop)


def render_path(signal: np.ndarray, early: np.ndarray, late: np.ndarray, hop: int) -> np.ndarray:
    """``signal`` (n,) through a path's split RIRs (``RIRBackend.simulate_path``): the image-source
    parts ``early[k]`` crossfaded from point to point (:func:`render_moving`) plus the shared late
    part ``late`` through the whole signal. Returns ``(n_mics, n + late.shape[1] - 1)``."""
    from scipy.signal import fftconvolve

    moving = render_moving(signal, list(early), hop)
    out = fftconvolve(signal[None, :], late, axes=-1)
    out[:, : moving.shape[1]] += moving
    return out


def synthesize_recording(
    recording: Recording,
    load_clip,
    rooms: SceneConfig,
    synthesis: SceneSynthesisConfig,
    backend: RIRBackend,
    moving_backend: RIRBackend,
    sample_rate: int,
    seed: int,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The audio ``(n_mics, duration * rate)`` float32 and the DCASE rows of ``recording``.

    ``load_clip(clip_id)`` returns a mono clip at ``sample_rate``. Static events are rendered with
    ``backend``, moving ones with ``moving_backend``.
    """
    n = int(round(synthesis.duration_s * sample_rate))
    n_frames = label_frames(synthesis.duration_s)
    room = recording.room
    audio = np.zeros((len(room.mic_positions), n))
    rows = []
    for event in recording.events:
        clip = np.asarray(load_clip(event.clip_id), dtype=np.float64)
        start = int(round(event.clip_offset_s * sample_rate))
        signal = clip[start : start + int(round(event.duration_s * sample_rate))]
        rms = float(np.sqrt(np.mean(signal**2))) if len(signal) else 0.0
        if rms == 0.0:  # a silent stretch of the clip: no event, no rows
            continue
        fade = min(len(signal) // 2, int(0.01 * sample_rate))  # 10 ms fades: no click at the cut
        if fade:
            ramp = np.sin(np.linspace(0.0, np.pi / 2, fade)) ** 2
            signal = signal.copy()
            signal[:fade] *= ramp
            signal[-fade:] *= ramp[::-1]
        signal = signal / rms * 10.0 ** (event.gain_db / 20.0)
        wet = render_event(
            event, signal, room, rooms, moving_backend if event.moving else backend, sample_rate, synthesis.rir_hop_s
        )
        onset = int(round(event.onset_s * sample_rate))
        take = min(wet.shape[1], n - onset)
        audio[:, onset : onset + take] += wet[:, :take]
        rows.append(event_rows(event, room, rooms, synthesis.rir_hop_s, n_frames))
    if recording.snr_db is not None:
        rng = recording_rng(seed, f"{recording.name}/noise")
        noise = diffuse_noise(n, np.asarray(room.mic_positions), sample_rate, rng, synthesis.noise_color)
        power = float(np.mean(audio**2))
        audio = audio + noise_gain(power, recording.snr_db) * noise
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(METADATA_COLUMNS))
    audio = audio.astype(np.float32)
    return (normalize_peak(audio, synthesis.peak) if np.any(audio) else audio), table


def with_diffuse_attenuation(backend_options: dict[str, Any], diffuse_attenuation_db: float) -> dict[str, Any]:
    """Backend options with another ``diffuse_attenuation_db`` (moving events' RIRs)."""
    return {**backend_options, "diffuse_attenuation_db": float(diffuse_attenuation_db)}


__all__ = [
    "Event",
    "Recording",
    "SceneSynthesisConfig",
    "event_path",
    "event_rows",
    "path_scenes",
    "plan_recording",
    "recording_rng",
    "render_moving",
    "render_path",
    "synthesize_recording",
    "with_diffuse_attenuation",
]
