"""Channel symmetries of any microphone array, derived from its geometry, and the direction labels they map.

A symmetry is a permutation ``perm`` of the microphones together with an orthogonal transform ``R``
of space (a rotation, a reflection or a rotoreflection about the array's centre) such that
``R p[perm[m]] = p[m]`` for every microphone ``m`` (within a tolerance). Swapping the channels by
``perm`` (new channel ``m`` = old channel ``perm[m]``) then gives what the array would have recorded
of the source moved by ``R``: the direction label ``d`` becomes ``R d``. ChannelSwap draws from these
symmetries; the GCC-PHAT channels follow the permutation of their pairs (a pair stored the other
way round has its lag axis reversed).

:meth:`ArraySymmetries.of` finds every such permutation: a depth-first search over the permutations
that keep each microphone's distance from the centre and every distance between two microphones,
then orthogonal Procrustes in the span of the array for ``R`` (identity on the directions the array
does not span, so that a horizontal planar array keeps "up" as up). Expected sizes, tested: a
regular M-gon 2M (the square 8, the hexagon 12), the DCASE tetrahedral "MIC format" 8 (its
elevations of +-35 degrees make it a tetrahedron squashed along the vertical, so only the 8
transforms that fix the vertical axis up to sign remain; a regular tetrahedron at +-35.26 degrees
has all 24), a uniform linear array 2.

Direction labels (:class:`DirectionLabels`) follow what the array resolves
(:attr:`~mc_simclr.acoustics.array.ArrayGeometry.resolves`): ``azimuth`` for a horizontal planar
array (only the symmetries that fix the vertical axis up to sign are kept, so that azimuth labels
map to azimuth labels), ``direction`` (azimuth and elevation) for a 3-D array (every symmetry), and
``axis`` for a linear array: the angle between the source direction and the array axis, the one
thing it can tell (the cone of confusion).

The order of the symmetries is canonical: proper transforms first, then by ``perm[0]`` and ``perm``.
For a regular M-gon this reproduces the classic numbering (symmetry ``k < M`` turns the azimuth by
``-k 360 / M``, symmetry ``M + k`` maps it to ``-azimuth + k 360 / M``), and the azimuth map of a
symmetry that fixes the vertical axis is computed in closed form with the exact offsets, so that the
paper's square gives the same numbers as before.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mc_simclr.acoustics.array import ArrayGeometry, direction_vectors, mic_pairs
from mc_simclr.acoustics.scene import azimuth_from_vector, azimuth_to_vector, wrap_degrees

#: Default tolerance of a symmetry, as a fraction of the array's aperture (0.1 mm on a 0.1 m array).
DEFAULT_TOLERANCE = 1e-3
LABEL_KINDS = ("azimuth", "direction", "axis")


def vector_angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees) of vectors ``(..., 3)`` (need not be unit length)."""
    v = np.asarray(vectors, dtype=np.float64)
    azimuth = np.degrees(np.arctan2(v[..., 1], v[..., 0]))
    elevation = np.degrees(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return azimuth, elevation


# --------------------------------------------------------------------------------------------
# Direction labels
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DirectionLabels:
    """What the array can tell about a direction, as a regression target and as clip columns.

    * ``azimuth``: target ``(cos az, sin az)``; predictions ``pred_azimuth``; metric ``azimuth_error``.
    * ``direction``: target the unit vector; predictions ``pred_azimuth`` and ``pred_elevation``;
      metrics ``azimuth_error``, ``elevation_error`` and ``angular_error`` (great circle).
    * ``axis``: target ``(cos theta, sin theta)`` of the angle ``theta`` in [0, 180] between the
      direction and ``axis`` (the array's axis in the array frame); truth column ``axis_angle_deg``,
      prediction ``pred_axis_angle``; metric ``axis_error``.
    """

    kind: str = "azimuth"
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"direction labels must be one of {list(LABEL_KINDS)}, got {self.kind!r}")

    @property
    def dim(self) -> int:
        """Size of the regression target."""
        return 3 if self.kind == "direction" else 2

    @property
    def metrics(self) -> tuple[str, ...]:
        """The localisation metrics of these labels (degrees)."""
        return {
            "azimuth": ("azimuth_error",),
            "direction": ("azimuth_error", "elevation_error", "angular_error"),
            "axis": ("axis_error",),
        }[self.kind]

    def axis_angle(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """Angle (degrees, [0, 180]) between the directions and the array axis."""
        cosine = direction_vectors(azimuth_deg, elevation_deg) @ np.asarray(self.axis, dtype=np.float64)
        return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))

    def vectors(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """Regression targets ``(N, dim)`` float64 of directions (degrees)."""
        if self.kind == "azimuth":
            return azimuth_to_vector(azimuth_deg)
        if self.kind == "direction":
            return direction_vectors(azimuth_deg, elevation_deg)
        return azimuth_to_vector(self.axis_angle(azimuth_deg, elevation_deg))  # (cos, sin) of the axis angle

    def truth(self, azimuth_deg, elevation_deg) -> dict[str, np.ndarray]:
        """Label columns a clip table needs besides ``azimuth_deg`` and ``elevation_deg``."""
        return {"axis_angle_deg": self.axis_angle(azimuth_deg, elevation_deg)} if self.kind == "axis" else {}

    def decode(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """Prediction columns from predicted target vectors ``(N, dim)`` (any length)."""
        if self.kind == "azimuth":
            return {"pred_azimuth": azimuth_from_vector(vectors)}
        if self.kind == "direction":
            azimuth, elevation = vector_angles(vectors)
            return {"pred_azimuth": azimuth, "pred_elevation": elevation}
        return {"pred_axis_angle": np.abs(azimuth_from_vector(vectors))}

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "axis": list(self.axis)}

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> DirectionLabels:
        data = dict(data or {})
        return cls(str(data.get("kind", "azimuth")), tuple(float(v) for v in data.get("axis", (1.0, 0.0, 0.0))))

    @classmethod
    def of(cls, geometry: ArrayGeometry) -> DirectionLabels:
        """The labels the array resolves; a linear array's axis is its principal direction."""
        kind = geometry.resolves
        if kind != "axis":
            return cls(kind)
        centred = geometry.array - geometry.array.mean(axis=0)
        axis = np.linalg.svd(centred)[2][0]
        axis = axis if axis[np.argmax(np.abs(axis))] > 0 else -axis  # pointing along +x, +y or +z
        return cls("axis", tuple(float(v) for v in axis))


# --------------------------------------------------------------------------------------------
# Symmetries
# --------------------------------------------------------------------------------------------
def _distance_preserving(positions: np.ndarray, tolerance: float) -> Iterator[tuple[int, ...]]:
    """Permutations ``perm`` with ``|p[perm[i]]| = |p[i]|`` and ``|p[perm[i]] - p[perm[j]]| = |p[i] - p[j]|``."""
    n = len(positions)
    norms = np.linalg.norm(positions, axis=1)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)

    def extend(perm: list[int]) -> Iterator[tuple[int, ...]]:
        i = len(perm)
        if i == n:
            yield tuple(perm)
            return
        for j in range(n):
            if j in perm or abs(norms[j] - norms[i]) > tolerance:
                continue
            if all(abs(distances[j, perm[k]] - distances[i, k]) <= tolerance for k in range(i)):
                yield from extend([*perm, j])

    yield from extend([])


