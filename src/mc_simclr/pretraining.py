"""MC-SimCLR pretraining with checkpoint + resume, in one process or data parallel.

Its learning-rate schedule (:func:`warmup_cosine`) is shared with the supervised protocols
(:mod:`mc_simclr.evaluation`); the encoder file it writes is described in :mod:`mc_simclr.model_files`.

Pretraining step: a batch of clips -> two random 1 s crops of each (zero-padded when shorter,
overlap allowed) -> :class:`~mc_simclr.augment.MultiLevelAugmentation` (ChannelSwap, Mixup,
features, RandomResizedCrop, ChannelDrop; all batched on the training device) -> encoder ->
projection head -> NT-Xent.

Optimiser: SGD with momentum and weight decay; the learning rate follows the linear scaling rule
``lr = base_lr * batch_size / reference_batch_size`` (the paper: 0.2 at batch 512), with a linear
warm-up over the first ``warmup_epochs`` and a cosine decay to 0, stepped every batch.

Determinism: every random draw of epoch ``e`` comes from generators seeded with ``(seed, e)``, so a
run resumed from the checkpoint of epoch ``e`` continues exactly as an uninterrupted run would (on
CPU; CUDA kernels may add non-determinism).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import table_geometry
from mc_simclr.audio.crops import pad_or_trim
from mc_simclr.augment import REGISTRY, MultiLevelAugmentation
from mc_simclr.devices import resolve_device
from mc_simclr.distributed import (
    check_devices,
    gather,
    global_batch_norm,
    plain_batch_norm,
    process_group,
    rank,
    share,
    world_size,
)
from mc_simclr.features import FeatureExtractor
from mc_simclr.losses import nt_xent, spatial_reconstruction_loss, spatial_target
from mc_simclr.model_files import package_encoder
from mc_simclr.networks import (
    Encoder,
    EncoderConfig,
    ProjectionHead,
    SplitCRNNEncoder,
    build_encoder,
    set_cuda_channels_last,
)
from mc_simclr.params import check_values, dataclass_from_params
from mc_simclr.shards import OK, ShardedAudio
from mc_simclr.utils import epoch_seed, fingerprint, seed_everything, torch_save_atomic

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
PRECISIONS = ("float32", "bf16")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or written with other settings."""


# --------------------------------------------------------------------------------------------
# Schedules and checkpoints
# --------------------------------------------------------------------------------------------
def scaled_lr(base_lr: float, batch_size: int, reference_batch_size: int) -> float:
    """Linear scaling rule: ``base_lr`` is the rate at ``reference_batch_size``."""
    return base_lr * batch_size / reference_batch_size


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a crash never leaves a torn checkpoint."""
    torch_save_atomic(path, state)


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict[str, Any]:
    """Load and check a checkpoint; raise :class:`CheckpointError` with the reason and the remedy."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "allowed global" not in str(err):  # not a refused object: a file that is no checkpoint at all
            raise CheckpointError(
                f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}); delete it or set "
                "pretraining.restart: true"
            ) from err
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain values, which mc_simclr never "
            "writes; it was refused unread, since loading it could run code. Delete it or set "
            "pretraining.restart: true"
        ) from err
    except Exception as err:  # noqa: BLE001 - any other failure means the file is unusable
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: {err}); delete it or set "
            "pretraining.restart: true"
        ) from err
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has an unknown format; delete it or set pretraining.restart: true")
    if state.get("fingerprint") != expected_fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was written with other settings or data (fingerprint {state.get('fingerprint')} "
            f"!= {expected_fingerprint}); set pretraining.restart: true to start again, or restore those settings"
        )
    return state


# --------------------------------------------------------------------------------------------
# Pretraining
# --------------------------------------------------------------------------------------------
#: Keys of the ``pretraining`` block that choose the clips rather than the training (not PretrainConfig's).
CLIP_KEYS = ("split", "max_clips")


