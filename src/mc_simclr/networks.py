"""CRNN encoder (128-d embedding), SimCLR projection head and the linear evaluation heads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from mc_simclr.params import dataclass_from_params


@dataclass
class EncoderConfig:
    """Shape of the CRNN encoder (adapted from Fonseca et al. 2021's CRNN front end).

    ``filters`` and ``pools`` give one convolution block each: conv(k x k) -> batch norm -> ReLU ->
    max pool (time, frequency/lag). The feature maps are then flattened over channels and the
    remaining frequency/lag bins, a bidirectional GRU runs over time, the GRU outputs are pooled
    over time (``temporal_pooling``: ``mean`` or ``meanmax``) and a linear layer gives the
    ``embedding_dim``-d embedding h.

    ``architecture: split_crnn`` (an extension beyond the paper) runs two such CRNNs side by side,
    one on the first ``mel_channels`` input channels (log-Mel) and one on the rest (GCC), each
    giving half of h; see :class:`SplitCRNNEncoder`.

    ``in_channels`` and ``mel_channels`` follow the array (:meth:`for_array`): M log-Mel and
    M (M - 1) / 2 GCC-PHAT channels for M microphones (10 and 4 for the paper's square). ``null``
    in the parameters means derived; a number must match the array.
    """

    architecture: str = "crnn"
    in_channels: int | None = 10
    mel_channels: int | None = 4
    filters: list[int] = field(default_factory=lambda: [128, 128, 128])
    kernel_size: int = 5
    pools: list[list[int]] = field(default_factory=lambda: [[2, 4], [2, 4], [1, 2]])
    gru_hidden: int = 128
    embedding_dim: int = 128
    temporal_pooling: str = "mean"
    dropout: float = 0.0

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "encoder") -> EncoderConfig:
        config = dataclass_from_params(cls, params, name)
        config.validate(name)
        return config

    def for_array(self, n_mics: int, name: str = "encoder") -> EncoderConfig:
        """This config with the input channels of an array of ``n_mics`` microphones (see the class doc)."""
        derived = {"in_channels": n_mics + n_mics * (n_mics - 1) // 2, "mel_channels": n_mics}
        for key, value in derived.items():
            given = getattr(self, key)
            if given is not None and int(given) != value:
                raise ValueError(
                    f"{name}.{key} is {given}, but the array of {n_mics} microphones gives {n_mics} log-Mel + "
                    f"{derived['in_channels'] - n_mics} GCC-PHAT channels ({key} = {value}): set it to null (derived)"
                )
        config = replace(self, **derived)
        config.validate(name)
        return config

    def validate(self, name: str = "encoder") -> None:
        if len(self.filters) != len(self.pools) or not self.filters:
            raise ValueError(
                f"{name}.filters and {name}.pools need one entry per block (got {self.filters}, {self.pools})"
            )
        if any(len(p) != 2 or min(p) < 1 for p in self.pools):
            raise ValueError(f"{name}.pools entries must be [time, frequency] pool sizes >= 1, got {self.pools}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"{name}.kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.architecture not in ("crnn", "split_crnn"):
            raise ValueError(f"{name}.architecture must be 'crnn' or 'split_crnn', got {self.architecture!r}")
        known = self.in_channels is not None and self.mel_channels is not None  # else checked by for_array
        if (
            known
            and self.architecture == "split_crnn"
            and not (0 < self.mel_channels < self.in_channels and self.embedding_dim >= 2)
        ):
            raise ValueError(f"{name}.mel_channels must lie in (0, in_channels) and embedding_dim >= 2 for split_crnn")
        if self.temporal_pooling not in ("mean", "meanmax"):
            raise ValueError(f"{name}.temporal_pooling must be 'mean' or 'meanmax', got {self.temporal_pooling!r}")
        if min(self.filters) < 1 or self.gru_hidden < 1 or self.embedding_dim < 1:
            raise ValueError(f"{name}: filters, gru_hidden and embedding_dim must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CRNNEncoder(nn.Module):
    """Features ``(B, C, T, F)`` -> embedding ``(B, embedding_dim)``.

    On CPU the convolution stack runs in the channels-last memory format (``cpu_channels_last``,
    on by default): oneDNN's convolutions and max pooling are faster that way (1.2-1.4x per
    training step, 1.4-2.1x per embedding pass in ``benchmarks/bench_encoder.py``) and the
    results are the same up to float rounding. CUDA inputs keep their layout unless
    ``cuda_channels_last`` is set (off by default; ``pretraining.cuda_channels_last``), for GPUs
    whose convolutions are faster in it. The flags are run-time choices, not part of
    :class:`EncoderConfig`.
    """

    def __init__(self, config: EncoderConfig, n_bins: int) -> None:
        super().__init__()
        self.config = config
        self.n_bins = n_bins
        self.cpu_channels_last = True
        self.cuda_channels_last = False
        self.input_norm = nn.BatchNorm2d(config.in_channels)
        blocks = []
        channels, bins = config.in_channels, n_bins
        for filters, (pool_t, pool_f) in zip(config.filters, config.pools, strict=True):
            blocks += [
                nn.Conv2d(channels, filters, config.kernel_size, padding=config.kernel_size // 2, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
                nn.MaxPool2d((pool_t, pool_f), ceil_mode=True),
            ]
            if config.dropout > 0:
                blocks.append(nn.Dropout(config.dropout))
            channels, bins = filters, -(-bins // pool_f)
        self.conv = nn.Sequential(*blocks)
        self.gru = nn.GRU(channels * bins, config.gru_hidden, batch_first=True, bidirectional=True)
        pooled = 2 * config.gru_hidden * (2 if config.temporal_pooling == "meanmax" else 1)
        self.fc = nn.Linear(pooled, config.embedding_dim)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame GRU outputs ``(B, T', 2 * gru_hidden)`` before temporal pooling."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[3] != self.n_bins:
            raise ValueError(
                f"CRNNEncoder expects (batch, {self.config.in_channels}, T, {self.n_bins}), got {tuple(x.shape)}"
            )
        if (self.cpu_channels_last and x.device.type == "cpu") or (self.cuda_channels_last and x.is_cuda):
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.conv(self.input_norm(x))  # (B, C', T', F')
        y = y.permute(0, 2, 1, 3).flatten(2)  # (B, T', C' F')
        out, _ = self.gru(y)
        return out

    @property
    def frame_dim(self) -> int:
        """Width of :meth:`frames`' per-frame outputs."""
        return 2 * self.config.gru_hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.frames(x)
        pooled = frames.mean(dim=1)
        if self.config.temporal_pooling == "meanmax":
            pooled = torch.cat([pooled, frames.amax(dim=1)], dim=1)
        return self.fc(pooled)


class SplitCRNNEncoder(nn.Module):
    """Two CRNN branches, one on the log-Mel channels and one on the GCC channels; h = [h_mel, h_gcc].

    An extension beyond the paper: with one shared encoder, instance discrimination can be solved
    through one group of channels alone (on the embedded corpus: through GCC, so class information
    stays at random-init level). Separate branches, each trained with its own NT-Xent, keep both.
    """

    def __init__(self, config: EncoderConfig, n_bins: int) -> None:
        super().__init__()
        self.config = config
        self.n_bins = n_bins
        half = config.embedding_dim // 2
        mel = replace(config, architecture="crnn", in_channels=config.mel_channels, embedding_dim=half)
        gcc = replace(
            config,
            architecture="crnn",
            in_channels=config.in_channels - config.mel_channels,
            embedding_dim=config.embedding_dim - half,
        )
        self.mel = CRNNEncoder(mel, n_bins)
        self.gcc = CRNNEncoder(gcc, n_bins)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the Mel branch and of the GCC branch."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"SplitCRNNEncoder expects (batch, {self.config.in_channels}, T, {self.n_bins}), got {tuple(x.shape)}"
            )
        return self.mel(x[:, : self.config.mel_channels]), self.gcc(x[:, self.config.mel_channels :])

    @property
    def frame_dim(self) -> int:
        """Width of :meth:`frames`' per-frame outputs (both branches)."""
        return self.mel.frame_dim + self.gcc.frame_dim

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame GRU outputs of both branches, side by side: ``(B, T', frame_dim)``."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"SplitCRNNEncoder expects (batch, {self.config.in_channels}, T, {self.n_bins}), got {tuple(x.shape)}"
            )
        m = self.config.mel_channels
        return torch.cat([self.mel.frames(x[:, :m]), self.gcc.frames(x[:, m:])], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.parts(x), dim=1)


