"""Speed of the batched feature extractor against a per-clip NumPy/SciPy reference.

Usage::

    python benchmarks/bench_features.py --patches 256 --batch 64 [--threads N] [--device cpu|cuda]

``--patches`` random 4-channel 1 s patches at 16 kHz go, with conf/base's front end, through

   a. :class:`~mc_simclr.features.FeatureExtractor` in batches of ``--batch`` (torch, float32), and
   b. a per-clip NumPy/SciPy reference written here (float64, one clip at a time: centred STFT
      with a periodic Hann window, HTK Mel filterbank, ``log(mel + eps)``, GCC-PHAT per pair by
      ``irfft`` and the lag crop; the same math as ``tests/test_features.py``),

   on the same inputs in the same run, ``--repeats`` times each, interleaved; the best run counts
   (the machine may be shared). Both get one untimed warm-up per run. Printed: patches/s of each,
   the speed-up (goal >= 10x), the CPU seconds of each (process time, summed over threads: a
   figure that other load on the machine disturbs less), and the largest difference between the
   two outputs.

Where a pretraining step spends its time is measured by ``benchmarks/bench_training.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.signal import get_window
from tqdm import tqdm

from setups import extractor, load_setup

SETUP = load_setup("base")  # conf/base's front end (the pipelines' features)
FEATURES = SETUP["features"]
SAMPLE_RATE = SETUP["sample_rate"]
N_MICS = 4


# --------------------------------------------------------------------------------------------
# Per-clip NumPy/SciPy reference
# --------------------------------------------------------------------------------------------
def htk_mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``(n_fft/2 + 1, n_mels)`` triangular filters on the HTK Mel scale, no normalisation."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - left) / (centre - left)
    falling = (right - freqs[:, None]) / (right - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


class NumpyReference:
    """Features of one clip ``(M, N)`` -> ``(M + M(M-1)/2, T, n_mels)``, float64."""

    def __init__(self, sample_rate=SAMPLE_RATE, n_fft=1024, hop=320, n_mels=64, f_min=50.0, f_max=None, eps=1e-8):
        self.n_fft, self.hop, self.n_mels, self.eps = n_fft, hop, n_mels, eps
        self.window = get_window("hann", n_fft, fftbins=True)
        f_max = sample_rate / 2.0 if f_max is None else f_max
        self.bank = htk_mel_filterbank(n_fft, sample_rate, n_mels, f_min, f_max)
        self.lags = np.arange(-(n_mels // 2), n_mels - n_mels // 2) % n_fft

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        clip = np.asarray(clip, dtype=np.float64)
        n_frames = clip.shape[1] // self.hop + 1
        padded = np.pad(clip, ((0, 0), (self.n_fft // 2, self.n_fft // 2)))  # centred frames
        frames = np.stack([padded[:, t * self.hop : t * self.hop + self.n_fft] for t in range(n_frames)], axis=1)
        spec = np.fft.rfft(frames * self.window, axis=-1)  # (M, T, n_fft/2 + 1)
        channels = list(np.log(np.abs(spec) ** 2 @ self.bank + self.eps))
        for i in range(clip.shape[0]):
            for j in range(i + 1, clip.shape[0]):
                cross = spec[i] * np.conj(spec[j])
                cross = cross / (np.abs(spec[i]) * np.abs(spec[j]) + self.eps)
                channels.append(np.fft.irfft(cross, n=self.n_fft, axis=-1)[:, self.lags])
        return np.stack(channels)


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------
def bench_extractor(
    patches: np.ndarray, batch: int, desc: str, device: torch.device
) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds for all patches through the batched FeatureExtractor, and its output.

    On CUDA the timed span includes the host-to-device copy of each batch and the copy of the
    features back, so the figure is end to end.
    """
    fe = extractor(SETUP, N_MICS).to(device)
    tensor = torch.from_numpy(patches)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        fe(tensor[:batch].to(device))  # warm-up
        sync()
        start, cpu = time.perf_counter(), time.process_time()
        starts = range(0, len(tensor), batch)
        outputs = [
            fe(tensor[i : i + batch].to(device)).cpu() for i in tqdm(starts, desc=desc, unit="batch", leave=False)
        ]
        sync()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, torch.cat(outputs).numpy()


