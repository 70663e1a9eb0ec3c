"""The overlapped pipeline behind run_batch: photos are decoded on a pool of
threads, go through the networks on the calling thread (several at once on a
GPU), and are rendered, encoded and written on another pool, while outcomes
are handed back one by one in the photos' order.

One photo at a time leaves most of the machine idle: on a GPU the networks
wait for the host's decoding and encoding, and on a CPU the networks (which
use every core) and the rendering and encoding (mostly one core) take turns.
Overlapping them is what makes a folder faster; every per-photo decision
stays with batch.py, which passes them in as callables.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hsvcolorizer.imageio import Photo, read_image

# Photos that go through the networks together on a GPU. Grouping only pays
# where one photo does not fill the device; on a CPU one photo already keeps
# every core busy and a group is slower (measured: 4 photos of 12 MP at
# working size 256 take 7 % longer together than one by one on 2 cores).
GPU_GROUP = 8


def default_group(device) -> int:
    """How many photos the networks take at once on `device` (a torch.device)."""
    return GPU_GROUP if getattr(device, "type", "cpu") in ("cuda", "mps") else 1


def default_workers(device=None) -> int:
    """Threads for writing (and half as many for reading) beside the networks
    on `device` (a torch.device; None: the CPU): one per core, at least 2 so
    that reading, the networks and writing overlap even on a small machine.

    At most 8 with the networks on a CPU (each photo being written holds
    hundreds of MB at 12 megapixels, and the networks want the cores). On a
    CUDA GPU up to 32, at most one per GiB of GPU memory (each render in
    flight holds about 0.45 GB there) and one per 0.5 GiB of host memory.
    On the H200 machine's 16 cores, 16 threads wrote 28.5 12-megapixel JPEGs per second and 13.5 PNGs,
    8 threads 24.9 and 9.3, 32 threads 23.5 and 13.6 (scripts/profile_batch.py).
    Under torchrun, the cores are those of the machine shared by its processes.
    """
    # Processes that torchrun started on this machine share its cores.
    try:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_processes = 1
    cores = (os.cpu_count() or 2) // local_processes
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        gib = torch.cuda.get_device_properties(device).total_memory // 2**30
        # A 12-megapixel photo being written holds about 150 MB of host memory
        # too: at most one thread per 0.5 GiB of it (room for the photos read ahead).
        return max(2, min(cores, 32, gib, _host_memory_gib() * 2))
    return max(2, min(8, cores))


def _host_memory_gib() -> int:
    """This machine's memory in whole GiB (a large number where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30)
    except (AttributeError, ValueError, OSError):
        return 1 << 20


@dataclass
class Job:
    """One photo on its way through the pipeline."""

    index: int
    source: Path
    output: Path
    read: Future | None = None
    seconds: float = 0.0  # this photo's share of the work so far


