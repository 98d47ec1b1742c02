"""Multi-level augmentations of MC-SimCLR as small batched, device-agnostic ``nn.Module``s.

Waveform level (``(B, M, N)``): :class:`ChannelSwap`, :class:`Mixup`.
Feature level (``(B, C, T, F)``, Mel and GCC stacked): :class:`RandomResizedCrop`, :class:`ChannelDrop`.

Every module takes an optional ``torch.Generator`` so that runs are reproducible, and draws its
randomness on the input's device.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.config import check_keys

# --------------------------------------------------------------------------------------------
# Channel symmetries of the array (derived in mc_simclr.acoustics.symmetry)
# --------------------------------------------------------------------------------------------
#: What the symmetry functions and modules take as their array: the derived symmetries, a geometry,
#: or an int M for the regular M-gon (4: the paper's square).
ArrayLike = ArraySymmetries | ArrayGeometry | int


def array_symmetries(array: ArrayLike = 4) -> ArraySymmetries:
    """The :class:`~mc_simclr.acoustics.symmetry.ArraySymmetries` of ``array``."""
    return array if isinstance(array, ArraySymmetries) else ArraySymmetries.of(array)


def n_symmetries(array: ArrayLike = 4) -> int:
    """How many channel symmetries the array has (8 for the paper's square, 2M for a regular M-gon)."""
    return len(array_symmetries(array))


def symmetry_permutation(symmetry: int, array: ArrayLike = 4) -> list[int]:
    """Channel order of symmetry ``s``: the new channel ``m`` is the old channel ``perm[m]``.

    For a regular M-gon (microphone ``m`` at ``m * 360 / M`` degrees from microphone 0,
    counter-clockwise):

    * ``s = k < M``: rotation, ``perm[m] = (m + k) mod M``; the source azimuth becomes
      ``azimuth - k * 360 / M``.
    * ``s = M + k``: reflection, ``perm[m] = (k - m) mod M``; the azimuth becomes
      ``-azimuth + k * 360 / M``.
    """
    return array_symmetries(array).permutation(symmetry)


def map_azimuth(azimuth_deg, symmetry, array: ArrayLike = 4):
    """Azimuth (degrees) of the source after applying ``symmetry`` to the channels.

    The one place that owns the symmetry-to-azimuth mapping: pretraining's ChannelSwap and the
    supervised label mapping both call it. Accepts scalars, NumPy arrays or tensors (elementwise
    with ``symmetry``); the result is wrapped to (-180, 180]. Arrays that resolve elevation map
    both angles with :meth:`~mc_simclr.acoustics.symmetry.ArraySymmetries.map_directions`.
    """
    return array_symmetries(array).map_azimuth(azimuth_deg, symmetry)


class ChannelSwap(nn.Module):
    """Permute microphones by one of the array's symmetries (rotations and reflections: 8 for the
    paper's square, derived from the geometry for any array).

    ``forward(x, symmetry=None)`` returns ``(swapped, symmetry)``; pass the returned symmetry to the
    second view of the same clip (pretraining) or to :func:`map_azimuth` for its label
    (supervised training).
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


# --------------------------------------------------------------------------------------------
# Feature-level augmentations
# --------------------------------------------------------------------------------------------
class RandomResizedCrop(nn.Module):
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


class ChannelDrop(nn.Module):
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
AUGMENTATIONS = ("channel_swap", "mixup", "random_resized_crop", "channel_drop")


class MultiLevelAugmentation(nn.Module):
    """Two waveform views -> two augmented feature views, in the paper's order.

    ChannelSwap (one random symmetry shared by both views of a clip) -> waveform Mixup (per view)
    -> features -> RandomResizedCrop (one box per view) -> ChannelDrop (per view). Each step can be
    switched off; ``features`` is the :class:`~mc_simclr.features.FeatureExtractor`.
    """

    def __init__(
        self,
        features: nn.Module,
        channel_swap: ChannelSwap | None = None,
        mixup: Mixup | None = None,
        random_resized_crop: RandomResizedCrop | None = None,
        channel_drop: ChannelDrop | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.channel_swap = channel_swap
        self.mixup = mixup
        self.random_resized_crop = random_resized_crop
        self.channel_drop = channel_drop

    @classmethod
    def from_params(cls, params: dict, features: nn.Module, array: ArrayLike = 4) -> MultiLevelAugmentation:
        """Build from the ``augmentations`` block: ``{name: {enabled: bool, ...options}}``; ChannelSwap
        uses the symmetries of ``array``."""
        check_keys(params, AUGMENTATIONS, "augmentations")

        modules = {
            "channel_swap": ChannelSwap,
            "mixup": Mixup,
            "random_resized_crop": RandomResizedCrop,
            "channel_drop": ChannelDrop,
        }
        fixed = {"channel_swap": {"array"}, "random_resized_crop": {"attempts"}}  # not settings of a block

        def options(name: str) -> dict | None:
            block = dict(params.get(name) or {})
            if "enabled" not in block:
                raise ValueError(f"augmentations.{name}.enabled must be set (true or false)")
            accepted = set(inspect.signature(modules[name]).parameters) - fixed.get(name, set())
            check_keys(block, {"enabled", *accepted}, f"augmentations.{name}")
            return {k: v for k, v in block.items() if k != "enabled"} if block["enabled"] else None

        swap, mix, rrc, drop = (options(name) for name in AUGMENTATIONS)
        return cls(
            features,
            channel_swap=ChannelSwap(array) if swap is not None else None,
            mixup=Mixup(**mix) if mix is not None else None,
            random_resized_crop=RandomResizedCrop(**{k: tuple(v) if isinstance(v, list) else v for k, v in rrc.items()})
            if rrc is not None
            else None,
            channel_drop=ChannelDrop(**drop) if drop is not None else None,
        )

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
        if self.channel_swap is not None:
            x1, symmetry = self.channel_swap(x1, generator=generator)
            x2, _ = self.channel_swap(x2, symmetry)
        if self.mixup is not None:
            x1, x2 = self.mixup(x1, generator), self.mixup(x2, generator)
        part = (rows, x1.shape[0]) if rows is not None else None
        if rows is not None:
            x1, x2 = x1[rows], x2[rows]
        f1, f2 = self.features(x1), self.features(x2)
        if self.random_resized_crop is not None:
            f1, f2 = self.random_resized_crop(f1, generator, part), self.random_resized_crop(f2, generator, part)
        if self.channel_drop is not None:
            f1, f2 = self.channel_drop(f1, generator, part), self.channel_drop(f2, generator, part)
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
