"""Colorize a whole folder: never writes over an input, writes each file under
a temporary name and renames it, goes on past bad files, and reports."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from hsvcolorizer.choices import BATCH_FORMATS
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import (existing_non_folder_ancestor, iter_image_files, output_path_for, read_image,
                                  write_image)

OVERWRITE_POLICIES = ("skip", "replace", "rename")
FORMATS = BATCH_FORMATS  # the output formats and "same" (hsvcolorizer.choices)


@dataclass
class BatchOptions:
    recursive: bool = False
    format: str = "png"  # png | jpg | tiff | webp | same
    overwrite: str = "skip"  # skip | replace | rename
    mode: str | None = None  # recomposition; None = the model's default
    saturation: float = 1.0
    working_size: int | None = None
    quality: int = 95


@dataclass
class FileOutcome:
    source: Path
    status: str  # "done" | "skipped" | "failed"
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class BatchReport:
    outcomes: list[FileOutcome] = field(default_factory=list)
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        text = f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed"
        return text + (" (cancelled)" if self.cancelled else "")


def plan_outputs(in_dir: Path, out_dir: Path, options: BatchOptions) -> list[tuple[Path, Path]]:
    """(source, intended output) pairs; raises ColorizerError for bad folders.

    Outputs keep the sub-folder layout of the input when recursive.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if in_dir.is_file():
        raise ColorizerError(f"input {in_dir} is a file, not a folder")
    if not in_dir.is_dir():
        raise ColorizerError(f"input folder {in_dir} does not exist")
    if options.format not in FORMATS:
        raise ColorizerError(f"unknown output format {options.format!r}; use one of {', '.join(FORMATS)}")
    if options.overwrite not in OVERWRITE_POLICIES:
        raise ColorizerError(f"unknown overwrite policy {options.overwrite!r}; use skip, replace or rename")
    if out_dir.exists() and not out_dir.is_dir():
        raise ColorizerError(f"output {out_dir} is a file, not a folder")
    blocker = existing_non_folder_ancestor(out_dir)
    if blocker is not None:
        raise ColorizerError(f"cannot create the output folder {out_dir}: {blocker} is a file, not a folder")
    if out_dir.resolve() == in_dir.resolve():
        raise ColorizerError("the output folder is the input folder; choose another so the originals stay untouched")
    out_real = out_dir.resolve()
    pairs = []
    for src in iter_image_files(in_dir, recursive=options.recursive):
        # A nested output folder must not feed a later run's outputs back in.
        if out_real in src.resolve().parents:
            continue
        rel_parent = src.parent.relative_to(in_dir) if src.is_relative_to(in_dir) else Path()
        pairs.append((src, output_path_for(src, out_dir / rel_parent, options.format)))
    return pairs


def photos_left_in_subfolders(in_dir: Path, out_dir: Path, options: BatchOptions) -> int:
    """How many photos a batch without ``recursive`` does not look at because
    they are in subfolders of ``in_dir``: those a recursive batch would take
    (the same listing and the same exclusion of the output folder) less those
    this one takes. 0 when ``options.recursive`` is set."""
    if options.recursive:
        return 0
    flat = {src for src, _ in plan_outputs(in_dir, out_dir, options)}
    deep = plan_outputs(in_dir, out_dir, replace(options, recursive=True))
    return sum(1 for src, _ in deep if src not in flat)


def _free_name(path: Path) -> Path:
    for i in range(1, 10000):
        cand = path.with_name(f"{path.stem} ({i}){path.suffix}")
        if not cand.exists():
            return cand
    raise ColorizerError(f"no free file name for {path.name}")


def run_batch(
    colorizer,
    in_dir: Path,
    out_dir: Path,
    options: BatchOptions | None = None,
    on_progress: Callable[[int, int, FileOutcome], None] | None = None,
    cancel: threading.Event | None = None,
) -> BatchReport:
    """Colorize every photo of `in_dir` into `out_dir`.

    on_progress(index, total, outcome) is called after each file. Setting
    `cancel` stops after the current file; nothing half-written is left.
    """
    options = options or BatchOptions()
    pairs = plan_outputs(in_dir, out_dir, options)
    inputs = {src.resolve() for src, _ in pairs}
    produced: set[Path] = set()  # outputs written by this run
    report = BatchReport()
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ColorizerError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from e
    for i, (src, dst) in enumerate(pairs):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        t0 = time.perf_counter()
        outcome = _one(colorizer, src, dst, inputs, options, produced)
        outcome.seconds = time.perf_counter() - t0
        report.outcomes.append(outcome)
        if on_progress is not None:
            on_progress(i + 1, len(pairs), outcome)
    return report


def _one(colorizer, src: Path, dst: Path, inputs: set[Path], options: BatchOptions,
         produced: set[Path] | None = None) -> FileOutcome:
    produced = set() if produced is None else produced
    try:
        if dst.resolve() in inputs:
            return FileOutcome(src, "skipped", None, "the output would replace an input photo")
        if dst.resolve() in produced:
            # Another photo of this run already wrote this name (a.jpg and a.png
            # both become a.png): keep both results, whatever the policy.
            dst = _free_name(dst)
        elif dst.exists():
            if options.overwrite == "skip":
                return FileOutcome(src, "skipped", dst, "output already exists")
            if options.overwrite == "rename":
                dst = _free_name(dst)
        photo = read_image(src)
        result = colorizer.colorize(photo, working_size=options.working_size)
        rgb = result.render("refined", options.mode, options.saturation)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_image(dst, rgb, alpha=result.alpha, quality=options.quality, exif=photo.exif,
                    icc_profile=photo.icc_profile)
        produced.add(dst.resolve())
        return FileOutcome(src, "done", dst)
    except ColorizerError as e:
        return FileOutcome(src, "failed", None, str(e))
    except OSError as e:
        return FileOutcome(src, "failed", None, f"{src.name}: {e.strerror or e}")
    except MemoryError:
        return FileOutcome(src, "failed", None, f"{src.name}: not enough memory")
    except RuntimeError as e:
        # Torch reports a failure inside the networks (above all running out of
        # GPU memory on one large photo) as a RuntimeError with a long,
        # multi-line message. It belongs to this photo, not to the batch: the
        # next, smaller photo may well fit, so record one line and go on.
        return FileOutcome(src, "failed", None, f"{src.name}: {runtime_error_reason(e)}")


# How torch words running out of memory: CUDA / ROCm ("CUDA out of memory.
# Tried to allocate ..."), MPS ("MPS backend out of memory"), and the CPU
# allocator ("DefaultCPUAllocator: can't allocate memory" / "not enough memory").
_OUT_OF_MEMORY_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def runtime_error_reason(error: RuntimeError) -> str:
    """One line, for a person, for a RuntimeError raised while colorizing a photo.

    Running out of memory gets a fixed message with what to try, since torch's
    own text is several lines of allocator statistics; anything else is the
    error's first line (the rest is usually a stack of C++ frames).
    """
    text = str(error)
    if any(marker in text.lower() for marker in _OUT_OF_MEMORY_MARKERS):
        return "out of memory on the device; try a smaller working size"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or type(error).__name__
