"""Rank awareness in one place: who logs, who saves, and collective ops that are no-ops when
training runs in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def env_rank() -> int:
    """This process's rank as ``torchrun`` set it (``RANK``), before the process group exists."""
    return int(os.environ.get("RANK", "0"))


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Only rank 0 logs, writes metrics and saves checkpoints."""
    return get_rank() == 0


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (identity in one process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max_(t: torch.Tensor) -> torch.Tensor:
    """Maximum of ``t`` over ranks in place (identity in one process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Copy rank ``src``'s ``t`` to every rank in place (identity in one process)."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def setup_distributed(device: torch.device) -> torch.device:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1) and return this
    rank's device; a single process gets ``device`` back unchanged."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or is_distributed():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return device
