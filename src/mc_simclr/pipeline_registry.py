"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

OPT_IN = ("inference", "ablations", "seeds", "scenes", "seld")


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline package under ``mc_simclr.pipelines``.

    The default runs the four main pipelines: not ``inference``, which needs the user's own
    recordings, nor the long sweeps ``ablations`` (the paper's tables) and ``seeds`` (the default
    configuration over several pretraining seeds), nor ``scenes`` (recordings of moving and
    overlapping events in the DCASE layout) and ``seld`` (frame-wise SELD on such recordings).
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name not in OPT_IN and name != "__default__"), Pipeline([])
    )
    return pipelines
