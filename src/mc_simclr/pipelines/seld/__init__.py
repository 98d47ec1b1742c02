"""``seld``: frame-wise SELD on recordings in the DCASE layout, MC-SimCLR against training from scratch."""

from mc_simclr.pipelines.seld.pipeline import create_pipeline

__all__ = ["create_pipeline"]
