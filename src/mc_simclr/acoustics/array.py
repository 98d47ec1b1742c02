"""Microphone arrays from configuration: circular, tetrahedral (the DCASE "MIC format"), linear or custom.

An :class:`ArrayGeometry` holds the microphone positions in the *array frame*: metres, centred on the
array, x towards microphone 0 for the circular array (the azimuth origin), z up. ``orientation_deg``
turns the array about the vertical axis in the room. Every pipeline takes the geometry from the
``array`` parameter block: the scene sampler and the RIR backends place the microphones with it, the
features have one log-Mel channel per microphone and one GCC-PHAT channel per pair, the channel
symmetries of ChannelSwap are derived from it (:mod:`mc_simclr.acoustics.symmetry`), and model files
store it, so that recordings of another array are refused.

What the array can tell about a direction (``resolves``):

* ``azimuth``: a horizontal planar array (circular, a planar custom array);
* ``direction``: azimuth and elevation, for an array that is not planar (tetrahedral);
* ``axis``: only the angle to the array's axis, for a linear array (the cone of confusion).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mc_simclr.params import check_keys

KINDS = ("circular", "tetrahedral", "linear", "custom")
#: Capsule directions (azimuth, elevation; degrees) of the tetrahedral "MIC format" of the DCASE
#: SELD datasets (TAU-NIGENS Spatial Sound Events, STARSS23): an Eigenmike-style tetrahedron.
MIC_FORMAT = ((45.0, 35.0), (-45.0, -35.0), (135.0, -35.0), (-135.0, 35.0))
#: The settings of each kind: the keys of its block under ``array``.
KIND_KEYS = {
    "circular": ("n_mics", "diameter"),
    "tetrahedral": ("radius", "directions_deg"),
    "linear": ("n_mics", "spacing"),
    "custom": ("positions",),
}
#: Two microphones closer than this (metres) are one microphone.
MIN_SPACING = 1e-3


def direction_vectors(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors ``(..., 3)`` of directions given by azimuth and elevation (degrees)."""
    az = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def mic_pairs(n_mics: int) -> list[tuple[int, int]]:
    """Microphone pairs in the feature order (the GCC-PHAT channels): (0,1), (0,2), ..., (M-2, M-1)."""
    return list(itertools.combinations(range(n_mics), 2))


def _rotation_z(degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    return np.array([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0, 0, 1.0]])