def _procrustes(source: np.ndarray, target: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Orthogonal ``R`` (3x3) with ``R source[m] ~ target[m]``, fitted in the span ``basis`` (3 x r) of
    the array and the identity on its orthogonal complement."""
    a, b = source @ basis, target @ basis  # (M, r) coordinates in the array's span
    u, _, vt = np.linalg.svd(a.T @ b)
    inner = (u @ vt).T  # r x r, maps a's coordinates onto b's
    return basis @ inner @ basis.T + (np.eye(3) - basis @ basis.T)


@dataclass(frozen=True)
class ArraySymmetries:
    """The channel symmetries of an array and the labels they map (see the module docstring).

    ``permutations`` ``(S, M)``: symmetry ``s`` makes channel ``m`` out of channel ``permutations[s, m]``;
    ``rotations`` ``(S, 3, 3)``: the transform of directions in the array frame; symmetry 0 is the identity.
    """

    geometry: ArrayGeometry
    labels: DirectionLabels
    permutations: np.ndarray
    rotations: np.ndarray
    tolerance: float = DEFAULT_TOLERANCE

    def __hash__(self) -> int:
        return hash((self.geometry, self.labels, self.tolerance))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ArraySymmetries)
            and (self.geometry, self.labels, self.tolerance) == (other.geometry, other.labels, other.tolerance)
            and np.array_equal(self.permutations, other.permutations)
        )

    @classmethod
    def of(
        cls,
        geometry: ArrayGeometry | int,
        labels: str | DirectionLabels | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> ArraySymmetries:
        """Every symmetry of ``geometry`` (an int M: the regular M-gon of 0.1 m) for ``labels``
        (default: what the array resolves). ``tolerance`` is a fraction of the aperture."""
        if isinstance(geometry, (int, np.integer)):
            geometry = ArrayGeometry.circular(int(geometry))
        if labels is None:
            labels = DirectionLabels.of(geometry)
        elif isinstance(labels, str):
            labels = DirectionLabels.of(geometry) if labels == geometry.resolves else DirectionLabels(labels)
        return _derive(geometry, labels, float(tolerance))

    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.permutations)

    @property
    def n_mics(self) -> int:
        return self.geometry.n_mics

    @property
    def fixes_vertical(self) -> np.ndarray:
        """``(S,)`` whether each transform maps the vertical axis to itself (up to sign)."""
        return np.isclose(np.abs(self.rotations[:, 2, 2]), 1.0, atol=1e-9)

    @property
    def proper(self) -> np.ndarray:
        """``(S,)`` whether each transform is a rotation (determinant +1) rather than a reflection."""
        return np.linalg.det(self.rotations) > 0

    def permutation(self, symmetry: int) -> list[int]:
        """Channel order of symmetry ``symmetry``: the new channel ``m`` is the old channel ``perm[m]``."""
        if not 0 <= symmetry < len(self):
            raise ValueError(f"symmetry must be in [0, {len(self)}), got {symmetry}")
        return [int(v) for v in self.permutations[symmetry]]

    def check(self, symmetry) -> None:
        """Raise when a symmetry index (scalar, array or tensor) is out of range."""
        values = _numpy(symmetry)
        if values.size and (values.min() < 0 or values.max() >= len(self)):
            raise ValueError(f"symmetry indices must lie in [0, {len(self)}), got {values.min()}..{values.max()}")

    def feature_permutation(self, symmetry: int) -> tuple[list[int], list[bool]]:
        """Feature-channel order and lag flips that make ``features(x)`` into ``features(swap(x))``."""
        perm = self.permutation(symmetry)
        pairs = mic_pairs(self.n_mics)
        index = {pair: k for k, pair in enumerate(pairs)}
        channels, flips = list(perm), [False] * self.n_mics
        for a, b in pairs:
            i, j = perm[a], perm[b]
            channels.append(self.n_mics + index[(min(i, j), max(i, j))])
            flips.append(i > j)
        return channels, flips

    # ------------------------------------------------------------------------------------------
    @functools.cached_property
    def _azimuth_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """``sign`` and ``offset`` (degrees) with ``azimuth' = sign * azimuth + offset`` for symmetries
        that fix the vertical axis: rotations get offsets in (-360, 0], reflections in [0, 360)."""
        signs, offsets = np.ones(len(self)), np.zeros(len(self))
        for s, rotation in enumerate(self.rotations):
            if not self.fixes_vertical[s]:
                signs[s], offsets[s] = np.nan, np.nan
                continue
            block = rotation[:2, :2]
            angle = float(np.degrees(np.arctan2(block[1, 0], block[0, 0])))
            if abs(angle - round(angle)) < 1e-9:  # whole degrees exactly (the square's 90, the hexagon's 60)
                angle = float(round(angle))
            if np.linalg.det(block) > 0:
                signs[s], offsets[s] = 1.0, -((-angle) % 360.0)
            else:
                signs[s], offsets[s] = -1.0, angle % 360.0
            offsets[s] = offsets[s] + 0.0  # no negative zero
        return signs, offsets

    def map_azimuth(self, azimuth_deg, symmetry):
        """Azimuth (degrees, wrapped to (-180, 180]) of the source after ``symmetry``; scalars, NumPy
        arrays or tensors, elementwise with ``symmetry``. Only for symmetries that fix the vertical axis."""
        self.check(symmetry)
        signs, offsets = self._azimuth_maps
        if isinstance(azimuth_deg, torch.Tensor) or isinstance(symmetry, torch.Tensor):
            az = torch.as_tensor(azimuth_deg, dtype=torch.float32)
            sym = torch.as_tensor(symmetry, device=az.device)
            sign = torch.as_tensor(signs, dtype=az.dtype, device=az.device)[sym]
            offset = torch.as_tensor(offsets, dtype=az.dtype, device=az.device)[sym]
            if bool(torch.isnan(sign).any()):
                raise ValueError("map_azimuth: this symmetry does not fix the vertical axis; use map_directions")
            mapped = torch.where(sign > 0, az + offset, -az + offset)
            return -torch.remainder(-mapped + 180.0, 360.0) + 180.0
        sym = np.asarray(symmetry)
        sign, offset = signs[sym], offsets[sym]
        if np.isnan(sign).any():
            raise ValueError("map_azimuth: this symmetry does not fix the vertical axis; use map_directions")
        az = np.asarray(azimuth_deg, dtype=np.float64)
        return wrap_degrees(np.where(sign > 0, az + offset, -az + offset))

    def map_directions(self, azimuth_deg, elevation_deg, symmetry) -> tuple[np.ndarray, np.ndarray]:
        """Azimuth and elevation (degrees) of the source after ``symmetry`` (NumPy, elementwise).

        Symmetries that fix the vertical axis map the azimuth in closed form (as :meth:`map_azimuth`)
        and the elevation by the sign of that axis; the others rotate the direction vector."""
        self.check(symmetry)
        az = np.asarray(azimuth_deg, dtype=np.float64)
        el = np.asarray(elevation_deg, dtype=np.float64)
        sym = np.broadcast_to(np.asarray(symmetry), np.broadcast_shapes(az.shape, el.shape, np.shape(symmetry)))
        az, el = np.broadcast_to(az, sym.shape), np.broadcast_to(el, sym.shape)
        vertical = self.fixes_vertical[sym]
        out_az = np.array(az, dtype=np.float64, copy=True)
        out_el = np.array(el, dtype=np.float64, copy=True)
        if vertical.any():
            out_az[vertical] = self.map_azimuth(az[vertical], sym[vertical])
            out_el[vertical] = el[vertical] * np.sign(self.rotations[sym[vertical], 2, 2])
        if (~vertical).any():
            moved = np.einsum(
                "nij,nj->ni", self.rotations[sym[~vertical]], direction_vectors(az[~vertical], el[~vertical])
            )
            out_az[~vertical], out_el[~vertical] = vector_angles(moved)
        if out_az.ndim == 0:
            return float(out_az), float(out_el)
        return out_az, out_el

    def targets(self, azimuth_deg, elevation_deg, symmetry) -> np.ndarray:
        """Regression targets ``(N, dim)`` float64 of the directions after ``symmetry`` (NumPy or tensors;
        azimuth labels of tensors are mapped in float32, as the supervised protocols always have)."""
        if self.labels.kind == "azimuth":  # elevation is not needed
            mapped = self.map_azimuth(azimuth_deg, symmetry)
            return self.labels.vectors(mapped.cpu().numpy() if isinstance(mapped, torch.Tensor) else mapped, None)
        az, el = self.map_directions(_numpy(azimuth_deg), _numpy(elevation_deg), _numpy(symmetry))
        return self.labels.vectors(az, el)

    def describe(self) -> str:
        vertical = int(self.fixes_vertical.sum())
        return (
            f"{len(self)} symmetries of the {self.geometry.describe()} for {self.labels.kind} labels "
            f"({int(self.proper.sum())} rotations, {vertical} fixing the vertical axis)"
        )


def _numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


@functools.lru_cache(maxsize=32)
def _derive(geometry: ArrayGeometry, labels: DirectionLabels, tolerance: float) -> ArraySymmetries:
    positions = geometry.array
    scale = tolerance * max(geometry.aperture, 1e-12)
    _, singular, vt = np.linalg.svd(positions)
    rank = int(np.sum(singular > 1e-9 * max(singular[0], 1e-300)))
    basis = vt[:rank].T  # (3, r)
    found = []
    for perm in _distance_preserving(positions, scale):
        rotation = _procrustes(positions[list(perm)], positions, basis)
        if np.abs(positions[list(perm)] @ rotation.T - positions).max() > scale:
            continue
        if labels.kind == "azimuth" and not np.isclose(abs(rotation[2, 2]), 1.0, atol=1e-9):
            continue
        found.append((bool(np.linalg.det(rotation) < 0), perm[0], perm, rotation))
    found.sort(key=lambda item: item[:3])
    permutations = np.array([item[2] for item in found], dtype=np.int64)
    rotations = np.array([item[3] for item in found], dtype=np.float64)
    return ArraySymmetries(geometry, labels, permutations, rotations, tolerance)
