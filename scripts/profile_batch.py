"""Where a batch of 12-megapixel JPEGs spends its time on this machine.

Times each step of one photo on one thread (decode, prepare, the networks
per photo in a group, the full-size render, JPEG and PNG encoding), then
runs the whole batch with several thread counts and group sizes, so that a
batch rate short of the goal (issue 11: 20 photos/s on one H200) can be
traced to its step. Prints plain text; used on the lent GPU machine, where
one call has to bring back everything.

    python scripts/profile_batch.py --device cuda --photos 32 --threads 8 16 24
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from hsvcolorizer.batch_speed import make_photo_folder, measure_batch
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.weights import default_weights


def _best(fn, device: torch.device, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def compare_with_cpu(colorizer: Colorizer, weights) -> None:
    """Colorize one 3-megapixel photo on `colorizer`'s device and in fp32 on
    the CPU and print the differences of the 8-bit results, per channel."""
    import numpy as np

    from hsvcolorizer.batch_speed import make_photo_folder

    cpu = Colorizer.load(weights, "cpu", "fp32") if weights else None
    if cpu is None:
        print("compare with CPU: no shipped weights, skipped")
        return
    with tempfile.TemporaryDirectory(prefix="profile-compare-") as folder:
        gray = read_image(make_photo_folder(folder, count=1, megapixels=3.0)[0])
        here = colorizer.colorize(gray).render().astype(np.int16)
        there = cpu.colorize(gray).render().astype(np.int16)
    diff = np.abs(here - there)
    print(f"compare with CPU fp32 on a {here.shape[1]}x{here.shape[0]} photo: mean {diff.mean():.3f} levels, "
          f"99.9th percentile {np.percentile(diff, 99.9):.0f}, max {diff.max()}, "
          f"pixels off by more than 8: {(diff.max(axis=2) > 8).mean():.3%}", flush=True)


class _Clock:
    """Adds up, per name, the seconds spent inside wrapped callables (any thread)."""

    def __init__(self):
        import threading

        self.seconds: dict[str, float] = {}
        self.lock = threading.Lock()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed


def timeline(colorizer: Colorizer, folder: str, fmt: str, threads: int, group: int) -> None:
    """One batch with every stage timed: how busy the reading and writing
    threads were, and what the thread that feeds the networks waited for."""
    from unittest import mock

    from hsvcolorizer import batch, inference, pipeline

    clock = _Clock()
    real_init = pipeline.Pipeline.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.read = clock.wrap("read (decode + prepare)", self.read)
        self.colorize_group = clock.wrap("main: networks", self.colorize_group)
        self.colorize_one = clock.wrap("main: networks", self.colorize_one)
        self.write = clock.wrap("write (render + encode)", self.write)
        self.run = clock.wrap("main: whole run", self.run)

    with mock.patch.object(pipeline.Pipeline, "__init__", init), \
            mock.patch.object(pipeline, "_unwrap", clock.wrap("main: waiting for reads", pipeline._unwrap)), \
            mock.patch.object(inference.Result, "render", clock.wrap("render", inference.Result.render)), \
            mock.patch.object(batch, "write_image", clock.wrap("encode", batch.write_image)):
        m = measure_batch(colorizer, folder, fmt, workers=threads, group=group)
    wall = clock.seconds["main: whole run"]
    readers, writers = max(1, threads // 2), threads
    c = clock.seconds
    print(f"timeline, {m['photos']} photos as {fmt}, {threads} threads, group {group}: "
          f"{m['photos_per_second']:.2f} photos/s, run {wall:.2f} s", flush=True)
    print(f"  readers busy {c['read (decode + prepare)'] / (readers * wall):.0%} of {readers}; "
          f"writers busy {c['write (render + encode)'] / (writers * wall):.0%} of {writers} "
          f"(render {c['render'] / m['photos'] * 1000:.0f} ms, encode {c['encode'] / m['photos'] * 1000:.0f} ms "
          f"per photo); main thread: waiting for reads {c['main: waiting for reads']:.2f} s, "
          f"networks {c['main: networks']:.2f} s, the rest (waiting for writers, handing over) "
          f"{wall - c['main: waiting for reads'] - c['main: networks']:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[8])
    parser.add_argument("--groups", type=int, nargs="+", default=[8])
    parser.add_argument("--scaling", action="store_true",
                        help="also time each step on as many threads as cores against one thread")
    parser.add_argument("--timeline", action="store_true",
                        help="also run one batch per format with every stage timed (largest thread count and group)")
    parser.add_argument("--compare-cpu", action="store_true",
                        help="first colorize one photo on the device and in fp32 on the CPU and print how far apart they are")
    args = parser.parse_args()

    weights = default_weights()
    colorizer = (Colorizer.load(weights, args.device, args.precision) if weights
                 else Colorizer.untrained(device=args.device, precision=args.precision))
    device = colorizer.device
    print(f"{colorizer.device_name}, networks in {colorizer.precision}, torch {torch.__version__}, "
          f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads", flush=True)

    if args.compare_cpu:
        compare_with_cpu(colorizer, weights)

    with tempfile.TemporaryDirectory(prefix="profile-batch-") as folder:
        paths = make_photo_folder(folder, count=args.photos, megapixels=12.0)
        photo = read_image(paths[1])  # portrait, as half of the batch
        prepared = colorizer.prepare(photo)
        group = max(args.groups)
        steps = {
            "decode (read_image)": lambda: read_image(paths[1]),
            "prepare (gray, resize)": lambda: colorizer.prepare(photo),
            f"networks, per photo of a group of {group}":
                lambda: colorizer.colorize_many([prepared] * group),
        }
        result = colorizer.colorize(prepared)
        rgb = result.render()
        steps["render at full size"] = lambda: result.render()
        out = Path(folder) / "out"
        out.mkdir()
        names = iter(range(10**9))  # a file per call: threads must not write one name
        steps["encode JPEG (quality 95)"] = lambda: write_image(out / f"{next(names)}.jpg", rgb, quality=95,
                                                                sync_folder=False)
        steps["encode PNG"] = lambda: write_image(out / f"{next(names)}.png", rgb, sync_folder=False)
        for name, fn in steps.items():
            t = _best(fn, device)
            if name.startswith("networks"):
                t /= group
            print(f"  {name:42s} {t * 1000:8.1f} ms", flush=True)
        if args.scaling:
            # A step that holds Python's lock (or a device queue) scales
            # poorly: it caps the batch however many threads run it.
            n = os.cpu_count() or 2
            print(f"each step {n} times, one thread, then on {n} threads:", flush=True)
            for name, fn in steps.items():
                if name.startswith("networks"):
                    continue
                serial = _best(lambda: [fn() for _ in range(n)], device, 1)
                with ThreadPoolExecutor(n) as pool:
                    parallel = _best(lambda: list(pool.map(lambda _: fn(), range(n))), device, 1)
                print(f"  {name:42s} {serial:6.2f} s / {parallel:6.2f} s = {serial / parallel:4.1f}x", flush=True)

        if args.timeline:
            for fmt in ("jpg", "png"):
                timeline(colorizer, folder, fmt, max(args.threads), max(args.groups))
        for fmt in ("jpg", "png"):
            for threads in args.threads:
                for g in args.groups:
                    m = measure_batch(colorizer, folder, fmt, workers=threads, group=g)
                    print(f"batch {m['photos']} photos as {fmt}, {threads} threads, group {g}: "
                          f"{m['seconds']:.2f} s, {m['photos_per_second']:.2f} photos/s"
                          + (f", {m['failed']} FAILED" if m["failed"] else ""), flush=True)


if __name__ == "__main__":
    main()
