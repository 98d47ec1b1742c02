"""Custom Kedro datasets of the project."""

from mc_simclr.datasets.shards import FeatureShardsDataset, MultichannelAudioShardsDataset
from mc_simclr.datasets.torch_state import TorchStateDataset

__all__ = ["FeatureShardsDataset", "MultichannelAudioShardsDataset", "TorchStateDataset"]
