"""Data-parallel training on PyTorch's own engine: `torchrun --nproc_per_node=N -m fastacgan.train ...`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `setup()` reads them and starts the process group (NCCL on GPUs,
gloo on CPUs). --batch-size is per process, so the global batch is N x --batch-size; the learning rate is not
rescaled. Each rank takes its interleaved share of the epoch's permutation (sampling.epoch_indices) and its slice
of the global noise, so the N per-rank batches of a step together are the 1-process batch of N x --batch-size.
Only rank 0 prints and writes files. Checkpoints hold the unwrapped models: they resume on any N.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple[Dist, str]:
    """Start the process group when launched by torchrun; -> (Dist, the device this rank trains on)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device_name
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank), (f"cuda:{local_rank}" if use_cuda else "cpu")


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_(t: torch.Tensor, op=None) -> torch.Tensor:
    """In-place all-reduce (sum by default) when distributed; a no-op otherwise."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t
