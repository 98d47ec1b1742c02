"""Supervised evaluation protocols of the paper (section 4.3) on precomputed feature patches.

* Linear probing: the encoder is frozen; a linear class head (cross-entropy) and a linear azimuth
  head (mean squared error on (cos, sin), decoded with atan2) are trained separately on its
  embeddings. Embeddings are standardised with the training set's mean and deviation (an affine map
  a linear head could absorb; it only makes SGD's job well conditioned).
* Fine-tuning: both heads and the encoder train jointly; a *pretrained* encoder's gradients are
  scaled by ``encoder_grad_scale`` (0.1) so that it does not overfit the small labeled split, a
  random-init encoder trains at full rate (it is the supervised-from-scratch model).
* Subset fine-tuning: the same on class-balanced, seeded subsets of the labeled clips.
* k-NN: no training at all; each test patch takes the majority class and the mean azimuth
  direction of its ``knn_k`` nearest training patches (cosine similarity of standardised
  embeddings; the training patches under every array symmetry, with their mapped azimuths).
  It reads what the embedding's geometry holds, with no head that could learn a detour.

BatchNorm of a frozen encoder (``evaluation.batchnorm``): ``keep`` probes the encoder with the
running statistics it carries (a random encoder's initial ones, a pretrained encoder's learned on
augmented views); ``recalibrate`` re-estimates them on the labeled split first (forward passes
without gradients or labels; each layer gets the exact mean and variance of its input over all
labeled patches), for every encoder alike, as self-supervised benchmarks do for random-init
baselines. It applies to the linear probe, k-NN and the embedding
plot; the linear probe is also run with the other choice, so that both are reported.
Fine-tuning trains the statistics anyway.

ChannelSwap is the only augmentation: one random array symmetry per training patch, applied to
the features (:class:`~mc_simclr.augment.FeatureChannelSwap`) and to the azimuth label
(:func:`~mc_simclr.augment.map_azimuth`). Model selection uses the validation split: the epoch with
the best validation score is kept (accuracy for the class head, error for the azimuth head, their
sum of losses for fine-tuning). Results are per clip: the predictions of a clip's patches are
averaged (class probabilities; azimuth unit vectors).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.symmetry import ArraySymmetries, DirectionLabels
from mc_simclr.augment import ArrayLike, FeatureChannelSwap, array_symmetries
from mc_simclr.config import check_values, dataclass_from_params
from mc_simclr.devices import resolve_device
from mc_simclr.features import FeatureExtractor
from mc_simclr.metrics import clip_scores
from mc_simclr.models import Encoder, SELDHeads, build_encoder
from mc_simclr.shards import FeatureRows
from mc_simclr.training import encoder_geometry, unpack_encoder, warmup_cosine
from mc_simclr.utils import epoch_seed, seed_everything

logger = logging.getLogger(__name__)


@dataclass
class SupervisedConfig:
    """Settings of the supervised protocols (the ``evaluation.supervised`` parameter block).

    The defaults are conf/paper's (batch 128 and lr 0.01 as in the paper); conf/base sets the
    CPU-sized schedule.
    """

    seed: int = 0
    device: str = "auto"
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    probe_epochs: int = 100
    finetune_epochs: int = 100
    encoder_grad_scale: float = 0.1
    azimuth_loss_weight: float = 1.0
    class_loss_weight: float = 1.0  # 0: azimuth only (the supervised azimuth ceiling)
    channel_swap: bool = True
    knn_k: int = 5  # neighbours of the k-NN protocol

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "evaluation.supervised") -> SupervisedConfig:
        config = dataclass_from_params(cls, params, name)
        checks = {
            "batch_size": config.batch_size >= 2,
            "lr": config.lr > 0,
            "probe_epochs": config.probe_epochs >= 1,
            "finetune_epochs": config.finetune_epochs >= 1,
            "encoder_grad_scale": config.encoder_grad_scale >= 0,
            "warmup_epochs": config.warmup_epochs >= 0,
            "azimuth_loss_weight": config.azimuth_loss_weight >= 0,
            "class_loss_weight": config.class_loss_weight >= 0
            and config.azimuth_loss_weight + config.class_loss_weight > 0,
            "knn_k": config.knn_k >= 1,
        }
        check_values(checks, name)
        return config


#: Feature patches ``(N, C, T, F)``: in memory, or read from the feature shards batch by batch.
Patches = torch.Tensor | FeatureRows


def take(features: Patches, index: slice | torch.Tensor) -> torch.Tensor:
    """Patches ``index`` (a slice or an index tensor) of in-memory or sharded features, as a float32 tensor."""
    if isinstance(features, torch.Tensor):
        return features[index]
    return torch.from_numpy(features[index])


@dataclass
class Split:
    """Feature patches of one split with their labels.

    ``features`` is a tensor, or (as :func:`load_splits` gives them) a lazy
    :class:`~mc_simclr.shards.FeatureRows` whose patches every protocol reads batch by batch, so the
    memory of an evaluation does not grow with the size of its splits.
    """

    features: Patches  # (N, C, T, F)
    items: pd.DataFrame  # one row per patch: clip_id, class_index, azimuth_deg, ...

    def __len__(self) -> int:
        return len(self.items)

    @property
    def class_index(self) -> torch.Tensor:
        return torch.tensor(self.items["class_index"].to_numpy(), dtype=torch.long)

    @property
    def azimuth(self) -> torch.Tensor:
        return torch.tensor(self.items["azimuth_deg"].to_numpy(), dtype=torch.float32)

    @property
    def elevation(self) -> torch.Tensor:
        if "elevation_deg" not in self.items:
            raise ValueError("these feature patches have no elevation_deg: extract the features again")
        return torch.tensor(self.items["elevation_deg"].to_numpy(), dtype=torch.float32)

    def direction_tensors(self, labels: DirectionLabels) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Azimuths and (for labels that need them) elevations of the patches, float32, in degrees."""
        return self.azimuth, self.elevation if labels.kind != "azimuth" else None

    def directions(self, labels: DirectionLabels) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`direction_tensors` as NumPy arrays."""
        azimuth, elevation = self.direction_tensors(labels)
        return azimuth.numpy(), None if elevation is None else elevation.numpy()

    def subset(self, clip_ids: set[str]) -> Split:
        mask = self.items["clip_id"].isin(clip_ids).to_numpy()
        if isinstance(self.features, torch.Tensor):
            return Split(self.features[torch.tensor(mask)], self.items[mask].reset_index(drop=True))
        return Split(self.features.select(mask), self.items[mask].reset_index(drop=True))


@dataclass
class Predictions:
    """Patch-level predictions of one protocol on one split."""

    class_probs: np.ndarray | None  # (N, K)
    direction_vector: np.ndarray  # (N, labels.dim): (cos, sin) of the azimuth for the paper's array
    validation: dict[str, float] = field(default_factory=dict)
    labels: DirectionLabels = field(default_factory=DirectionLabels)


@dataclass
class FineTuned:
    """Result of :func:`fine_tune`: test predictions and the selected encoder + heads."""

    predictions: dict[str, Predictions]
    encoder: Encoder
    heads: SELDHeads


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def scale_gradients(module: nn.Module, factor: float) -> list[torch.utils.hooks.RemovableHandle]:
    """Multiply every parameter gradient of ``module`` by ``factor`` during backward."""
    return [p.register_hook(lambda grad, f=factor: grad * f) for p in module.parameters() if p.requires_grad]


def embed(encoder: Encoder, features: Patches, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Embeddings ``(N, D)`` of features (eval mode, no gradients), returned on CPU."""
    return embed_symmetries(encoder, features, device, None, batch_size)[0]


