"""k-NN: each test patch takes the majority class and the mean direction of its nearest training patches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mc_simclr.augment import ArrayLike, array_symmetries
from mc_simclr.devices import resolve_device
from mc_simclr.evaluation.linear_probe import standardised_embeddings
from mc_simclr.evaluation.splits import Split
from mc_simclr.evaluation.supervised import (
    Predictions,
    SupervisedConfig,
    embed,
)
from mc_simclr.networks import Encoder

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
