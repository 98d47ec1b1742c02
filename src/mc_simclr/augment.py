"""Multi-level augmentations of MC-SimCLR as small batched, device-agnostic ``nn.Module``s.

Waveform level (``(B, M, N)``): :class:`ChannelSwap`, :class:`Mixup`.
Feature level (``(B, C, T, F)``, Mel and GCC stacked): :class:`RandomResizedCrop`, :class:`ChannelDrop`.
Beyond the paper, off by default: per-view :class:`DiffuseNoise` and :class:`RandomGain` (waveforms).
:data:`REGISTRY` lists them in the order :class:`MultiLevelAugmentation` applies them.

Every module takes an optional ``torch.Generator`` so that runs are reproducible, and draws its
randomness on the input's device.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.noise import diffuse_noise
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.params import check_keys

# --------------------------------------------------------------------------------------------
# Channel symmetries of the array (derived in mc_simclr.acoustics.symmetry)
# --------------------------------------------------------------------------------------------
#: What the symmetry functions and modules take as their array: the derived symmetries, a geometry,
#: or an int M for the regular M-gon (4: the paper's square).
ArrayLike = ArraySymmetries | ArrayGeometry | int


def array_symmetries(array: ArrayLike = 4) -> ArraySymmetries:
    """The :class:`~mc_simclr.acoustics.symmetry.ArraySymmetries` of ``array``."""
    return array if isinstance(array, ArraySymmetries) else ArraySymmetries.of(array)


class ChannelSwap(nn.Module):
    """Permute microphones by one of the array's symmetries (rotations and reflections: 8 for the
    paper's square, derived from the geometry for any array).

    ``forward(x, symmetry=None)`` returns ``(swapped, symmetry)``; pass the returned symmetry to the
    second view of the same clip (pretraining) or to
    :meth:`~mc_simclr.acoustics.symmetry.ArraySymmetries.map_directions` for its label (supervised
    training). :meth:`pair` swaps both views of a batch with one symmetry per clip.
    """

    def __init__(self, array: ArrayLike = 4) -> None:
        super().__init__()
        self.symmetries = array_symmetries(array)
        self.n_mics = self.symmetries.n_mics
        self.register_buffer("permutations", torch.from_numpy(self.symmetries.permutations.copy()), persistent=False)

    def extra_repr(self) -> str:
        return f"n_mics={self.n_mics}, symmetries={len(self.symmetries)}"

    def sample(
        self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniformly random symmetry indices ``(batch,)``."""
        return torch.randint(len(self.symmetries), (batch,), generator=generator, device=device)

    def forward(
        self, x: torch.Tensor, symmetry: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 2 or x.shape[1] != self.n_mics:
            raise ValueError(f"ChannelSwap expects (batch, {self.n_mics}, ...), got {tuple(x.shape)}")
        if symmetry is None:
            symmetry = self.sample(x.shape[0], x.device, generator)
        else:
            self.symmetries.check(symmetry)
        index = self.permutations.to(x.device)[symmetry.to(x.device)]  # (B, M)
        index = index.reshape(*index.shape, *([1] * (x.ndim - 2))).expand_as(x)
        return torch.gather(x, 1, index), symmetry

    def pair(
        self, x1: torch.Tensor, x2: torch.Tensor, generator: torch.Generator | None = None, part=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views of each clip swapped by the same random symmetry."""
        x1, symmetry = self(x1, generator=generator)
        return x1, self(x2, symmetry)[0]


# --------------------------------------------------------------------------------------------
# Waveform Mixup
# --------------------------------------------------------------------------------------------
class Mixup(nn.Module):
    """``x' = (1 - a) x + a y`` on multichannel waveforms, ``a ~ U[0, alpha_max]``.

    ``y`` is another clip of the batch (a random non-zero cyclic shift of the batch order). Both
    clips are first scaled to unit RMS (one gain for all channels, so level differences between
    microphones survive) so that the target dominates for small ``a``; the mix is then scaled back
    to the target's original RMS to undo the shift in level statistics.
    """

    def __init__(self, alpha_max: float = 0.01, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0.0 <= alpha_max <= 1.0:
            raise ValueError(f"mixup.alpha_max must be in [0, 1], got {alpha_max}")
        self.alpha_max = alpha_max
        self.eps = eps

    def extra_repr(self) -> str:
        return f"alpha_max={self.alpha_max}"

    def _rms(self, x: torch.Tensor) -> torch.Tensor:
        return x.square().mean(dim=tuple(range(1, x.ndim)), keepdim=True).sqrt()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch = x.shape[0]
        if batch < 2 or self.alpha_max == 0.0:
            return x
        shift = int(torch.randint(1, batch, (1,), generator=generator, device=x.device))
        rms = self._rms(x)
        unit = x / (rms + self.eps)
        other = torch.roll(unit, shifts=shift, dims=0)
        alpha = torch.rand((batch,) + (1,) * (x.ndim - 1), generator=generator, device=x.device) * self.alpha_max
        mixed = (1.0 - alpha) * unit + alpha * other
        return mixed / (self._rms(mixed) + self.eps) * rms

    def pair(
        self, x1: torch.Tensor, x2: torch.Tensor, generator: torch.Generator | None = None, part=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each view mixed with another clip of its batch, independently."""
        return self(x1, generator), self(x2, generator)


# --------------------------------------------------------------------------------------------
# Per-view nuisances: diffuse noise, gain and spectral tilt (off by default; docs/experiments/hard.md)
# --------------------------------------------------------------------------------------------
class DiffuseNoise(nn.Module):
    """Diffuse background noise added to each view on its own, so that the two views of a clip do
    not share one noise realisation and one SNR.

    The noise is a random segment of a bank of ``bank_seconds`` of diffuse noise at the array's
    microphones (the coherence of a spherically isotropic field, :func:`~mc_simclr.acoustics.noise.diffuse_noise`,
    drawn once from ``seed``), scaled to an SNR drawn per view from ``snr_db`` (against the view's
    own power), and added with probability ``p``.
    """

    def __init__(
        self,
        array: ArrayLike = 4,
        sample_rate: int = 16000,
        snr_db: tuple[float, float] = (0.0, 20.0),
        p: float = 1.0,
        color: str = "pink",
        bank_seconds: float = 20.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        snr_db = tuple(float(v) for v in snr_db)
        if len(snr_db) != 2 or snr_db[0] > snr_db[1]:
            raise ValueError(f"diffuse_noise.snr_db must be [min, max] with min <= max, got {list(snr_db)}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"diffuse_noise.p must be in [0, 1], got {p}")
        if not bank_seconds > 0:
            raise ValueError(f"diffuse_noise.bank_seconds must be > 0, got {bank_seconds}")
        self.snr_db, self.p, self.color = snr_db, float(p), color
        positions = array_symmetries(array).geometry.array
        rng = np.random.default_rng(seed)
        bank = diffuse_noise(int(round(bank_seconds * sample_rate)), positions, int(sample_rate), rng, color)
        self.register_buffer("bank", torch.from_numpy(bank), persistent=False)

    def extra_repr(self) -> str:
        return f"snr_db={list(self.snr_db)}, p={self.p}, color={self.color!r}, bank={self.bank.shape[-1]} samples"

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, n_mics, n = x.shape
        if n_mics != self.bank.shape[0]:
            raise ValueError(f"DiffuseNoise expects (batch, {self.bank.shape[0]}, samples), got {tuple(x.shape)}")
        bank = self.bank.to(device=x.device, dtype=x.dtype)
        if bank.shape[-1] < n:  # a bank shorter than the crop is repeated
            bank = bank.repeat(1, -(-n // bank.shape[-1]))
        starts = torch.randint(0, bank.shape[-1] - n + 1, (batch,), generator=generator, device=x.device)
        snr = self.snr_db[0] + (self.snr_db[1] - self.snr_db[0]) * torch.rand(
            batch, generator=generator, device=x.device
        )
        applied = torch.rand(batch, generator=generator, device=x.device) < self.p
        noise = bank[:, starts[:, None] + torch.arange(n, device=x.device)].permute(1, 0, 2)  # (B, M, n)
        power = x.square().mean(dim=(1, 2))
        gain = torch.sqrt(power / 10.0 ** (snr / 10.0)) * applied.to(x.dtype)
        return x + gain[:, None, None] * noise

    def pair(
        self, x1: torch.Tensor, x2: torch.Tensor, generator: torch.Generator | None = None, part=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each view gets its own noise segment and SNR."""
        return self(x1, generator), self(x2, generator)


class RandomGain(nn.Module):
    """One random gain per view, uniform in dB in ``[-gain_db, gain_db]`` (all channels alike, so level
    differences between the microphones survive)."""

    def __init__(self, gain_db: float = 6.0) -> None:
        super().__init__()
        if not (isinstance(gain_db, int | float) and gain_db >= 0):
            raise ValueError(f"gain.gain_db must be >= 0, got {gain_db!r}")
        self.gain_db = float(gain_db)

    def extra_repr(self) -> str:
        return f"gain_db={self.gain_db}"

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        db = (2 * torch.rand(x.shape[0], generator=generator, device=x.device) - 1) * self.gain_db
        return x * (10.0 ** (db / 20.0)).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def pair(
        self, x1: torch.Tensor, x2: torch.Tensor, generator: torch.Generator | None = None, part=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each view its own gain."""
        return self(x1, generator), self(x2, generator)


class SpectralTilt(nn.Module):
    """One random spectral tilt per view: a gain of ``t`` dB per octave around ``reference_hz``, ``t``
    uniform in ``[-tilt_db, tilt_db]``, the same for all channels (a real, positive gain per frequency,
    so the microphones' phase differences and GCC-PHAT are untouched), then scaled back to the view's
    RMS so that tilt and level stay separate nuisances. Frequencies below ``floor_hz`` get the gain of
    ``floor_hz``."""

    def __init__(
        self, tilt_db: float = 3.0, reference_hz: float = 1000.0, floor_hz: float = 50.0, sample_rate: int = 16000
    ) -> None:
        super().__init__()
        if not (isinstance(tilt_db, int | float) and tilt_db >= 0):
            raise ValueError(f"spectral_tilt.tilt_db must be >= 0 (dB per octave), got {tilt_db!r}")
        if not 0 < floor_hz <= reference_hz < sample_rate / 2:
            raise ValueError(
                f"spectral_tilt needs 0 < floor_hz <= reference_hz < sample_rate / 2, "
                f"got floor_hz={floor_hz}, reference_hz={reference_hz}, sample_rate={sample_rate}"
            )
        self.tilt_db = float(tilt_db)
        self.reference_hz = float(reference_hz)
        self.floor_hz = float(floor_hz)
        self.sample_rate = int(sample_rate)

    def extra_repr(self) -> str:
        return f"tilt_db={self.tilt_db}, reference_hz={self.reference_hz}"

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        tilt = (2 * torch.rand(x.shape[0], generator=generator, device=x.device) - 1) * self.tilt_db
        if self.tilt_db == 0:
            return x
        n = x.shape[-1]
        freqs = torch.fft.rfftfreq(n, d=1.0 / self.sample_rate, device=x.device).clamp_min(self.floor_hz)
        octaves = torch.log2(freqs / self.reference_hz)
        gain = 10.0 ** (tilt[:, None] * octaves[None, :] / 20.0)  # (B, n // 2 + 1)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (gain.shape[1],)
        tilted = torch.fft.irfft(torch.fft.rfft(x.float()) * gain.reshape(shape), n=n)
        dims = tuple(range(1, x.ndim))
        rms = x.float().square().mean(dim=dims, keepdim=True).sqrt()
        new_rms = tilted.square().mean(dim=dims, keepdim=True).sqrt()
        return (tilted * rms / new_rms.clamp_min(1e-12)).to(x.dtype)

    def pair(
        self, x1: torch.Tensor, x2: torch.Tensor, generator: torch.Generator | None = None, part=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each view its own tilt."""
        return self(x1, generator), self(x2, generator)


# --------------------------------------------------------------------------------------------
# Feature-level augmentations
# --------------------------------------------------------------------------------------------
class FeatureAugmentation(nn.Module):
    """A feature-level augmentation: ``forward(x, generator, part)`` on ``(B, C, T, F)`` features, each
    view augmented independently by :meth:`pair`."""

    def pair(
        self,
        f1: torch.Tensor,
        f2: torch.Tensor,
        generator: torch.Generator | None = None,
        part: tuple[slice, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each view's features augmented independently (the first view's draws first)."""
        return self(f1, generator, part), self(f2, generator, part)


class RandomResizedCrop(FeatureAugmentation):
    """Crop a random box of the ``(T, F)`` image and resize it back, one box for all channels of a view.

    Box area is ``scale`` x the image, aspect ratio ``(width along F) / (height along T)`` is drawn
    log-uniformly from ``ratio`` (as in torchvision). Resizing is bilinear (``grid_sample``), so the
    box need not sit on whole bins.

    On the GCC channels the F axis is the lag axis with lag 0 at index F/2 (pixel centre F/2 + 0.5);
    a box of width ``w`` centred at ``c`` stretches lags by ``F / w`` and moves lag 0 by
    ``(c0 - c) * F / w`` lags, where ``c0 = F/2 + (1 - w/F) / 2`` is the centre that keeps it in place.
    ``max_lag_shift`` (lags; ``None`` = unconstrained, as in the paper) bounds that move: at 16 kHz a
    0.1 m array spans only +-4.7 lags, so an unconstrained crop can move lag 0 by more than the whole
    delay range.
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.8, 1.0),
        ratio: tuple[float, float] = (0.8, 1.25),
        max_lag_shift: float | None = None,
        attempts: int = 10,
    ) -> None:
        super().__init__()
        if not (0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(f"random_resized_crop.scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"random_resized_crop.ratio must satisfy 0 < low <= high, got {ratio}")
        if max_lag_shift is not None and max_lag_shift < 0:
            raise ValueError(f"random_resized_crop.max_lag_shift must be >= 0 or null, got {max_lag_shift}")
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.max_lag_shift = max_lag_shift
        self.attempts = attempts

    def extra_repr(self) -> str:
        return f"scale={self.scale}, ratio={self.ratio}, max_lag_shift={self.max_lag_shift}"

    def sample_boxes(
        self,
        batch: int,
        height: int,
        width: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Boxes ``(batch, 4)`` as (centre_t, centre_f, height, width) in bins."""

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=device)

        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * rand(batch, self.attempts))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * rand(batch, self.attempts))
        w = torch.sqrt(area * aspect)
        h = torch.sqrt(area / aspect)
        valid = (w <= width) & (h <= height)
        first = torch.argmax(valid.to(torch.int8), dim=1)
        any_valid = valid.any(dim=1)
        rows = torch.arange(batch, device=device)
        h = torch.where(any_valid, h[rows, first], torch.full_like(h[:, 0], float(height)))
        w = torch.where(any_valid, w[rows, first], torch.full_like(w[:, 0], float(width)))
        ct = h / 2 + (height - h) * rand(batch)
        lo_f, hi_f = w / 2, width - w / 2
        if self.max_lag_shift is not None:
            reach = self.max_lag_shift * w / width
            still = width / 2 + 0.5 * (1 - w / width)  # box centre that leaves lag 0 where it is
            lo_f = torch.maximum(lo_f, still - reach)
            hi_f = torch.minimum(hi_f, still + reach)
        cf = lo_f + (hi_f - lo_f) * rand(batch)
        return torch.stack([ct, cf, h, w], dim=1)

    @staticmethod
    def apply_boxes(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Resample each item's box back to the full ``(T, F)`` grid (bilinear)."""
        batch, _, height, width = x.shape
        ct, cf, h, w = boxes.unbind(dim=1)
        theta = torch.zeros(batch, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = w / width  # grid x runs along F (last dim)
        theta[:, 0, 2] = 2 * cf / width - 1
        theta[:, 1, 1] = h / height  # grid y runs along T
        theta[:, 1, 2] = 2 * ct / height - 1
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, part: tuple[slice, int] | None = None
    ) -> torch.Tensor:
        """``part = (rows, total)``: ``x`` holds those rows of a batch of ``total``; the boxes are drawn
        for the whole batch (the same draws as one process makes) and the rows' boxes applied."""
        if x.ndim != 4:
            raise ValueError(f"RandomResizedCrop expects (batch, channels, T, F), got {tuple(x.shape)}")
        rows, total = part if part is not None else (slice(None), x.shape[0])
        boxes = self.sample_boxes(total, x.shape[2], x.shape[3], x.device, generator)
        return self.apply_boxes(x, boxes[rows])


class ChannelDrop(FeatureAugmentation):
    """Zero each whole feature channel (Mel or GCC) independently with probability ``p``."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"channel_drop.p must be in [0, 1], got {p}")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, part: tuple[slice, int] | None = None
    ) -> torch.Tensor:
        """``part = (rows, total)``: ``x`` holds those rows of a batch of ``total`` (draws for the whole batch)."""
        if self.p == 0.0:
            return x
        rows, total = part if part is not None else (slice(None), x.shape[0])
        keep = torch.rand((total, x.shape[1]), generator=generator, device=x.device)[rows] >= self.p
        return x * keep.reshape(*keep.shape, *([1] * (x.ndim - 2))).to(x.dtype)


# --------------------------------------------------------------------------------------------
# The multi-level chain of the paper's Fig. 1
# --------------------------------------------------------------------------------------------
#: Where an augmentation acts: on the waveforms before the features, or on the features.
STAGES = ("waveform", "features")
#: Constructor arguments the chain provides (the array's symmetries, the audio's sample rate).
PROVIDED = ("array", "sample_rate")


@dataclass(frozen=True)
class Augmentation:
    """One entry of :data:`REGISTRY`: an augmentation of the multi-level chain.

    ``name`` is its block under ``augmentations`` in the parameters, ``short`` its name in sweep
    variants (``cs``, ``mu``, ...), ``stage`` where it acts (``waveform``: on both views' audio before
    the features; ``features``: on both views' features) and ``module`` its class, whose constructor
    arguments are the block's settings (but ``fixed`` ones; ``array`` and ``sample_rate`` arguments
    get the chain's, :data:`PROVIDED`) and whose ``pair(x1, x2, generator, part)`` augments both views.
    The block of an ``optional`` entry may be left out (the augmentation is then off); the others
    must be present.
    """

    name: str
    short: str
    stage: str
    module: type[nn.Module]
    fixed: frozenset[str] = frozenset()
    optional: bool = False  # its block may be left out of the parameters (then it is off)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"augmentation {self.name!r}: stage must be one of {list(STAGES)}, got {self.stage!r}")
        if not callable(getattr(self.module, "pair", None)):
            raise ValueError(f"augmentation {self.name!r}: {self.module.__name__} has no pair(x1, x2, generator, part)")

    def settings(self) -> set[str]:
        """The keys its parameter block accepts besides ``enabled``."""
        return set(inspect.signature(self.module).parameters) - set(PROVIDED) - self.fixed

    def build(self, options: dict, array: ArrayLike = 4, sample_rate: int = 16000) -> nn.Module:
        """The module from its block's ``options`` (YAML lists become tuples); an ``array`` or
        ``sample_rate`` argument gets the chain's."""
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        provided = {"array": array, "sample_rate": int(sample_rate)}
        accepted = inspect.signature(self.module).parameters
        kwargs.update({name: value for name, value in provided.items() if name in accepted})
        return self.module(**kwargs)


#: The augmentations of the chain, in the order they are applied (the paper's Fig. 1). Adding one is
#: adding an entry here (and its block to ``conf/base/parameters.yml``'s ``augmentations``).
REGISTRY: tuple[Augmentation, ...] = (
    Augmentation("channel_swap", "cs", "waveform", ChannelSwap),
    Augmentation("mixup", "mu", "waveform", Mixup),
    Augmentation("random_resized_crop", "rrc", "features", RandomResizedCrop, frozenset({"attempts"})),
    Augmentation("channel_drop", "cd", "features", ChannelDrop),
    # per-view nuisances beyond the paper, off by default (docs/experiments/hard.md)
    Augmentation("diffuse_noise", "dn", "waveform", DiffuseNoise, optional=True),
    Augmentation("gain", "ga", "waveform", RandomGain, optional=True),
    Augmentation("spectral_tilt", "st", "waveform", SpectralTilt, frozenset({"floor_hz"}), optional=True),
)
AUGMENTATIONS = tuple(entry.name for entry in REGISTRY)
#: Short names of the sweep variants: ``{"cs": "channel_swap", ...}``.
SHORT_NAMES = {entry.short: entry.name for entry in REGISTRY}


class MultiLevelAugmentation(nn.Module):
    """Two waveform views -> two augmented feature views, in the order of :data:`REGISTRY`.

    For the paper's chain: ChannelSwap (one random symmetry shared by both views of a clip) ->
    waveform Mixup (per view) -> features -> RandomResizedCrop (one box per view) -> ChannelDrop (per
    view). Each step can be switched off (``None``); ``features`` is the
    :class:`~mc_simclr.features.FeatureExtractor`. Each augmentation is an attribute named as its
    entry (``chain.mixup``).
    """

    def __init__(self, features: nn.Module, **augmentations: nn.Module | None) -> None:
        super().__init__()
        names = [entry.name for entry in REGISTRY]
        unknown = sorted(set(augmentations) - set(names))
        if unknown:
            raise ValueError(f"unknown augmentations {unknown}; expected some of {names}")
        self.features = features
        for entry in REGISTRY:
            setattr(self, entry.name, augmentations.get(entry.name))

    def steps(self, stage: str) -> list[nn.Module]:
        """The switched-on augmentations of ``stage``, in order."""
        return [
            getattr(self, entry.name)
            for entry in REGISTRY
            if entry.stage == stage and getattr(self, entry.name) is not None
        ]

    @classmethod
    def from_params(cls, params: dict, features: nn.Module, array: ArrayLike = 4) -> MultiLevelAugmentation:
        """Build from the ``augmentations`` block: ``{name: {enabled: bool, ...options}}``; ChannelSwap
        uses the symmetries of ``array``."""
        check_keys(params, [entry.name for entry in REGISTRY], "augmentations")
        modules = {}
        for entry in REGISTRY:
            if entry.optional and entry.name not in params:
                continue
            block = dict(params.get(entry.name) or {})
            if "enabled" not in block:
                raise ValueError(f"augmentations.{entry.name}.enabled must be set (true or false)")
            check_keys(block, {"enabled", *entry.settings()}, f"augmentations.{entry.name}")
            if block["enabled"]:
                options = {k: v for k, v in block.items() if k != "enabled"}
                modules[entry.name] = entry.build(options, array, getattr(features, "sample_rate", 16000))
        return cls(features, **modules)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        generator: torch.Generator | None = None,
        rows: slice | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views' features. With ``rows``, only those rows of the batch get features (one process
        of several sharing a batch): every random draw is still made for the whole batch, so each row
        gets the augmentation it would get in one process."""
        for step in self.steps("waveform"):
            x1, x2 = step.pair(x1, x2, generator)
        part = (rows, x1.shape[0]) if rows is not None else None
        if rows is not None:
            x1, x2 = x1[rows], x2[rows]
        f1, f2 = self.features(x1), self.features(x2)
        for step in self.steps("features"):
            f1, f2 = step.pair(f1, f2, generator, part)
        return f1, f2


# --------------------------------------------------------------------------------------------
# ChannelSwap on precomputed features
# --------------------------------------------------------------------------------------------
def feature_permutation(symmetry: int, array: ArrayLike = 4) -> tuple[list[int], list[bool]]:
    """Feature-channel order and lag flips that make ``features(x)`` into ``features(swap(x))``.

    Mel channel ``m`` comes from microphone ``perm[m]``. GCC channel of pair ``(a, b)`` comes from
    the pair ``(perm[a], perm[b])``; when that pair is stored the other way round, its lag axis is
    reversed (``GCC_ji(tau) = GCC_ij(-tau)``).
    """
    return array_symmetries(array).feature_permutation(symmetry)


class FeatureChannelSwap(nn.Module):
    """ChannelSwap applied to stacked Mel + GCC features ``(B, C, T, F)`` (supervised training).

    Equals extracting features from the channel-swapped waveforms, except at the most negative
    lag ``-F/2`` of a lag-reversed GCC channel, whose mirror ``+F/2`` lies outside the stored crop
    and is set to 0 (it is far outside the delay range of a small array).
    """

    def __init__(self, array: ArrayLike = 4) -> None:
        super().__init__()
        self.symmetries = array_symmetries(array)
        self.n_mics = self.symmetries.n_mics
        tables = [self.symmetries.feature_permutation(s) for s in range(len(self.symmetries))]
        self.register_buffer("channels", torch.tensor([t[0] for t in tables]), persistent=False)
        self.register_buffer("flips", torch.tensor([t[1] for t in tables]), persistent=False)

    def extra_repr(self) -> str:
        return f"n_mics={self.n_mics}, symmetries={len(self.symmetries)}"

    def forward(self, features: torch.Tensor, symmetry: torch.Tensor) -> torch.Tensor:
        index = self.channels[symmetry.to(self.channels.device)].to(features.device)  # (B, C)
        gathered = torch.gather(features, 1, index[:, :, None, None].expand_as(features))
        reversed_lags = torch.cat([torch.zeros_like(gathered[..., :1]), gathered[..., 1:].flip(-1)], dim=-1)
        flip = self.flips[symmetry.to(self.flips.device)].to(features.device)[:, :, None, None]
        return torch.where(flip, reversed_lags, gathered)
