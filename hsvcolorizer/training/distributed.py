"""Several processes under torchrun: joining the process group, and the
decisions every rank must take at the same step."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from hsvcolorizer.device import pick_device


def dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) — under torchrun, joins the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, pick_device(device_name)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = pick_device(device_name)
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def agree(world: int, device: torch.device, flags: tuple[bool, ...], stop: bool) -> tuple[bool, ...]:
    """`flags` as rank 0 decided them, and whether to stop now.

    Under torchrun every rank takes rank 0's decisions (budget spent,
    checkpoint due) and stops when any rank was asked to, all at the same
    step: ranks that disagree by one step wait for each other forever.
    """
    if world <= 1:
        return (*flags, stop)
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.broadcast(t, src=0)
    s = torch.tensor([float(stop)], device=device)
    dist.all_reduce(s, op=dist.ReduceOp.MAX)
    return (*(bool(v) for v in t.tolist()), bool(s.item()))


def mean_over_ranks(t: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of `t` over all ranks (in place), so that every rank logs the same figures."""
    if world > 1:
        dist.all_reduce(t)
        t /= world
    return t
