"""``feature_extraction``: 4-channel clips -> log-Mel + GCC-PHAT patches of the evaluation splits."""

from mc_simclr.pipelines.feature_extraction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
