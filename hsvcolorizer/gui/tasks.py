"""The window's one way of running work in the background.

Two shapes of work, one layer:

* ``WorkerThread``: a worker object that keeps state between requests (the
  loaded model, the render cache) lives in its own QThread; the GUI side
  numbers requests so that a newer one makes older ones stale.
* ``run_task``: a one-off function (read a photo, save a result, a whole
  batch) runs on a pool thread; its result, failure or progress comes back
  to the GUI thread as queued signals of the returned ``Task``.

Both announce themselves to the ``activity()`` registry while they run, so
the status bar can say what is running ("Saving photo_color.png",
"Batch 12 of 40") and the window can wait for all of it when it closes.
The GUI thread never runs this work itself.
"""

from __future__ import annotations

import itertools
import logging
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot

from hsvcolorizer.errors import ColorizerError

__all__ = ["Activity", "Task", "WorkerThread", "activity", "run_task", "task_pool", "unexpected_error"]

log = logging.getLogger(__name__)


def unexpected_error(exc: BaseException) -> str:
    """One line for the user about a bug; the traceback goes to the log."""
    log.error("unexpected error in background work:\n%s", "".join(traceback.format_exception(exc)))
    return f"Unexpected error: {type(exc).__name__}: {exc}"


class Activity(QObject):
    """What is running now, for the status bar: ``changed(list of str)``
    after every begin or end, newest first."""

    changed = Signal(list)

    def __init__(self) -> None:
        super().__init__()
        self._running: dict[int, str] = {}
        self._ids = itertools.count(1)

    def begin(self, text: str) -> int:
        token = next(self._ids)
        self._running[token] = text
        self.changed.emit(self.running())
        return token

    def update(self, token: int, text: str) -> None:
        if token in self._running and self._running[token] != text:
            self._running[token] = text
            self.changed.emit(self.running())

    def end(self, token: int) -> None:
        if self._running.pop(token, None) is not None:
            self.changed.emit(self.running())

    def running(self) -> list[str]:
        return list(reversed(self._running.values()))


_activity: Activity | None = None


def activity() -> Activity:
    """The window's registry of running work (created on first use, in the
    GUI thread: every caller of this layer is on the GUI thread)."""
    global _activity
    if _activity is None:
        _activity = Activity()
    return _activity


_pool: QThreadPool | None = None