def embed_symmetries(
    encoder: Encoder, features: Patches, device: torch.device, array: ArrayLike | None = 4, batch_size: int = 256
) -> torch.Tensor:
    """Embeddings ``(S, N, D)`` of the features under each of the S array symmetries (``array`` None:
    the features as they are, S = 1), in eval mode without gradients, on CPU. Each batch of patches
    is read once."""
    swap = None if array is None else FeatureChannelSwap(array)
    n_sym = 1 if swap is None else len(swap.symmetries)
    encoder = encoder.to(device).eval()
    out: list[list[torch.Tensor]] = [[] for _ in range(n_sym)]
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            x = take(features, slice(start, start + batch_size))
            for s in range(n_sym):
                view = x if swap is None else swap(x, torch.full((len(x),), s, dtype=torch.long))
                out[s].append(encoder(view.to(device)).cpu())
    return torch.stack([torch.cat(parts) for parts in out])


BATCHNORM_MODES = ("recalibrate", "keep")
#: Patches whose BatchNorm inputs :func:`recalibrate_batchnorm` sums in float64 at once.
RECALIBRATION_CHUNK = 16


def recalibrate_batchnorm(encoder: Encoder, features: Patches, device: torch.device, batch_size: int = 256) -> Encoder:
    """A copy of ``encoder`` whose BatchNorm running statistics are re-estimated on ``features``.

    Layer by layer in forward order, each BatchNorm's mean and (unbiased) variance become the exact
    statistics of its input over all of ``features``, with the layers before it already
    recalibrated and everything in eval mode: the population statistics the frozen encoder then
    normalises with, whatever the batch size or the order of the patches (a running average of
    batch statistics would depend on both). No gradients, no labels; only those statistics change.
    The copy is returned in eval mode; ``encoder`` is not modified.
    """
    model = copy.deepcopy(encoder).to(device).eval()
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        totals: dict[str, torch.Tensor | int] = {}

        def collect(_module, inputs, totals=totals):
            # float64 sums, a few patches at a time (a float64 copy of a whole batch's first-layer
            # activations would be several GiB for the paper's encoder)
            for part in inputs[0].detach().split(RECALIBRATION_CHUNK):
                x = part.to(torch.float64).transpose(0, 1).flatten(1)  # (channels, values)
                totals["sum"] = totals.get("sum", 0) + x.sum(1)
                totals["squares"] = totals.get("squares", 0) + x.square().sum(1)
                totals["n"] = totals.get("n", 0) + x.shape[1]

        handle = layer.register_forward_pre_hook(collect)
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                model(take(features, slice(start, start + batch_size)).to(device))
        handle.remove()
        n = int(totals["n"])
        mean = totals["sum"] / n
        variance = (totals["squares"] / n - mean.square()).clamp_min(0.0) * n / max(n - 1, 1)
        layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
        layer.running_var.copy_(variance.to(layer.running_var.dtype))
    return model


