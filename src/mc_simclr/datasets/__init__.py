"""Custom Kedro datasets of the project."""

from mc_simclr.datasets.audio_shards import MultichannelAudioShardsDataset

__all__ = ["MultichannelAudioShardsDataset"]
