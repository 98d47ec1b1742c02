"""Custom Kedro datasets of the project."""

from mc_simclr.datasets.shards import FeatureShardsDataset, MultichannelAudioShardsDataset

__all__ = ["FeatureShardsDataset", "MultichannelAudioShardsDataset"]