Encoder = CRNNEncoder | SplitCRNNEncoder


class ProjectionHead(nn.Module):
    """SimCLR's 2-layer MLP from h to z, discarded after pretraining."""

    def __init__(self, in_dim: int = 128, hidden_dim: int = 128, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SELDHeads(nn.Module):
    """Two linear heads on the embedding: event class logits and the source direction as a
    ``direction_dim`` vector: (cos, sin) of the azimuth for the paper's array, a unit vector for an
    array that resolves elevation, (cos, sin) of the angle to the axis for a linear array (see
    :class:`~mc_simclr.acoustics.symmetry.DirectionLabels`). The direction head keeps its name
    ``azimuth`` so that model files of the paper's array load as they are."""

    def __init__(self, embedding_dim: int, n_classes: int, direction_dim: int = 2) -> None:
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, n_classes)
        self.azimuth = nn.Linear(embedding_dim, direction_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(h), self.azimuth(h)


def set_cpu_channels_last(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch the channels-last CPU path of every :class:`CRNNEncoder` inside ``module``; returns it."""
    for child in module.modules():
        if isinstance(child, CRNNEncoder):
            child.cpu_channels_last = bool(enabled)
    return module


def set_cuda_channels_last(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch the channels-last CUDA path of every :class:`CRNNEncoder` inside ``module``; returns it.

    The convolution weights take the same memory format, so that cuDNN does not convert them at
    every call (the values are unchanged)."""
    layout = torch.channels_last if enabled else torch.contiguous_format
    for child in module.modules():
        if isinstance(child, CRNNEncoder):
            child.cuda_channels_last = bool(enabled)
            child.conv.to(memory_format=layout)
    return module


def build_encoder(config: EncoderConfig | dict[str, Any], n_bins: int) -> Encoder:
    """Encoder of ``config.architecture`` from a config (or its dict form, as stored in files)."""
    if isinstance(config, dict):
        config = EncoderConfig.from_params(config)
    if config.in_channels is None or config.mel_channels is None:
        raise ValueError(
            "encoder.in_channels / mel_channels are not derived from the array yet (EncoderConfig.for_array)"
        )
    return SplitCRNNEncoder(config, n_bins) if config.architecture == "split_crnn" else CRNNEncoder(config, n_bins)
