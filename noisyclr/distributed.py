"""Data-parallel training under ``torchrun``: process group, shards, collectives and a CPU-capable synced BN.

The scheme (see ``docs/distributed.md``): every rank holds the whole training table and the same seeded data
generator, so every rank draws the same global batch of ``train.batch_size`` rows with the same augmentations as a
single-process run, and keeps a contiguous shard of the rows (:class:`noisyclr.data.loader.Shard`). Networks run on
the shard; whatever couples the rows of a batch is made global:

* losses that are batch means: each rank contributes ``Σ_shard ℓ_i / B_global`` (:meth:`Distributed.batch_mean`),
  times ``world`` because gradients are averaged over ranks (:meth:`Distributed.average_gradients`), so the update
  equals the single-process one;
* MixMatch mixes rows across the whole batch: the (small, label-free) targets are all-gathered and every rank mixes
  the global batch identically, then forwards its own rows;
* batch-norm statistics: ``train.sync_bn`` (torch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` elsewhere);
* per-sample statistics of the division (eval pass) are computed on shards and all-gathered, so every rank fits
  the identical GMM;
* contrastive negatives are all-gathered with gradients (:meth:`Distributed.gather_with_grad`).

Only rank 0 writes files. A single process is ``Distributed.single()``: every helper is then the plain operation.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
import torch.nn as nn

from .data.loader import Shard
from .errors import UserError

__all__ = ["Distributed", "GlobalBatchNorm", "convert_sync_batchnorm", "is_main_process", "launched_by_torchrun"]


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Whether this process is rank 0 of a torchrun job, or a single process (for writing and printing)."""
    return os.environ.get("RANK", "0") == "0"


class Distributed:
    """This process's place in the job: ``rank`` of ``world``, and the collectives the methods use."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.shard = Shard(rank, world) if world > 1 else None

    @classmethod
    def single(cls) -> "Distributed":
        return cls()

    @classmethod
    def from_env(cls, device_name: str) -> "Distributed":
        """Join the torchrun job described by the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
        ``MASTER_ADDR``...); NCCL for CUDA, gloo for the CPU. A single process when not launched by torchrun."""
        if not launched_by_torchrun():
            return cls.single()
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if device_name == "cuda" and not torch.cuda.is_available():
            raise UserError("train.device=cuda but no CUDA device is visible; use train.device=cpu or auto")
        if not dist.is_initialized():
            if use_cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))
        return cls(rank, world, local_rank)

    # ---------------------------------------------------------------------------------------------- facts
    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, checkpoints and result files."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA job."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    # ---------------------------------------------------------------------------------------------- reductions
    def batch_mean(self, values: torch.Tensor, global_rows: int) -> torch.Tensor:
        """This rank's share of a batch mean, scaled for DDP's gradient averaging.

        ``values`` are this rank's per-row (or per-element) terms of a mean over ``global_rows`` rows of the global
        batch (elements per row are averaged too). Single process: ``values.mean()``. Under DDP:
        ``world · Σ values / (global_rows · elements_per_row)``, whose DDP-averaged gradient is the gradient of the
        global mean.
        """
        if not self.enabled:
            return values.mean()
        per_row = values.shape[1:].numel()  # not values[0]: a rank may hold no row of a small final batch
        return values.sum() * (self.world / (global_rows * per_row))

    def all_sum_with_grad(self, tensor: torch.Tensor) -> torch.Tensor:
        """``Σ_ranks tensor`` with gradients flowing back to every rank's summand (identity in one process).

        A loss built from this sum is the same on every rank; the backward all-reduce sums the copies' gradients
        (× world) and the gradient averaging divides by world again, so no further scaling is needed.
        """
        if not self.enabled:
            return tensor
        return all_reduce_with_grad(tensor)

    def logsumexp_over_ranks(self, lse: torch.Tensor) -> torch.Tensor:
        """``log Σ_ranks exp(lse)`` elementwise, with gradients to every rank (identity in one process).

        Shifted by the elementwise maximum over ranks so that nothing overflows or underflows.
        """
        if not self.enabled:
            return lse
        shift = lse.detach().clone()
        dist.all_reduce(shift, op=dist.ReduceOp.MAX)
        return shift + torch.log(self.all_sum_with_grad(torch.exp(lse - shift)))

    def local_blocks(self, tensor: torch.Tensor, block_sizes: list[int]) -> torch.Tensor:
        """This rank's rows of a global tensor made of consecutive blocks (e.g. MixMatch's ``[x¹; x²; u¹; u²]``):
        its shard of each block, concatenated in block order. The whole tensor in one process."""
        if not self.enabled:
            return tensor
        parts, offset = [], 0
        for n in block_sizes:
            lo, hi = self.shard.bounds(n)
            parts.append(tensor[offset + lo : offset + hi])
            offset += n
        return torch.cat(parts)

    def sum_scalar(self, value: float) -> float:
        """Sum of a Python number over the ranks (images processed, for images/s)."""
        if not self.enabled:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t)

    def mean_scalar(self, value: float) -> float:
        """Mean of a Python number over the ranks (for logging)."""
        return value if not self.enabled else self.sum_scalar(value) / self.world

    # ---------------------------------------------------------------------------------------------- gathers
    def gather_rows(self, tensor: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
        """Concatenate every rank's rows in rank order, without gradients (identity in one process).

        ``sizes``: every rank's row count when known (a :class:`Shard` split), else exchanged first. Rows are
        padded to the largest share for the all-gather and trimmed after.
        """
        if not self.enabled:
            return tensor
        tensor = tensor.detach().contiguous()
        if sizes is None:
            sizes = [int(s) for s in self._all_gather_equal(torch.tensor([tensor.shape[0]], device=tensor.device))]
        top = max(sizes)
        if tensor.shape[0] < top:
            pad = tensor.new_zeros((top - tensor.shape[0], *tensor.shape[1:]))
            tensor = torch.cat([tensor, pad])
        parts = self._all_gather_equal(tensor)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    def gather_with_grad(self, tensor: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
        """Concatenate every rank's rows in rank order, keeping the gradient path to every rank's rows.

        Used for contrastive features: a loss over the gathered rows is the same on every rank, and (as for
        :meth:`all_sum_with_grad`) needs no scaling. ``sizes``: every rank's row count when they differ (rows are
        padded for the all-gather and trimmed after); equal counts when None.
        """
        if not self.enabled:
            return tensor
        if sizes is None or len(set(sizes)) == 1:
            return _AllGather.apply(tensor)
        top = max(sizes)
        if tensor.shape[0] < top:
            tensor = torch.cat([tensor, tensor.new_zeros((top - tensor.shape[0], *tensor.shape[1:]))])
        parts = _AllGather.apply(tensor).split(top)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    def gather_blocks_with_grad(self, tensor: torch.Tensor, local_sizes: list[int], global_sizes: list[int]
                                ) -> torch.Tensor:
        """Inverse of :meth:`local_blocks`, with gradients: this rank's rows of consecutive blocks (sizes
        ``local_sizes``) → the global tensor of the blocks (sizes ``global_sizes``) in block order."""
        if not self.enabled:
            return tensor
        parts = tensor.split(local_sizes)
        return torch.cat([self.gather_with_grad(p, self.shard.sizes(n)) for p, n in zip(parts, global_sizes)])

    def _all_gather_equal(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor)
        return parts

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrite ``tensor`` in place with rank 0's copy and return it (a no-op in one process).

        Every rank computes the division and the prototypes from the same gathered outputs, but CUDA reductions
        with atomics (``index_add_``) may differ in the last bit between ranks; a sample at the threshold could then
        fall on different sides, giving ranks different step counts and a deadlock. Rank 0's copy rules.
        """
        if self.enabled:
            dist.broadcast(tensor, src=0)
        return tensor

    def broadcast_module_(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (as DDP does at start): insurance on top of the shared
        seed."""
        if self.enabled:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    # ---------------------------------------------------------------------------------------------- gradients
    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Replace every gradient of ``optimizer``'s parameters by its mean over the ranks (no-op in one process).

        One all-reduce of all gradients flattened into a single buffer, between ``backward`` and the optimiser
        step. Unlike DDP's bucketed hooks it does not overlap with the backward pass, but it allows any number of
        forward passes per step through any sub-module (PLReMix's projector, BPT-PLR's joint forward, SimCLR's
        head), which DDP's one-forward-one-backward reducer does not; for a ResNet-18 it is one 45 MB all-reduce
        per step.
        """
        if not self.enabled:
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view(g.shape))
            offset += g.numel()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------------ autograd


