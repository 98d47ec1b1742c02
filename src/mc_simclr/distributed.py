"""Data-parallel pretraining: one process per device, gradients averaged, negatives from every process.

With ``pretraining.devices: N`` (N > 1) the pretraining loop runs in N processes (one per GPU on
CUDA, with NCCL; N CPU processes with gloo otherwise). Every process reads the same shuffled global
batch, makes the same augmentation draws for it (so a clip's views do not depend on N) and computes
features and embeddings for its own contiguous share of the batch. The projections of all shares are
gathered with their gradients, so NT-Xent sees every negative of the global batch, as SimCLR does;
BatchNorm statistics span the global batch too (:class:`GlobalBatchNorm2d`, which unlike
``SyncBatchNorm`` also runs on CPU); ``DistributedDataParallel`` averages the gradients. The loss
curve is then that of one process with the same global batch, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def check_devices(devices: int, device: torch.device) -> None:
    """``pretraining.devices`` must fit the machine: at most the visible GPUs on CUDA."""
    if devices < 1:
        raise ValueError(f"pretraining.devices must be >= 1, got {devices}")
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ValueError(
            f"pretraining.devices = {devices} but {torch.cuda.device_count()} CUDA device(s) are visible; "
            "use at most that many (one process per GPU)"
        )


@contextmanager
def process_group(rank_: int, size: int, device: torch.device, init_file: str) -> Iterator[None]:
    """Join the group of ``size`` processes (NCCL on CUDA, gloo on CPU), and leave it afterwards."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank_, world_size=size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def share(batch: int) -> slice:
    """This process's contiguous rows of a global batch of ``batch`` (the first processes take one more)."""
    size, me = world_size(), rank()
    base, extra = divmod(batch, size)
    start = me * base + min(me, extra)
    return slice(start, start + base + (1 if me < extra else 0))


def gather(x: torch.Tensor) -> torch.Tensor:
    """The rows of every process, in process order, with gradients flowing back to each process's rows."""
    if world_size() == 1:
        return x
    return torch.cat(dist_fn.all_gather(x), dim=0)


class _GlobalBatchNorm:
    """Batch statistics over the rows of every process (a sum and a sum of squares, all-reduced with
    their gradients), then the ordinary BatchNorm update and normalisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.ndim)]
        local = x.to(torch.float64)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        totals = dist_fn.all_reduce(torch.cat([local.sum(dims), local.square().sum(dims), count]))
        channels = x.shape[1]
        n = totals[-1]
        mean = totals[:channels] / n
        var = (totals[channels : 2 * channels] / n - mean.square()).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else float(self.momentum)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean.dtype))
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))
        shape = [1, channels] + [1] * (x.ndim - 2)
        y = (local - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:  # in the parameters' dtype, then the input's (bfloat16 under autocast)
            y = y.to(self.weight.dtype) * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class GlobalBatchNorm1d(_GlobalBatchNorm, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalBatchNorm, nn.BatchNorm2d):
    pass


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm of ``module`` compute its batch statistics over all processes (in place;
    parameters, buffers and state-dict keys are unchanged)."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d
        elif type(child) is nn.BatchNorm1d:
            child.__class__ = GlobalBatchNorm1d
    return module


def plain_batch_norm(module: nn.Module) -> nn.Module:
    """Undo :func:`global_batch_norm` (before a module leaves the process group)."""
    for child in module.modules():
        if type(child) is GlobalBatchNorm2d:
            child.__class__ = nn.BatchNorm2d
        elif type(child) is GlobalBatchNorm1d:
            child.__class__ = nn.BatchNorm1d
    return module
