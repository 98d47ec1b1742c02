"""Frame-wise sound event localisation and detection on recordings: multi-ACCDOA with ADPIT.

Every 100 ms label frame the model predicts, for each class, up to ``N_TRACKS`` (3) tracks, each a
Cartesian vector whose direction is the source's and whose length is its activity (ACCDOA), and a
distance (the 2024 task): output ``(batch, frames, tracks, 4, classes)`` with ``[x, y, z, d]``.
Training uses the auxiliary duplicating permutation-invariant loss (ADPIT) of multi-ACCDOA: the
references of one class in one frame fill one of three slot sets (one event: ``A0``; two: ``B0 B1``;
three: ``C0 C1 C2``), and for each frame and class the loss is the smallest mean squared error over
the 13 ways to assign a slot set to the three tracks (``A0 A0 A0``, the six orders of ``B0 B1`` over
three tracks with both present, the six orders of ``C0 C1 C2``). The other sets' vectors are added to
every target track by track (``A0 A0 A0``, ``B0 B0 B1``, ``C0 C1 C2``), so that the assignments of
an empty set reduce to one of the set in use.

The network: an encoder's per-frame outputs before its temporal pooling
(:meth:`~mc_simclr.networks.CRNNEncoder.frames`), averaged to the label frames, then a two-layer
head per frame. Recordings are cut into chunks of ``chunk_seconds`` (the last one zero-padded);
training chunks get one random symmetry of the array each (``channel_swap``: the feature channels
permuted as :class:`~mc_simclr.augment.FeatureChannelSwap` does and the reference directions
transformed with them, the audio channel swapping of DCASE systems); predictions are decoded to
DCASE rows (a track is active where its vector is longer than ``threshold``; two active tracks of
one class closer than ``merge_deg`` are one event) and scored with :mod:`mc_simclr.seld_metrics`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import direction_vectors
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.audio.dcase import LABEL_FRAME_SECONDS, METADATA_COLUMNS
from mc_simclr.augment import FeatureChannelSwap
from mc_simclr.devices import resolve_device
from mc_simclr.networks import Encoder
from mc_simclr.params import check_values, dataclass_from_params
from mc_simclr.seld_metrics import dcase2023_scores, dcase2024_scores
from mc_simclr.utils import seed_everything

N_TRACKS = 3
#: ADPIT slots: A0 (one event of the class), B0 B1 (two), C0 C1 C2 (three).
N_SLOTS = 6
#: Slot of each output track, per assignment (ADPIT's 13).
PERMUTATIONS = (
    (0, 0, 0),
    (1, 1, 2),
    (1, 2, 1),
    (1, 2, 2),
    (2, 1, 1),
    (2, 1, 2),
    (2, 2, 1),
    (3, 4, 5),
    (3, 5, 4),
    (4, 3, 5),
    (4, 5, 3),
    (5, 3, 4),
    (5, 4, 3),
)
_SET_OF_SLOT = (0, 1, 1, 2, 2, 2)
MODES = ("frozen", "finetune", "scratch")


@dataclass(frozen=True)
class FramewiseConfig:
    """The ``seld.training`` parameter block."""

    seed: int = 0
    device: str = "auto"
    chunk_seconds: float = 5.0
    batch_size: int = 16
    epochs: int = 30
    lr: float = 1e-3  # Adam
    weight_decay: float = 0.0
    encoder_lr_scale: float = 1.0  # fine-tuning a pretrained encoder: its learning rate x this
    hidden: int = 128
    distance_scale_m: float = 5.0  # distances are predicted in units of this
    threshold: float = 0.5
    merge_deg: float = 15.0
    channel_swap: bool = True  # a random array symmetry per training chunk, its labels transformed with it

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "seld.training") -> FramewiseConfig:
        config = dataclass_from_params(cls, dict(params or {}), name)
        check_values(
            {
                "chunk_seconds (a positive multiple of 0.1 s)": config.chunk_seconds > 0
                and abs(config.chunk_seconds / LABEL_FRAME_SECONDS - round(config.chunk_seconds / LABEL_FRAME_SECONDS))
                < 1e-6,
                "batch_size (>= 1)": config.batch_size >= 1,
                "epochs (>= 1)": config.epochs >= 1,
                "lr (> 0)": config.lr > 0,
                "weight_decay (>= 0)": config.weight_decay >= 0,
                "encoder_lr_scale (>= 0)": config.encoder_lr_scale >= 0,
                "hidden (>= 1)": config.hidden >= 1,
                "distance_scale_m (> 0)": config.distance_scale_m > 0,
                "threshold (in (0, 1))": 0 < config.threshold < 1,
                "merge_deg (>= 0)": config.merge_deg >= 0,
            },
            name,
        )
        return config

    @property
    def chunk_frames(self) -> int:
        return int(round(self.chunk_seconds / LABEL_FRAME_SECONDS))


def adpit_targets(rows: pd.DataFrame, n_frames: int, n_classes: int, distance_scale_m: float = 5.0) -> np.ndarray:
    """ADPIT targets ``(n_frames, 6 slots, 5, n_classes)`` of DCASE rows: ``[activity, x, y, z, d]``.

    ``d`` is the distance in units of ``distance_scale_m`` (rows carry centimetres; 0 when a row
    has none). More than three events of one class in one frame: the three of lowest source index.
    """
    targets = np.zeros((n_frames, N_SLOTS, 5, n_classes), dtype=np.float32)
    if rows.empty:
        return targets
    rows = rows[rows["frame"] < n_frames].sort_values(["frame", "class", "source"], kind="stable")
    vectors = direction_vectors(rows["azimuth"].to_numpy(), rows["elevation"].to_numpy())
    distance = (
        rows["distance"].to_numpy(float) / 100.0 / distance_scale_m if "distance" in rows else np.zeros(len(rows))
    )
    frames, classes = rows["frame"].to_numpy(int), rows["class"].to_numpy(int)
    keys = frames * n_classes + classes
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    first_slot = {1: 0, 2: 1, 3: 3}
    for start, end in zip(starts, ends, strict=True):
        count = min(end - start, 3)
        for j in range(count):
            i = start + j
            slot = first_slot[count] + j
            targets[frames[i], slot, 0, classes[i]] = 1.0
            targets[frames[i], slot, 1:4, classes[i]] = vectors[i]
            targets[frames[i], slot, 4, classes[i]] = distance[i]
    return targets


def swap_targets(targets: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """ADPIT targets ``(B, L, 6, 5, C)`` with each chunk's direction vectors turned by its symmetry's
    transform ``rotations`` ``(B, 3, 3)`` (activity and distance unchanged)."""
    vectors = torch.einsum("bij,blsjc->blsic", rotations.to(targets.dtype), targets[:, :, :, 1:4])
    return torch.cat([targets[:, :, :, :1], vectors, targets[:, :, :, 4:]], dim=3)


def adpit_loss(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ADPIT: ``output`` ``(B, L, 3, 4, C)``, ``targets`` ``(B, L, 6, 5, C)``; the mean over frames and
    classes of the smallest per-assignment mean squared error."""
    vectors = targets[:, :, :, :1] * targets[:, :, :, 1:]  # (B, L, 6, 4, C): activity x [x, y, z, d]
    # each assignment's targets get the other two sets' own track patterns (A0 A0 A0, B0 B0 B1,
    # C0 C1 C2) added, track by track: those are zero unless that set holds the frame's events, so
    # that the assignments of an empty set reduce to the pattern of the set in use
    patterns = [torch.stack([vectors[:, :, s] for s in slots], dim=2) for slots in ((0, 0, 0), (1, 1, 2), (3, 4, 5))]
    pads = [patterns[1] + patterns[2], patterns[0] + patterns[2], patterns[0] + patterns[1]]
    losses = []
    for slots in PERMUTATIONS:
        pad = pads[_SET_OF_SLOT[slots[0]]]  # (B, L, 3, 4, C)
        target = torch.stack([vectors[:, :, s] for s in slots], dim=2) + pad
        losses.append((output - target).square().mean(dim=(2, 3)))  # (B, L, C)
    return torch.stack(losses).min(dim=0).values.mean()


