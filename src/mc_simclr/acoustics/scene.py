"""Random shoebox scenes drawn as in the MC-SimCLR paper, and the array geometry they use.

Conventions (see ``docs/geometry.md``):

* Coordinates in metres, room corner at the origin, z up.
* The array is an :class:`~mc_simclr.acoustics.array.ArrayGeometry` (the ``array`` parameter block):
  microphone positions in the array frame, turned by ``orientation_deg`` about the vertical axis in
  the room. The paper's array is a circle of 4 omnidirectional microphones of 0.1 m diameter
  parallel to the floor; microphone ``k`` of a circular array sits at angle
  ``orientation + 360 k / n_mics`` degrees around the centre, so with the default orientation 0
  microphone 0 lies on the +x axis and the others follow counter-clockwise.
* The source azimuth is measured in the array frame's horizontal plane from its x axis (the
  direction of microphone 0 of a circular array), counter-clockwise positive, in degrees wrapped
  to (-180, 180]; elevation is positive upwards.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.params import dataclass_from_params

SPEED_OF_SOUND = 343.0


def wrap_degrees(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles in degrees to the interval (-180, 180]."""
    wrapped = -((-np.asarray(angle, dtype=np.float64) + 180.0) % 360.0 - 180.0)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def circular_array(center: np.ndarray, diameter: float, n_mics: int = 4, orientation_deg: float = 0.0) -> np.ndarray:
    """Positions (n_mics, 3) of a horizontal circular array around ``center``."""
    return ArrayGeometry.circular(n_mics, diameter, orientation_deg).placed(center)


def azimuth_from_vector(vector: np.ndarray) -> np.ndarray:
    """Azimuth in degrees from ``(..., 2)`` = (cos, sin) predictions."""
    vector = np.asarray(vector, dtype=np.float64)
    return np.degrees(np.arctan2(vector[..., 1], vector[..., 0]))


def azimuth_to_vector(azimuth_deg: np.ndarray) -> np.ndarray:
    """(cos, sin) targets ``(..., 2)`` for azimuths in degrees."""
    radians = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=-1)


def relative_direction(
    array_center: np.ndarray, source: np.ndarray, orientation_deg: float = 0.0
) -> tuple[float, float, float]:
    """Azimuth and elevation (degrees) and distance (m) of ``source`` seen from the array."""
    delta = np.asarray(source, dtype=np.float64) - np.asarray(array_center, dtype=np.float64)
    horizontal = math.hypot(delta[0], delta[1])
    azimuth = wrap_degrees(math.degrees(math.atan2(delta[1], delta[0])) - orientation_deg)
    elevation = math.degrees(math.atan2(delta[2], horizontal))
    return float(azimuth), float(elevation), float(np.linalg.norm(delta))


def sabine_absorption(room_dims: np.ndarray, rt60: float, c: float = SPEED_OF_SOUND) -> float:
    """Uniform energy absorption coefficient a shoebox needs to reach ``rt60`` (Sabine).

    A value above 1 means the room cannot be that dry: it is redrawn, as gpuRIR users do, and as
    ``pyroomacoustics.inverse_sabine`` and ``torchrir`` both refuse such rooms.
    """
    lx, ly, lz = (float(v) for v in room_dims)
    volume = lx * ly * lz
    surface = 2.0 * (lx * ly + lx * lz + ly * lz)
    return 24.0 * math.log(10.0) * volume / (c * surface * rt60)


