"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (the paper's equation 3), and
the spatial reconstruction target that can sit beside it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Mean NT-Xent over the 2N views of N positive pairs ``(z1[k], z2[k])``.

    For view i with positive j: ``-log exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t)``,
    ``sim`` the cosine similarity; the self-similarity is masked out of the denominator.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(
            f"nt_xent expects two (N, D) tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError("nt_xent needs at least 2 pairs (negatives come from the other pairs)")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


class NTXentLoss(nn.Module):
    """``nn.Module`` form of :func:`nt_xent` with a fixed temperature (0.1 in the paper)."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"pretraining.temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature)


def spatial_target(features: torch.Tensor, mel_channels: int, eps: float = 1e-6) -> torch.Tensor:
    """What the spatial head reconstructs: each view's GCC-PHAT lag profile, averaged over time.

    ``features`` is ``(N, C, T, F)`` with the log-Mel channels first; the result is ``(N, (C -
    mel_channels) * F)``, each pair's profile standardised over its lags (zero mean, unit spread), so
    that the target's scale does not depend on the SNR. A pair whose profile is flat (a dropped
    channel) stays zero.
    """
    if features.ndim != 4 or not 0 < mel_channels < features.shape[1]:
        raise ValueError(
            f"spatial_target expects (N, C, T, F) features with 0 < mel_channels < C, "
            f"got {tuple(features.shape)} and mel_channels={mel_channels}"
        )
    profile = features[:, mel_channels:].float().mean(dim=2)
    centred = profile - profile.mean(dim=2, keepdim=True)
    spread = centred.std(dim=2, keepdim=True)
    return torch.where(spread > eps, centred / spread.clamp_min(eps), torch.zeros_like(centred)).flatten(1)


def spatial_reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the spatial head's output and :func:`spatial_target` (per element)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"spatial head output {tuple(prediction.shape)} does not match its target {tuple(target.shape)}"
        )
    return F.mse_loss(prediction.float(), target)
