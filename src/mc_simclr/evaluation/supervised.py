"""What every supervised protocol shares: its settings, predictions, embeddings, clip-level scores,
the optimiser and the array-symmetry draws of ChannelSwap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mc_simclr.acoustics.symmetry import ArraySymmetries, DirectionLabels
from mc_simclr.augment import ArrayLike, FeatureChannelSwap
from mc_simclr.evaluation.splits import Patches, take
from mc_simclr.metrics import clip_scores
from mc_simclr.networks import Encoder
from mc_simclr.params import check_values, dataclass_from_params
from mc_simclr.pretraining import warmup_cosine


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
    # learning rate of fine-tuning (both LP-FT phases); None: lr. The linear probe always uses lr.
    finetune_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    probe_epochs: int = 100
    finetune_epochs: int = 100
    # LP-FT: the first lp_epochs of fine-tuning train the heads alone on the frozen encoder (a linear
    # probe), the remaining finetune_epochs - lp_epochs the whole network from there. 0: joint from the start.
    lp_epochs: int = 0
    encoder_grad_scale: float = 0.1
    azimuth_loss_weight: float = 1.0
    class_loss_weight: float = 1.0  # 0: azimuth only (the supervised azimuth ceiling)
    channel_swap: bool = True
    knn_k: int = 5  # neighbours of the k-NN protocol

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "evaluation.supervised") -> SupervisedConfig:
        config = dataclass_from_params(cls, params, name)
        lp_ok = 0 <= config.lp_epochs < config.finetune_epochs
        checks = {
            "batch_size": config.batch_size >= 2,
            "lr": config.lr > 0,
            "finetune_lr (null or > 0)": config.finetune_lr is None or config.finetune_lr > 0,
            "probe_epochs": config.probe_epochs >= 1,
            "finetune_epochs": config.finetune_epochs >= 1,
            "lp_epochs (the linear-probe phase of LP-FT: 0 <= lp_epochs < finetune_epochs)": lp_ok,
            "encoder_grad_scale": config.encoder_grad_scale >= 0,
            "warmup_epochs": config.warmup_epochs >= 0,
            "azimuth_loss_weight": config.azimuth_loss_weight >= 0,
            "class_loss_weight": config.class_loss_weight >= 0
            and config.azimuth_loss_weight + config.class_loss_weight > 0,
            "knn_k": config.knn_k >= 1,
        }
        detail = "" if lp_ok else f"lp_epochs={config.lp_epochs}, finetune_epochs={config.finetune_epochs}"
        check_values(checks, name, detail)
        return config


@dataclass
class Predictions:
    """Patch-level predictions of one protocol on one split."""

    class_probs: np.ndarray | None  # (N, K)
    direction_vector: np.ndarray  # (N, labels.dim): (cos, sin) of the azimuth for the paper's array
    validation: dict[str, float] = field(default_factory=dict)
    labels: DirectionLabels = field(default_factory=DirectionLabels)


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


def sgd_schedule(params, config: SupervisedConfig, steps_per_epoch: int, epochs: int, lr: float | None = None):
    """SGD with warm-up and cosine decay over ``epochs``, at ``lr`` (``config.lr`` if None)."""
    lr = config.lr if lr is None else lr
    optimizer = torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = warmup_cosine(epochs * steps_per_epoch, min(config.warmup_epochs, epochs - 1) * steps_per_epoch)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def direction_targets(
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


def sample_symmetries(
    n: int, config: SupervisedConfig, generator: torch.Generator, symmetries: ArraySymmetries
) -> torch.Tensor:
    if not config.channel_swap:
        return torch.zeros(n, dtype=torch.long)
    return torch.randint(len(symmetries), (n,), generator=generator)
