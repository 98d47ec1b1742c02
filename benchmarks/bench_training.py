"""Throughput of an MC-SimCLR pretraining step, and where its time goes.

Usage::

    python benchmarks/bench_training.py [--batch 64] [--steps 10] [--clips 256] [--encoder base|paper_crnn|paper]
                                        [--device auto|cpu|cuda] [--workers 0] [--gpu-batch 512]
                                        [--precision float32 [bf16]] [--cuda-layout contiguous [channels_last]]

A script, not a test; it imports only the Kedro-free library (``mc_simclr.pretraining``,
``augment``, ``features``, ``models``, ``losses``, ``shards``), so it also runs on a GPU machine
that has torch but no Kedro.

1. ``--clips`` random 4-channel clips at 16 kHz, 2-12 s long (white noise times a random gain),
   are written with :func:`~mc_simclr.shards.write_shard` into a temporary shard folder and read
   back through :class:`~mc_simclr.shards.ShardedAudio` (memory-mapped).
2. A pretraining step as :func:`mc_simclr.pretraining.train_epoch` runs it, with the encoder, losses,
   front end and augmentations of ``--encoder``, read from ``conf/`` (``benchmarks/setups.py``:
   ``base`` is conf/base, the split Mel/GCC encoder with one NT-Xent per branch; ``paper_crnn`` the
   ablation variant of the paper's single CRNN; ``paper`` conf/paper), is timed in three parts:

   a. data: the next batch from a ``DataLoader`` over :class:`~mc_simclr.pretraining.CropPairs`
      (two random 1 s crops per clip), moved to the device;
   b. features + augmentation: :class:`~mc_simclr.augment.MultiLevelAugmentation` under
      ``torch.no_grad()``;
   c. forward + backward + SGD step: :func:`~mc_simclr.pretraining.contrastive_loss` of the encoder
      and its projection heads (:func:`~mc_simclr.pretraining.make_projectors`), in the
      ``pretraining.precision`` of the run (``--precision``: float32, or bf16 autocast).

   ``torch.cuda.synchronize()`` closes every part on CUDA. 2 warm-up steps, then ``--steps`` timed
   ones. The loader samples clips with replacement, so any ``--clips`` feeds any batch size.
   With ``--workers`` > 0 the workers read ahead while the device computes, so (a) is the time a
   step waits for its data. Also counted: minor page faults per step (Unix), the cost of large
   fresh CPU allocations; on CUDA, the GPU utilisation that the driver reports (``nvidia-smi``,
   sampled every 0.1 s over the timed steps: the share of time a kernel was running).
3. A short breakdown of (b) by stage (ChannelSwap, Mixup, STFT, log-Mel, GCC-PHAT,
   RandomResizedCrop, ChannelDrop) on the last batch.

Runs: ``--device cpu``: the CPU at ``--batch`` with ``--encoder``. ``--device cuda``: only the GPU
runs, below. ``--device auto``: the CPU run and, when CUDA is available, also the GPU runs: the paper
encoder at ``--gpu-batch``, with the GPU busy share (time in (b) + (c) over the wall time of a
step), the utilisation and the projected time of the paper's pretraining, 500 epochs x 15,813
clips / clips per s. Every ``--precision`` gets its own run on each device (the CPU keeps its
channels-last convolutions), and on CUDA every ``--cuda-layout`` too (``pretraining.cuda_channels_last``),
so that float32 against bf16 and contiguous against channels-last are measured in the same process.
A compute limit is printed too: clips/s if a step took only its (b) + (c) time.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

try:  # minor page faults of this process (Unix); None elsewhere
    import resource

    def minor_faults() -> int | None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

except ImportError:  # pragma: no cover - Windows

    def minor_faults() -> int | None:
        return None


from mc_simclr.augment import MultiLevelAugmentation
from mc_simclr.features import FeatureExtractor
from mc_simclr.networks import build_encoder, set_cuda_channels_last
from mc_simclr.pretraining import PRECISIONS, ContrastiveModel, CropPairs, contrastive_loss, make_projectors
from mc_simclr.shards import ShardData, ShardedAudio, write_shard

from setups import SETUPS, extractor, load_setup, pretrain_config

N_MICS = 4
WARMUP_STEPS = 2
CLIPS_PER_SHARD = 64
PAPER_EPOCHS = 500
PAPER_CLIPS = 15_813
GOAL = (
    "goal on one H100/H200 (paper encoder, batch 512): >= 2,500 clips/s (500 epochs in < 0.9 h), data wait < 10% "
    "of a step; with bf16, 4,400 clips/s (30 min)"
)
LAYOUTS = ("contiguous", "channels_last")
SAMPLE_RATE = load_setup("base")["sample_rate"]


@dataclass
class RunResult:
    label: str
    device: str
    encoder: str
    batch: int
    steps: int
    data_s: float  # (a), summed over the timed steps
    augment_s: float  # (b)
    train_s: float  # (c)
    wall_s: float  # whole steps, summed
    faults: int | None  # minor page faults of this process over the timed steps (CPU side)
    breakdown: dict[str, float]  # (b) by stage, seconds per batch
    precision: str = "float32"
    layout: str = "contiguous"  # of the convolutions (on the CPU always channels-last)
    utilisation: float | None = None  # mean GPU utilisation over the timed steps (nvidia-smi), 0..1

    @property
    def clips_per_s(self) -> float:
        return self.batch * self.steps / self.wall_s

    def share(self, part: float) -> float:
        return part / self.wall_s

    @property
    def busy(self) -> float:
        """Share of a step spent in (b) + (c): the GPU busy estimate on CUDA."""
        return (self.augment_s + self.train_s) / self.wall_s

    @property
    def projected_hours(self) -> float:
        return PAPER_EPOCHS * PAPER_CLIPS / self.clips_per_s / 3600.0

    @property
    def compute_limit(self) -> float:
        """Clips/s if a step took only (b) + (c): no wait for data."""
        return self.batch * self.steps / (self.augment_s + self.train_s)


class UtilisationSampler:
    """GPU utilisation between :meth:`start` and :meth:`stop`, as ``nvidia-smi`` reports it
    (utilization.gpu, the share of the last sample period in which a kernel ran), sampled every
    ``interval_ms`` by one ``nvidia-smi --loop-ms`` process.

    The GPU is named by its UUID, so the sample is of the device torch uses whatever
    ``CUDA_VISIBLE_DEVICES`` says. ``mean`` is None when ``nvidia-smi`` is missing or answered
    nothing; ``samples`` holds every value read (0..1).
    """

    def __init__(self, device: torch.device, interval_ms: int = 100) -> None:
        self.device = device
        self.interval_ms = interval_ms
        self.samples: list[float] = []
        self.error: str | None = None
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def _gpu_id(self) -> str:
        """The device's UUID as nvidia-smi spells it (``GPU-...``), or its torch index without CUDA."""
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        try:
            uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
        except (RuntimeError, AssertionError):  # no CUDA here
            return str(index)
        if not uuid:
            return str(index)
        return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                self.samples.append(float(line.strip()) / 100.0)
            except ValueError:
                self.error = line.strip()

    def start(self) -> None:
        if shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found"
            return
        command = [
            "nvidia-smi",
            f"--id={self._gpu_id()}",
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
            f"--loop-ms={self.interval_ms}",
        ]
        try:
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError as err:
            self.error = str(err)
            return
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


