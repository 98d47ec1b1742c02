"""mc-simclr: self-supervised contrastive learning of spatial sound event representations.

The trained model in your own code (see :mod:`mc_simclr.seld_model`)::

    import mc_simclr

    model = mc_simclr.load_model("data/06_models/seld_model.pt")
    table = model.predict(audio, sample_rate=48000)     # audio: (4, samples) or (batch, 4, samples)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

__all__ = ["load_model"]


def load_model(source: str | Path, device: str = "auto", **kwargs: Any):
    """A :class:`~mc_simclr.seld_model.SELDModel` from a model file or an MLflow model URI.

    ``source`` is the path of a model file (``data/06_models/seld_model.pt``), a folder holding an
    MLflow model of this project, or an MLflow URI (``models:/mc-simclr-seld/latest``,
    ``runs:/<run id>/seld_model``; MLflow's tracking URI must point at the store that holds it).
    ``kwargs`` go to :class:`~mc_simclr.seld_model.SELDModel` (``window_seconds``, ``hop_seconds``,
    ``batch_size``).
    """
    from mc_simclr.seld_model import SELDModel

    text = str(source)
    if "://" in text or text.startswith(("models:/", "runs:/")) or Path(text).is_dir():
        from mc_simclr.serving import model_file  # MLflow is needed only for MLflow models

        source = model_file(text)
    return SELDModel.from_file(source, device=device, **kwargs)
