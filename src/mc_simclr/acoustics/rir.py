"""Room impulse responses (RIRs) for :class:`~mc_simclr.acoustics.scene.Scene` objects.

Three interchangeable simulators implement the :class:`RIRBackend` protocol:

* :class:`TorchRIRBackend` (default): ``torchrir`` on CPU or CUDA, gpuRIR-style, i.e. exact image
  sources for the first ``diffuse_attenuation_db`` of Sabine decay, then a statistical diffuse tail.
* :class:`PyRoomAcousticsBackend`: the full image-source method of ``pyroomacoustics`` (CPU
  reference; slow for long RT60s).
* :class:`GpuRIRBackend`: the original ``gpuRIR`` CUDA package, when it is installed.

Time-origin convention
----------------------
Every backend returns float32 RIRs of shape ``(n_mics, n_samples)`` whose sample 0 is the instant
the source emits. The direct path of microphone ``m`` therefore peaks at
``distance_m / c * sample_rate`` samples (fractional; the sinc interpolation puts the energy on the
neighbouring integer samples). ``torchrir`` and ``gpuRIR`` already centre their fractional-delay
filters on the arrival time; ``pyroomacoustics`` delays everything by half its fractional-delay
filter (``pra.constants.get("frac_delay_length") // 2`` = 40 samples by default), which
:class:`PyRoomAcousticsBackend` removes. The backends differ in overall gain (``torchrir`` and
``pyroomacoustics`` use ``1 / d`` spreading, ``gpuRIR`` ``1 / (4 pi d)``) and in length; callers
normalise levels (see :func:`normalize_peak`) and must not rely on a particular RIR length.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from scipy.signal import fftconvolve
from torchrir import MicrophoneArray, Room, Source, StaticScene
from torchrir.config import SimulationConfig
from torchrir.sim import simulate as torchrir_simulate
from torchrir.util.acoustics import attenuation_db_to_time_sabine, estimate_image_counts_from_tmax

from mc_simclr.acoustics.scene import SPEED_OF_SOUND, Scene
from mc_simclr.devices import resolve_device

logger = logging.getLogger(__name__)

#: Error text ``torchrir`` 3.0.1 raises when float rounding of ``nsample / fs * fs`` makes its
#: diffuse-tail check believe that ``tmax`` lies past the RIR it allocated itself.
TORCHRIR_TAIL_RANGE_ERROR = "tmax must not exceed the supplied RIR sample range"

#: How many times :class:`TorchRIRBackend` shortens ``tmax`` by one sample after that error.
MAX_TAIL_RETRIES = 3

#: The image-source part lasts at least this long after the latest direct-path arrival: the 10 ms
#: window before ``tdiff`` that sets the diffuse-tail level, plus 2.5 ms for the half-width of the
#: fractional-delay sinc, so that window holds reflections and not the direct sound. Only large, very
#: dry rooms are affected (2 of 700 rooms of the paper's distribution). A wider margin (20 ms) was
#: tried and made the RT60 of dry rooms less accurate: the tail level then comes from sparser
#: reflections.
MIN_EARLY_AFTER_DIRECT_S = 0.0125

#: A room needing more image sources than this is announced with a warning: it takes seconds to
#: minutes (a long RT60 in a small room).
SLOW_ROOM_IMAGES = 200_000


def images_in_order(order: int) -> int:
    """Image sources of a shoebox's full image-source method up to reflection order ``order``."""
    return (2 * order + 1) * (2 * order * order + 2 * order + 3) // 3


def warn_if_slow(scene: Scene, n_images: int, backend: str) -> None:
    """Log a warning naming the room when it needs more than :data:`SLOW_ROOM_IMAGES` image sources."""
    if n_images > SLOW_ROOM_IMAGES:
        logger.warning(
            "%s: room %s with RT60 %.2f s needs %s image sources; this RIR will take a while",
            backend,
            "x".join(f"{d:.1f}" for d in scene.room_dims),
            scene.rt60,
            f"{n_images:,}",
        )


GPURIR_INSTALL_HINT = (
    "gpuRIR is not on PyPI; build it from a source archive with its pybind11 submodule on a machine with "
    "CUDA, nvcc and CMake, as docs/gpurir.md describes (or set simulation.backend: torchrir, which also runs "
    "on CUDA)"
)