class Pipeline:
    """Runs jobs through read -> networks -> render/write; see run()."""

    def __init__(self, colorize_one: Callable, colorize_group: Callable, commit: Callable, write: Callable,
                 fail: Callable, deliver: Callable, cancel: threading.Event | None, workers: int, group: int,
                 read: Callable = read_image):
        # read(path) -> photo, on a reading thread: decoding and whatever else
        #   can be done before the networks (batch.py prepares the network input there)
        # colorize_one(photo) -> result; colorize_group(photos) -> results (may raise for the whole group)
        # commit(job) -> final output Path, or a finished outcome (the name decided, in photo order)
        # write(job, photo, result, output) -> outcome (never raises for the photo's own faults)
        # fail(job, exception) -> outcome for a photo that could not be read or colorized
        # deliver(job, outcome): called on this thread, in photo order
        self.read, self.colorize_one, self.colorize_group = read, colorize_one, colorize_group
        self.commit, self.write, self.fail, self.deliver = commit, write, fail, deliver
        self.cancel = cancel
        self.group = max(1, group)
        self.write_threads = max(1, workers)
        # Decoding is a fraction of encoding and rendering: fewer threads.
        self.read_threads = max(1, workers // 2)
        self.slots: dict[int, object] = {}  # index -> outcome or Future of one
        self.next_delivery = 0

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def run(self, jobs: list[Job], early: Callable) -> bool:
        """Process `jobs` (in order); early(job) -> an outcome decided before
        reading (skipped) or None. Returns True when cancelled."""
        readers = ThreadPoolExecutor(self.read_threads, thread_name_prefix="batch-read")
        writers = ThreadPoolExecutor(self.write_threads, thread_name_prefix="batch-write")
        self.jobs = jobs
        pending: deque[Job] = deque()  # read or being read, in order, not yet colorized
        writing: deque[Future] = deque()
        # Read ahead enough to fill the next group and keep the readers busy,
        # no more: a decoded 12-megapixel photo with its float gray (batch
        # prepares it on the reading threads) holds 60-90 MB, so on a 16-core
        # GPU machine the group being colorized and the 16 read ahead (group 8
        # + 8 readers) hold about 2 GB.
        ahead = self.group + self.read_threads
        upcoming = iter(jobs)
        exhausted = False

        def read_ahead() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < ahead and not self.cancelled():
                job = next(upcoming, None)
                if job is None:
                    exhausted = True
                    break
                outcome = early(job)
                if outcome is not None:
                    self.slots[job.index] = outcome
                    continue
                job.read = readers.submit(_timed, self.read, job.source)
                pending.append(job)

        try:
            while True:
                read_ahead()
                self._deliver_ready()
                if self.cancelled() or not pending:
                    break
                batch = [pending.popleft() for _ in range(min(self.group, len(pending)))]
                # The next photos are read while this group is colorized and
                # handed to the writers (which can make this thread wait):
                # refilling only at the top of the loop left the readers idle
                # meanwhile.
                read_ahead()
                for job, photo, result in self._colorize(batch):
                    if self.cancelled():
                        break  # the rest of the group is dropped, not written
                    output = self.commit(job)
                    if not isinstance(output, Path):
                        self.slots[job.index] = output
                        continue
                    # Bounded: a rendered 12-megapixel photo holds hundreds of MB.
                    while len(writing) > self.write_threads:
                        writing.popleft().result()
                        self._deliver_ready()
                    future = writers.submit(self.write, job, photo, result, output)
                    writing.append(future)
                    self.slots[job.index] = future
                self._deliver_ready()
            if self.cancelled():
                # Photos not yet being written are dropped; those being
                # written finish (whole files, under a temporary name first).
                for job in pending:
                    job.read.cancel()
                for future in writing:
                    future.cancel()
            for future in writing:
                if not future.cancelled():
                    future.exception()  # wait; a bug in writing is raised by _deliver_ready
            self._deliver_ready()
            return self.next_delivery < len(jobs)  # only a cancel leaves photos without an outcome
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=True)

    def _colorize(self, batch: list[Job]):
        """(job, photo, result) for each job of `batch` that was read and
        colorized; the others' failures go to their slots."""
        read = []
        for job in batch:
            (photo, seconds), error = _unwrap(job.read)
            job.seconds += seconds
            if error is not None:
                self.slots[job.index] = self.fail(job, error)
            else:
                read.append((job, photo))
        if not read:
            return []
        t0 = time.perf_counter()
        if len(read) > 1:
            try:
                results = self.colorize_group([photo for _, photo in read])
                share = (time.perf_counter() - t0) / len(read)
                for job, _ in read:
                    job.seconds += share
                return [(job, photo, result) for (job, photo), result in zip(read, results)]
            except (Exception, MemoryError):  # noqa: BLE001 - retried one by one below, where it is reported
                # One photo of the group failed (out of memory on the device,
                # a bad array): one at a time, the others still succeed and
                # the failure is that photo's.
                pass
        done = []
        for job, photo in read:
            t1 = time.perf_counter()
            try:
                result = self.colorize_one(photo)
            except (Exception, MemoryError) as e:  # noqa: BLE001 - fail() keeps what it reports and re-raises bugs
                job.seconds += time.perf_counter() - t1
                self.slots[job.index] = self.fail(job, e)
                continue
            job.seconds += time.perf_counter() - t1
            done.append((job, photo, result))
        return done

    def _deliver_ready(self) -> None:
        """Hand over finished outcomes in photo order, up to the first unfinished one."""
        while self.next_delivery < len(self.jobs):
            job = self.jobs[self.next_delivery]
            slot = self.slots.get(job.index)
            if slot is None:
                return
            if isinstance(slot, Future):
                if not slot.done() or slot.cancelled():
                    return
                slot = slot.result()  # write() reports the photo's faults as outcomes; a bug raises here
            self.deliver(job, slot)
            self.next_delivery += 1


def _timed(fn: Callable, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def _unwrap(future: Future) -> tuple[tuple[Photo | None, float], BaseException | None]:
    try:
        return future.result(), None
    except (Exception, MemoryError) as e:  # noqa: BLE001 - the caller's fail() decides
        return (None, 0.0), e
