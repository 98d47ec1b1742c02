"""``seeds``: the default configuration and random init over several pretraining seeds, with intervals."""

from mc_simclr.pipelines.seeds.pipeline import create_pipeline

__all__ = ["create_pipeline"]