@dataclass(frozen=True)
class SceneConfig:
    """Ranges a scene is drawn from; defaults are the paper's (section 4.1)."""

    room_width: tuple[float, float] = (3.0, 10.0)
    room_length: tuple[float, float] = (3.0, 10.0)
    room_height: tuple[float, float] = (2.5, 4.0)
    rt60: tuple[float, float] = (0.1, 1.0)
    object_height: tuple[float, float] = (0.5, 2.0)
    min_wall_distance: float = 0.5
    min_source_array_distance: float = 0.5
    max_draws: int = 1000
    array: ArrayGeometry = field(default_factory=ArrayGeometry.circular)

    @classmethod
    def from_params(
        cls, params: dict[str, Any], array: ArrayGeometry | dict[str, Any] | None = None, name: str = "simulation.scene"
    ) -> SceneConfig:
        """Build from a parameters dictionary and the ``array`` block (or geometry), naming
        ``name.<key>`` in every error."""
        moved = sorted({"array_diameter", "array_orientation_deg", "n_mics"} & set(params))
        if moved:
            raise ValueError(
                f"{name}.{moved[0]}: the array is configured by the `array` block of "
                "parameters_data_simulation.yml now (kind, n_mics, diameter, orientation_deg, ...)"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k != "array"}
        config = dataclass_from_params(cls, values, name)
        if array is not None:
            geometry = array if isinstance(array, ArrayGeometry) else ArrayGeometry.from_params(array)
            config = replace(config, array=geometry)
        config.validate(name)
        return config

    # the paper's geometry by its old names (a circular array)
    @property
    def array_diameter(self) -> float:
        return self.array.diameter

    @property
    def n_mics(self) -> int:
        return self.array.n_mics

    def validate(self, name: str = "simulation.scene") -> None:
        """Raise ``ValueError`` naming the parameter when the ranges cannot produce a scene."""
        for key in ("room_width", "room_length", "room_height", "rt60", "object_height"):
            low, high = getattr(self, key)
            if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high < low:
                raise ValueError(f"{name}.{key} must be [low, high] with 0 < low <= high, got {[low, high]}")
        if self.min_wall_distance < 0 or self.min_source_array_distance < 0:
            raise ValueError(f"{name}.min_wall_distance and {name}.min_source_array_distance must be >= 0")
        margin = self.min_wall_distance + self.array.horizontal_radius
        for key in ("room_width", "room_length"):
            if getattr(self, key)[1] <= 2.0 * margin:
                raise ValueError(
                    f"{name}.{key} (max {getattr(self, key)[1]} m) leaves no floor area at least "
                    f"{name}.min_wall_distance = {self.min_wall_distance} m from the walls"
                )
        reach = self.array.horizontal_radius
        smallest = min(self.room_width[0], self.room_length[0])
        if smallest <= 2.0 * margin:
            raise ValueError(
                f"array: its microphones reach {reach:.3f} m from its centre, which with "
                f"{name}.min_wall_distance = {self.min_wall_distance} m does not fit in the smallest room of "
                f"{name}.room_width / room_length ({smallest} m)"
            )
        vertical = self.array.vertical_extent
        if self.object_height[0] - vertical <= 0 or self.object_height[1] + vertical >= self.room_height[0]:
            raise ValueError(
                f"array: its microphones reach {vertical:.3f} m above and below its centre, which leaves the "
                f"room at {name}.object_height {list(self.object_height)} in a room of height {self.room_height[0]} m"
            )
        if self.object_height[0] < self.min_wall_distance - 1e-9:
            raise ValueError(f"{name}.object_height must start at or above {name}.min_wall_distance")
        if self.object_height[1] > self.room_height[1] - self.min_wall_distance:
            raise ValueError(
                f"{name}.object_height (max {self.object_height[1]} m) does not fit under the highest "
                f"ceiling of {name}.room_height minus {name}.min_wall_distance"
            )
        # The driest room of the range must be able to reach the longest RT60 at least.
        largest = np.array([self.room_width[1], self.room_length[1], self.room_height[1]])
        if sabine_absorption(largest, self.rt60[1]) > 1.0:
            raise ValueError(
                f"{name}.rt60 up to {self.rt60[1]} s is unreachable in every room of the given size range "
                "(Sabine absorption above 1)"
            )
        if self.max_draws < 1:
            raise ValueError(f"{name}.max_draws must be >= 1")


