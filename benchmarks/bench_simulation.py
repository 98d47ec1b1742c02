"""Speed and RT60 accuracy of the RIR backends on rooms from the paper's scene distribution.

Usage::

    python benchmarks/bench_simulation.py --rooms 12 --seed 0

Every backend simulates the same ``--rooms`` scenes (``sample_scene`` with the paper's ranges) on
one CPU thread (``torch.set_num_threads(1)``, ``pyroomacoustics`` ``num_threads`` = 1). Each backend
first simulates one extra, untimed room so that lazy initialisation is not counted. The table
gives the median seconds per room, the speed-up over the ``pyroomacoustics`` full image-source
method (its s/room divided by the backend's), and the median over rooms of the per-room median
(over microphones) of |measured RT60 - target| / target, measured with Schroeder T30. When CUDA is
available, ``torchrir`` is also timed on the GPU (rooms simulated one after another, not batched).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from mc_simclr.acoustics.rir import BACKENDS, RIRBackend, get_backend, measure_rt60
from mc_simclr.acoustics.scene import Scene, SceneConfig, sample_scene

REFERENCE = "pyroomacoustics"


@dataclass(frozen=True)
class Result:
    """Timing and accuracy of one backend over all rooms."""

    label: str
    seconds: list[float]
    rt60_errors: list[float]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rooms_per_second(self) -> float:
        return len(self.seconds) / sum(self.seconds)


def installed_backends() -> list[str]:
    """Backend names usable on this machine (``gpurir`` only with the package and CUDA)."""
    names = ["torchrir", "pyroomacoustics"]
    if importlib.util.find_spec("gpuRIR") is not None and torch.cuda.is_available():
        names.append("gpurir")
    return names


def run_backend(label: str, backend: RIRBackend, scenes: list[Scene], warmup: Scene, sample_rate: int) -> Result:
    """Time ``backend`` on every scene (after one untimed warm-up) and measure the RT60 errors."""
    backend.simulate(warmup, sample_rate)
    seconds: list[float] = []
    errors: list[float] = []
    for scene in tqdm(scenes, desc=label, unit="room"):
        start = time.perf_counter()
        rirs = backend.simulate(scene, sample_rate)
        seconds.append(time.perf_counter() - start)
        errors.append(float(np.median([abs(measure_rt60(ch, sample_rate) - scene.rt60) / scene.rt60 for ch in rirs])))
    return Result(label, seconds, errors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=12, help="number of random rooms (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene generator (default 0)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sampling rate in Hz (default 16000)")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=sorted(BACKENDS),
        default=installed_backends(),
        help="backends to time (default: all usable here)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    if REFERENCE in args.backends:
        import pyroomacoustics as pra

        pra.constants.set("num_threads", 1)

    rng = np.random.default_rng(args.seed)
    warmup = sample_scene(rng, SceneConfig())
    scenes = [sample_scene(rng, SceneConfig()) for _ in range(args.rooms)]
    rt60s = [s.rt60 for s in scenes]
    print(
        f"{args.rooms} rooms (seed {args.seed}), {args.sample_rate} Hz, RT60 {min(rt60s):.2f}-{max(rt60s):.2f} s "
        f"(median {statistics.median(rt60s):.2f}), 1 CPU thread"
    )

    results: list[Result] = []
    tail_retries = 0
    for name in args.backends:
        options = {"device": "cpu"} if name == "torchrir" else {}
        backend = get_backend(name, **options)
        label = f"{name} (cuda)" if name == "gpurir" else f"{name} (cpu)"
        results.append(run_backend(label, backend, scenes, warmup, args.sample_rate))
        tail_retries += backend.stats.get("tail_retries", 0)
    gpu_result: Result | None = None
    if "torchrir" in args.backends and torch.cuda.is_available():
        backend = get_backend("torchrir", device="cuda")
        gpu_result = run_backend("torchrir (cuda)", backend, scenes, warmup, args.sample_rate)
        results.append(gpu_result)
        tail_retries += backend.stats["tail_retries"]

    reference = next((r for r in results if r.label.startswith(REFERENCE)), None)
    print()
    print(f"{'backend':<24}{'s/room (median)':>17}{'x vs pra ISM':>14}{'median RT60 err':>17}")
    for result in results:
        ratio = f"{reference.median_seconds / result.median_seconds:.1f}x" if reference else "n/a"
        print(
            f"{result.label:<24}{result.median_seconds:>17.4f}{ratio:>14}"
            f"{100 * statistics.median(result.rt60_errors):>16.1f}%"
        )
    print(f"torchrir tail retries: {tail_retries}")
    if gpu_result is not None:
        print(
            f"torchrir on {torch.cuda.get_device_name()}: {gpu_result.rooms_per_second:.1f} rooms/s "
            "(one room per call in a Python loop, not batched)"
        )
    else:
        print("CUDA not available: torchrir was not timed on a GPU")


if __name__ == "__main__":
    main()
