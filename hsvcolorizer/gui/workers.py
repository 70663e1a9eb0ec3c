"""Background workers: network inference and re-rendering, each in its own
QThread (a WorkerThread of the window's task layer, hsvcolorizer.gui.tasks).

The GUI thread never runs the networks.  Requests travel to a worker as
queued signal emissions; each carries a request id, and the worker skips any
request whose id is no longer the latest one (the user moved on).  The
inference worker goes further: forward pre-hooks on every layer check the
latest id, so a superseded or shut-down run stops at the next layer instead
of finishing a result nobody will look at.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.common import numpy_to_qimage
from hsvcolorizer.gui.tasks import WorkerThread, activity, unexpected_error
from hsvcolorizer.imageio import to_8bit
from hsvcolorizer.inference import Colorizer, Result

__all__ = [
    "InferenceController",
    "InferenceWorker",
    "PREVIEW_MAX_SIDE",
    "RenderController",
    "RenderWorker",
    "display_array",
    "display_image",
    "preview_result",
]

log = logging.getLogger(__name__)

# Long side of the picture rendered when the caller does not say what the
# screen needs. Rendering 2.5 MP takes ~0.2 s on a laptop CPU, 24 MP about 2 s.
PREVIEW_MAX_SIDE = 1600


class _Superseded(Exception):
    """Raised inside the network by the layer hook to abandon a stale run."""


def preview_result(result: Result, max_side: int) -> Result:
    """A screen-sized copy of ``result`` for fast re-renders (see Result.preview)."""
    return result.preview(max_side)


def display_array(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8/uint16 RGB -> HxWx3 uint8 for the screen, by the core's
    16-to-8-bit conversion (imageio.to_8bit), so the screen shows the levels an
    8-bit file of the result holds."""
    return to_8bit(rgb)


def display_image(rgb: np.ndarray) -> QImage:
    """HxWx3 uint8/uint16 RGB -> QImage in the screen's native 32-bit format.

    Converting here, in the worker, leaves QPixmap.fromImage on the GUI thread
    almost nothing to do (for 24 MP it saves ~100 ms of frozen window).
    """
    return numpy_to_qimage(display_array(rgb)).convertToFormat(QImage.Format.Format_RGB32)


class InferenceWorker(QObject):
    """Owns the Colorizer and runs it; lives in its own QThread.

    ``latest_id`` is written by the GUI thread (a plain int assignment, atomic
    under the GIL) and read here to skip or abort stale requests.
    ``stopping`` does the same for shutdown.
    """

    loaded = Signal(dict)
    load_failed = Signal(str)
    started = Signal(int)
    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.colorizer: Colorizer | None = None
        self.latest_id = 0
        self.stopping = False
        self.runs = 0  # networks actually started; tests use it
        self._current_id = 0
        self._hooks: list = []

    # A pre-hook on every layer: the cheapest place where a long forward pass
    # can be interrupted without changing the core.
    def _check_stale(self, _module: object, _inputs: object) -> None:
        if self.stopping or self._current_id != self.latest_id:
            raise _Superseded()

    def _install_hooks(self, colorizer: Colorizer) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = [m.register_forward_pre_hook(self._check_stale) for m in colorizer.model.modules() if not list(m.children())]

    @Slot(object, str)
    def load_weights(self, path: object, device: str = "auto") -> None:
        """Load weights (None: the default weights) and report ``loaded(info)``.

        info: weights_path, device, working_size, meta, parameters,
        reads_hints (whether the model takes colour hints).
        """
        if self.stopping:
            return
        try:
            colorizer = Colorizer.load(path if path is None else str(path), device=device or "auto")
        except ColorizerError as exc:
            self.load_failed.emit(str(exc))
            return
        except Exception as exc:  # a broken file must never kill the thread
            self.load_failed.emit(unexpected_error(exc))
            return
        self._install_hooks(colorizer)
        self.colorizer = colorizer
        from hsvcolorizer.networks import count_parameters

        model = colorizer.model
        counted = {
            "total": count_parameters(model),
            "lrcmgn": count_parameters(model.lrcmgn),
            "rcn": count_parameters(model.rcn),
        }
        self.loaded.emit(
            {
                "weights_path": str(colorizer.weights_path) if colorizer.weights_path else None,
                "device": colorizer.device_name,
                "precision": colorizer.precision,
                "working_size": colorizer.working_size,
                "meta": dict(colorizer.meta),
                "counted_parameters": counted,
                "reads_hints": colorizer.reads_hints,
            }
        )

    @Slot(int, object, int, object)
    def colorize(self, request_id: int, photo: object, working_size: int, hints: object = None) -> None:
        """Run both stages on ``photo`` (a Photo or an image array) with
        ``hints`` (a list of hints.Hint, or None), as Colorizer.colorize takes them."""
        if self.stopping or request_id != self.latest_id:
            return  # superseded while queued
        if self.colorizer is None:
            self.failed.emit(request_id, "No model is loaded. Load weights (Model > Load Weights) or train a model in the Train tab.")
            return
        self._current_id = request_id
        self.runs += 1
        self.started.emit(request_id)
        try:
            result = self.colorizer.colorize(photo, working_size=working_size or None, hints=hints or None)
        except _Superseded:
            log.debug("request %d superseded during inference", request_id)
            return
        except ColorizerError as exc:
            self.failed.emit(request_id, str(exc))
            return
        except MemoryError:
            self.failed.emit(request_id, "Not enough memory to colorize this photo; try a smaller working size.")
            return
        except Exception as exc:
            self.failed.emit(request_id, unexpected_error(exc))
            return
        if request_id == self.latest_id and not self.stopping:
            self.finished.emit(request_id, result)


