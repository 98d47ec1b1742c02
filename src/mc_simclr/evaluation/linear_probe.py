"""Linear probing: linear class and direction heads trained on a frozen encoder's embeddings."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mc_simclr.augment import ArrayLike, array_symmetries
from mc_simclr.devices import resolve_device
from mc_simclr.evaluation.splits import Split
from mc_simclr.evaluation.supervised import (
    Predictions,
    SupervisedConfig,
    direction_selection_metric,
    direction_targets,
    embed,
    embed_symmetries,
    sample_symmetries,
    sgd_schedule,
    shuffled_batches,
    split_scores,
)
from mc_simclr.networks import Encoder, SELDHeads
from mc_simclr.utils import epoch_seed, seed_everything


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
    optimizer, scheduler = sgd_schedule(heads.parameters(), config, steps, config.probe_epochs)
    selection = direction_selection_metric(symmetries.labels)
    best = {"accuracy": (-1.0, None), selection: (float("inf"), None)}
    directions = train.direction_tensors(symmetries.labels)
    for epoch in tqdm(range(config.probe_epochs), desc="linear probe", unit="epoch", leave=False, disable=not progress):
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        symmetry = sample_symmetries(len(labels), config, generator, symmetries)
        for batch in shuffled_batches(len(labels), config.batch_size, generator):
            h = train_emb[symmetry[batch], batch]
            target_az = direction_targets(directions, batch, symmetry[batch], symmetries)
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
