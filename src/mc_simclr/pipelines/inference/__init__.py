"""``inference``: embeddings, classes and azimuths of your own recordings of the array the model was trained on."""

from mc_simclr.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
