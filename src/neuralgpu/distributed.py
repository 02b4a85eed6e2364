"""Data-parallel training under ``torchrun``: which rank we are, and the few collectives we need.

``torchrun --nproc_per_node=N -m neuralgpu train ...`` starts N copies of the trainer with the
usual environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...). Each rank draws its own data;
gradients are averaged by DistributedDataParallel; the error statistics that drive the curriculum,
the relaxation and the learning rate are summed over ranks, so every rank takes the same decision;
evaluations run on rank 0 and their verdict is broadcast. Without torchrun, everything here is a
no-op and the trainer runs alone.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over ranks (the values themselves when alone)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def maximum(self, value: float, device: torch.device) -> float:
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def parameters_agree(self, model: nn.Module, device: torch.device) -> bool:
        """Whether every rank holds exactly the same parameters (compared through rank 0's)."""
        if not self.enabled:
            return True
        flat = torch.cat([parameter.detach().reshape(-1).to(torch.float64) for parameter in model.parameters()]).to(device)
        reference = flat.clone()
        dist.broadcast(reference, src=0)
        differs = torch.tensor([float(not torch.equal(flat, reference))], device=device)
        dist.all_reduce(differs)
        return float(differs.item()) == 0.0


def from_environment() -> Distributed:
    """The torchrun environment, or a single process when there is none."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size < 2:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(device_type: str) -> Distributed:
    """Join the process group torchrun set up: NCCL between GPUs, gloo between CPU processes."""
    context = from_environment()
    if context.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return context


def stop(context: Distributed, completed: bool = True) -> None:
    """Leave the process group; after a completed run, only once every rank is done with it.

    DistributedDataParallel's reducer sits in reference cycles and holds gloo work objects:
    left for the interpreter's final clean-up, destroying them can abort the process (SIGABRT).
    Collect them while the interpreter is whole. The barrier keeps a rank that finished early
    from closing its connections while rank 0 still evaluates and writes.
    """
    if not (context.enabled and dist.is_initialized()):
        return
    gc.collect()
    if completed:
        dist.barrier()
    dist.destroy_process_group()
