"""Batch throughput: photos per second for a folder, as `hsvcolorizer batch`
runs it, and a folder of large gray JPEGs to measure it on.

For `hsvcolorizer bench` and for the README's figures (issue 11: 12-megapixel
JPEGs, written as JPEG and as PNG).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hsvcolorizer.batch import BatchOptions, plan_outputs, run_batch
from hsvcolorizer.imageio import iter_image_files, read_image, write_image


def make_photo_folder(folder: str | Path, count: int = 8, megapixels: float = 12.0,
                      sources: list[Path] | None = None, seed: int = 0) -> list[Path]:
    """Write `count` gray JPEGs of about `megapixels` (4:3, alternately
    landscape and portrait, as a camera's) into `folder`; returns their paths.

    `sources` (photos, cycled) are made gray and enlarged, which is
    realistic for decoders and encoders; without them the photos are
    synthetic (smooth shapes and grain).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    long_side = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    short_side = round(long_side * 3 / 4)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        size = (long_side, short_side) if i % 2 == 0 else (short_side, long_side)  # cv2: (width, height)
        if sources:
            gray = read_image(sources[i % len(sources)]).pixels
            gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY) if gray.ndim == 3 else gray
            if gray.dtype != np.uint8:
                gray = (gray // 257).astype(np.uint8)
        else:
            small = rng.random((size[1] // 64, size[0] // 64)).astype(np.float32)
            gray = (cv2.GaussianBlur(small, (0, 0), 2) * 255).astype(np.uint8)
        big = cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC)
        if not sources:
            big = np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo{i:03d}.jpg"
        write_image(path, big, quality=92)
        paths.append(path)
    return paths


def measure_batch(colorizer, in_dir: str | Path, fmt: str = "jpg", workers: int | None = None,
                  group: int | None = None, working_size: int | None = None) -> dict:
    """Colorize every photo of `in_dir` (not recursive) into a temporary folder,
    as `hsvcolorizer batch IN OUT --format FMT` does, and time it.

    Returns photos, seconds, photos_per_second, megapixels (the mean),
    format, device, failed. The model is loaded beforehand, so the figure
    leaves out start-up; it includes the filling of the pipeline (the first
    group read and through the networks before any photo is written), which
    a longer batch spreads over more photos. (No rate "from the first photo
    written to the last": photos are handed over in order, so one slow first
    photo lets many others finish unseen, and that rate came out higher than
    the writers can go.)
    """
    in_dir = Path(in_dir)
    files = iter_image_files(in_dir)
    sizes = []
    for f in files:
        try:
            with Image.open(f) as image:  # reads the header only
                sizes.append(image.size[0] * image.size[1] / 1e6)
        except OSError:
            pass  # unreadable: run_batch reports it as failed
    options = BatchOptions(format=fmt, working_size=working_size)
    with tempfile.TemporaryDirectory(prefix="hsvcolorizer-batch-speed-") as out:
        count = len(plan_outputs(in_dir, Path(out), options))
        t0 = time.perf_counter()
        report = run_batch(colorizer, in_dir, Path(out), options, workers=workers, group=group)
        seconds = time.perf_counter() - t0
    return {
        "photos": count,
        "seconds": seconds,
        "photos_per_second": count / seconds if seconds > 0 else 0.0,
        "megapixels": float(np.mean(sizes)) if sizes else 0.0,
        "format": fmt,
        "device": colorizer.device_name,
        "failed": report.count("failed"),
    }
