"""`hsvcolorizer batch` under torchrun: each process colorizes its share of
the photos (batch.shard_pairs) on its own device, and every outcome is
gathered so that rank 0 reports the whole run once.

Joining the process group reuses the training's helper, so a batch runs
wherever training runs: one GPU per process (cuda:LOCAL_RANK) with NCCL, or
CPU processes with gloo, on one node or several.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsvcolorizer.batch import BatchReport

# torch is imported only once the process group is joined: `batch` reports
# argument errors before importing it (it takes seconds).


def launched_world() -> tuple[int, int]:
    """(rank, world size) torchrun gave this process; (0, 1) when run alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def join(device_name: str):
    """(rank, world size, torch device) of this process, the group joined."""
    from hsvcolorizer.training.distributed import dist_setup

    return dist_setup(device_name)


def gather_report(report: BatchReport, order: list[Path], world: int) -> BatchReport:
    """Every rank's outcomes in one report, in the photos' order (`order`:
    the planned sources), on every rank: all ranks then end with the same
    exit status, and a failure on any rank is in the report rank 0 prints."""
    if world <= 1:
        return report
    import torch.distributed as dist

    parts: list = [None] * world
    dist.all_gather_object(parts, (report.outcomes, report.cancelled))
    position = {src: i for i, src in enumerate(order)}
    merged = BatchReport()
    for outcomes, cancelled in parts:
        merged.outcomes.extend(outcomes)
        merged.cancelled = merged.cancelled or cancelled
    merged.outcomes.sort(key=lambda o: position.get(o.source, len(position)))
    return merged


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