class FrameSELDHead(nn.Module):
    """Per frame: ``in_dim`` -> hidden (ReLU) -> 3 tracks x ``[x, y, z, d]`` x classes (tanh on the
    direction vector, ReLU on the distance)."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, N_TRACKS * 4 * n_classes))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.net(frames).unflatten(-1, (N_TRACKS, 4, self.n_classes))
        return torch.cat([torch.tanh(out[..., :3, :]), F.relu(out[..., 3:, :])], dim=-2)


class FrameSELDModel(nn.Module):
    """An encoder's per-frame outputs, averaged to ``label_frames`` per chunk, through a head.

    Input chunks have ``label_frames * frames_per_label`` feature frames. The encoder pools time by
    the product of its time pools (``stride``); its output frame ``j`` covers feature frames
    ``[j stride, (j + 1) stride)``. Each label frame is the mean, over its ``frames_per_label``
    feature frames, of the output frame that covers each: exact alignment for any stride.
    """

    def __init__(
        self, encoder: Encoder, n_classes: int, label_frames: int, hidden: int = 128, frames_per_label: int = 5
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.label_frames = label_frames
        self.frames_per_label = frames_per_label
        self.stride = math.prod(int(p[0]) for p in encoder.config.pools)
        self.head = FrameSELDHead(encoder.frame_dim, n_classes, hidden)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """The encoder's per-frame outputs averaged to the label frames: ``(B, label_frames, D)``."""
        frames = self.encoder.frames(features)  # (B, T', D)
        n = self.label_frames * self.frames_per_label
        per_feature = frames.repeat_interleave(self.stride, dim=1)[:, :n]
        if per_feature.shape[1] < n:
            raise ValueError(f"a chunk needs {n} feature frames; the encoder gave {frames.shape[1]} x {self.stride}")
        return per_feature.unflatten(1, (self.label_frames, self.frames_per_label)).mean(dim=2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(features))


