"""``evaluation``: linear probing, fine-tuning, subset fine-tuning and baselines in one table."""

from mc_simclr.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