@runtime_checkable
class RIRBackend(Protocol):
    """What the pipeline needs from a RIR simulator.

    Attributes:
        name: Short identifier, as accepted by :func:`get_backend`.
        stats: Integer counters (at least ``"rooms"``, the number of simulated scenes).

    A backend may also offer ``simulate_path(scenes, sample_rate)`` (:meth:`TorchRIRBackend.simulate_path`):
    the RIRs of a moving source's path split into per-point image sources and one shared tail. Scene
    synthesis uses it where present and whole RIRs per point otherwise.
    """

    name: str
    stats: dict[str, int]

    def simulate(self, scene: Scene, sample_rate: int) -> np.ndarray:
        """Return float32 RIRs of shape ``(n_mics, n_samples)``, sample 0 = emission time."""
        ...


def _check_attenuations(diffuse_attenuation_db: float, max_attenuation_db: float) -> None:
    """Raise ``ValueError`` unless ``0 < diffuse_attenuation_db < max_attenuation_db``."""
    if not (math.isfinite(diffuse_attenuation_db) and math.isfinite(max_attenuation_db)):
        raise ValueError("diffuse_attenuation_db and max_attenuation_db must be finite")
    if not 0.0 < diffuse_attenuation_db < max_attenuation_db:
        raise ValueError(
            "need 0 < diffuse_attenuation_db < max_attenuation_db, got "
            f"{diffuse_attenuation_db} and {max_attenuation_db}"
        )


def _tail_times(scene: Scene, diffuse_attenuation_db: float, max_attenuation_db: float) -> tuple[float, float]:
    """Diffuse-tail start ``tdiff`` and RIR length ``tmax`` in seconds (gpuRIR's recipe).

    Both are the times Sabine's exponential decay takes to fall by the given attenuations,
    counted from emission. ``tdiff`` is raised to at least :data:`MIN_EARLY_AFTER_DIRECT_S` after
    the latest direct-path arrival.
    """
    mics = np.asarray(scene.mic_positions, dtype=np.float64)
    source = np.asarray(scene.source_position, dtype=np.float64)
    latest_direct = float(np.linalg.norm(mics - source[None, :], axis=1).max()) / SPEED_OF_SOUND
    tdiff = max(
        attenuation_db_to_time_sabine(diffuse_attenuation_db, scene.rt60),
        latest_direct + MIN_EARLY_AFTER_DIRECT_S,
    )
    tmax = attenuation_db_to_time_sabine(max_attenuation_db, scene.rt60)
    if tdiff >= tmax:
        raise ValueError(
            f"RIR of {tmax:.3f} s (max_attenuation_db at RT60 {scene.rt60:.3f} s) ends before the "
            f"diffuse tail would start ({tdiff:.3f} s, after the direct path); raise max_attenuation_db"
        )
    return tdiff, tmax


