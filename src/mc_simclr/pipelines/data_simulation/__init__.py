"""``data_simulation``: source clips -> random shoebox scenes -> 4-channel reverberant audio shards."""

from mc_simclr.pipelines.data_simulation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
