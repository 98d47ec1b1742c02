"""``scenes``: recordings of moving and overlapping sound events in the DCASE SELD layout."""

from mc_simclr.pipelines.scenes.pipeline import create_pipeline

__all__ = ["create_pipeline"]
