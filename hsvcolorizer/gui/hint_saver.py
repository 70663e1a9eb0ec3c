"""Keeps the open photo's hint file (NAME.hints.json beside it) up to date.

Every change of the hints is written at once, atomically (hints.write_hints),
on a pool thread: never on the GUI thread, and one write at a time, so an
older list can never land after a newer one (a click while a write is in
flight waits, and only the newest list waiting is written). A photo with no
file of its own (pasted) or in a folder that cannot be written keeps its
hints in memory only; the status bar says so once per photo. A failed
write is reported once per photo and never stops the editing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from hsvcolorizer.hints import Hint, hints_path_for, write_hints
from hsvcolorizer.gui.tasks import Task, run_task

__all__ = ["HintSaver", "hint_file_for"]

log = logging.getLogger(__name__)


def hint_file_for(photo_path: Path | None) -> tuple[Path | None, str]:
    """Where the hints of a photo are saved, or (None, why they cannot be)."""
    if photo_path is None:
        return None, "a pasted image has no file to keep them beside"
    folder = Path(photo_path).parent
    if not os.access(folder, os.W_OK):
        return None, f"the folder {folder} cannot be written"
    return hints_path_for(photo_path), ""


class HintSaver(QObject):
    """Writes hint files in the background.

    Signals: ``message(str)`` a status-bar line; ``failed(str)`` the first
    write failure of a photo (the view shows it once); ``written(str)`` the
    path of each file written (tests wait on it).
    """

    message = Signal(str)
    failed = Signal(str)
    written = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._target: Path | None = None
        self._why_not = ""
        self._told = False  # the status bar said "in memory only" / the error was shown
        self._running: Task | None = None
        self._pending: tuple[Path, list[Hint]] | None = None
        self._work_done = threading.Event()
        self._work_done.set()

    def set_photo(self, photo_path: Path | None) -> None:
        """The photo whose hints the next saves are; a write still running
        for the previous photo finishes into the previous photo's file."""
        self._target, self._why_not = hint_file_for(photo_path)
        self._told = False

    def target(self) -> Path | None:
        """The hint file of the open photo (None: kept in memory only)."""
        return self._target

    def save(self, hints: list[Hint]) -> None:
        """Write ``hints`` to the open photo's file (or say once why not)."""
        if self._target is None:
            if not self._told:
                self._told = True
                self.message.emit(f"Hints are kept in memory only: {self._why_not}")
            return
        self._pending = (self._target, list(hints))
        if self._running is None:
            self._start_next()

    def _start_next(self) -> None:
        target, hints = self._pending
        self._pending = None
        done = self._work_done
        done.clear()

        def work() -> Path:
            try:
                return write_hints(target, hints)
            finally:
                done.set()

        self._running = run_task(f"Saving the hints in {target.name}", work, parent=self)
        self._running.target = target
        self._running.ended.connect(self._on_ended)

    @Slot()
    def _on_ended(self) -> None:
        task, self._running = self._running, None
        if task is not None:
            kind, value = task.outcome
            if kind == "done":
                self.written.emit(str(value))
            elif task.target == self._target and not self._told:
                self._told = True
                self.failed.emit(f"The hints could not be saved in {task.target}: {value}. "
                                 "They are kept while the photo is open.")
            else:
                self.message.emit(f"The hints could not be saved in {task.target.name}")
            task.deleteLater()
        if self._pending is not None:
            self._start_next()

    def is_saving(self) -> bool:
        return self._running is not None or self._pending is not None

    def wait(self, timeout_ms: int) -> bool:
        """At close: wait for the write in flight, then write the newest list
        still waiting (the event loop that would start it is ending, and the
        user's last edit must not be lost). True if everything was written."""
        deadline = time.monotonic() + timeout_ms / 1000
        if not self._work_done.wait(max(0.0, deadline - time.monotonic())):
            return False
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                write_hints(*pending)
            except Exception:  # noqa: BLE001 - closing must go on; the log says what was lost
                log.exception("the hints could not be saved in %s at close", pending[0])
                return False
        return True