@dataclass
class SceneData:
    """One recording ready for the model: its features, ADPIT targets and reference rows."""

    name: str
    features: torch.Tensor  # (C, T, F), T = feature frames of the whole recording
    targets: np.ndarray  # (n_frames, 6, 5, C)
    rows: pd.DataFrame
    n_frames: int
    frames_per_label: int  # feature frames per label frame


def scene_data(
    name: str,
    features: torch.Tensor,
    rows: pd.DataFrame,
    n_frames: int,
    n_classes: int,
    frames_per_label: int,
    distance_scale_m: float = 5.0,
) -> SceneData:
    return SceneData(
        name,
        features,
        adpit_targets(rows, n_frames, n_classes, distance_scale_m),
        rows,
        n_frames,
        frames_per_label,
    )


def chunk_starts(n_frames: int, chunk_frames: int) -> list[int]:
    """Label-frame starts of the chunks that cover a recording: back to back, the last one ending at
    the recording's end (overlapping its predecessor); one padded chunk for a shorter recording."""
    if n_frames <= chunk_frames:
        return [0]
    starts = list(range(0, n_frames - chunk_frames + 1, chunk_frames))
    if starts[-1] + chunk_frames < n_frames:
        starts.append(n_frames - chunk_frames)
    return starts


def chunk(scene: SceneData, start: int, chunk_frames: int) -> tuple[torch.Tensor, np.ndarray]:
    """Features ``(C, chunk_frames * frames_per_label, F)`` and targets of the chunk at ``start``,
    zero-padded past the recording's end (only a recording shorter than a chunk has any)."""
    step = scene.frames_per_label
    length = chunk_frames * step
    feats = scene.features[:, start * step : start * step + length]
    if feats.shape[1] < length:
        feats = F.pad(feats, (0, 0, 0, length - feats.shape[1]))
    targets = scene.targets[start : start + chunk_frames]
    if len(targets) < chunk_frames:
        targets = np.concatenate([targets, np.zeros((chunk_frames - len(targets), *targets.shape[1:]), np.float32)])
    return feats, targets


def decode(
    output: np.ndarray, threshold: float = 0.5, merge_deg: float = 15.0, distance_scale_m: float = 5.0
) -> pd.DataFrame:
    """DCASE rows of ``output`` ``(L, 3, 4, C)``: per frame, class and track, an event where the
    vector is longer than ``threshold``; active tracks of one class closer than ``merge_deg`` merge
    (their mean direction and distance). ``source`` is the track index."""
    rows = []
    length = np.linalg.norm(output[:, :, :3, :], axis=2)  # (L, 3, C)
    for frame, track, cls in zip(*np.nonzero(length > threshold), strict=True):
        rows.append((frame, track, cls))
    out = []
    for (frame, cls), group in pd.DataFrame(rows, columns=["frame", "track", "class"]).groupby(["frame", "class"]):
        vectors = [output[frame, t, :3, cls] / length[frame, t, cls] for t in group["track"]]
        dists = [output[frame, t, 3, cls] for t in group["track"]]
        tracks = list(group["track"])
        kept: list[tuple[int, list[np.ndarray], list[float]]] = []
        for track, vector, dist in zip(tracks, vectors, dists, strict=True):
            for _, members, member_dists in kept:
                mean = np.mean(members, axis=0)
                angle = math.degrees(math.acos(np.clip(np.dot(mean / np.linalg.norm(mean), vector), -1, 1)))
                if angle < merge_deg:
                    members.append(vector)
                    member_dists.append(dist)
                    break
            else:
                kept.append((track, [vector], [dist]))
        for track, members, member_dists in kept:
            mean = np.mean(members, axis=0)
            azimuth = math.degrees(math.atan2(mean[1], mean[0]))
            elevation = math.degrees(math.atan2(mean[2], math.hypot(mean[0], mean[1])))
            distance = max(float(np.mean(member_dists)) * distance_scale_m * 100.0, 1.0)
            out.append((int(frame), int(cls), int(track), azimuth, elevation, distance))
    return pd.DataFrame(out, columns=list(METADATA_COLUMNS))