def bench_reference(patches: np.ndarray, desc: str) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds for all patches through the per-clip NumPy reference, and its output."""
    ref = NumpyReference(
        SAMPLE_RATE,
        int(FEATURES["n_fft"]),
        int(FEATURES["hop_length"]),
        int(FEATURES["n_mels"]),
        float(FEATURES["f_min"]),
        FEATURES["f_max"],
        float(FEATURES["eps"]),
    )
    ref(patches[0])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    outputs = [ref(clip) for clip in tqdm(patches, desc=desc, unit="clip", leave=False)]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, np.stack(outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=256, help="number of 1 s patches (default 256)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each implementation (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random patches (default 0)")
    parser.add_argument("--device", default="cpu", help="device of the batched extractor: cpu (default) or cuda")
    args = parser.parse_args(argv)
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    device = torch.device(args.device)
    if min(args.patches, args.batch, args.repeats) < 1:
        parser.error("--patches, --batch and --repeats must be positive")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(
        f"{args.patches} patches of {N_MICS} x 1 s at {SAMPLE_RATE} Hz, batch {args.batch}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} CPU thread(s), extractor on "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
    )
    patches = np.random.default_rng(args.seed).standard_normal((args.patches, N_MICS, SAMPLE_RATE)).astype(np.float32)

    torch_runs, numpy_runs, torch_cpu, numpy_cpu = [], [], [], []
    for repeat in range(args.repeats):  # interleaved, so that both see the same machine load
        seconds, cpu, torch_out = bench_extractor(
            patches, args.batch, f"torch batched {repeat + 1}/{args.repeats}", device
        )
        torch_runs.append(seconds)
        torch_cpu.append(cpu)
        seconds, cpu, numpy_out = bench_reference(patches, f"numpy per clip {repeat + 1}/{args.repeats}")
        numpy_runs.append(seconds)
        numpy_cpu.append(cpu)
    mel_err = float(np.abs(torch_out[:, :N_MICS] - numpy_out[:, :N_MICS]).max())
    gcc_err = float(np.abs(torch_out[:, N_MICS:] - numpy_out[:, N_MICS:]).max())
    torch_s, numpy_s = min(torch_runs), min(numpy_runs)
    torch_rate, numpy_rate = args.patches / torch_s, args.patches / numpy_s
    print()
    print(f"best of {args.repeats} runs (all runs in seconds in brackets)")
    print(f"{'implementation':<36}{'seconds':>10}{'patches/s':>12}   runs")
    for label, best, rate, runs in (
        (f"FeatureExtractor (torch, {device.type})", torch_s, torch_rate, torch_runs),
        ("NumPy/SciPy reference (per clip)", numpy_s, numpy_rate, numpy_runs),
    ):
        print(f"{label:<36}{best:>10.3f}{rate:>12.1f}   [{', '.join(f'{r:.2f}' for r in runs)}]")
    verdict = "meets" if torch_rate >= 10 * numpy_rate else "misses"
    print(f"speed-up: {torch_rate / numpy_rate:.2f}x ({verdict} the 10x goal)")
    print(
        f"CPU seconds (best run, all threads): torch {min(torch_cpu):.3f}, numpy {min(numpy_cpu):.3f}; "
        f"CPU-time ratio {min(numpy_cpu) / min(torch_cpu):.2f}x (less sensitive to other load on the machine)"
    )
    print(f"max |torch - numpy|: log-Mel {mel_err:.2e}, GCC-PHAT {gcc_err:.2e}")


if __name__ == "__main__":
    main()
