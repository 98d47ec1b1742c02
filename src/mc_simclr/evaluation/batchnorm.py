"""BatchNorm statistics of a frozen encoder: kept as they are, or recalibrated on the labeled split."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mc_simclr.evaluation.splits import Patches, Split, take
from mc_simclr.networks import Encoder

BATCHNORM_MODES = ("recalibrate", "keep")


#: Patches whose BatchNorm inputs :func:`recalibrate_batchnorm` sums in float64 at once.
RECALIBRATION_CHUNK = 16


def batchnorm_mode(evaluation: dict[str, Any]) -> str:
    """The ``evaluation.batchnorm`` setting, checked."""
    mode = evaluation.get("batchnorm", "keep")
    if mode not in BATCHNORM_MODES:
        raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {mode!r}")
    return str(mode)


def recalibrate_batchnorm(encoder: Encoder, features: Patches, device: torch.device, batch_size: int = 256) -> Encoder:
    """A copy of ``encoder`` whose BatchNorm running statistics are re-estimated on ``features``.

    Layer by layer in forward order, each BatchNorm's mean and (unbiased) variance become the exact
    statistics of its input over all of ``features``, with the layers before it already
    recalibrated and everything in eval mode: the population statistics the frozen encoder then
    normalises with, whatever the batch size or the order of the patches (a running average of
    batch statistics would depend on both). No gradients, no labels; only those statistics change.
    The copy is returned in eval mode; ``encoder`` is not modified.
    """
    model = copy.deepcopy(encoder).to(device).eval()
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        totals: dict[str, torch.Tensor | int] = {}

        def collect(_module, inputs, totals=totals):
            # float64 sums, a few patches at a time (a float64 copy of a whole batch's first-layer
            # activations would be several GiB for the paper's encoder)
            for part in inputs[0].detach().split(RECALIBRATION_CHUNK):
                x = part.to(torch.float64).transpose(0, 1).flatten(1)  # (channels, values)
                totals["sum"] = totals.get("sum", 0) + x.sum(1)
                totals["squares"] = totals.get("squares", 0) + x.square().sum(1)
                totals["n"] = totals.get("n", 0) + x.shape[1]

        handle = layer.register_forward_pre_hook(collect)
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                model(take(features, slice(start, start + batch_size)).to(device))
        handle.remove()
        n = int(totals["n"])
        mean = totals["sum"] / n
        variance = (totals["squares"] / n - mean.square()).clamp_min(0.0) * n / max(n - 1, 1)
        layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
        layer.running_var.copy_(variance.to(layer.running_var.dtype))
    return model


def frozen_encoder(encoder: Encoder, train: Split, batchnorm: str, device: torch.device) -> Encoder:
    """The encoder as the frozen protocols see it: as it is (``keep``) or recalibrated on ``train``."""
    if batchnorm == "keep":
        return encoder
    if batchnorm == "recalibrate":
        return recalibrate_batchnorm(encoder, train.features, device)
    raise ValueError(f"evaluation.batchnorm must be one of {list(BATCHNORM_MODES)}, got {batchnorm!r}")