def task_pool() -> QThreadPool:
    """The pool one-off tasks run on: its own, so that waiting for it at
    close waits for our work only, and at most as many threads as cores."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setObjectName("hsvcolorizer-tasks")
    return _pool


# Tasks whose outcome has not been delivered yet. A caller that starts a
# task and drops its handle (a save it only wants reported through the
# activity list) must not lose the delivery with the garbage-collected object.
_live: dict[int, "Task"] = {}


def _forget(token: int) -> None:
    """A task is over, delivered or destroyed with its parent (a closed tab):
    it no longer runs as far as the status bar is concerned."""
    _live.pop(token, None)
    activity().end(token)


class Task(QObject):
    """GUI-side handle of one ``run_task`` call.

    Signals (queued to the GUI thread): ``done(result)``, ``failed(message)``
    (a ColorizerError's own text, or one line about anything else),
    ``progress(value)`` (whatever the function passes to its ``report``) and
    ``ended()`` after either of the first two; ``finished`` and ``outcome``
    ("done"/"failed", value) are set just before they are emitted. ``cancel()`` sets a flag the
    function reads through its ``cancelled`` argument; a cancelled task's
    result is still delivered, so nothing it wrote goes unreported.
    """

    done = Signal(object)
    failed = Signal(str)
    progress = Signal(object)
    ended = Signal()
    # The pool thread emits these; they are connected (queued) before the
    # work starts, so the public signals above are emitted on the GUI thread
    # from its event loop, after the caller of run_task has connected to
    # them. Emitting the public ones from the pool thread would lose every
    # emission made before the caller's connect (a task that fails at once).
    _finished_in_pool = Signal(str, object)
    _progress_in_pool = Signal(object)

    def __init__(self, description: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.description = description
        self.cancelled = False
        self.finished = False
        self.outcome: tuple[str, Any] | None = None
        self._token = activity().begin(description)
        _live[self._token] = self  # kept until delivered, whether or not the caller keeps it
        # A parent deleted first (a tab closed while its save runs) deletes
        # this object and its queued delivery with it: end the entry then.
        token = self._token
        self.destroyed.connect(lambda *_: _forget(token))
        self._finished_in_pool.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._progress_in_pool.connect(self.progress, Qt.ConnectionType.QueuedConnection)

    def cancel(self) -> None:
        self.cancelled = True

    def describe(self, text: str) -> None:
        """Change what the status bar says this task is doing (GUI thread)."""
        self.description = text
        activity().update(self._token, text)

    @Slot(str, object)
    def _deliver(self, kind: str, value: Any) -> None:
        self.outcome = (kind, value)
        self.finished = True
        _forget(self._token)
        if kind == "done":
            self.done.emit(value)
        else:
            self.failed.emit(value)
        self.ended.emit()


class _Runnable(QRunnable):
    def __init__(self, task: Task, fn: Callable[..., Any], args: tuple, kwargs: dict, wants: set[str]) -> None:
        super().__init__()
        self.task, self.fn, self.args, self.kwargs, self.wants = task, fn, args, kwargs, wants

    def run(self) -> None:
        task = self.task
        kwargs = dict(self.kwargs)
        if "report" in self.wants:
            kwargs["report"] = task._progress_in_pool.emit
        if "cancelled" in self.wants:
            kwargs["cancelled"] = lambda: task.cancelled
        try:
            outcome = ("done", self.fn(*self.args, **kwargs))
        except ColorizerError as exc:
            outcome = ("failed", str(exc))
        except MemoryError:
            outcome = ("failed", "Not enough memory for this; close other programs or use a smaller working size.")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            outcome = ("failed", f"{exc.filename}: {reason}" if exc.filename else reason)
        except Exception as exc:  # noqa: BLE001 - a bug must reach the user, not vanish with the thread
            outcome = ("failed", unexpected_error(exc))
        try:
            task._finished_in_pool.emit(*outcome)
        except RuntimeError:
            pass  # the Task was deleted with its parent; nobody is waiting for this outcome


def run_task(description: str, fn: Callable[..., Any], *args: Any, parent: QObject | None = None,
             report: bool = False, cancellable: bool = False, **kwargs: Any) -> Task:
    """Run ``fn(*args, **kwargs)`` on a pool thread; returns its Task at once.

    ``report=True`` passes ``report(value)`` to fn (emitted as ``progress``);
    ``cancellable=True`` passes ``cancelled()`` (True after Task.cancel()).
    Connect to the Task's signals right after the call: they are emitted on
    the GUI thread from its event loop, so none is missed.
    """
    task = Task(description, parent)
    wants = {name for name, on in (("report", report), ("cancelled", cancellable)) if on}
    task_pool().start(_Runnable(task, fn, args, kwargs, wants))
    return task


def wait_for_tasks(timeout_ms: int) -> bool:
    """Wait for every one-off task to end (at close); True if they did."""
    return task_pool().waitForDone(max(0, int(timeout_ms)))


class WorkerThread(QObject):
    """GUI-side handle of a stateful worker living in its own QThread.

    The worker must have ``latest_id`` and ``stopping`` attributes, which
    this handle writes (plain assignments, atomic under the GIL) and the
    worker reads to skip or abort stale requests. Requests are sent as
    queued signals by subclasses; ``_new_id`` numbers them.
    """

    def __init__(self, worker: QObject, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.worker = worker
        self.worker.moveToThread(self.thread)
        self.thread.finished.connect(self.worker.deleteLater)
        self._next_id = 0
        self.thread.start()

    @property
    def latest_id(self) -> int:
        return self.worker.latest_id

    def _new_id(self) -> int:
        self._next_id += 1
        self.worker.latest_id = self._next_id
        return self._next_id

    def cancel(self) -> None:
        """Make every queued or running request stale."""
        self._new_id()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the thread; True if it ended within ``timeout_ms``."""
        if not self.thread.isRunning():
            return True
        self.worker.stopping = True
        self.cancel()
        self.thread.quit()
        if self.thread.wait(timeout_ms):
            return True
        log.warning("%s thread did not stop within %d ms", self.thread.objectName(), timeout_ms)
        return False
