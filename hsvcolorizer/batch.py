"""Colorize a whole folder: never writes over an input, writes each file under
a temporary name and renames it, goes on past bad files, and reports.

The per-photo decisions are here; pipeline.py overlaps reading, the networks
and writing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

from hsvcolorizer.atomic import fsync_folder
from hsvcolorizer.choices import BATCH_FORMATS
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import (Photo, existing_non_folder_ancestor, iter_image_files, output_path_for, read_image,
                                  write_image)
from hsvcolorizer.pipeline import Job, Pipeline, default_group, default_workers

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
    # An output folder inside the input folder must not feed a run's outputs
    # back in; an input folder inside the output folder is fine (its photos
    # are all inside "the output folder", and none of them is an output).
    out_inside_in = in_dir.resolve() in out_real.parents
    for src in iter_image_files(in_dir, recursive=options.recursive):
        if out_inside_in and out_real in src.resolve().parents:
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


def _free_name(path: Path, taken: set[Path] = frozenset()) -> Path:
    """``NAME (1).EXT``, ``NAME (2).EXT``...: the first that neither exists nor is in ``taken``."""
    for i in range(1, 10000):
        cand = path.with_name(f"{path.stem} ({i}){path.suffix}")
        if not cand.exists() and cand.resolve() not in taken:
            return cand
    raise ColorizerError(f"no free file name for {path.name}")


def shard_pairs(pairs: list[tuple[Path, Path]], rank: int, world: int) -> list[tuple[Path, Path]]:
    """This process's share of a batch run by ``world`` processes (torchrun).

    Photos whose intended output is the same (a.jpg and a.png) go to the
    same process, which keeps both as one process does; then no two
    processes can write one name: planned outputs differ, and the free names
    of the rename policy (``X_color (1).png``) can never be a planned output
    (those end in ``_color``). Groups are dealt round-robin in plan order.
    """
    if world <= 1:
        return list(pairs)
    owner: dict[Path, int] = {}
    mine = []
    for pair in pairs:
        key = pair[1].resolve()
        if key not in owner:
            owner[key] = len(owner) % world
        if owner[key] == rank:
            mine.append(pair)
    return mine


class OutputNames:
    """Each photo's output name, decided in photo order as a run that does one
    photo at a time decides it, while the photos themselves overlap.

    ``early`` runs before a photo is read (an output that would replace an
    input, or that exists under the skip policy, costs no reading); ``commit``
    runs, in order, once it is colorized. A name is claimed at commit: a
    later photo with the same intended name (a.jpg and a.png) gets
    ``NAME (1)`` even if writing the earlier one then fails.
    """

    def __init__(self, inputs: set[Path], pairs: list[tuple[Path, Path]], policy: str):
        self.inputs, self.policy = inputs, policy
        self.claimed: set[Path] = set()
        planned: set[Path] = set()
        self.repeated: set[int] = set()  # positions whose name an earlier photo of this run also wants
        for i, (_, dst) in enumerate(pairs):
            real = dst.resolve()
            if real in planned:
                self.repeated.add(i)
            planned.add(real)

    def early(self, job: Job) -> FileOutcome | None:
        try:
            return self._early(job)
        except (ColorizerError, OSError, RuntimeError) as e:  # a name that cannot be resolved: this photo's failure
            return _failure(job.source, e)

    def commit(self, job: Job) -> Path | FileOutcome:
        try:
            return self._commit(job)
        except (ColorizerError, OSError, RuntimeError) as e:  # no free name, or one that cannot be resolved
            return _failure(job.source, e, job.seconds)

    def _early(self, job: Job) -> FileOutcome | None:
        dst = job.output
        if dst.resolve() in self.inputs:
            return FileOutcome(job.source, "skipped", None, "the output would replace an input photo")
        if self.policy == "skip" and job.index not in self.repeated and dst.exists():
            return FileOutcome(job.source, "skipped", dst, "output already exists")
        return None

    def _commit(self, job: Job) -> Path | FileOutcome:
        dst = job.output
        if dst.resolve() in self.claimed:
            # Another photo of this run already took this name (a.jpg and
            # a.png both become a_color.png): keep both, whatever the policy.
            dst = _free_name(dst, self.claimed)
        elif dst.exists():
            if self.policy == "skip":
                return FileOutcome(job.source, "skipped", dst, "output already exists", job.seconds)
            if self.policy == "rename":
                dst = _free_name(dst, self.claimed)
        self.claimed.add(dst.resolve())
        return dst


def run_batch(
    colorizer,
    in_dir: Path,
    out_dir: Path,
    options: BatchOptions | None = None,
    on_progress: Callable[[int, int, FileOutcome], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    workers: int | None = None,
    group: int | None = None,
    shard: tuple[int, int] | None = None,
) -> BatchReport:
    """Colorize every photo of `in_dir` into `out_dir`.

    Photos are read and written on `workers` threads each side of the
    networks (default: pipeline.default_workers), and `group` photos of one working
    shape go through the networks together (default: several on a GPU, one
    on a CPU, where that is faster). Results are those of one photo at a time.

    on_progress(index, total, outcome) is called on this thread for each
    file, in order. Setting `cancel` stops soon: photos being written are
    finished, the rest are not started, and nothing half-written is left.
    shard=(rank, world): colorize only this process's share (shard_pairs).
    """
    options = options or BatchOptions()
    pairs = plan_outputs(in_dir, out_dir, options)
    inputs = {src.resolve() for src, _ in pairs}
    if shard is not None:
        pairs = shard_pairs(pairs, *shard)
    report = BatchReport()
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ColorizerError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from e
    names = OutputNames(inputs, pairs, options.overwrite)
    jobs = [Job(i, src, dst) for i, (src, dst) in enumerate(pairs)]

    def deliver(job: Job, outcome: FileOutcome) -> None:
        report.outcomes.append(outcome)
        if on_progress is not None:
            on_progress(job.index + 1, len(jobs), outcome)

    ws = options.working_size
    # A photo's colour hints (NAME.hints.json beside it, as the window saves
    # them) are used when the model reads hints; a malformed file or a point
    # outside the photo fails that photo, in one line.
    reads_hints = getattr(colorizer, "reads_hints", False)
    prepare = getattr(colorizer, "prepare", None)

    def read(path: Path) -> Loaded:
        # On a reading thread: decoding, the photo's hints and the host-side
        # work before the networks, so that the networks (on a GPU above all)
        # do not wait for it.
        photo = read_image(path)
        photo_hints = hints_beside(path) if reads_hints else None
        if photo_hints:
            from hsvcolorizer.hints import check_inside, hints_path_for

            height, width = photo.pixels.shape[:2]
            check_inside(photo_hints, width, height, where=hints_path_for(path).name)
        return Loaded(photo, prepare(photo, ws) if prepare is not None else photo, photo_hints)

    def colorize_one(loaded: Loaded):
        if loaded.hints:
            return colorizer.colorize(loaded.ready, working_size=ws, hints=loaded.hints)
        return colorizer.colorize(loaded.ready, working_size=ws)

    def colorize_group(group: list[Loaded]):
        if any(item.hints for item in group):
            return colorizer.colorize_many([item.ready for item in group], working_size=ws,
                                           hints=[item.hints for item in group])
        return colorizer.colorize_many([item.ready for item in group], working_size=ws)

    pipe = Pipeline(
        colorize_one=colorize_one,
        colorize_group=colorize_group,
        commit=names.commit,
        write=lambda job, loaded, result, dst: _write(job, loaded.photo, result, dst, options),
        fail=lambda job, error: _failure(job.source, error, job.seconds),
        deliver=deliver,
        cancel=cancel,
        workers=workers or default_workers(getattr(colorizer, "device", None)),
        group=group or default_group(getattr(colorizer, "device", None)),
        read=read,
    )
    try:
        report.cancelled = pipe.run(jobs, names.early)
    finally:
        # The renames of every file written so far (and the folders made for
        # them) last, however the batch ended: finished, cancelled, interrupted.
        folders = {Path(out_dir)}
        for o in report.outcomes:
            if o.status == "done" and o.output is not None:
                folders.update(p for p in o.output.parents if Path(out_dir) in (p, *p.parents))
        folders.add(Path(out_dir).parent)
        for folder in folders:
            fsync_folder(folder)
    return report


class Loaded(NamedTuple):
    """A photo as batch's reading threads leave it: the decoded photo (for
    writing: EXIF, ICC profile), what the networks take (Colorizer.prepare's
    result, or the photo itself for a colorizer without prepare) and its
    hints (None when it has none or the model does not read hints)."""

    photo: Photo
    ready: object
    hints: list | None


def hints_beside(photo_path: Path | None) -> list | None:
    """The hints in NAME.hints.json beside a photo, or None when there is no
    such file (ColorizerError when it is malformed)."""
    from hsvcolorizer.hints import hints_path_for, read_hints

    if photo_path is None:
        return None
    path = hints_path_for(photo_path)
    return read_hints(path) if path.is_file() else None


def hint_files_in(pairs: list[tuple[Path, Path]]) -> int:
    """How many of the batch's photos have a NAME.hints.json beside them."""
    from hsvcolorizer.hints import hints_path_for

    return sum(1 for src, _ in pairs if hints_path_for(src).is_file())