class _AllReduceSum(torch.autograd.Function):
    """``Σ_ranks x``; backward: ``Σ_ranks grad`` (every rank's copy of the result fed the loss)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """Rows of every rank, concatenated; backward: this rank's slice of ``Σ_ranks grad`` (an all-reduce, not a
    reduce-scatter, which gloo lacks)."""

    @staticmethod
    def forward(ctx, x):
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Differentiable ``Σ_ranks x`` (see :class:`_AllReduceSum`)."""
    return _AllReduceSum.apply(x)


# ------------------------------------------------------------------------------------------------------ synced BN


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are taken over the global batch of all ranks, on any backend.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this is the same computation with two differentiable
    all-reduces (``Σx`` and the count, then ``Σ(x − μ)²``, the two-pass form for accuracy):

        μ = Σ_ranks Σ x / n,   σ² = Σ_ranks Σ (x − μ)² / n,   y = γ (x − μ) / √(σ² + ε) + β,

    running statistics updated with the unbiased ``σ² · n / (n − 1)`` as ``nn.BatchNorm``. Outside training, or in
    a single process, it is exactly the wrapped ``nn.BatchNorm`` forward.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = all_reduce_with_grad
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local_n = xf.new_full((1,), x.numel() / x.shape[1])  # filled on the device: no host-to-device copy per layer
        stats = all_reduce(torch.cat([xf.sum(dims), local_n]))
        n = stats[-1].detach()
        mean = stats[:-1] / n
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp_min(1)) * m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of ``net`` with global-batch statistics: ``nn.SyncBatchNorm`` on CUDA (fused
    kernels), :class:`GlobalBatchNorm` elsewhere (gloo/CPU). Parameters and buffers are carried over, so state
    dicts keep their keys and a synced run's checkpoint loads into a plain network."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return _convert(net)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(iter(module.state_dict().values())).device) if module.state_dict() else new
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module