def scene_seed(scene: Scene, seed: int | None = None) -> int:
    """Deterministic 63-bit seed for one scene's diffuse-tail noise.

    A SHA-256 hash of the room size, RT60, microphone and source positions (as float64 bytes) and
    ``seed`` (``None`` counts as 0). The same scene thus gets the same tail in every run,
    whatever order scenes are simulated in; change ``seed`` for another noise realisation.
    """
    geometry = np.concatenate(
        [
            np.asarray(scene.room_dims, dtype=np.float64),
            np.asarray([scene.rt60], dtype=np.float64),
            np.asarray(scene.mic_positions, dtype=np.float64).ravel(),
            np.asarray(scene.source_position, dtype=np.float64),
        ]
    )
    salt = (int(seed or 0) % (1 << 64)).to_bytes(8, "little")
    digest = hashlib.sha256(geometry.tobytes() + salt).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class TorchRIRBackend:
    """Image sources + diffuse tail with ``torchrir`` (gpuRIR's algorithm, CPU or CUDA).

    For a scene with reverberation time ``T60``:

    * image sources are generated on a grid wide enough to reach
      ``tdiff = diffuse_attenuation_db / 60 * T60`` (``estimate_image_counts_from_tmax``), and
      ``tdiff`` is at least :data:`MIN_EARLY_AFTER_DIRECT_S` after the latest direct path;
    * from ``tdiff`` to ``tmax = max_attenuation_db / 60 * T60`` the RIR is Gaussian noise with
      the Sabine decay, its level matched to the last 10 ms of image-source energy.

    The tail noise is seeded per scene with :func:`scene_seed` (hash of the geometry mixed with
    ``seed``), so a scene's RIR does not depend on the order scenes are simulated in.

    ``torchrir`` 3.0.1 sometimes rejects its own ``tmax`` (:data:`TORCHRIR_TAIL_RANGE_ERROR`, a float
    rounding in the tail check; 12 of 700 rooms of the paper's distribution at 16 kHz). Such a room is
    simulated again with ``tmax`` one sample shorter, up to :data:`MAX_TAIL_RETRIES` times, and each retry is counted in
    ``stats["tail_retries"]``; the room itself is kept, so the scene distribution is unchanged.
    """

    name: str = "torchrir"

    def __init__(
        self,
        device: str = "auto",
        diffuse_attenuation_db: float = 12.0,
        max_attenuation_db: float = 60.0,
        seed: int | None = None,
        frac_delay_length: int | None = None,
    ) -> None:
        """Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:i]"``.
        diffuse_attenuation_db: Sabine attenuation where the image sources hand over to the tail.
        max_attenuation_db: Sabine attenuation at which the RIR ends.
        seed: Mixed into each scene's tail-noise seed (:func:`scene_seed`).
        frac_delay_length: Taps of each image's fractional-delay sinc (odd); None: torchrir's (81).
            Its cost grows with the taps: 21 taps simulate a room about 4 x faster, with the early
            part 7 % (relative RMS) from the 81-tap one (benchmarks/bench_scenes.py uses it for
            moving sources).
        """
        _check_attenuations(diffuse_attenuation_db, max_attenuation_db)
        if frac_delay_length is not None and (int(frac_delay_length) < 3 or int(frac_delay_length) % 2 == 0):
            raise ValueError(f"frac_delay_length must be an odd number of taps >= 3, got {frac_delay_length}")
        self.frac_delay_length = None if frac_delay_length is None else int(frac_delay_length)
        self.device = resolve_device(device)
        self.diffuse_attenuation_db = float(diffuse_attenuation_db)
        self.max_attenuation_db = float(max_attenuation_db)
        self.seed = seed
        self.stats: dict[str, int] = {"rooms": 0, "tail_retries": 0}

    def simulate(self, scene: Scene, sample_rate: int) -> np.ndarray:
        """Float32 RIRs ``(n_mics, round_up(tmax * sample_rate))`` for ``scene``, emission at sample 0."""
        tdiff, tmax = _tail_times(scene, self.diffuse_attenuation_db, self.max_attenuation_db)
        return self._simulate(scene, sample_rate, tdiff, tmax)

    def simulate_path(self, scenes: list[Scene], sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """RIRs along a moving source's path, split where the statistical tail starts.

        ``scenes`` are one room and array with the source at successive points. Returns the image-source
        part of every point, ``(n_points, n_mics, n_early)`` float32, and one late part shared by all
        points, ``(n_mics, n)`` float32, zero before sample ``n_early``: the tail of the middle point's
        RIR (its hand-over crossfade included). ``n_early`` is where the tail of the latest point
        starts (``tdiff``, :func:`_tail_times`), so every point keeps its own image sources up to it.
        Point ``k``'s RIR is ``early[k]`` followed by the shared late part; for the middle point it
        is exactly :meth:`simulate`'s RIR at that ``tdiff``. The late field of a room is diffuse,
        its statistics independent of where the source is: the tail is drawn once per path instead of
        once per point, and successive points do not crossfade unrelated tail noise (two independent
        tails under the crossfade's halves lose up to 3 dB between the points).
        """
        if not scenes:
            raise ValueError("simulate_path needs at least one scene")
        times = [_tail_times(scene, self.diffuse_attenuation_db, self.max_attenuation_db) for scene in scenes]
        tdiff, tmax = max(t[0] for t in times), times[0][1]
        if tdiff >= tmax:
            raise ValueError(f"the path's diffuse tail would start at {tdiff:.3f} s, after the RIR ends ({tmax:.3f} s)")
        n_early = math.ceil(tdiff * sample_rate)
        early = np.zeros((len(scenes), len(scenes[0].mic_positions), n_early), dtype=np.float32)
        for k, scene in enumerate(scenes):
            rir = self._simulate(scene, sample_rate, tdiff, None)[:, :n_early]
            early[k, :, : rir.shape[1]] = rir
        late = self._simulate(scenes[len(scenes) // 2], sample_rate, tdiff, tmax)
        late[:, :n_early] = 0.0
        return early, late

    def _simulate(self, scene: Scene, sample_rate: int, tdiff: float, tmax: float | None) -> np.ndarray:
        """Image sources up to ``tdiff``, then the statistical tail to ``tmax``; ``tmax=None``: no
        tail, the RIR ends at ``tdiff``."""
        dtype = torch.float32
        room = Room.shoebox(
            list(scene.room_dims), fs=sample_rate, c=SPEED_OF_SOUND, t60=scene.rt60, device=self.device, dtype=dtype
        )
        torch_scene = StaticScene(
            room=room,
            sources=Source.from_positions([list(scene.source_position)], device=self.device, dtype=dtype),
            mics=MicrophoneArray.from_positions(
                [list(m) for m in scene.mic_positions], device=self.device, dtype=dtype
            ),
        )
        nb_img = tuple(int(n) for n in estimate_image_counts_from_tmax(tdiff, room.size, c=SPEED_OF_SOUND))
        warn_if_slow(scene, math.prod(nb_img), self.name)
        seed = scene_seed(scene, self.seed)
        retry = 0
        while True:
            config = SimulationConfig(
                nb_img=nb_img,
                tmax=tdiff if tmax is None else tmax - retry / sample_rate,
                tdiff=None if tmax is None else tdiff,
                device=self.device,
                dtype=dtype,
                seed=seed,
                **({} if self.frac_delay_length is None else {"frac_delay_length": self.frac_delay_length}),
            )
            try:
                result = torchrir_simulate(torch_scene, config)
            except ValueError as error:
                if TORCHRIR_TAIL_RANGE_ERROR not in str(error):
                    raise
                if retry == MAX_TAIL_RETRIES:
                    raise RuntimeError(
                        f"torchrir kept rejecting the diffuse tail ({error}) after shortening tmax by "
                        f"{MAX_TAIL_RETRIES} samples; room {scene.room_dims}, RT60 {scene.rt60:.4f} s, "
                        f"tmax {tmax:.6f} s, fs {sample_rate}"
                    ) from error
                retry += 1
                self.stats["tail_retries"] += 1
                continue
            self.stats["rooms"] += 1
            return result.rirs[0].detach().to("cpu").numpy().astype(np.float32, copy=False)


class PyRoomAcousticsBackend:
    """Full image-source method of ``pyroomacoustics`` (CPU reference).

    The uniform absorption and the image order come from ``pra.inverse_sabine`` (the order reaches
    ``c * RT60``) unless ``max_order`` is given; no randomised ISM and no air absorption. The
    library's default 10 Hz zero-phase high-pass filter stays on (it does not move the peaks), and
    its fractional-delay offset is removed so sample 0 is the emission time.
    """

    name: str = "pyroomacoustics"

    def __init__(self, max_order: int | None = None) -> None:
        """Args:
        max_order: Image-source order; ``None`` uses the order ``pra.inverse_sabine`` suggests.
        """
        if max_order is not None and max_order < 0:
            raise ValueError(f"max_order must be >= 0 or None, got {max_order}")
        self.max_order = max_order
        self.stats: dict[str, int] = {"rooms": 0}

    def simulate(self, scene: Scene, sample_rate: int) -> np.ndarray:
        """Float32 RIRs ``(n_mics, n)`` for ``scene``, zero-padded to the longest microphone."""
        import pyroomacoustics as pra  # imported here: it takes ~1.5 s and only this backend needs it

        absorption, order = pra.inverse_sabine(scene.rt60, list(scene.room_dims), c=SPEED_OF_SOUND)
        warn_if_slow(scene, images_in_order(order if self.max_order is None else self.max_order), self.name)
        room = pra.ShoeBox(
            list(scene.room_dims),
            fs=sample_rate,
            materials=pra.Material(absorption),
            max_order=order if self.max_order is None else self.max_order,
            use_rand_ism=False,
            air_absorption=False,
        )
        room.add_source(list(scene.source_position))
        room.add_microphone_array(np.asarray(scene.mic_positions, dtype=np.float64).T)
        room.compute_rir()
        offset = pra.constants.get("frac_delay_length") // 2
        channels = [np.asarray(room.rir[m][0], dtype=np.float32)[offset:] for m in range(len(scene.mic_positions))]
        rirs = np.zeros((len(channels), max(len(c) for c in channels)), dtype=np.float32)
        for m, channel in enumerate(channels):
            rirs[m, : len(channel)] = channel
        self.stats["rooms"] += 1
        return rirs


class GpuRIRBackend:
    """The original ``gpuRIR`` CUDA simulator (image sources + diffuse tail).

    Same recipe and time origin as :class:`TorchRIRBackend` (``gpuRIR`` centres its sinc on the
    arrival time). Its tail noise comes from cuRAND and is not seeded per scene. Constructing it
    raises ``RuntimeError`` unless ``gpuRIR`` imports and CUDA is available.
    """

    name: str = "gpurir"

    def __init__(self, diffuse_attenuation_db: float = 12.0, max_attenuation_db: float = 60.0) -> None:
        """Args:
        diffuse_attenuation_db: Sabine attenuation where the image sources hand over to the tail.
        max_attenuation_db: Sabine attenuation at which the RIR ends.
        """
        _check_attenuations(diffuse_attenuation_db, max_attenuation_db)
        try:
            import gpuRIR
        except ImportError as error:
            raise RuntimeError(f"simulation.backend 'gpurir' is unavailable: {GPURIR_INSTALL_HINT}") from error
        if not torch.cuda.is_available():
            raise RuntimeError(
                "simulation.backend 'gpurir' needs a CUDA GPU but torch.cuda.is_available() is False; "
                f"use simulation.backend: torchrir or pyroomacoustics here. To install gpuRIR: {GPURIR_INSTALL_HINT}"
            )
        self._gpurir = gpuRIR
        self.diffuse_attenuation_db = float(diffuse_attenuation_db)
        self.max_attenuation_db = float(max_attenuation_db)
        self.stats: dict[str, int] = {"rooms": 0}

    def simulate(self, scene: Scene, sample_rate: int) -> np.ndarray:
        """Float32 RIRs ``(n_mics, n)`` for ``scene``, emission at sample 0."""
        gpurir = self._gpurir
        room_sz = np.asarray(scene.room_dims, dtype=np.float64)
        tdiff, tmax = _tail_times(scene, self.diffuse_attenuation_db, self.max_attenuation_db)
        rirs = gpurir.simulateRIR(
            room_sz,
            gpurir.beta_SabineEstimation(room_sz, scene.rt60),
            np.asarray([scene.source_position], dtype=np.float32),
            np.asarray(scene.mic_positions, dtype=np.float32),
            gpurir.t2n(tdiff, room_sz, c=SPEED_OF_SOUND),
            tmax,
            sample_rate,
            Tdiff=tdiff,
            mic_pattern="omni",
            c=SPEED_OF_SOUND,
        )
        self.stats["rooms"] += 1
        return np.asarray(rirs[0], dtype=np.float32)


BACKENDS: dict[str, type[RIRBackend]] = {
    TorchRIRBackend.name: TorchRIRBackend,
    PyRoomAcousticsBackend.name: PyRoomAcousticsBackend,
    GpuRIRBackend.name: GpuRIRBackend,
}


def get_backend(name: str = "torchrir", **options: Any) -> RIRBackend:
    """Build the backend called ``name`` (``simulation.backend``) with ``options``.

    Raises:
        ValueError: unknown ``name``, or option keys the backend does not take
            (``simulation.backend_options``).
        RuntimeError: ``gpurir`` without the package or without CUDA.
    """
    if name not in BACKENDS:
        raise ValueError(f"Unknown simulation.backend {name!r}; expected one of {sorted(BACKENDS)}")
    backend_class = BACKENDS[name]
    accepted = [p for p in inspect.signature(backend_class.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown simulation.backend_options {unknown} for simulation.backend {name!r}; it accepts {accepted}"
        )
    return backend_class(**options)


def measure_rt60(rir: np.ndarray, sample_rate: int) -> float:
    """Reverberation time of a single-channel RIR by Schroeder backward integration.

    The energy decay curve ``EDC(t) = sum_{u >= t} h(u)^2`` (in dB re its start) is fitted by least
    squares between -5 and -35 dB (T30); when it never falls 35 dB, between -5 and -25 dB (T20).
    The fitted slope is extrapolated to 60 dB of decay.

    Raises:
        ValueError: ``rir`` is not 1-D, not finite, or its EDC never falls 25 dB.
    """
    h = np.asarray(rir, dtype=np.float64)
    if h.ndim != 1:
        raise ValueError(f"measure_rt60 takes one channel (1-D), got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError("measure_rt60: the RIR contains NaN or infinite values")
    edc = np.cumsum((h**2)[::-1])[::-1]
    if edc[0] <= 0.0:
        raise ValueError("measure_rt60: the RIR is all zeros")
    edc = edc[edc > 0.0]
    edc_db = 10.0 * np.log10(edc / edc[0])
    for end_db in (-35.0, -25.0):
        if edc_db[-1] <= end_db:
            start = int(np.argmax(edc_db <= -5.0))
            stop = int(np.argmax(edc_db <= end_db))
            times = np.arange(start, stop + 1) / float(sample_rate)
            slope = np.polyfit(times, edc_db[start : stop + 1], 1)[0]
            return float(-60.0 / slope)
    raise ValueError(f"measure_rt60: the energy decay only reaches {edc_db[-1]:.1f} dB; need -25 dB")


def spatialize(clip: np.ndarray, rirs: np.ndarray) -> np.ndarray:
    """Convolve a mono clip ``(n,)`` with every RIR of ``(n_mics, k)``; return float32 ``(n_mics, n)``.

    One batched FFT convolution. The output is cut to the clip length: sample ``i`` of every
    channel is the sound heard at time ``i`` of the dry clip (plus the propagation delay), so crops
    taken on the dry clip's timeline stay aligned, all clips keep their length, and the reverberant
    tail after the clip ends is dropped.
    """
    clip = np.asarray(clip, dtype=np.float32)
    rirs = np.asarray(rirs, dtype=np.float32)
    if clip.ndim != 1 or rirs.ndim != 2:
        raise ValueError(f"spatialize needs a clip (n,) and RIRs (n_mics, k); got {clip.shape} and {rirs.shape}")
    if clip.size == 0 or rirs.shape[1] == 0:
        raise ValueError("spatialize: empty clip or empty RIRs")
    if not (np.all(np.isfinite(clip)) and np.all(np.isfinite(rirs))):
        raise ValueError("spatialize: clip or RIRs contain NaN or infinite values")
    wet = fftconvolve(clip[None, :], rirs, axes=-1)[:, : clip.shape[0]]
    return np.ascontiguousarray(wet, dtype=np.float32)


def normalize_peak(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale a (multichannel) signal so its largest absolute sample is ``peak``.

    One gain for all channels, so inter-channel level differences survive.

    Raises:
        ValueError: ``x`` contains NaN/inf or is silent (all zeros, no gain can reach ``peak``), or
            ``peak`` is not a positive finite number.
    """
    if not (math.isfinite(peak) and peak > 0.0):
        raise ValueError(f"normalize_peak: peak must be positive and finite, got {peak}")
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("normalize_peak: the signal contains NaN or infinite values")
    current = float(np.max(np.abs(x))) if x.size else 0.0
    if current == 0.0:
        raise ValueError("normalize_peak: the signal is silent (all zeros), it cannot be scaled to a peak")
    return (x * np.float32(peak / current)).astype(np.float32, copy=False)
