"""``seeds`` pipeline: the sweep engine of the ablations on the ``seeds`` parameter block.

Variants ``mc_simclr`` (the default configuration) and ``random`` (random init), each pretrained
and evaluated for every seed of ``seeds.seeds``; the report gives the mean and standard deviation
over seeds and a 95 % bootstrap interval over the clips of the test and confirmation splits.
"""

from kedro.pipeline import Pipeline

from mc_simclr.pipelines.ablations.pipeline import sweep_pipeline


def create_pipeline(variants: list[str] | dict[str, str | None] | None = None, **kwargs) -> Pipeline:
    """The seed study."""
    return sweep_pipeline("seeds", variants)