def frozen_encoder(encoder: Encoder, train: Split, batchnorm: str, device: torch.device) -> Encoder:
    """The encoder as the frozen protocols see it: as it is (``keep``) or recalibrated on ``train``."""
    if batchnorm == "keep":
        return encoder
    if batchnorm == "recalibrate":
        return recalibrate_batchnorm(encoder, train.features, device)
    raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {batchnorm!r}")


def clip_predictions(items: pd.DataFrame, predictions: Predictions) -> pd.DataFrame:
    """Average patch predictions per clip: class = argmax of mean probabilities, direction = mean
    target vector, decoded into the prediction columns of the array's labels (``pred_azimuth`` for
    the paper's array; see :mod:`mc_simclr.metrics`)."""
    labels = predictions.labels
    frame = items[["clip_id"]].copy()
    vector_cols = ["vx", "vy", "vz"][: labels.dim]
    frame[vector_cols] = predictions.direction_vector
    if predictions.class_probs is not None:
        probs = pd.DataFrame(predictions.class_probs, index=frame.index)
        frame = pd.concat([frame, probs.add_prefix("p")], axis=1)
    grouped = frame.groupby("clip_id", sort=False).mean()
    truth = ("azimuth_deg",) if labels.kind == "azimuth" else ("azimuth_deg", "elevation_deg")
    meta_cols = [c for c in ("label", "class_index", *truth, "rt60", "split") if c in items]
    out = items.groupby("clip_id", sort=False)[meta_cols].first()
    for column, values in labels.truth(out["azimuth_deg"].to_numpy(), out.get("elevation_deg")).items():
        out[column] = values
    for column, values in labels.decode(grouped[vector_cols].to_numpy()).items():
        out[column] = values
    if predictions.class_probs is not None:
        out["pred_class"] = grouped.filter(regex=r"^p\d+$").to_numpy().argmax(axis=1)
    else:
        out["pred_class"] = np.nan
    return out.reset_index()


def direction_selection_metric(labels: DirectionLabels) -> str:
    """The validation score that selects a direction head: azimuth error for the paper's array, the
    great-circle angular error for a 3-D array, the axis-angle error for a linear one."""
    return {"azimuth": "azimuth_error", "direction": "angular_error", "axis": "axis_error"}[labels.kind]


def split_scores(items: pd.DataFrame, predictions: Predictions) -> dict[str, float]:
    """Clip-level accuracy and azimuth error of patch predictions on one split."""
    return clip_scores(clip_predictions(items, predictions))