@dataclass
class PretrainConfig:
    """Pretraining settings (the ``pretraining`` parameter block)."""

    seed: int = 0
    device: str = "auto"
    epochs: int = 500
    batch_size: int = 512
    base_lr: float = 0.2
    reference_batch_size: int = 512
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    temperature: float = 0.1
    joint_loss_weight: float = 1.0
    branch_loss_weight: float = 0.0
    spatial_target_weight: float = 0.0
    crop_seconds: float = 1.0
    projection: dict[str, int] = field(default_factory=lambda: {"hidden_dim": 128, "out_dim": 128})
    num_workers: int = 0
    devices: int = 1
    max_steps: int | None = None
    precision: str = "float32"
    cuda_channels_last: bool = False
    checkpoint_path: str | None = None
    restart: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "pretraining") -> PretrainConfig:
        config = dataclass_from_params(cls, params, name)
        checks = {
            "epochs": config.epochs >= 1,
            "batch_size": config.batch_size >= 2,
            "base_lr": config.base_lr > 0,
            "reference_batch_size": config.reference_batch_size >= 1,
            "momentum": 0 <= config.momentum < 1,
            "weight_decay": config.weight_decay >= 0,
            "warmup_epochs": 0 <= config.warmup_epochs <= config.epochs,
            "temperature": config.temperature > 0,
            "joint_loss_weight": config.joint_loss_weight >= 0,
            "branch_loss_weight": config.branch_loss_weight >= 0
            and config.joint_loss_weight + config.branch_loss_weight > 0,
            "spatial_target_weight": config.spatial_target_weight >= 0,
            "crop_seconds": config.crop_seconds > 0,
            "num_workers": config.num_workers >= 0,
            "devices": config.devices >= 1,
            "max_steps": config.max_steps is None or config.max_steps >= 1,
            f"precision (one of {', '.join(PRECISIONS)})": config.precision in PRECISIONS,
            "cuda_channels_last (true or false)": isinstance(config.cuda_channels_last, bool),
        }
        check_values(checks, name, asdict(config))
        return config

    @classmethod
    def from_block(cls, block: dict[str, Any], name: str = "pretraining") -> PretrainConfig:
        """The config of a whole ``pretraining`` parameter block: its :data:`CLIP_KEYS` choose the clips
        (:func:`block_clips`), so they are checked here (as far as they can be without the audio) and
        left out of the config."""
        check_max_clips(block.get("max_clips"), name=name)
        return cls.from_params({k: v for k, v in block.items() if k not in CLIP_KEYS}, name)

    @property
    def lr(self) -> float:
        return scaled_lr(self.base_lr, self.batch_size, self.reference_batch_size)

    def trained_settings(self) -> dict[str, Any]:
        """Settings that shape the trained weights (device, workers, memory layout and paths do not).

        ``precision`` is one of them only when it is not float32, and ``spatial_target_weight`` only
        when it is not 0, so that runs without them keep the fingerprint (and the checkpoints) they had
        before the settings existed."""
        skip = {"device", "num_workers", "devices", "max_steps", "cuda_channels_last", "checkpoint_path", "restart"}
        if self.precision == "float32":
            skip.add("precision")
        if self.spatial_target_weight == 0:
            skip.add("spatial_target_weight")
        return {k: v for k, v in asdict(self).items() if k not in skip}


