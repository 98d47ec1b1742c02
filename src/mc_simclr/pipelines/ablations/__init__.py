"""``ablations``: the paper's Table 1 and Table 2 as one pretraining + evaluation template per variant."""

from mc_simclr.pipelines.ablations.pipeline import create_pipeline

__all__ = ["create_pipeline"]