@torch.no_grad()
def pooled_chunks(
    model: FrameSELDModel,
    scene: SceneData,
    config: FramewiseConfig,
    swap: FeatureChannelSwap | None = None,
    symmetry: int = 0,
) -> torch.Tensor:
    """The frozen encoder's pooled frames of every chunk of ``scene`` (under ``symmetry`` of ``swap``):
    ``(n_chunks, L, D)`` (CPU)."""
    model.eval()
    device = next(model.parameters()).device
    starts = chunk_starts(scene.n_frames, config.chunk_frames)
    out = []
    for i in range(0, len(starts), config.batch_size):
        feats = torch.stack([chunk(scene, s, config.chunk_frames)[0] for s in starts[i : i + config.batch_size]])
        if swap is not None and symmetry:
            feats = swap(feats, torch.full((len(feats),), symmetry, dtype=torch.long))
        out.append(model.pooled(feats.to(device)).cpu())
    return torch.cat(out)


@torch.no_grad()
def predict_scene(
    model: FrameSELDModel, scene: SceneData, config: FramewiseConfig, pooled: torch.Tensor | None = None
) -> np.ndarray:
    """The model's output ``(n_frames, 3, 4, C)`` over a whole recording (from the encoder's cached
    ``pooled`` chunks when given: a frozen encoder)."""
    model.eval()
    device = next(model.parameters()).device
    starts = chunk_starts(scene.n_frames, config.chunk_frames)
    outputs = []
    for i in range(0, len(starts), config.batch_size):
        if pooled is not None:
            outputs.append(model.head(pooled[i : i + config.batch_size].to(device)).cpu())
            continue
        feats = torch.stack([chunk(scene, s, config.chunk_frames)[0] for s in starts[i : i + config.batch_size]])
        outputs.append(model(feats.to(device)).cpu())
    chunks = torch.cat(outputs).numpy()  # (n_chunks, L, 3, 4, C)
    out = np.zeros((max(scene.n_frames, config.chunk_frames), *chunks.shape[2:]), dtype=np.float32)
    for start, values in zip(starts, chunks, strict=True):  # a later chunk overwrites the overlap
        out[start : start + config.chunk_frames] = values
    return out[: scene.n_frames]


def evaluate_scenes(
    model: FrameSELDModel,
    scenes: list[SceneData],
    n_classes: int,
    config: FramewiseConfig,
    pooled: dict[int, torch.Tensor] | None = None,
) -> dict:
    """Both DCASE metric sets of the model's decoded predictions on ``scenes`` (``pooled``: the
    frozen encoder's cached chunks, keyed by ``id(scene)``)."""
    pairs = []
    for scene in scenes:
        output = predict_scene(model, scene, config, None if pooled is None else pooled[id(scene)])
        predicted = decode(output, config.threshold, config.merge_deg, config.distance_scale_m)
        pairs.append((scene.rows, predicted, scene.n_frames))
    has_distance = all("distance" in s.rows for s in scenes)
    return {
        "dcase2024": dcase2024_scores(pairs, n_classes, distance=has_distance),
        "dcase2023": dcase2023_scores(pairs, n_classes),
    }


def _selection_score(scores: dict) -> float:
    """Lower is better: the 2024 SELD score (1 when nothing at all was detected)."""
    value = scores["dcase2024"]["seld_score"]
    return 1.0 if not math.isfinite(value) else float(value)