def _sgd(params, config: SupervisedConfig, steps_per_epoch: int, epochs: int):
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = warmup_cosine(epochs * steps_per_epoch, min(config.warmup_epochs, epochs - 1) * steps_per_epoch)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _direction_targets(
    directions: tuple[torch.Tensor, torch.Tensor | None],
    batch: torch.Tensor,
    symmetry: torch.Tensor,
    symmetries: ArraySymmetries,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Regression targets of the ``batch`` patches' directions (:meth:`Split.direction_tensors`) mapped by the
    applied array symmetries ((cos, sin) of the azimuth for the paper's array)."""
    azimuth, elevation = directions
    targets = symmetries.targets(azimuth[batch], None if elevation is None else elevation[batch], symmetry)
    return torch.as_tensor(targets, dtype=torch.float32, device=device)


def _sample_symmetries(
    n: int, config: SupervisedConfig, generator: torch.Generator, symmetries: ArraySymmetries
) -> torch.Tensor:
    if not config.channel_swap:
        return torch.zeros(n, dtype=torch.long)
    return torch.randint(len(symmetries), (n,), generator=generator)


# --------------------------------------------------------------------------------------------
# Linear probing
# --------------------------------------------------------------------------------------------
def standardised_embeddings(
    encoder: Encoder, train: Split, device: torch.device, array: ArrayLike = 4
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Training embeddings ``(S, N, D)`` under every array symmetry, standardised with the mean and
    deviation of the untransformed ones, and the function that standardises other embeddings alike."""
    train_emb = embed_symmetries(encoder, train.features, device, array)
    mean = train_emb[0].mean(0, keepdim=True)
    std = train_emb[0].std(0, keepdim=True).clamp_min(1e-6)

    def standardise(emb: torch.Tensor) -> torch.Tensor:
        return (emb - mean) / std

    return standardise(train_emb), standardise


def train_probe_heads(
    train_emb: torch.Tensor,
    train: Split,
    val_emb: torch.Tensor,
    validation: Split,
    n_classes: int,
    config: SupervisedConfig,
    array: ArrayLike = 4,
    progress: bool = True,
) -> tuple[SELDHeads, dict[str, float]]:
    """Linear class and azimuth heads on fixed embeddings ``train_emb`` ``(S, N, D)`` (one per array symmetry).

    Each epoch draws a random symmetry per training patch (its azimuth label mapped alike). Each head
    keeps the epoch of its best validation score (accuracy; azimuth error); returns the heads and
    those scores.
    """
    symmetries = array_symmetries(array)
    labels = train.class_index
    labelled = labels >= 0
    heads = SELDHeads(train_emb.shape[-1], n_classes, symmetries.labels.dim)
    steps = -(-len(labels) // config.batch_size)
    optimizer, scheduler = _sgd(heads.parameters(), config, steps, config.probe_epochs)
    selection = direction_selection_metric(symmetries.labels)
    best = {"accuracy": (-1.0, None), selection: (float("inf"), None)}
    directions = train.direction_tensors(symmetries.labels)
    for epoch in tqdm(range(config.probe_epochs), desc="linear probe", unit="epoch", leave=False, disable=not progress):
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        symmetry = _sample_symmetries(len(labels), config, generator, symmetries)
        for batch in _batches(len(labels), config.batch_size, generator):
            h = train_emb[symmetry[batch], batch]
            target_az = _direction_targets(directions, batch, symmetry[batch], symmetries)
            logits, vector = heads(h)
            mask = labelled[batch]
            loss = F.mse_loss(vector, target_az)
            if mask.any():
                loss = loss + F.cross_entropy(logits[mask], labels[batch][mask])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        with torch.no_grad():
            logits, vector = heads(val_emb)
        predictions = Predictions(logits.softmax(-1).numpy(), vector.numpy(), labels=symmetries.labels)
        scores = split_scores(validation.items, predictions)
        if scores["accuracy"] > best["accuracy"][0]:
            best["accuracy"] = (scores["accuracy"], copy.deepcopy(heads.classifier.state_dict()))
        if scores[selection] < best[selection][0]:
            best[selection] = (scores[selection], copy.deepcopy(heads.azimuth.state_dict()))
    if best["accuracy"][1] is not None:
        heads.classifier.load_state_dict(best["accuracy"][1])
    heads.azimuth.load_state_dict(best[selection][1])
    return heads, {"accuracy": best["accuracy"][0], selection: best[selection][0]}


def linear_probe(
    encoder: Encoder,
    train: Split,
    validation: Split,
    tests: dict[str, Split],
    n_classes: int,
    config: SupervisedConfig,
    array: ArrayLike = 4,
    progress: bool = True,
) -> dict[str, Predictions]:
    """Train the two linear heads on frozen embeddings; returns predictions for each split in ``tests``.

    The embeddings of the training patches under all array symmetries are computed once, so each
    epoch draws a random symmetry per patch without running the encoder again.
    """
    device = resolve_device(config.device)
    seed_everything(config.seed)
    symmetries = array_symmetries(array)
    train_emb, standardise = standardised_embeddings(encoder, train, device, symmetries)  # (S, N, D)
    val_emb = standardise(embed(encoder, validation.features, device))
    test_emb = {name: standardise(embed(encoder, split.features, device)) for name, split in tests.items()}
    heads, validation_scores = train_probe_heads(
        train_emb, train, val_emb, validation, n_classes, config, symmetries, progress
    )
    out = {}
    with torch.no_grad():
        for name, emb in test_emb.items():
            logits, vector = heads(emb)
            out[name] = Predictions(logits.softmax(-1).numpy(), vector.numpy(), validation_scores, symmetries.labels)
    return out


#: Similarities :func:`knn_predict` holds at once (queries x references; 2**26 float32 values = 256 MiB).
KNN_BLOCK_VALUES = 2**26


def knn_predict(
    encoder: Encoder,
    train: Split,
    tests: dict[str, Split],
    n_classes: int,
    config: SupervisedConfig,
    array: ArrayLike = 4,
) -> dict[str, Predictions]:
    """k nearest training patches of each test patch: class votes and mean direction vector.

    References are the training patches under all array symmetries (their directions mapped by
    :meth:`~mc_simclr.acoustics.symmetry.ArraySymmetries.map_directions`; the class label is
    unchanged). Similarity is the cosine of embeddings standardised with the training set's statistics.
    """
    device = resolve_device(config.device)
    symmetries = array_symmetries(array)
    train_emb, standardise = standardised_embeddings(encoder, train, device, symmetries)  # (S, N, D)
    n_sym = train_emb.shape[0] if config.channel_swap else 1
    references = F.normalize(train_emb[:n_sym].flatten(0, 1), dim=1)
    azimuth, elevation = train.directions(symmetries.labels)
    elevation = np.zeros_like(azimuth) if elevation is None else elevation  # not used by azimuth labels
    mapped = [symmetries.map_directions(azimuth, elevation, np.full(len(azimuth), s)) for s in range(n_sym)]
    ref_azimuths = np.concatenate([az for az, _ in mapped]).astype(np.float32)
    ref_elevations = np.concatenate([el for _, el in mapped]).astype(np.float32)
    ref_vectors = torch.as_tensor(symmetries.labels.vectors(ref_azimuths, ref_elevations), dtype=torch.float32)
    ref_labels = train.class_index.repeat(n_sym)
    k = min(config.knn_k, len(references))
    out = {}
    for name, split in tests.items():
        queries = F.normalize(standardise(embed(encoder, split.features, device)), dim=1)
        block = max(1, KNN_BLOCK_VALUES // len(references))  # queries per block: bounded memory at any size
        neighbours = torch.cat(  # (Q, k)
            [(chunk @ references.T).topk(k, dim=1).indices for chunk in queries.split(block)]
        )
        labels = ref_labels[neighbours]
        votes = torch.zeros(len(queries), n_classes)
        valid = labels >= 0
        votes.scatter_add_(1, labels.clamp_min(0), valid.float())
        probs = votes / votes.sum(1, keepdim=True).clamp_min(1.0)
        vectors = ref_vectors[neighbours].mean(1)
        out[name] = Predictions(probs.numpy() if bool(valid.any()) else None, vectors.numpy(), labels=symmetries.labels)
    return out


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------
def _predict(
    encoder: Encoder, heads: SELDHeads, split: Split, device: torch.device, labels: DirectionLabels
) -> Predictions:
    encoder.eval()
    heads.eval()
    probs, vectors = [], []
    with torch.no_grad():
        for start in range(0, len(split.features), 256):
            logits, vector = heads(encoder(take(split.features, slice(start, start + 256)).to(device)))
            probs.append(logits.softmax(-1).cpu())
            vectors.append(vector.cpu())
    return Predictions(torch.cat(probs).numpy(), torch.cat(vectors).numpy(), labels=labels)


def _fine_tune_epoch(
    encoder: Encoder,
    heads: SELDHeads,
    train: Split,
    swap: FeatureChannelSwap,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: SupervisedConfig,
    epoch: int,
    device: torch.device,
) -> None:
    """One epoch of joint training: a random array symmetry per patch, MSE on the direction target
    ((cos, sin) of the azimuth for the paper's array) + cross-entropy."""
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    torch.manual_seed(epoch_seed(config.seed, epoch))
    labels = train.class_index
    directions = train.direction_tensors(swap.symmetries.labels)
    symmetry = _sample_symmetries(len(labels), config, generator, swap.symmetries)
    encoder.train()
    heads.train()
    for batch in _batches(len(labels), config.batch_size, generator):
        if len(batch) < 2:  # batch norm needs two samples
            continue
        x = swap(take(train.features, batch).to(device), symmetry[batch].to(device))
        target_az = _direction_targets(directions, batch, symmetry[batch], swap.symmetries, device)
        target_class = labels[batch].to(device)
        logits, vector = heads(encoder(x))
        mask = target_class >= 0
        loss = config.azimuth_loss_weight * F.mse_loss(vector, target_az)
        if mask.any() and config.class_loss_weight > 0:
            loss = loss + config.class_loss_weight * F.cross_entropy(logits[mask], target_class[mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def _validation_loss(
    predictions: Predictions, labels: torch.Tensor, vectors: torch.Tensor, config: SupervisedConfig
) -> float:
    """The training objective on validation patches: weighted MSE on the direction target + class NLL."""
    probs = torch.as_tensor(predictions.class_probs, device=labels.device)
    predicted = torch.as_tensor(predictions.direction_vector, device=labels.device)
    mask = labels >= 0
    loss = config.azimuth_loss_weight * float(F.mse_loss(predicted, vectors))
    if mask.any() and config.class_loss_weight > 0:
        loss += config.class_loss_weight * float(F.nll_loss(probs[mask].clamp_min(1e-12).log(), labels[mask]))
    return loss


def fine_tune(
    encoder: Encoder,
    train: Split,
    validation: Split,
    tests: dict[str, Split],
    n_classes: int,
    config: SupervisedConfig,
    pretrained: bool,
    array: ArrayLike = 4,
    progress: bool = True,
) -> FineTuned:
    """Train encoder and heads jointly (encoder gradients scaled when ``pretrained``); predict ``tests``.

    The epoch with the lowest validation loss is kept. Returns the predictions per split of
    ``tests`` and the selected model (a trained copy of ``encoder`` and the heads, on CPU, in eval
    mode); ``encoder`` itself is not modified.
    """
    device = resolve_device(config.device)
    seed_everything(config.seed)
    encoder = copy.deepcopy(encoder).to(device)
    swap = FeatureChannelSwap(array).to(device)
    labels = swap.symmetries.labels
    heads = SELDHeads(encoder.embedding_dim, n_classes, labels.dim).to(device)
    hooks = scale_gradients(encoder, config.encoder_grad_scale) if pretrained else []
    steps = -(-len(train.items) // config.batch_size)
    optimizer, scheduler = _sgd(
        list(encoder.parameters()) + list(heads.parameters()), config, steps, config.finetune_epochs
    )
    best_loss, best_state = float("inf"), None
    val_labels = validation.class_index.to(device)
    val_directions = labels.vectors(*validation.directions(labels))
    val_vectors = torch.as_tensor(val_directions, dtype=torch.float32, device=device)
    try:
        for epoch in tqdm(
            range(config.finetune_epochs), desc="fine-tune", unit="epoch", leave=False, disable=not progress
        ):
            _fine_tune_epoch(encoder, heads, train, swap, optimizer, scheduler, config, epoch, device)
            predictions = _predict(encoder, heads, validation, device, labels)
            val_loss = _validation_loss(predictions, val_labels, val_vectors, config)
            if val_loss < best_loss:
                best_loss = val_loss
                best_state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(heads.state_dict()))
    finally:
        for hook in hooks:
            hook.remove()
    encoder.load_state_dict(best_state[0])
    heads.load_state_dict(best_state[1])
    validation_scores = {
        "loss": best_loss,
        **split_scores(validation.items, _predict(encoder, heads, validation, device, labels)),
    }
    out = {}
    for name, split in tests.items():
        predictions = _predict(encoder, heads, split, device, labels)
        predictions.validation = validation_scores
        out[name] = predictions
    return FineTuned(out, encoder.cpu().eval(), heads.cpu().eval())


# --------------------------------------------------------------------------------------------
# Subsets of the labeled split
# --------------------------------------------------------------------------------------------
def class_balanced_subset(clips: pd.DataFrame, amount: float, unit: str, seed: int) -> set[str]:
    """Clip ids of a seeded subset of labeled clips with (nearly) equal clips per class.

    ``unit`` is ``fraction`` (of the clips) or ``hours`` (of audio, using ``duration``). Classes are
    visited round-robin in a seeded order, each contributing its next random clip, until the amount
    is reached, so the subset is as balanced as the classes' sizes allow.
    """
    if unit not in ("fraction", "hours"):
        raise ValueError(f"evaluation.subsets.unit must be 'fraction' or 'hours', got {unit!r}")
    if amount <= 0:
        raise ValueError(f"evaluation.subsets.amounts must be > 0, got {amount}")
    rng = np.random.default_rng(seed)
    queues = {
        label: list(rng.permutation(group["clip_id"].to_numpy()))
        for label, group in clips.sort_values("clip_id").groupby("label", sort=True)
    }
    durations = dict(zip(clips["clip_id"], clips["duration"], strict=True)) if unit == "hours" else {}
    target = amount * len(clips) if unit == "fraction" else amount * 3600.0
    chosen: list[str] = []
    total = 0.0
    labels = list(queues)
    while total < target - 1e-9 and any(queues.values()):
        for label in labels:
            if queues[label] and total < target - 1e-9:
                clip = queues[label].pop()
                chosen.append(clip)
                total += durations.get(clip, 1.0) if unit == "hours" else 1.0
    return set(chosen)


# --------------------------------------------------------------------------------------------
# All protocols for one encoder
# --------------------------------------------------------------------------------------------
#: Splits every evaluation needs, and the optional second test split.
REQUIRED_SPLITS = ("labeled", "validation", "test")
CONFIRMATION = "confirmation"


def load_splits(store, names: tuple[str, ...] = REQUIRED_SPLITS) -> dict[str, Split]:
    """Each evaluation split of a :class:`~mc_simclr.shards.FeatureShards`: its item rows, and its
    feature patches as :class:`~mc_simclr.shards.FeatureRows` that the protocols read batch by batch.

    ``names`` must all be present; the ``confirmation`` split is loaded too when the store has it.
    """
    splits = {}
    present = set(store.items["split"])
    for name in (*names, CONFIRMATION):
        if name not in present:
            if name == CONFIRMATION:
                continue
            raise ValueError(f"feature_patches has no patch of the {name!r} split: run feature_extraction with it")
        features, items = store.rows(store.items["split"] == name)
        splits[name] = Split(features, items)
    return splits


def report_splits(splits: dict[str, Split]) -> dict[str, Split]:
    """The splits results are reported on: ``test``, and ``confirmation`` when present."""
    return {name: splits[name] for name in ("test", CONFIRMATION) if name in splits}


PROTOCOLS = ("linear_probe", "knn", "fine_tune")


def probe_key(batchnorm: str) -> str:
    """Key of the linear probe run with BatchNorm protocol ``batchnorm`` in :class:`ProtocolResults`."""
    return f"linear_probe_{batchnorm}"


@dataclass
class ProtocolResults:
    """Every protocol's clip-level predictions for one encoder, and what the report needs besides.

    ``clips[split][protocol]`` are clip predictions (:func:`clip_predictions`) on ``test`` and,
    when the corpus has it, ``confirmation``; the protocols are :data:`PROTOCOLS` (the linear probe
    and k-NN with the chosen BatchNorm protocol) and the linear probe under each protocol
    (:func:`probe_key`). ``validation[protocol]`` are the validation scores. ``subsets`` maps a
    labeled amount to the test predictions of subset fine-tuning; ``model`` is the fine-tuned
    encoder + heads; ``embeddings`` and ``embedding_items`` are the frozen encoder's test-patch
    embeddings and their rows; ``batchnorm`` is the chosen protocol.
    """

    clips: dict[str, dict[str, pd.DataFrame]]
    validation: dict[str, dict[str, float]]
    subsets: dict[float, pd.DataFrame]
    model: FineTuned
    embeddings: np.ndarray
    embedding_items: pd.DataFrame
    batchnorm: str = "keep"

    @property
    def test(self) -> dict[str, pd.DataFrame]:
        """Test-split clip predictions per protocol."""
        return self.clips["test"]


def run_protocols(
    encoder: Encoder,
    pretrained: bool,
    splits: dict[str, Split],
    n_classes: int,
    config: SupervisedConfig,
    subset_amounts: list[float],
    subset_unit: str = "fraction",
    subset_seed: int = 0,
    array: ArrayLike = 4,
    batchnorm: str = "keep",
) -> ProtocolResults:
    """Linear probing (under both BatchNorm protocols), k-NN, fine-tuning and subset fine-tuning of one
    encoder; clip-level results on the test (and confirmation) split.

    The frozen protocols use ``batchnorm``; the full-data point of the subset curve reuses the
    fine-tuning run instead of training it twice.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {batchnorm!r}")
    train, validation = splits["labeled"], splits["validation"]
    reported = report_splits(splits)
    device = resolve_device(config.device)
    clips: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in reported}
    validation_scores: dict[str, dict[str, float]] = {}
    frozen = {}
    for mode in (batchnorm, *(m for m in BATCHNORM_MODES if m != batchnorm)):
        frozen[mode] = frozen_encoder(encoder, train, mode, device)
        probe = linear_probe(frozen[mode], train, validation, reported, n_classes, config, array)
        for name, split in reported.items():
            clips[name][probe_key(mode)] = clip_predictions(split.items, probe[name])
        validation_scores[probe_key(mode)] = probe[next(iter(reported))].validation
    neighbours = knn_predict(frozen[batchnorm], train, {"validation": validation, **reported}, n_classes, config, array)
    tuned = fine_tune(encoder, train, validation, reported, n_classes, config, pretrained, array)
    for name, split in reported.items():
        clips[name]["linear_probe"] = clips[name][probe_key(batchnorm)]
        clips[name]["knn"] = clip_predictions(split.items, neighbours[name])
        clips[name]["fine_tune"] = clip_predictions(split.items, tuned.predictions[name])
    validation_scores["linear_probe"] = validation_scores[probe_key(batchnorm)]
    validation_scores["knn"] = split_scores(validation.items, neighbours["validation"])
    validation_scores["fine_tune"] = tuned.predictions["test"].validation

    test = splits["test"]
    subsets: dict[float, pd.DataFrame] = {}
    labeled_clips = train.items.groupby("clip_id", sort=True).first().reset_index()
    for amount in subset_amounts:
        chosen = class_balanced_subset(labeled_clips, float(amount), subset_unit, subset_seed)
        if len(chosen) == len(labeled_clips):
            subsets[float(amount)] = clips["test"]["fine_tune"]
            continue
        logger.info(
            "Subset fine-tuning on %d of %d labeled clips (%s %s)", len(chosen), len(labeled_clips), amount, subset_unit
        )
        subset = fine_tune(
            encoder, train.subset(chosen), validation, {"test": test}, n_classes, config, pretrained, array
        )
        subsets[float(amount)] = clip_predictions(test.items, subset.predictions["test"])
    embeddings = embed(frozen[batchnorm], test.features, device).numpy()
    return ProtocolResults(clips, validation_scores, subsets, tuned, embeddings, test.items, batchnorm)


def supervised_azimuth(
    encoder: Encoder, splits: dict[str, Split], n_classes: int, config: SupervisedConfig, array: ArrayLike = 4
) -> dict[str, pd.DataFrame]:
    """The azimuth ceiling: ``encoder`` trained from its current weights on azimuth alone (full
    rate, no class loss); clip-level predictions with ``pred_class`` NaN on the test (and
    confirmation) split."""
    azimuth_only = copy.deepcopy(config)
    azimuth_only.class_loss_weight = 0.0
    azimuth_only.azimuth_loss_weight = max(config.azimuth_loss_weight, 1e-12)
    reported = report_splits(splits)
    train, validation = splits["labeled"], splits["validation"]
    tuned = fine_tune(encoder, train, validation, reported, n_classes, azimuth_only, False, array)
    out = {}
    for name, split in reported.items():
        out[name] = clip_predictions(split.items, tuned.predictions[name]).assign(pred_class=np.nan)
    return out


def random_init_like(encoder: Encoder, seed: int) -> Encoder:
    """A freshly initialised encoder of the same shape (the no-pretraining baseline)."""
    torch.manual_seed(seed)
    return build_encoder(copy.deepcopy(encoder.config), encoder.n_bins).eval()


# --------------------------------------------------------------------------------------------
# The evaluation of one pretraining run, from its parameter block
# --------------------------------------------------------------------------------------------
@dataclass
class EvaluationInputs:
    """What every evaluation step shares, loaded once: both encoders, the feature splits, the settings.

    ``pretrained`` is the encoder of the pretraining run and ``random`` a random-init encoder of the
    same shape (``evaluation.random_init_seed``); ``features`` and ``pretraining_run_id`` come from
    the encoder file, for the exported model and the report.
    """

    pretrained: Encoder
    random: Encoder
    extractor: FeatureExtractor
    splits: dict[str, Split]
    n_classes: int
    config: SupervisedConfig
    subset_amounts: list[float]
    subset_unit: str
    subset_seed: int
    features: dict[str, Any]
    pretraining_run_id: str = ""
    batchnorm: str = "keep"

    symmetries: ArraySymmetries | None = None  # None: the paper's square

    @property
    def n_mics(self) -> int:
        return self.extractor.n_mics

    @property
    def geometry(self) -> ArrayGeometry:
        """The array the encoder was trained on."""
        return self.symmetries.geometry if self.symmetries is not None else ArrayGeometry.circular(self.n_mics)


def batchnorm_mode(evaluation: dict[str, Any]) -> str:
    """The ``evaluation.batchnorm`` setting, checked."""
    mode = evaluation.get("batchnorm", "keep")
    if mode not in BATCHNORM_MODES:
        raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {mode!r}")
    return str(mode)


def prepare_evaluation(
    encoder_state: dict[str, Any], feature_patches, class_names: list[str], evaluation: dict[str, Any]
) -> EvaluationInputs:
    """Rebuild the pretrained encoder, build the random-init one and load the feature splits, once."""
    encoder, extractor = unpack_encoder(encoder_state)
    subsets = evaluation["subsets"]
    return EvaluationInputs(
        pretrained=encoder,
        random=random_init_like(encoder, int(evaluation["random_init_seed"])),
        extractor=extractor,
        splits=load_splits(feature_patches),
        n_classes=len(class_names),
        config=SupervisedConfig.from_params(evaluation["supervised"]),
        subset_amounts=[float(a) for a in subsets["amounts"]],
        subset_unit=str(subsets["unit"]),
        subset_seed=int(subsets["seed"]),
        features=dict(encoder_state["features"]),
        pretraining_run_id=str(encoder_state.get("pretraining_run_id", "")),
        batchnorm=batchnorm_mode(evaluation),
        symmetries=ArraySymmetries.of(encoder_geometry(encoder_state)),
    )


def evaluate_encoder(inputs: EvaluationInputs, pretrained: bool) -> ProtocolResults:
    """All protocols, subsets included, on the pretrained (``True``) or the random-init encoder."""
    return run_protocols(
        inputs.pretrained if pretrained else inputs.random,
        pretrained,
        inputs.splits,
        inputs.n_classes,
        inputs.config,
        subset_amounts=inputs.subset_amounts,
        subset_unit=inputs.subset_unit,
        subset_seed=inputs.subset_seed,
        array=inputs.symmetries or inputs.n_mics,
        batchnorm=inputs.batchnorm,
    )


def azimuth_ceiling(inputs: EvaluationInputs) -> dict[str, pd.DataFrame]:
    """The supervised azimuth ceiling: the random-init encoder trained on azimuth alone."""
    return supervised_azimuth(
        inputs.random, inputs.splits, inputs.n_classes, inputs.config, inputs.symmetries or inputs.n_mics
    )
