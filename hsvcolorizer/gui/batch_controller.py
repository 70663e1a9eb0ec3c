"""The Batch tab's state and logic, without widgets.

``BatchController`` keeps the batch options (stored through AppSettings),
starts the core's ``run_batch`` as one background task (``run_task``), and
turns what the core reports into the things a view shows: the table model's
rows, counts, an estimate of the time left, a summary line, and signals.
The core does the real work: it never overwrites an input, writes each file
atomically, and stops after the current photo when its cancel event is set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, Signal, Slot

from hsvcolorizer.batch import (FORMATS, OVERWRITE_POLICIES, BatchOptions, BatchReport, FileOutcome,
                                photos_left_in_subfolders, plan_outputs, run_batch)
from hsvcolorizer.choices import RECOMPOSE_MODES, SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.batch_model import BatchTableModel
from hsvcolorizer.gui.common import format_duration
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import Task, run_task

__all__ = ["BatchController", "format_duration"]

log = logging.getLogger(__name__)

# option name -> settings key. The working size is stored as 0 for "the
# model's own", as the settings have always stored it.
_KEYS = {
    "input": "batch/input",
    "output": "batch/output",
    "recursive": "batch/recursive",
    "format": "batch/format",
    "overwrite": "batch/overwrite",
    "mode": "batch/mode",
    "saturation_percent": "batch/saturation_percent",
    "working_size": "batch/working_size",
}
SATURATION_PERCENT_RANGE = (round(SATURATION_MIN * 100), round(SATURATION_MAX * 100))


@dataclass
class _Run:
    """One batch in progress. ``stop`` is the core's cancel event; ``ended``
    is set by the pool thread when the batch function returns, so closing
    the window can wait for it with a timeout."""

    total: int
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    report: BatchReport | None = None
    task: Task | None = None
    t_files: float | None = None  # when the model was ready: the ETA counts from here
    processed: int = 0
    left_in_subfolders: int = 0  # photos a batch without sub-folders does not look at


def _batch_job(weights: str | None, device: str, in_dir: Path, out_dir: Path, options: BatchOptions,
               run: _Run, *, report: Callable[[object], None]) -> BatchReport:
    """Runs on a pool thread: load a model, colorize the folder.

    The model is loaded here, not on the GUI thread, because reading weights
    and moving them to a GPU can take seconds. Errors propagate to run_task,
    which turns them into one line for the user.
    """
    try:
        from hsvcolorizer.inference import Colorizer

        colorizer = Colorizer.load(weights, device=device)
        report(("model", colorizer.device_name))
        run.report = run_batch(colorizer, in_dir, out_dir, options,
                               lambda index, total, outcome: report(("file", index, total, outcome)), run.stop)
        return run.report
    finally:
        run.ended.set()


class BatchController(QObject):
    """Folder in, folder out: the options, one running batch, its outcome.

    Signals: ``options_changed()``; ``busy_changed(bool)``;
    ``progress_changed(processed, total)``; ``eta_changed(text)``;
    ``summary_changed(text, kind)`` with kind "" (nothing run yet),
    "running", "done", "cancelled", "failed" (some photos failed) or "error"
    (the batch could not run); ``row_changed(row)`` after an outcome;
    ``status_message(text)``; ``error(title, message)`` for a dialog;
    ``finished(BatchReport)``, also after a cancel.
    """

    options_changed = Signal()
    busy_changed = Signal(bool)
    progress_changed = Signal(int, int)
    eta_changed = Signal(str)
    summary_changed = Signal(str, str)
    row_changed = Signal(int)
    status_message = Signal(str)
    error = Signal(str, str)
    finished = Signal(object)

    def __init__(self, weights_provider: Callable[[], str | None], settings: AppSettings | QSettings | None,
                 device_provider: Callable[[], str] = lambda: "auto", parent: QObject | None = None):
        super().__init__(parent)
        self._weights_provider = weights_provider
        # The window's device (--device, or the Colorize tab's): a batch runs where a photo does.
        self._device_provider = device_provider
        self.settings = AppSettings.wrap(settings)
        self.model = BatchTableModel(self)
        self._run: _Run | None = None
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.last_report: BatchReport | None = None
        self.summary = ("", "")
        self.eta = ""
        self._values: dict[str, object] = {}
        for name, key in _KEYS.items():
            self._values[name] = self._valid(name, self.settings.get(key))
        self._idle_summary()
        self.options_changed.connect(self._idle_summary)

    @Slot()
    def _idle_summary(self) -> None:
        """Before the first batch, the summary line says what to do next."""
        if self.summary[1] == "" and self._run is None:
            self._set_summary("Press Start to colorize every photo of the input folder." if self.ready() else
                              "Choose an input and an output folder, then press Start.", "")

    # ============================================================ options
    def _valid(self, name: str, value: object) -> object:
        """`value` made acceptable for option `name` (settings may hold anything)."""
        if name in ("input", "output"):
            return str(value)
        if name == "recursive":
            return bool(value)
        if name == "format":
            return value if value in FORMATS else "png"
        if name == "overwrite":
            return value if value in OVERWRITE_POLICIES else "skip"
        if name == "mode":
            return value if value in RECOMPOSE_MODES else ""
        if name == "saturation_percent":
            low, high = SATURATION_PERCENT_RANGE
            return min(max(int(value), low), high)
        if name == "working_size":
            size = int(value or 0)
            return 0 if size < WORKING_SIZE_MIN else min(size, WORKING_SIZE_MAX)
        raise KeyError(name)

    def _set(self, name: str, value: object) -> None:
        value = self._valid(name, value)
        if self._values[name] == value:
            return
        self._values[name] = value
        stored = value.strip() if isinstance(value, str) and name in ("input", "output") else value
        self.settings.set(_KEYS[name], stored)
        self.options_changed.emit()

    def value(self, name: str) -> object:
        """One option as the view shows it: input, output (text as typed),
        recursive, format, overwrite, mode ("" = the model's), saturation_percent,
        working_size (0 = the model's)."""
        return self._values[name]

    def set_input(self, text: str) -> None:
        self._set("input", text)

    def set_output(self, text: str) -> None:
        self._set("output", text)

    def set_recursive(self, on: bool) -> None:
        self._set("recursive", on)

    def set_format(self, fmt: str) -> None:
        self._set("format", fmt)

    def set_overwrite(self, policy: str) -> None:
        self._set("overwrite", policy)

    def set_mode(self, mode: str | None) -> None:
        self._set("mode", mode or "")

    def set_saturation_percent(self, percent: int) -> None:
        self._set("saturation_percent", percent)

    def set_working_size(self, size: int | None) -> None:
        self._set("working_size", size or 0)

    def set_render_options(self, mode: str | None, saturation: float, working_size: int | None) -> None:
        """Take over the Colorize tab's options: mode luma|v (None/'' = model default),
        saturation as a gain (1.0 = 100 %), working size in px (None/0 = model default)."""
        self.set_mode(mode)
        self.set_saturation_percent(int(round(float(saturation) * 100)))
        self.set_working_size(int(working_size or 0))

    def input_dir(self) -> str:
        return str(self._values["input"]).strip()

    def output_dir(self) -> str:
        return str(self._values["output"]).strip()

    def ready(self) -> bool:
        """Both folders are given (whether they are usable is checked at Start)."""
        return bool(self.input_dir() and self.output_dir())

    def options(self) -> BatchOptions:
        v = self._values
        return BatchOptions(
            recursive=bool(v["recursive"]),
            format=str(v["format"]),
            overwrite=str(v["overwrite"]),
            mode=str(v["mode"]) or None,
            saturation=int(v["saturation_percent"]) / 100.0,
            working_size=int(v["working_size"]) or None,
        )

    def options_summary(self) -> str:
        """One plain line: the colour options the next batch will use."""
        o = self.options()
        mode = {"luma": "luma (keeps the gray)", "v": "V (the paper's)"}.get(o.mode or "", "the model's default")
        size = f"{o.working_size} px" if o.working_size else "the model's default"
        return (f"A batch uses: recomposition {mode}, saturation {round(o.saturation * 100)} %, "
                f"working size {size}.")

    def set_input_folder(self, path: str) -> None:
        """Use `path` as the input; suggest "<name>_colorized" beside it when no output is set."""
        self.set_input(str(path))
        if not self.output_dir() and path:
            p = Path(path)
            self.set_output(str(p.with_name(f"{p.name}_colorized")))

    def add_paths(self, paths: list[str]) -> None:
        """Files or folders dropped on the window.

        A folder becomes the input folder (the first one if several). Loose
        photos select the folder that holds them: the batch then covers that
        whole folder, because run_batch works on folders. Photos from several
        folders use the first photo's folder, and the status bar says so.
        """
        items = [Path(p) for p in paths if p]
        if not items:
            return
        folders = [p for p in items if p.is_dir()]
        if folders:
            self.set_input_folder(str(folders[0]))
            extra = " (the other dropped items were ignored)" if len(items) > 1 else ""
            self.status_message.emit(f"Batch input folder: {folders[0]}{extra}")
            return
        parents = list(dict.fromkeys(p.parent for p in items))
        self.set_input_folder(str(parents[0]))
        if len(parents) == 1:
            self.status_message.emit(f"Batch input folder: {parents[0]} — every photo in it will be colorized")
        else:
            self.status_message.emit(f"The dropped photos are in {len(parents)} folders; using {parents[0]}")

    # ============================================================ running
    def is_busy(self) -> bool:
        return self._run is not None

    def is_cancelling(self) -> bool:
        return self._run is not None and self._run.stop.is_set()

    def start(self) -> bool:
        """Check the folders and start the batch; False (and ``error``) when it cannot start."""
        if self.is_busy():
            return False
        if not self.input_dir():
            self.error.emit("No input folder", "Choose the folder with the photos to colorize.")
            return False
        if not self.output_dir():
            self.error.emit("No output folder", "Choose a folder for the colorized photos.")
            return False
        in_dir, out_dir = Path(self.input_dir()).expanduser(), Path(self.output_dir()).expanduser()
        options = self.options()
        # The folders are checked here, before any model is loaded, so a
        # mistake is reported at once; run_batch plans the same list again.
        try:
            pairs = plan_outputs(in_dir, out_dir, options)
        except ColorizerError as e:
            self.error.emit("Cannot start the batch", str(e))
            return False
        if not pairs:
            hint = "" if options.recursive else " Tick “Include sub-folders” to look in sub-folders."
            self.error.emit("No photos found", f"There are no photos in {in_dir}.{hint}")
            return False
        try:
            weights = self._weights_provider()
        except Exception as e:  # noqa: BLE001 - the provider belongs to the main window
            self.error.emit("No model", f"Cannot tell which model to use: {e}")
            return False

        self.model.reset(pairs, in_dir, out_dir)
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.last_report = None
        run = self._run = _Run(total=len(pairs), left_in_subfolders=photos_left_in_subfolders(in_dir, out_dir, options))
        run.task = run_task("Batch: loading the model", _batch_job, str(weights) if weights else None,
                            self._device_provider(), in_dir, out_dir, options, run, report=True)
        run.task.progress.connect(lambda value: self._on_progress(run, value))
        run.task.done.connect(lambda report: self._on_done(run, report))
        run.task.failed.connect(lambda message: self._on_failed(run, message))
        self.progress_changed.emit(0, run.total)
        self._set_eta("Loading the model…")
        self._set_summary(f"Colorizing {_photos(run.total)}…", "running")
        self.busy_changed.emit(True)
        self.status_message.emit(f"Batch started: {_photos(run.total)} from {in_dir}")
        return True

    @Slot()
    def cancel(self) -> None:
        """Stop after the photo being colorized now; finished files are kept."""
        run = self._run
        if run is None or run.stop.is_set():
            return
        run.stop.set()
        if run.task is not None:
            run.task.cancel()
            run.task.describe("Batch: stopping after the current photo")
        self._set_eta("Stopping after the current photo…")
        self.busy_changed.emit(True)  # the view disables Cancel
        self.status_message.emit("Batch: stopping after the current photo")

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a running batch and wait for it; True when it has ended."""
        run = self._run
        if run is None:
            return True
        run.stop.set()
        if not run.ended.wait(max(0, int(timeout_ms)) / 1000):
            log.warning("the batch did not end within %d ms", timeout_ms)
            return False
        # The task's own signals are still queued; the window may close
        # before they are delivered, so the outcome is taken from here.
        if run.report is not None:
            self._on_done(run, run.report)
        else:
            self._end(run)
        return True

    # ------------------------------------------------------- task signals
    def _on_progress(self, run: _Run, value: tuple) -> None:
        if run is not self._run:
            return
        if value[0] == "model":
            run.t_files = time.monotonic()
            self._set_eta(f"Model loaded on {value[1]}")
            if run.task is not None and not run.stop.is_set():
                run.task.describe(f"Batch: 0 of {_photos(run.total)}")
            return
        _kind, index, total, outcome = value
        self._record(run, outcome)
        run.processed, run.total = index, total
        self.progress_changed.emit(index, total)
        if run.stop.is_set():
            return
        if run.task is not None:
            run.task.describe(f"Batch: {index} of {_photos(total)}")
        if run.t_files is not None and index < total:
            per_file = (time.monotonic() - run.t_files) / index
            self._set_eta(f"About {format_duration(per_file * (total - index))} left")
        elif index >= total:
            self._set_eta("Finishing…")
        c = self.counts
        self._set_summary(f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed so far", "running")

    def _record(self, run: _Run, outcome: FileOutcome) -> None:
        row = self.model.apply(outcome)
        if outcome.status in self.counts:
            self.counts[outcome.status] += 1
        self.row_changed.emit(row)

    def _on_done(self, run: _Run, report: BatchReport) -> None:
        if run is not self._run:
            return
        # Outcomes whose progress signal had not arrived yet (at close): the
        # report is the full record, applying an outcome twice is harmless.
        for outcome in report.outcomes:
            entry = self.model.row_of(outcome.source)
            if entry is None or self.model.status(entry) == "waiting":
                self.model.apply(outcome)
        self.counts = {status: report.count(status) for status in self.counts}
        self.model.mark_unprocessed(report.cancelled)
        self.last_report = report
        elapsed = time.monotonic() - run.t_files if run.t_files is not None else 0.0
        text = report.summary()
        if report.outcomes:
            text += f" in {format_duration(elapsed)}"
        if run.left_in_subfolders:
            # As the command line says it: a user must not think the whole tree was done.
            n = run.left_in_subfolders
            text += (f"; {n} photo{'s' if n != 1 else ''} in sub-folders {'were' if n != 1 else 'was'} not looked at "
                     "(tick “Include sub-folders”)")
        kind = "failed" if report.failed else ("cancelled" if report.cancelled else "done")
        self.progress_changed.emit(len(report.outcomes) if report.cancelled else run.total, run.total)
        self._set_eta("Cancelled" if report.cancelled else "Finished")
        self._set_summary(text, kind)
        self._end(run)
        self.status_message.emit(f"Batch finished: {text}")
        self.finished.emit(report)

    def _on_failed(self, run: _Run, message: str) -> None:
        if run is not self._run:
            return
        self.model.mark_unprocessed(True)
        self._set_eta("Failed")
        self._set_summary(f"The batch could not run: {message}", "error")
        self._end(run)
        self.status_message.emit("Batch failed")
        self.error.emit("Batch failed", message)

    def _end(self, run: _Run) -> None:
        if run is self._run:
            self._run = None
            self.busy_changed.emit(False)

    def _set_eta(self, text: str) -> None:
        self.eta = text
        self.eta_changed.emit(text)

    def _set_summary(self, text: str, kind: str) -> None:
        self.summary = (text, kind)
        self.summary_changed.emit(text, kind)


def _photos(n: int) -> str:
    return f"{n} photo{'s' if n != 1 else ''}"