class _ActivityHandle(WorkerThread):
    """A WorkerThread whose current request is listed in the status bar's
    activity() while it runs; a newer request, cancel or shutdown ends it."""

    def __init__(self, worker: QObject, name: str, parent: QObject | None = None) -> None:
        super().__init__(worker, name, parent)
        self._running: tuple[int, int] | None = None  # (request id, activity token)

    def _begin_activity(self, request_id: int, text: str) -> None:
        self._end_activity()
        self._running = (request_id, activity().begin(text))

    def _end_activity(self, request_id: int | None = None) -> None:
        """End the listed request (only if it is ``request_id``, when given)."""
        if self._running is not None and request_id in (None, self._running[0]):
            activity().end(self._running[1])
            self._running = None

    def _new_id(self) -> int:
        # Every new id makes the running request stale: it is no longer running.
        self._end_activity()
        return super()._new_id()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        done = super().shutdown(timeout_ms)
        self._end_activity()
        return done


class InferenceController(_ActivityHandle):
    """GUI-side handle: starts the worker thread and sends it requests.

    Loading and colorizing are listed in activity() while they run.
    """

    _load_requested = Signal(object, str)
    _colorize_requested = Signal(int, object, int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(InferenceWorker(), "hsvcolorizer-inference", parent)
        self._load_token: int | None = None
        # The worker lives in another thread, so these connections are queued.
        self._load_requested.connect(self.worker.load_weights)
        self._colorize_requested.connect(self.worker.colorize)
        # And these come back queued to this (GUI) thread: bound slots, not
        # lambdas, which would run in the worker's thread.
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.load_failed.connect(self._on_load_failed)

    def load_weights(self, path: str | None, device: str = "auto") -> None:
        # Loading supersedes any colorization in flight: its model is going away.
        self._new_id()
        self._end_load()
        self._load_token = activity().begin(f"Loading the model {Path(path).name if path else '(default)'}")
        self._load_requested.emit(path, device)

    def colorize(self, photo: object, working_size: int, description: str = "", hints: list | None = None) -> int:
        """Queue a request; returns its id. Older requests become stale.
        ``description``: what the status bar says while it runs; ``hints``:
        colour hints (hints.Hint) for a model that reads them."""
        request_id = self._new_id()
        self._begin_activity(request_id, description or f"Colorizing at {int(working_size)} px")
        # A copy: the caller's list changes with the next click while this runs.
        self._colorize_requested.emit(request_id, photo, int(working_size), list(hints) if hints else None)
        return request_id

    def _end_load(self) -> None:
        if self._load_token is not None:
            activity().end(self._load_token)
            self._load_token = None

    @Slot(int, object)
    def _on_finished(self, request_id: int, _result: object) -> None:
        self._end_activity(request_id)

    @Slot(int, str)
    def _on_failed(self, request_id: int, _message: str) -> None:
        self._end_activity(request_id)

    @Slot(dict)
    def _on_loaded(self, _info: dict) -> None:
        self._end_load()

    @Slot(str)
    def _on_load_failed(self, _message: str) -> None:
        self._end_load()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        done = super().shutdown(timeout_ms)
        self._end_load()
        return done


@dataclasses.dataclass
class RenderJob:
    """What to render: a stage of a Result with a mode and saturation gain.

    max_side: long side of the picture to deliver; 0 (or the photo's own
    long side or more) means full size. quick_side: when smaller than
    max_side, a picture of that long side is delivered first (as a preview),
    so a slow full-size render never leaves the old colours on screen.
    """

    request_id: int
    result: Result
    stage: str
    mode: str
    saturation: float
    max_side: int = 0
    quick_side: int = 0


# Screen-sized copies of one Result kept for re-renders (the view's size and
# perhaps one zoomed-in size): each holds its own enlarged H, S maps.
PREVIEW_CACHE = 3


class RenderWorker(QObject):
    """Recomposes colour images from a cached Result (no network run).

    A job is rendered at the size it asks for (see RenderJob), from a copy of
    the Result shrunk to that size (Result.preview), so a saturation change
    on a 24-megapixel photo recomposes only what the screen shows.
    ``rendered(request_id, qimage, is_preview)``: qimage is 8-bit RGB with
    the photo's aspect ratio; is_preview is True when a larger picture of
    the same request follows.
    """

    rendered = Signal(int, QImage, bool)
    failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.latest_id = 0
        self.stopping = False
        # (the Result, {long side: its preview}). Keyed by the Result itself,
        # which this keeps alive: an id() of a freed Result can be reused by
        # the next photo's, which would then show the previous photo.
        self._previews: tuple[Result, dict[int, Result]] | None = None

    def _stale(self, request_id: int) -> bool:
        return self.stopping or request_id != self.latest_id

    def _preview(self, result: Result, max_side: int) -> Result:
        """``result`` shrunk to a long side of ``max_side`` (itself when it is
        not larger), kept while the same Result is rendered again."""
        if max_side <= 0 or max_side >= max(result.size):
            return result
        if self._previews is None or self._previews[0] is not result:
            self._previews = (result, {})
        cache = self._previews[1]
        if max_side not in cache:
            while len(cache) >= PREVIEW_CACHE:
                cache.pop(next(iter(cache)))
            cache[max_side] = preview_result(result, max_side)
        return cache[max_side]

    @Slot(object)
    def render(self, job: RenderJob) -> None:
        if self._stale(job.request_id):
            return
        try:
            result = job.result
            full = max(result.size)
            target = job.max_side if 0 < job.max_side < full else full
            if 0 < job.quick_side < target:
                quick = self._preview(result, job.quick_side).render(job.stage, job.mode, job.saturation)
                if self._stale(job.request_id):
                    return
                self.rendered.emit(job.request_id, display_image(quick), True)
            if self._stale(job.request_id):
                return
            image = self._preview(result, target).render(job.stage, job.mode, job.saturation)
            if self._stale(job.request_id):
                return
            self.rendered.emit(job.request_id, display_image(image), False)
        except ColorizerError as exc:
            self.failed.emit(job.request_id, str(exc))
        except MemoryError:
            self.failed.emit(job.request_id, "Not enough memory to render this photo at this size.")
        except Exception as exc:
            self.failed.emit(job.request_id, unexpected_error(exc))


class RenderController(_ActivityHandle):
    """GUI-side handle of the render thread."""

    _render_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(RenderWorker(), "hsvcolorizer-render", parent)
        self._render_requested.connect(self.worker.render)
        self.worker.rendered.connect(self._on_rendered)
        self.worker.failed.connect(self._on_failed)

    def render(self, result: Result, stage: str, mode: str, saturation: float, max_side: int = 0,
               quick_side: int = 0, description: str = "") -> int:
        """Queue a render (see RenderJob); returns its id. ``description``
        puts it in the status bar while it runs (for slow, full-size renders)."""
        request_id = self._new_id()
        if description:
            self._begin_activity(request_id, description)
        self._render_requested.emit(
            RenderJob(request_id, result, stage, mode, float(saturation), int(max_side), int(quick_side)))
        return request_id

    @Slot(int, QImage, bool)
    def _on_rendered(self, request_id: int, _image: QImage, is_preview: bool) -> None:
        if not is_preview:
            self._end_activity(request_id)

    @Slot(int, str)
    def _on_failed(self, request_id: int, _message: str) -> None:
        self._end_activity(request_id)