# --------------------------------------------------------------------------------------------
# Synthetic shards
# --------------------------------------------------------------------------------------------
def build_shards(root: Path, n_clips: int, seed: int = 0) -> ShardedAudio:
    """``n_clips`` 4-channel white-noise clips of 2-12 s, written in shards of CLIPS_PER_SHARD."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2 * SAMPLE_RATE, 12 * SAMPLE_RATE + 1, size=n_clips)
    gains = 10.0 ** rng.uniform(-2.0, 0.0, size=n_clips)  # -40 .. 0 dB
    n_shards = -(-n_clips // CLIPS_PER_SHARD)
    for s in tqdm(range(n_shards), desc="writing shards", unit="shard", leave=False):
        data = ShardData()
        for i in range(s * CLIPS_PER_SHARD, min(n_clips, (s + 1) * CLIPS_PER_SHARD)):
            audio = rng.standard_normal((N_MICS, int(lengths[i])), dtype=np.float32)
            audio *= np.float32(gains[i])
            data.add({"clip_id": f"clip{i:05d}", "split": "unlabeled"}, audio)
        write_shard(root, f"shard{s:04d}", data)
    return ShardedAudio(root)


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def augment_breakdown(
    views: MultiLevelAugmentation, x1: torch.Tensor, x2: torch.Tensor, device: torch.device, repeats: int = 3
) -> dict[str, float]:
    """Seconds per batch (both views, one call each as in ``views.forward``) of each stage, best of ``repeats``."""
    extractor: FeatureExtractor = views.features  # type: ignore[assignment]
    generator = torch.Generator(device=device).manual_seed(1)
    best: dict[str, float] = {}

    def timed(name: str, fn, *args):
        sync(device)
        t0 = time.perf_counter()
        out = fn(*args)
        sync(device)
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        return out

    with torch.no_grad():
        for _ in range(repeats):
            a, symmetry = timed("channel_swap", lambda x: views.channel_swap(x, generator=generator), x1)
            b, _ = views.channel_swap(x2, symmetry)
            a, b = timed("mixup", lambda u, v: (views.mixup(u, generator), views.mixup(v, generator)), a, b)
            real, imag = zip(*timed("stft", lambda u, v: [extractor.stft(w) for w in (u, v)], a, b), strict=True)
            power = timed(
                "power", lambda re, im: [r.square() + i.square() for r, i in zip(re, im, strict=True)], real, imag
            )
            mel = timed("log_mel", lambda ps: [extractor.log_mel(p) for p in ps], power)
            gcc = timed(
                "gcc_phat",
                lambda re, im, ps: [extractor.gcc_phat(r, i, p) for r, i, p in zip(re, im, ps, strict=True)],
                real,
                imag,
                power,
            )
            f1, f2 = timed(
                "concat", lambda ms, gs: [torch.cat([m, g], dim=1) for m, g in zip(ms, gs, strict=True)], mel, gcc
            )
            f1, f2 = timed(
                "random_resized_crop",
                lambda u, v: (views.random_resized_crop(u, generator), views.random_resized_crop(v, generator)),
                f1,
                f2,
            )
            timed(
                "channel_drop",
                lambda u, v: (views.channel_drop(u, generator), views.channel_drop(v, generator)),
                f1,
                f2,
            )
    return best


def run(
    label: str,
    audio: ShardedAudio,
    encoder_name: str,
    batch: int,
    steps: int,
    device: torch.device,
    workers: int,
    seed: int = 0,
    precision: str = "float32",
    layout: str = "contiguous",
) -> RunResult:
    torch.manual_seed(seed)
    setup = load_setup(encoder_name)
    config = pretrain_config(setup, batch_size=batch, num_workers=workers, seed=seed, precision=precision)
    front_end = extractor(setup, N_MICS)
    encoder = build_encoder(setup["encoder"], front_end.n_mels)
    if device.type == "cuda":
        encoder = set_cuda_channels_last(encoder, layout == "channels_last")
    encoder = encoder.to(device).train()
    projectors = make_projectors(encoder, config).to(device).train()
    model = ContrastiveModel(encoder, projectors).train()
    views = MultiLevelAugmentation.from_params(setup["augmentations"], front_end, N_MICS).to(device)
    params = list(encoder.parameters()) + list(projectors.parameters())
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    crop_samples = int(round(config.crop_seconds * front_end.sample_rate))
    clip_ids = audio.metadata["clip_id"].tolist()
    dataset = CropPairs(audio, clip_ids, crop_samples, seed)
    total_steps = WARMUP_STEPS + steps
    indices = RandomSampler(
        dataset, replacement=True, num_samples=batch * total_steps, generator=torch.Generator().manual_seed(seed)
    )
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=[(0, int(i)) for i in indices],  # CropPairs items are keyed (epoch, index)
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    generator = torch.Generator(device=device).manual_seed(seed)

    data_s = augment_s = train_s = wall_s = 0.0
    faults = 0
    batches = iter(loader)
    x1 = x2 = None
    bar = tqdm(range(total_steps), desc=f"{label}: {encoder_name} b{batch} on {device.type}", unit="step", leave=False)
    sampler = UtilisationSampler(device) if device.type == "cuda" else None
    try:
        for step in bar:
            if step == WARMUP_STEPS and sampler is not None:
                sampler.start()
            sync(device)
            faults0 = minor_faults()
            t0 = time.perf_counter()
            # (a) data
            x1, x2 = next(batches)
            x1 = x1.to(device, non_blocking=True)
            x2 = x2.to(device, non_blocking=True)
            sync(device)
            t1 = time.perf_counter()
            # (b) features + augmentation
            with torch.no_grad():
                f1, f2 = views(x1, x2, generator)
            sync(device)
            t2 = time.perf_counter()
            # (c) forward + backward + optimiser step
            loss = contrastive_loss(model, f1, f2, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())  # pretrain() reads the loss every step, which syncs too
            sync(device)
            t3 = time.perf_counter()
            if not np.isfinite(loss_value):
                raise RuntimeError(f"non-finite loss {loss_value} at step {step}")
            if step >= WARMUP_STEPS:
                data_s += t1 - t0
                augment_s += t2 - t1
                train_s += t3 - t2
                wall_s += t3 - t0
                faults = None if faults0 is None or faults is None else faults + minor_faults() - faults0
                bar.set_postfix(
                    clips_per_s=f"{batch * (step - WARMUP_STEPS + 1) / wall_s:.0f}", loss=f"{loss_value:.3f}"
                )
    finally:
        bar.close()
        if sampler is not None:
            sampler.stop()
    del batches

    breakdown = augment_breakdown(views, x1, x2, device)
    return RunResult(
        label,
        str(device),
        encoder_name,
        batch,
        steps,
        data_s,
        augment_s,
        train_s,
        wall_s,
        faults,
        breakdown,
        precision,
        layout,
        None if sampler is None else sampler.mean,
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def print_table(results: list[RunResult]) -> None:
    header = (
        f"{'run':<24} {'device':<7} {'encoder':<10} {'batch':>5} {'steps':>5} {'s/step':>7} {'clips/s':>8} "
        f"{'(a) data':>9} {'(b) feat+aug':>12} {'(c) fwd+bwd':>11} {'busy':>6} {'limit/s':>8} {'util':>5} "
        f"{'faults/step':>11}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<24} {r.device:<7} {r.encoder:<10} {r.batch:>5} {r.steps:>5} {r.wall_s / r.steps:>7.3f} "
            f"{r.clips_per_s:>8.1f} {r.share(r.data_s):>9.1%} {r.share(r.augment_s):>12.1%} "
            f"{r.share(r.train_s):>11.1%} {r.busy:>6.1%} {r.compute_limit:>8.0f} "
            f"{'n/a' if r.utilisation is None else f'{r.utilisation:.0%}':>5} "
            f"{'n/a' if r.faults is None else f'{r.faults / r.steps:,.0f}':>11}"
        )
    print(
        "(shares of the wall time of a step; (a) is the wait for data; busy = (b) + (c), the GPU busy estimate on\n"
        " CUDA; limit/s = clips/s if a step took only (b) + (c); util = GPU utilisation reported by nvidia-smi;\n"
        " faults/step = minor page faults of this process per step: each is a fresh 4 KiB page, mostly from\n"
        " tensors too large for malloc's heap, and costly in a VM)"
    )

    for r in results:
        total = sum(r.breakdown.values())
        parts = ", ".join(f"{k} {v * 1e3:.1f} ms ({v / total:.0%})" for k, v in r.breakdown.items())
        print(f"\n(b) by stage, {r.label} ({r.device}, batch {r.batch}, both views): {total * 1e3:.1f} ms = {parts}")

    for r in results:
        if r.device.startswith("cuda"):
            utilisation = "n/a" if r.utilisation is None else f"{r.utilisation:.0%}"
            print(
                f"\n{r.label}: {r.clips_per_s:.0f} clips/s ({r.clips_per_s / r.compute_limit:.0%} of its compute "
                f"limit {r.compute_limit:.0f}), data wait {r.share(r.data_s):.0%}, GPU busy ~{r.busy:.0%}, "
                f"utilisation {utilisation}; paper pretraining {PAPER_EPOCHS} epochs x {PAPER_CLIPS:,} clips -> "
                f"{r.projected_hours:.2f} h projected"
            )
    print(GOAL)


def main(argv: list[str] | None = None) -> list[RunResult]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "encoders (benchmarks/setups.py, read from conf/):\n"
            "  base        conf/base: the split Mel/GCC CRNN (32 filters 3x3 each) with one NT-Xent per branch;\n"
            "              features hop 320 / 64 mels (51 x 64 per 1 s crop)\n"
            "  paper_crnn  conf/base with the ablation variant paper_crnn: one CRNN on all 10 channels, one NT-Xent\n"
            "  paper       conf/paper: 128 filters of 5x5, GRU 128, one NT-Xent; hop 160 / 96 mels (101 x 96)\n"
            "The GPU runs always use the paper encoder at --gpu-batch.\n"
            f"{GOAL}"
        ),
    )
    parser.add_argument("--batch", type=int, default=64, help="clips per batch on the CPU (default 64)")
    parser.add_argument(
        "--steps", type=int, default=10, help=f"timed steps, after {WARMUP_STEPS} warm-up steps (default 10)"
    )
    parser.add_argument(
        "--clips", type=int, default=256, help="synthetic 2-12 s clips in the shard folder (default 256)"
    )
    parser.add_argument("--encoder", choices=SETUPS, default="base", help="encoder of the CPU run (default base)")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="cpu: CPU run only; cuda: GPU run only; auto: CPU run, plus the GPU run when CUDA is available",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--gpu-batch", type=int, default=512, help="clips per batch of the GPU run (default 512)")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["float32"],
        help="pretraining.precision of the runs, one run each (default float32)",
    )
    parser.add_argument(
        "--cuda-layout",
        nargs="+",
        choices=LAYOUTS,
        default=["contiguous"],
        help="memory layout of the convolutions in the GPU runs, one run each (default contiguous)",
    )
    args = parser.parse_args(argv)
    if args.batch < 2 or args.gpu_batch < 2 or args.steps < 1 or args.clips < 2 or args.workers < 0:
        parser.error("need --batch >= 2, --gpu-batch >= 2, --steps >= 1, --clips >= 2, --workers >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch.cuda.is_available() is False")

    plan: list[tuple[str, torch.device, str, int, str, str]] = []
    if args.device in ("auto", "cpu"):
        for precision in args.precision:
            plan.append((f"cpu {precision}", torch.device("cpu"), args.encoder, args.batch, precision, "channels_last"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        for precision in args.precision:
            for layout in args.cuda_layout:
                label = f"gpu {precision} {layout}"
                plan.append((label, torch.device("cuda"), "paper", args.gpu_batch, precision, layout))

    if args.cuda_layout != ["contiguous"] and not any(device.type == "cuda" for _, device, *_ in plan):
        print("note: --cuda-layout applies to the GPU runs only; there are none")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads ({cpu}), "
        f"CUDA device: {gpu}; {args.clips} clips, {args.steps} timed steps after {WARMUP_STEPS} warm-up, "
        f"{args.workers} DataLoader workers"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        started = time.perf_counter()
        audio = build_shards(Path(tmp) / "audio", args.clips)
        print(
            f"{audio}: {audio.metadata['length'].sum() / SAMPLE_RATE / 3600:.2f} h of audio, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        for label, device, encoder_name, batch, precision, layout in plan:
            results.append(
                run(label, audio, encoder_name, batch, args.steps, device, args.workers, 0, precision, layout)
            )
    print_table(results)
    return results


if __name__ == "__main__":
    main()