@dataclass(frozen=True)
class Scene:
    """One simulated recording set-up: a shoebox room, a source and a circular array."""

    room_dims: tuple[float, float, float]
    rt60: float
    array_center: tuple[float, float, float]
    mic_positions: tuple[tuple[float, float, float], ...]
    source_position: tuple[float, float, float]
    azimuth_deg: float
    elevation_deg: float
    distance_m: float
    array_diameter: float = 0.1
    array_orientation_deg: float = 0.0
    redraws: int = field(default=0, compare=False)
    array: ArrayGeometry | None = None  # None: the circular array of ``array_diameter``

    def to_record(self) -> dict[str, float | int]:
        """Flat row for the scene table (parquet-friendly scalars)."""
        row: dict[str, float | int] = {
            "room_x": self.room_dims[0],
            "room_y": self.room_dims[1],
            "room_z": self.room_dims[2],
            "rt60": self.rt60,
            "array_x": self.array_center[0],
            "array_y": self.array_center[1],
            "array_z": self.array_center[2],
            "source_x": self.source_position[0],
            "source_y": self.source_position[1],
            "source_z": self.source_position[2],
            "azimuth_deg": self.azimuth_deg,
            "elevation_deg": self.elevation_deg,
            "distance_m": self.distance_m,
            "array_orientation_deg": self.array_orientation_deg,
            "array_diameter": self.array_diameter,
            "n_mics": len(self.mic_positions),
            "redraws": self.redraws,
        }
        if self.array is not None:
            row["array"] = self.array.to_json()
        return row

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Scene:
        """Inverse of :meth:`to_record`."""
        center = np.array([row["array_x"], row["array_y"], row["array_z"]], dtype=np.float64)
        geometry = scene_geometry(row)
        mics = geometry.placed(center)
        return cls(
            room_dims=(float(row["room_x"]), float(row["room_y"]), float(row["room_z"])),
            rt60=float(row["rt60"]),
            array_center=tuple(float(v) for v in center),
            mic_positions=tuple(tuple(float(v) for v in m) for m in mics),
            source_position=(float(row["source_x"]), float(row["source_y"]), float(row["source_z"])),
            azimuth_deg=float(row["azimuth_deg"]),
            elevation_deg=float(row["elevation_deg"]),
            distance_m=float(row["distance_m"]),
            array_diameter=float(row["array_diameter"]),
            array_orientation_deg=float(row["array_orientation_deg"]),
            redraws=int(row.get("redraws", 0)),
            array=geometry if isinstance(row.get("array"), str) and row.get("array") else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scene_geometry(row: dict[str, Any]) -> ArrayGeometry:
    """The array of a scene-table row: its ``array`` column, or (tables written before it) the circular
    array of ``array_diameter``, ``n_mics`` and ``array_orientation_deg``."""
    text = row.get("array")
    if isinstance(text, str) and text:
        return ArrayGeometry.from_json(text)
    return ArrayGeometry.circular(int(row["n_mics"]), float(row["array_diameter"]), float(row["array_orientation_deg"]))


def table_geometry(table: Any, name: str = "spatial_audio") -> ArrayGeometry:
    """The one array of a scene table or rendered-audio metadata (a DataFrame with scene columns)."""
    if len(table) == 0:
        raise ValueError(f"{name} has no clip, so no microphone array")
    if "array" not in table and "n_mics" not in table:
        raise ValueError(
            f"{name} does not say which microphone array recorded it (no `array` column of the scene table): "
            "render it with the data_simulation pipeline"
        )
    if "array" in table:
        values = sorted({v for v in table["array"] if isinstance(v, str) and v})
        if len(values) > 1:
            raise ValueError(
                f"{name} mixes {len(values)} microphone arrays: render it again with one `array` block "
                "(kedro run --pipeline=data_simulation)"
            )
    return scene_geometry(table.iloc[0].to_dict())


def make_scene(
    room_dims: np.ndarray,
    rt60: float,
    array_center: np.ndarray,
    source_position: np.ndarray,
    array_diameter: float = 0.1,
    n_mics: int = 4,
    array_orientation_deg: float = 0.0,
    redraws: int = 0,
    array: ArrayGeometry | None = None,
) -> Scene:
    """Build a :class:`Scene` from explicit positions (used by the sampler and by tests).

    ``array`` is the geometry (its own ``orientation_deg``); without it, the circular array of
    ``array_diameter``, ``n_mics`` and ``array_orientation_deg``."""
    geometry = array or ArrayGeometry.circular(n_mics, array_diameter, array_orientation_deg)
    center = np.asarray(array_center, dtype=np.float64)
    source = np.asarray(source_position, dtype=np.float64)
    mics = geometry.placed(center)
    azimuth, elevation, distance = relative_direction(center, source, geometry.orientation_deg)
    return Scene(
        room_dims=tuple(float(v) for v in room_dims),
        rt60=float(rt60),
        array_center=tuple(float(v) for v in center),
        mic_positions=tuple(tuple(float(v) for v in m) for m in mics),
        source_position=tuple(float(v) for v in source),
        azimuth_deg=azimuth,
        elevation_deg=elevation,
        distance_m=distance,
        array_diameter=geometry.diameter,
        array_orientation_deg=geometry.orientation_deg,
        redraws=redraws,
        array=geometry if array is not None else None,
    )


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator that depends only on the global seed and the clip id, not on row order."""
    digest = hashlib.sha256(str(clip_id).encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def sample_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """Draw one scene: room, RT60, array and source positions (paper section 4.1).

    Rooms that cannot reach their RT60 are redrawn together with the RT60; source positions closer
    than ``min_source_array_distance`` to the array are redrawn. Both counts are kept in
    ``Scene.redraws``.
    """
    redraws = 0
    wall = config.min_wall_distance
    for _ in range(config.max_draws):
        dims = np.array(
            [rng.uniform(*config.room_width), rng.uniform(*config.room_length), rng.uniform(*config.room_height)]
        )
        rt60 = rng.uniform(*config.rt60)
        if sabine_absorption(dims, rt60) > 1.0:
            redraws += 1
            continue
        margin = wall + config.array.horizontal_radius
        center = np.array(
            [
                rng.uniform(margin, dims[0] - margin),
                rng.uniform(margin, dims[1] - margin),
                rng.uniform(*config.object_height),
            ]
        )
        for _ in range(config.max_draws):
            source = np.array(
                [
                    rng.uniform(wall, dims[0] - wall),
                    rng.uniform(wall, dims[1] - wall),
                    rng.uniform(*config.object_height),
                ]
            )
            if np.linalg.norm(source - center) >= config.min_source_array_distance:
                return make_scene(dims, rt60, center, source, redraws=redraws, array=config.array)
            redraws += 1
    raise RuntimeError(
        f"No valid scene after {config.max_draws} draws: check the simulation.scene ranges "
        "(room sizes, RT60, minimum distances)"
    )
