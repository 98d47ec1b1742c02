"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline package under ``mc_simclr.pipelines``.

    The default runs all of them except ``inference``, which needs the user's own recordings.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum((p for name, p in pipelines.items() if name != "inference"), Pipeline([]))
    return pipelines