@dataclass(frozen=True)
class ArrayGeometry:
    """Microphone positions ``(n_mics, 3)`` in the array frame, and the array's turn in the room."""

    kind: str
    positions: tuple[tuple[float, float, float], ...]
    orientation_deg: float = 0.0

    # ------------------------------------------------------------------------------------------
    @classmethod
    def circular(cls, n_mics: int = 4, diameter: float = 0.1, orientation_deg: float = 0.0) -> ArrayGeometry:
        """``n_mics`` microphones on a horizontal circle, microphone 0 on +x, counter-clockwise."""
        angles = np.deg2rad(360.0 * np.arange(n_mics) / n_mics)
        radius = diameter / 2.0
        positions = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(n_mics)], axis=1)
        return cls("circular", _as_tuples(positions), float(orientation_deg))

    @classmethod
    def tetrahedral(
        cls, radius: float = 0.042, directions_deg: Any = MIC_FORMAT, orientation_deg: float = 0.0
    ) -> ArrayGeometry:
        """Capsules at ``directions_deg`` (azimuth, elevation) on a sphere of ``radius`` (default: MIC format)."""
        directions = np.asarray(directions_deg, dtype=np.float64)
        positions = radius * direction_vectors(directions[:, 0], directions[:, 1])
        return cls("tetrahedral", _as_tuples(positions), float(orientation_deg))

    @classmethod
    def linear(cls, n_mics: int = 4, spacing: float = 0.05, orientation_deg: float = 0.0) -> ArrayGeometry:
        """``n_mics`` microphones ``spacing`` apart along x, centred."""
        x = (np.arange(n_mics) - (n_mics - 1) / 2.0) * spacing
        return cls(
            "linear", _as_tuples(np.stack([x, np.zeros(n_mics), np.zeros(n_mics)], axis=1)), float(orientation_deg)
        )

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, name: str = "array") -> ArrayGeometry:
        """Build from the ``array`` parameter block: ``kind``, ``orientation_deg`` and one block of
        settings per kind (``circular``, ``tetrahedral``, ``linear``, ``custom``), of which ``kind``
        picks one (as ``corpus.source`` does); every error names ``<name>.<kind>.<key>``."""
        params = dict(params or {})
        check_keys(params, ("kind", "orientation_deg", *KINDS), name)
        kind = params.get("kind", "circular")
        if kind not in KINDS:
            raise ValueError(f"{name}.kind must be one of {list(KINDS)}, got {kind!r}")
        settings = dict(params.get(kind) or {})
        where = f"{name}.{kind}"
        check_keys(settings, KIND_KEYS[kind], where)
        orientation = float(params.get("orientation_deg") or 0.0)
        if kind == "circular":
            geometry = cls.circular(*_count_and_size(settings, "diameter", 0.1, where), orientation)
        elif kind == "tetrahedral":
            radius = float(settings.get("radius", 0.042))
            directions = settings.get("directions_deg") or MIC_FORMAT
            shape = np.shape(directions)
            if radius <= 0 or len(shape) != 2 or shape[1] != 2 or shape[0] < 2:
                raise ValueError(
                    f"{where}.radius must be > 0 and {where}.directions_deg a list of [azimuth, elevation] "
                    f"pairs, got radius {radius} and {directions!r}"
                )
            geometry = cls.tetrahedral(radius, directions, orientation)
        elif kind == "linear":
            geometry = cls.linear(*_count_and_size(settings, "spacing", 0.05, where), orientation)
        else:
            positions = settings.get("positions")
            shape = np.shape(positions) if positions is not None else ()
            if len(shape) != 2 or shape[1] != 3:
                raise ValueError(f"{where}.positions must be a list of [x, y, z] in metres, got {positions!r}")
            if shape[0] < 2:
                raise ValueError(f"{where}.positions needs at least 2 microphones, got {shape[0]}")
            array = np.asarray(positions, dtype=np.float64)
            centroid = array.mean(axis=0)
            spread = float(np.linalg.norm(array - centroid, axis=1).max())
            if np.linalg.norm(centroid) > 0.01 * max(spread, MIN_SPACING):
                raise ValueError(
                    f"{where}.positions must be centred on the array (metres from its centre): their mean is "
                    f"{[round(float(v), 4) for v in centroid]}, expected [0, 0, 0]"
                )
            geometry = cls("custom", _as_tuples(array), orientation)
        geometry.check(where)
        return geometry

    def check(self, name: str = "array") -> None:
        """Finite positions, at least two microphones, none on top of another."""
        positions = self.array
        if len(positions) < 2:
            raise ValueError(f"{name}: at least 2 microphones are needed, got {len(positions)}")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"{name}: microphone positions must be finite numbers")
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(positions))
        if distances.min() < MIN_SPACING:
            i, j = np.unravel_index(np.argmin(distances), distances.shape)
            raise ValueError(
                f"{name}: microphones {min(i, j)} and {max(i, j)} coincide (closer than {MIN_SPACING * 1000:g} mm)"
            )

    # ------------------------------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """Positions ``(n_mics, 3)`` in the array frame, as an array."""
        return np.asarray(self.positions, dtype=np.float64)

    @property
    def n_mics(self) -> int:
        return len(self.positions)

    @property
    def aperture(self) -> float:
        """The largest distance between two microphones (metres)."""
        p = self.array
        return float(np.linalg.norm(p[:, None] - p[None], axis=-1).max())

    @property
    def horizontal_radius(self) -> float:
        """How far the microphones reach from the array's centre in the horizontal plane (metres)."""
        return float(np.linalg.norm(self.array[:, :2], axis=1).max())

    @property
    def vertical_extent(self) -> float:
        """How far the microphones reach above or below the array's centre (metres)."""
        return float(np.abs(self.array[:, 2]).max())

    @property
    def resolves(self) -> str:
        """``azimuth`` (horizontal planar), ``direction`` (azimuth and elevation) or ``axis`` (linear)."""
        centred = self.array - self.array.mean(axis=0)
        rank = int(np.linalg.matrix_rank(centred, tol=1e-9 * max(self.aperture, 1e-12)))
        if rank <= 1:
            return "axis"
        if rank == 2 and np.abs(centred[:, 2]).max() < 1e-9:
            return "azimuth"
        return "direction"

    @property
    def diameter(self) -> float:
        """The circle's diameter for a circular array, else the aperture (metres)."""
        return 2.0 * self.horizontal_radius if self.kind == "circular" else self.aperture

    def offsets(self) -> np.ndarray:
        """Microphone positions ``(n_mics, 3)`` relative to the centre, turned by ``orientation_deg`` in the room."""
        if self.kind == "circular":  # microphone k at orientation + 360 k / M degrees, as the paper's array
            n = self.n_mics
            angles = np.deg2rad(self.orientation_deg + 360.0 * np.arange(n) / n)
            radius = self.horizontal_radius
            return np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(n)], axis=1)
        return self.array @ _rotation_z(self.orientation_deg).T if self.orientation_deg else self.array

    def placed(self, center: np.ndarray) -> np.ndarray:
        """Microphone positions ``(n_mics, 3)`` in the room, for the array centred at ``center``."""
        return np.asarray(center, dtype=np.float64)[None, :] + self.offsets()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "positions": [list(p) for p in self.positions],
            "orientation_deg": self.orientation_deg,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` plus ``n_mics``, ``diameter_m`` and ``resolves``: what model files store."""
        return {**self.to_dict(), "n_mics": self.n_mics, "diameter_m": self.diameter, "resolves": self.resolves}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArrayGeometry:
        """Inverse of :meth:`to_dict` (and :meth:`summary`); a dict without ``positions`` (model files
        written before arrays were configurable) is the circular array of ``n_mics`` and ``diameter_m``."""
        orientation = float(data.get("orientation_deg", 0.0) or 0.0)
        if "positions" not in data:
            return cls.circular(int(data.get("n_mics", 4)), float(data.get("diameter_m", 0.1)), orientation)
        return cls(str(data["kind"]), _as_tuples(np.asarray(data["positions"], dtype=np.float64)), orientation)

    @classmethod
    def from_json(cls, text: str) -> ArrayGeometry:
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A short description for logs and model files."""
        return (
            f"{self.kind} array of {self.n_mics} microphones, aperture {self.aperture * 100:.1f} cm ({self.resolves})"
        )


def _as_tuples(positions: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(positions, dtype=np.float64))


def _count_and_size(settings: dict[str, Any], size_key: str, default_size: float, where: str) -> tuple[int, float]:
    """``n_mics`` (default 4, at least 2) and the positive length ``size_key`` of a circular or linear block."""
    n_mics, size = int(settings.get("n_mics", 4)), float(settings.get(size_key, default_size))
    if n_mics < 2:
        raise ValueError(f"{where}.n_mics must be >= 2, got {n_mics}")
    if size <= 0:
        raise ValueError(f"{where}.{size_key} must be > 0, got {size}")
    return n_mics, size