class CropPairs(Dataset):
    """Two random crops of ``crop_samples`` from each clip (zero-padded when the clip is shorter).

    Items are keyed ``(epoch, index)`` (see :class:`EpochShuffle`): the crops of clip ``index`` in
    epoch ``e`` depend only on ``(seed, e, index)``, also inside persistent DataLoader workers.
    """

    def __init__(self, audio: ShardedAudio, clip_ids: list[str], crop_samples: int, seed: int) -> None:
        self.audio = audio
        self.clip_ids = list(clip_ids)
        self.crop_samples = crop_samples
        self.seed = seed

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        clip_id = self.clip_ids[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        n = self.audio.clip_length(clip_id)
        crops = []
        for _ in range(2):
            start = int(rng.integers(0, n - self.crop_samples + 1)) if n > self.crop_samples else 0
            segment = self.audio.load_clip(clip_id, start, self.crop_samples)
            crops.append(torch.from_numpy(pad_or_trim(segment, self.crop_samples)))
        return crops[0], crops[1]


class EpochShuffle(torch.utils.data.Sampler):
    """Shuffled ``(epoch, index)`` keys, seeded per epoch; call :meth:`set_epoch` before iterating.

    The sampler runs in the main process, so the epoch reaches persistent workers through the keys.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        return iter([(self.epoch, int(i)) for i in order])


def make_projectors(encoder: Encoder, config: PretrainConfig) -> nn.ModuleDict:
    """Projection heads: ``joint`` on h; ``mel`` and ``gcc`` on the branch embeddings of a split encoder;
    ``spatial`` (when ``spatial_target_weight > 0``) from the GCC branch's embedding (h for one CRNN) to
    the view's time-averaged GCC-PHAT lag profiles (:func:`~mc_simclr.losses.spatial_target`)."""
    heads = nn.ModuleDict()
    if config.joint_loss_weight > 0:
        heads["joint"] = ProjectionHead(encoder.embedding_dim, **config.projection)
    if config.branch_loss_weight > 0:
        if not isinstance(encoder, SplitCRNNEncoder):
            raise ValueError("pretraining.branch_loss_weight > 0 needs encoder.architecture: split_crnn")
        heads["mel"] = ProjectionHead(encoder.mel.embedding_dim, **config.projection)
        heads["gcc"] = ProjectionHead(encoder.gcc.embedding_dim, **config.projection)
    if config.spatial_target_weight > 0:
        source = encoder.gcc.embedding_dim if isinstance(encoder, SplitCRNNEncoder) else encoder.embedding_dim
        n_pairs = encoder.config.in_channels - encoder.config.mel_channels
        hidden = config.projection.get("hidden_dim", 128)
        heads["spatial"] = ProjectionHead(source, hidden, n_pairs * encoder.n_bins)
    return heads


class ContrastiveModel(nn.Module):
    """Encoder and projection heads as one module (what ``DistributedDataParallel`` wraps): features ->
    ``{head: projection}``; ``joint`` projects h, ``mel`` and ``gcc`` the branches of a split encoder."""

    def __init__(self, encoder: Encoder, projectors: nn.ModuleDict) -> None:
        super().__init__()
        self.encoder = encoder
        self.projectors = projectors

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(self.encoder, SplitCRNNEncoder):
            mel, gcc = self.encoder.parts(features)
            parts = {"mel": mel, "gcc": gcc, "joint": torch.cat([mel, gcc], dim=1), "spatial": gcc}
        else:
            h = self.encoder(features)
            parts = {"joint": h, "spatial": h}
        return {name: head(parts[name]) for name, head in self.projectors.items()}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The mixed-precision context of ``precision`` (:data:`PRECISIONS`) on ``device``: bf16 autocast
    (convolutions, GRU and linear layers in bfloat16, weights and their gradients in float32; no loss
    scaling is needed with bfloat16), or nothing for float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"pretraining.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def contrastive_loss(
    model: nn.Module,
    f1: torch.Tensor,
    f2: torch.Tensor,
    config: PretrainConfig,
    terms: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``joint_loss_weight`` x NT-Xent on h plus ``branch_loss_weight`` x NT-Xent of each branch, plus
    ``spatial_target_weight`` x the spatial head's reconstruction MSE when there is one.

    ``terms``: when given, receives each term before its weight, detached, as ``loss_<head>``
    (``loss_joint``, ``loss_mel``, ``loss_gcc``, ``loss_spatial``), so that a run's history shows
    which term moves.

    ``model`` is a :class:`ContrastiveModel` (or it wrapped for data parallelism); with several
    processes, each holds its share of the batch and the projections of every share are gathered,
    so each NT-Xent is over the whole global batch. With ``config.precision: bf16`` the model runs
    under autocast and NT-Xent (normalisation, similarities at temperature 0.1, softmax) in float32.
    """
    n = len(f1)
    loss = f1.new_zeros(())
    features = torch.cat([f1, f2])
    with autocast(f1.device, config.precision):
        projections = model(features)
    for name, z in projections.items():
        if name == "spatial":  # a per-view reconstruction: each process's own rows, no gathering
            mel_channels = getattr(model, "module", model).encoder.config.mel_channels
            target = spatial_target(features, mel_channels)
            term = spatial_reconstruction_loss(z, target)
            loss = loss + config.spatial_target_weight * term
        else:
            weight = config.joint_loss_weight if name == "joint" else config.branch_loss_weight
            z = z.float()
            term = nt_xent(gather(z[:n]), gather(z[n:]), config.temperature)
            loss = loss + weight * term
        if terms is not None:
            terms[f"loss_{name}"] = term.detach()
    return loss


def check_max_clips(max_clips: Any, available: int | None = None, split: str = "", name: str = "pretraining") -> None:
    """``max_clips`` is null or an integer in ``[2, available]`` (``>= 2`` when the count is not known yet)."""
    if max_clips is None:
        return
    wrong = isinstance(max_clips, bool) or not isinstance(max_clips, int) or max_clips < 2
    if wrong or (available is not None and max_clips > available):
        expected = f"in [2, {available}] (the rendered {split} clips)" if available is not None else ">= 2"
        raise ValueError(f"{name}.max_clips must be null or an integer {expected}, got {max_clips!r}")


def pretraining_clips(
    audio: ShardedAudio, split: str = "unlabeled", max_clips: int | None = None, seed: int = 0
) -> list[str]:
    """Ids of the rendered clips of ``split`` in ``audio``; at least 2 (one positive pair and a negative).

    ``max_clips``: a seeded random subset of that many of them (the data-size curve of
    docs/experiments/hard.md); ``None``: all."""
    meta = audio.metadata
    clip_ids = list(meta.loc[(meta["status"] == OK) & (meta["split"] == split), "clip_id"])
    if len(clip_ids) < 2:
        raise ValueError(f"pretraining.split={split!r} has {len(clip_ids)} rendered clips; at least 2 are needed")
    if max_clips is None:
        return clip_ids
    check_max_clips(max_clips, len(clip_ids), split)
    order = np.random.default_rng(seed).permutation(len(clip_ids))
    return [clip_ids[i] for i in sorted(order[:max_clips])]


def block_clips(audio: ShardedAudio, block: dict[str, Any]) -> list[str]:
    """The clips a ``pretraining`` parameter block trains on (its ``split``, ``max_clips`` and ``seed``)."""
    return pretraining_clips(audio, block.get("split", "unlabeled"), block.get("max_clips"), int(block.get("seed", 0)))


@dataclass
class PretrainResult:
    encoder: Encoder
    projectors: nn.ModuleDict
    history: list[dict[str, float]]
    fingerprint: str
    resumed_from_epoch: int


@dataclass
class PretrainingRun:
    """The state of one pretraining run: models, optimiser, schedule, data and history so far."""

    config: PretrainConfig
    device: torch.device
    fingerprint: str
    encoder: Encoder
    projectors: nn.ModuleDict
    views: MultiLevelAugmentation
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: EpochShuffle
    loader: DataLoader
    steps_per_epoch: int = 1
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = None  # what computes the projections: ContrastiveModel, or it in DDP

    def contrastive_model(self) -> nn.Module:
        """The module :func:`train_epoch` calls; with several processes, in ``DistributedDataParallel``."""
        if self.model is None:
            model = ContrastiveModel(self.encoder, self.projectors)
            if world_size() > 1:
                global_batch_norm(model)
                ids = [self.device.index] if self.device.type == "cuda" else None
                model = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
            self.model = model
        return self.model


def pretraining_fingerprint(
    clip_ids: list[str],
    extractor: FeatureExtractor,
    encoder_config: EncoderConfig,
    augment_params: dict[str, Any],
    config: PretrainConfig,
    geometry: ArrayGeometry | None = None,
) -> str:
    """Digest of everything that shapes the trained weights: a checkpoint is resumed only when it matches.

    The array is part of it unless it is the paper's square (whose runs keep the digest they had);
    so are the blocks of optional augmentations only when they are on (runs without them keep theirs)."""
    optional = {entry.name for entry in REGISTRY if entry.optional}
    settings = {
        "pretraining": config.trained_settings(),
        "encoder": encoder_config.to_dict(),
        "augmentations": {
            name: block
            for name, block in augment_params.items()
            if name not in optional or (block or {}).get("enabled", False)
        },
        "features": extractor.extra_repr(),
        "clips": hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest(),
    }
    if geometry is not None and geometry != ArrayGeometry.circular():
        settings["array"] = geometry.to_dict()
    return fingerprint(settings)


def build_pretraining(
    audio: ShardedAudio,
    clip_ids: list[str],
    extractor: FeatureExtractor,
    encoder_config: EncoderConfig,
    augment_params: dict[str, Any],
    config: PretrainConfig,
) -> PretrainingRun:
    """Seed, then build the encoder, projection heads, augmentation chain, optimiser, schedule and loader."""
    if len(clip_ids) < 2:
        raise ValueError(f"pretraining needs at least 2 clips, got {len(clip_ids)}")
    device = resolve_device(config.device)
    crop_samples = int(round(config.crop_seconds * extractor.sample_rate))
    geometry = table_geometry(audio.metadata)
    if geometry.n_mics != extractor.n_mics:
        raise ValueError(
            f"spatial_audio was rendered with {geometry.n_mics} microphones, the features expect {extractor.n_mics}"
        )
    encoder_config = encoder_config.for_array(geometry.n_mics)
    run_fingerprint = pretraining_fingerprint(clip_ids, extractor, encoder_config, augment_params, config, geometry)

    seed_everything(config.seed)
    encoder = set_cuda_channels_last(build_encoder(encoder_config, extractor.n_mels), config.cuda_channels_last)
    encoder = encoder.to(device)
    projectors = make_projectors(encoder, config).to(device)
    views = MultiLevelAugmentation.from_params(augment_params, extractor, geometry).to(device)
    params = list(encoder.parameters()) + list(projectors.parameters())
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    dataset = CropPairs(audio, clip_ids, crop_samples, config.seed)
    sampler = EpochShuffle(len(dataset), config.seed)
    drop_last = len(dataset) > config.batch_size
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.num_workers > 0,
    )
    steps_per_epoch = len(dataset) // config.batch_size if drop_last else 1
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch)
    )
    return PretrainingRun(
        config,
        device,
        run_fingerprint,
        encoder,
        projectors,
        views,
        optimizer,
        scheduler,
        sampler,
        loader,
        steps_per_epoch,
    )


def resume_pretraining(run: PretrainingRun, checkpoint: Path) -> None:
    """Load models, optimiser, schedule and history from ``checkpoint`` (checked against the run's fingerprint)."""
    state = load_checkpoint(checkpoint, run.fingerprint)
    run.encoder.load_state_dict(state["encoder"])
    run.projectors.load_state_dict(state["projectors"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.start_epoch, run.history = int(state["epoch"]), list(state["history"])


def train_epoch(
    run: PretrainingRun, epoch: int, progress: bool = True, max_steps: int | None = None
) -> dict[str, float]:
    """One epoch over the unlabeled clips (or its first ``max_steps`` batches); every draw is seeded by
    ``(seed, epoch)``. Returns its record, with the number of optimizer ``steps`` it made."""
    config, device = run.config, run.device
    seed = epoch_seed(config.seed, epoch)
    torch.manual_seed(seed)
    run.sampler.set_epoch(epoch)
    generator = torch.Generator(device=device).manual_seed(seed)
    model = run.contrastive_model()
    model.train()
    total, clips, steps, started = 0.0, 0, 0, time.perf_counter()
    term_sums: dict[str, torch.Tensor] = {}
    for x1, x2 in tqdm(run.loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress):
        if max_steps is not None and steps >= max_steps:
            break
        steps += 1
        x1 = x1.to(device, non_blocking=True)
        x2 = x2.to(device, non_blocking=True)
        rows = share(len(x1)) if world_size() > 1 else None  # this process's rows of the global batch
        f1, f2 = run.views(x1, x2, generator, rows)
        terms: dict[str, torch.Tensor] = {}
        loss = contrastive_loss(model, f1, f2, config, terms)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        total += float(loss.detach()) * len(x1)
        clips += len(x1)
        for name, value in terms.items():
            term_sums[name] = term_sums.get(name, 0.0) + value * len(x1)
    elapsed = time.perf_counter() - started
    return {
        "epoch": epoch + 1,
        "loss": total / max(clips, 1),
        **{name: float(value) / max(clips, 1) for name, value in sorted(term_sums.items())},
        "lr": run.optimizer.param_groups[0]["lr"],
        "clips_per_s": clips / elapsed if elapsed > 0 else float("nan"),
        "seconds": elapsed,
        "steps": steps,
    }


def checkpoint_state(run: PretrainingRun, epochs_done: int) -> dict[str, Any]:
    """What :func:`resume_pretraining` needs to continue after ``epochs_done`` epochs: tensors and plain
    values only, so that it loads with ``weights_only=True`` (every draw of an epoch is seeded by
    ``(seed, epoch)``, so no generator state is needed)."""
    return {
        "version": CHECKPOINT_VERSION,
        "fingerprint": run.fingerprint,
        "epoch": epochs_done,
        "encoder": run.encoder.state_dict(),
        "projectors": run.projectors.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "history": run.history,
    }


def pretrain(
    audio: ShardedAudio,
    clip_ids: list[str],
    extractor: FeatureExtractor,
    encoder_config: EncoderConfig,
    augment_params: dict[str, Any],
    config: PretrainConfig,
    progress: bool = True,
) -> PretrainResult:
    """MC-SimCLR pretraining on ``clip_ids`` of ``audio``; resumes from ``config.checkpoint_path``.

    Returns the encoder (on CPU), the projection head and the per-epoch history (loss, learning
    rate, clips/s) of the whole run, epochs before a resume included.
    """
    if config.devices > 1 and world_size() == 1:
        return _spawn_pretraining(audio, clip_ids, extractor, encoder_config, augment_params, config, progress)
    run = build_pretraining(audio, clip_ids, extractor, encoder_config, augment_params, config)
    checkpoint = Path(config.checkpoint_path) if config.checkpoint_path else None
    if checkpoint is not None and checkpoint.exists() and not config.restart:
        resume_pretraining(run, checkpoint)
        logger.info("Resuming pretraining from %s after epoch %d of %d", checkpoint, run.start_epoch, config.epochs)

    epochs = tqdm(
        range(run.start_epoch, config.epochs),
        desc="pretraining",
        unit="epoch",
        disable=not progress,
        initial=run.start_epoch,
        total=config.epochs,
    )
    steps_left = config.max_steps
    for epoch in epochs:
        record = train_epoch(run, epoch, progress, steps_left)
        if steps_left is not None:
            steps_left -= record["steps"]
            if record["steps"] < run.steps_per_epoch:  # stopped within the epoch: no checkpoint of it
                logger.info("Pretraining stopped after pretraining.max_steps = %d steps", config.max_steps)
                run.history.append({**record, "partial": 1.0})
                break
        run.history.append(record)
        epochs.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.3g}")
        if checkpoint is not None and rank() == 0:
            save_checkpoint(checkpoint, checkpoint_state(run, epoch + 1))
        if world_size() > 1:
            torch.distributed.barrier()  # the checkpoint is written before any process goes on
        if steps_left is not None and steps_left <= 0:
            logger.info("Pretraining stopped after pretraining.max_steps = %d steps", config.max_steps)
            break
    plain_batch_norm(run.encoder)
    plain_batch_norm(run.projectors)
    return PretrainResult(
        run.encoder.cpu().eval(), run.projectors.cpu().eval(), run.history, run.fingerprint, run.start_epoch
    )


def _pretrain_process(
    process: int,
    processes: int,
    folder: str,
    audio: ShardedAudio,
    clip_ids: list[str],
    extractor: FeatureExtractor,
    encoder_config: EncoderConfig,
    augment_params: dict[str, Any],
    config: PretrainConfig,
    progress: bool,
) -> None:
    """One process of a data-parallel run (started by :func:`_spawn_pretraining`); the first writes the result."""
    device = resolve_device(config.device)
    if device.type == "cuda":
        device = torch.device("cuda", process)
        torch.cuda.set_device(device)
    with process_group(process, processes, device, str(Path(folder) / "rendezvous")):
        result = pretrain(
            audio,
            clip_ids,
            extractor,
            encoder_config,
            augment_params,
            replace(config, device=str(device)),
            progress and process == 0,
        )
        if process == 0:
            torch_save_atomic(
                Path(folder) / "result.pt",
                {
                    "encoder": result.encoder.state_dict(),
                    "projectors": result.projectors.state_dict(),
                    "history": result.history,
                    "fingerprint": result.fingerprint,
                    "start_epoch": result.resumed_from_epoch,
                },
            )


def _spawn_pretraining(
    audio: ShardedAudio,
    clip_ids: list[str],
    extractor: FeatureExtractor,
    encoder_config: EncoderConfig,
    augment_params: dict[str, Any],
    config: PretrainConfig,
    progress: bool,
) -> PretrainResult:
    """``config.devices`` processes train together (:mod:`mc_simclr.distributed`); the first one's result."""
    check_devices(config.devices, resolve_device(config.device))
    logger.info("Pretraining in %d processes (data parallel)", config.devices)
    with tempfile.TemporaryDirectory(prefix="mc_simclr_ddp_") as folder:
        args = (config.devices, folder, audio, clip_ids, extractor, encoder_config, augment_params, config, progress)
        torch.multiprocessing.spawn(_pretrain_process, args=args, nprocs=config.devices, join=True)
        state = torch.load(Path(folder) / "result.pt", map_location="cpu", weights_only=True)
    encoder = build_encoder(encoder_config.for_array(extractor.n_mics), extractor.n_mels)
    encoder.load_state_dict(state["encoder"])
    projectors = make_projectors(encoder, config)
    projectors.load_state_dict(state["projectors"])
    return PretrainResult(
        encoder.eval(), projectors.eval(), list(state["history"]), str(state["fingerprint"]), int(state["start_epoch"])
    )


HISTORY_METRICS = ("loss", "lr", "clips_per_s")


def history_metrics(history: list[dict[str, float]]) -> dict[str, list[dict[str, float]]]:
    """Per-epoch loss, learning rate and clips/s as ``{name: [{"value": v, "step": epoch}, ...]}``, and
    each loss term apart (``loss_joint``, ``loss_mel``, ``loss_gcc``, ``loss_spatial``: before their
    weights) for the epochs that recorded it (histories written before the terms were kept have none)."""
    terms = sorted({name for h in history for name in h if name.startswith("loss_")})
    return {
        name: [{"value": float(h[name]), "step": int(h["epoch"])} for h in history if name in h]
        for name in (*HISTORY_METRICS, *terms)
    }


def pretrain_from_params(
    audio: ShardedAudio,
    features: dict[str, Any],
    pretraining: dict[str, Any],
    encoder: dict[str, Any],
    augmentations: dict[str, Any],
    sample_rate: int,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain on the ``pretraining.split`` clips of ``audio`` from the parameter blocks; the encoder file.

    The one entry point of the ``pretraining`` and ``ablations`` pipelines. The file
    (:func:`package_encoder`) also holds the run's fingerprint, its per-epoch history and the
    seconds spent training (all epochs, also those of an interrupted earlier session), plus ``extra``.
    """
    clip_ids = block_clips(audio, pretraining)
    geometry = table_geometry(audio.metadata)
    extractor = FeatureExtractor.from_params(features, sample_rate=sample_rate, n_mics=geometry.n_mics)
    config = PretrainConfig.from_block(pretraining)
    result = pretrain(audio, clip_ids, extractor, EncoderConfig.from_params(encoder), augmentations, config, progress)
    logger.info(
        "Pretraining done: %d epochs on %d clips, final loss %.4f",
        len(result.history),
        len(clip_ids),
        result.history[-1]["loss"],
    )
    return package_encoder(
        result.encoder,
        extractor,
        features,
        {
            "pretraining_fingerprint": result.fingerprint,
            "history": result.history,
            "pretraining_s": sum(float(h.get("seconds", 0.0)) for h in result.history),
            **(extra or {}),
        },
        geometry,
    )
