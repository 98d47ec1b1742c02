"""``pretraining``: MC-SimCLR on the unlabeled split, resumable, tracked in MLflow."""

from mc_simclr.pipelines.pretraining.pipeline import create_pipeline

__all__ = ["create_pipeline"]