def _write(job: Job, photo, result, dst: Path, options: BatchOptions) -> FileOutcome:
    """Render one colorized photo at full size and write it (a worker thread)."""
    t0 = time.perf_counter()
    try:
        rgb = result.render("refined", options.mode, options.saturation)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # The folder is synced once at the end of the batch, not per photo: in
        # a profile of 32 photos on the H200 machine the per-photo folder
        # syncs added up to more than the encoding, and all they protect is
        # the rename of a file that is already whole on disk.
        write_image(dst, rgb, alpha=result.alpha, quality=options.quality, exif=photo.exif,
                    icc_profile=photo.icc_profile, sync_folder=False)
        outcome = FileOutcome(job.source, "done", dst)
    except (ColorizerError, OSError, MemoryError, RuntimeError) as e:
        outcome = _failure(job.source, e)
    outcome.seconds = job.seconds + time.perf_counter() - t0
    return outcome


def _failure(src: Path, error: BaseException, seconds: float = 0.0) -> FileOutcome:
    """The outcome of a photo that failed, with one line saying why; any
    other exception is a bug and is raised again."""
    if isinstance(error, ColorizerError):
        reason = str(error)
    elif isinstance(error, OSError):
        reason = f"{src.name}: {error.strerror or error}"
    elif isinstance(error, MemoryError):
        reason = f"{src.name}: not enough memory"
    elif isinstance(error, RuntimeError):
        # Torch reports a failure inside the networks (above all running out of
        # GPU memory on one large photo) as a RuntimeError with a long,
        # multi-line message. It belongs to this photo, not to the batch: the
        # next, smaller photo may well fit, so record one line and go on.
        reason = f"{src.name}: {runtime_error_reason(error)}"
    else:
        raise error
    return FileOutcome(src, "failed", None, reason, seconds)


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
