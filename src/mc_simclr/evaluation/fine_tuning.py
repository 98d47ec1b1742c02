"""Fine-tuning: encoder and heads trained jointly, on all labeled clips or a class-balanced subset."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.augment import ArrayLike, FeatureChannelSwap
from mc_simclr.devices import resolve_device
from mc_simclr.evaluation.splits import Split, take
from mc_simclr.evaluation.supervised import (
    Predictions,
    SupervisedConfig,
    direction_targets,
    sample_symmetries,
    sgd_schedule,
    shuffled_batches,
    split_scores,
)
from mc_simclr.networks import Encoder, SELDHeads
from mc_simclr.params import check_keys
from mc_simclr.utils import epoch_seed, seed_everything


@dataclass
class FineTuned:
    """Result of :func:`fine_tune`: test predictions and the selected encoder + heads."""

    predictions: dict[str, Predictions]
    encoder: Encoder
    heads: SELDHeads


def scale_gradients(module: nn.Module, factor: float) -> list[torch.utils.hooks.RemovableHandle]:
    """Multiply every parameter gradient of ``module`` by ``factor`` during backward."""
    return [p.register_hook(lambda grad, f=factor: grad * f) for p in module.parameters() if p.requires_grad]


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
    train_encoder: bool = True,
) -> None:
    """One epoch of joint training: a random array symmetry per patch, MSE on the direction target
    ((cos, sin) of the azimuth for the paper's array) + cross-entropy. ``train_encoder=False``: the
    heads alone, on the frozen encoder in eval mode (the linear-probe phase of LP-FT)."""
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    torch.manual_seed(epoch_seed(config.seed, epoch))
    labels = train.class_index
    directions = train.direction_tensors(swap.symmetries.labels)
    symmetry = sample_symmetries(len(labels), config, generator, swap.symmetries)
    encoder.train(train_encoder)
    heads.train()
    for batch in shuffled_batches(len(labels), config.batch_size, generator):
        if len(batch) < 2:  # batch norm needs two samples
            continue
        x = swap(take(train.features, batch).to(device), symmetry[batch].to(device))
        target_az = direction_targets(directions, batch, symmetry[batch], swap.symmetries, device)
        target_class = labels[batch].to(device)
        with torch.set_grad_enabled(train_encoder):
            h = encoder(x)
        logits, vector = heads(h)
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

    With ``config.lp_epochs > 0`` (LP-FT) the first ``lp_epochs`` train the heads alone on the frozen
    encoder, each phase with its own warm-up and cosine schedule; the same for a random encoder, so
    that both sides of a comparison get one schedule. The epoch with the lowest validation loss
    (of either phase) is kept. Returns the predictions per split of
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
    # (optimizer, scheduler) of the heads-only LP-FT phase (if any) and of the joint phase
    lr = config.lr if config.finetune_lr is None else config.finetune_lr
    probe_phase = None
    if config.lp_epochs:
        probe_phase = sgd_schedule(list(heads.parameters()), config, steps, config.lp_epochs, lr)
    joint = list(encoder.parameters()) + list(heads.parameters())
    joint_phase = sgd_schedule(joint, config, steps, config.finetune_epochs - config.lp_epochs, lr)
    best_loss, best_state = float("inf"), None
    val_labels = validation.class_index.to(device)
    val_directions = labels.vectors(*validation.directions(labels))
    val_vectors = torch.as_tensor(val_directions, dtype=torch.float32, device=device)
    try:
        for epoch in tqdm(
            range(config.finetune_epochs), desc="fine-tune", unit="epoch", leave=False, disable=not progress
        ):
            train_encoder = epoch >= config.lp_epochs
            optimizer, scheduler = joint_phase if train_encoder else probe_phase
            _fine_tune_epoch(encoder, heads, train, swap, optimizer, scheduler, config, epoch, device, train_encoder)
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


SUBSET_UNITS = ("fraction", "hours")


def parse_subsets(subsets: Any, name: str = "evaluation.subsets") -> tuple[list[float], str, int]:
    """A ``subsets`` block (``amounts``, ``unit``, ``seed``; of ``evaluation`` or of a sweep, named by
    ``name`` in errors): the amounts of labeled data (fractions in (0, 1] or hours > 0; none when
    absent), the unit and the subset seed."""
    subsets = {} if subsets is None else subsets
    if not isinstance(subsets, dict):
        raise ValueError(f"{name}: expected a mapping with amounts, unit and seed, got {subsets!r}")
    check_keys(subsets, {"amounts", "unit", "seed"}, name)
    unit = subsets.get("unit", "fraction")
    if unit not in SUBSET_UNITS:
        raise ValueError(f"{name}.unit: expected one of {list(SUBSET_UNITS)}, got {unit!r}")
    amounts = subsets.get("amounts", []) or []
    if not isinstance(amounts, (list, tuple)) or not all(
        isinstance(a, (int, float)) and not isinstance(a, bool) for a in amounts
    ):
        raise ValueError(f"{name}.amounts: expected a list of numbers, got {amounts!r}")
    bad = [a for a in amounts if a <= 0 or (unit == "fraction" and a > 1)]
    if bad:
        expected = "fractions in (0, 1]" if unit == "fraction" else "hours > 0"
        raise ValueError(f"{name}.amounts: {bad} out of range; expected {expected}")
    if len(set(amounts)) != len(amounts):
        raise ValueError(f"{name}.amounts: {list(amounts)} lists an amount more than once")
    seed = subsets.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{name}.seed: expected an integer, got {seed!r}")
    return [float(a) for a in amounts], str(unit), int(seed)


def class_balanced_subset(clips: pd.DataFrame, amount: float, unit: str, seed: int) -> set[str]:
    """Clip ids of a seeded subset of labeled clips with (nearly) equal clips per class.

    ``unit`` is ``fraction`` (of the clips) or ``hours`` (of audio, using ``duration``). Classes are
    visited round-robin in a seeded order, each contributing its next random clip, until the amount
    is reached, so the subset is as balanced as the classes' sizes allow.
    """
    if unit not in SUBSET_UNITS:
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
