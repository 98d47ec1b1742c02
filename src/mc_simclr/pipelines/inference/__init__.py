"""``inference``: embeddings, classes and azimuths of your own 4-channel recordings."""

from mc_simclr.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