def train_framewise(
    encoder: Encoder,
    train: list[SceneData],
    validation: list[SceneData],
    n_classes: int,
    config: FramewiseConfig,
    mode: str,
    progress: bool = True,
    symmetries: ArraySymmetries | None = None,
) -> tuple[FrameSELDModel, pd.DataFrame]:
    """Train the frame-wise model on ``train`` chunks; keep the epoch of best validation SELD score.

    With ``config.channel_swap`` and the array's ``symmetries``, every training chunk is seen under a
    random symmetry of the array (drawn per chunk and epoch), its reference directions transformed
    with it; a frozen encoder's frames are cached under every symmetry.

    ``mode``: ``frozen`` (the encoder as it is, only the head trains; its BatchNorm statistics kept),
    ``finetune`` (the encoder too, at ``lr * encoder_lr_scale``) or ``scratch`` (the encoder, as
    given, trains at ``lr``: give it a freshly initialised one). ``encoder`` itself is not modified.
    Returns the selected model (on CPU, eval mode) and the per-epoch history.
    """
    if mode not in MODES:
        raise ValueError(f"seld mode must be one of {list(MODES)}, got {mode!r}")
    if not train or not validation:
        raise ValueError("train_framewise needs at least one training and one validation recording")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    steps = {s.frames_per_label for s in [*train, *validation]}
    if len(steps) != 1:
        raise ValueError(f"recordings with different feature frames per label frame: {sorted(steps)}")
    model = FrameSELDModel(copy.deepcopy(encoder), n_classes, config.chunk_frames, config.hidden, steps.pop())
    model = model.to(device)
    head_params = list(model.head.parameters())
    groups = [{"params": head_params, "lr": config.lr}]
    if mode == "frozen":
        model.encoder.requires_grad_(False)
    else:
        scale = config.encoder_lr_scale if mode == "finetune" else 1.0
        groups.append({"params": list(model.encoder.parameters()), "lr": config.lr * scale})
    optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    items = [
        (i, k, s)
        for i, scene in enumerate(train)
        for k, s in enumerate(chunk_starts(scene.n_frames, config.chunk_frames))
    ]
    swap = None
    if config.channel_swap and symmetries is not None and len(symmetries) > 1:
        swap = FeatureChannelSwap(symmetries)
        rotations = torch.as_tensor(symmetries.rotations, dtype=torch.float32)
    n_sym = len(symmetries) if swap is not None else 1
    # a frozen encoder gives the same frames every epoch: compute them once (training chunks under
    # every symmetry: (S, n_chunks, L, D))
    cache, train_cache = None, None
    if mode == "frozen":
        cache = {id(s): pooled_chunks(model, s, config) for s in validation}
        train_cache = {
            id(s): torch.stack([pooled_chunks(model, s, config, swap, k) for k in range(n_sym)]) for s in train
        }
    generator = torch.Generator().manual_seed(config.seed)
    best, best_state, history = float("inf"), None, []
    for epoch in tqdm(range(config.epochs), desc=f"SELD ({mode})", unit="epoch", disable=not progress):
        model.train()
        if mode == "frozen":
            model.encoder.eval()
        order = torch.randperm(len(items), generator=generator).tolist()
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            picked = [items[j] for j in order[b : b + config.batch_size]]
            batch = [chunk(train[i], start, config.chunk_frames) for i, _, start in picked]
            targets = torch.as_tensor(np.stack([t for _, t in batch]))
            symmetry = torch.zeros(len(picked), dtype=torch.long)
            if swap is not None:
                symmetry = torch.randint(n_sym, (len(picked),), generator=generator)
                targets = swap_targets(targets, rotations[symmetry])
            targets = targets.to(device)
            if train_cache is not None:  # frozen: the head on the encoder's cached frames
                frames = [
                    train_cache[id(train[i])][int(sym), k] for (i, k, _), sym in zip(picked, symmetry, strict=True)
                ]
                output = model.head(torch.stack(frames).to(device))
            else:
                feats = torch.stack([f for f, _ in batch])
                if swap is not None:
                    feats = swap(feats, symmetry)
                output = model(feats.to(device))
            loss = adpit_loss(output, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        scores = evaluate_scenes(model, validation, n_classes, config, cache)
        score = _selection_score(scores)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / len(items),
                "val_seld_score": score,
                "val_f_score": scores["dcase2024"]["f_score"],
                "val_doa_error": scores["dcase2024"]["doa_error"],
            }
        )
        if score < best:
            best, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.cpu().eval(), pd.DataFrame(history)
