"""Feature patches of the evaluation splits and their labels, read from the feature shards batch by batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mc_simclr.acoustics.symmetry import DirectionLabels
from mc_simclr.shards import FeatureRows

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
