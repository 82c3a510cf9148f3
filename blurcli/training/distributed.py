"""Training on several processes: what `torchrun` sets up, and the few places the loop differs.

Under `torchrun --nproc_per_node N -m blurcli train ...` each process is one rank: the loop wraps
the UNet in DistributedDataParallel (gradients averaged across ranks), with BatchNorm statistics
computed over every rank's batch, reads its own shard of the training data (reshuffled each epoch),
scores its shard of the validation split and sums the counts with the others, so every figure is
the one a single process would compute. Only rank 0 writes checkpoints, logs and plots. gloo on a
CPU, NCCL on CUDA (one GPU per rank, by LOCAL_RANK). Without torchrun nothing here is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from blurcli.device import resolve_device
from blurcli.errors import UsageError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes; (0, 1) is a single process."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints progress."""
        return self.rank == 0

    def shard(self, count: int) -> list[int]:
        """This rank's share of `count` items (every `world`-th, from `rank`): the shares of all
        ranks cover each item exactly once, with no padding, so summed counts equal one process's."""
        return list(range(self.rank, count, self.world))


def ranks_from_environment(environ: dict[str, str] | None = None) -> Ranks:
    """The ranks torchrun (or any launcher setting RANK, WORLD_SIZE, LOCAL_RANK) gave this process."""
    environ = dict(os.environ) if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK {rank} and WORLD_SIZE {world}: need 0 <= RANK < WORLD_SIZE")
    return Ranks(rank, world, local)


def rank_device(requested: str | None, ranks: Ranks) -> torch.device:
    """The device this rank trains on: `requested` (auto when None), and on CUDA the GPU of its
    LOCAL_RANK, as torchrun starts one process per GPU."""
    device = resolve_device(requested)
    if device.type == "cuda" and ranks.world > 1:
        if ranks.local >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {ranks.local}: this machine has {torch.cuda.device_count()} GPUs; "
                "start at most that many processes per node"
            )
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    return device


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join the other ranks for the duration (NCCL on CUDA, gloo else); nothing for one process."""
    if ranks.world == 1:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world, timeout=timedelta(minutes=30))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _several_ranks() -> bool:
    """Whether this process is one of several in a joined process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across(values: np.ndarray) -> np.ndarray:
    """Element-wise sum of an array over every rank, as float64 (itself when training alone)."""
    if not _several_ranks():
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.from_numpy(np.asarray(values, np.float64).copy()).to(device or "cpu")
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def barrier() -> None:
    """Wait for every rank (no-op alone): e.g. before reading a file rank 0 has just written."""
    if _several_ranks():
        dist.barrier()


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) with a gradient: the gradient of a sum over ranks, for each rank's input,
    is the sum over ranks of the gradients that arrive at the result."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the batches of every rank together, on any
    device: torch's own SyncBatchNorm runs on GPUs only, and gloo on CPUs is how we test. The
    sums go through a differentiable all-reduce, so gradients flow to every rank's inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _several_ranks()):
            return super().forward(x)
        local = torch.stack([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))])
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        dist.all_reduce(count)
        total = _SumAcrossRanks.apply(local)
        mean = total[0] / count
        var = (total[1] / count - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
                self.num_batches_tracked.add_(1)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            shift = self.bias - mean * scale * self.weight
            scale = scale * self.weight
        else:
            shift = -mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` with each BatchNorm2d computing its statistics over all ranks: torch's
    SyncBatchNorm on CUDA, `SyncBatchNorm2d` elsewhere. Parameter and buffer names are unchanged,
    so checkpoints load into a plain UNet."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced.to(child.weight.device))
        else:
            synchronise_batchnorm(child, device)
    return model


def distribute(model: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """The module to train: `model` itself alone, else synchronised BatchNorm inside
    DistributedDataParallel (which starts every rank from rank 0's weights)."""
    if ranks.world == 1:
        return model
    model = synchronise_batchnorm(model, device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrapped(model: nn.Module) -> nn.Module:
    """The UNet inside a DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
