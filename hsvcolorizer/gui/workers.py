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

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.common import numpy_to_qimage
from hsvcolorizer.gui.tasks import WorkerThread, unexpected_error
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

# Long side of the quick preview rendered while a slider moves. Rendering
# 2.5 MP takes ~0.2 s on a laptop CPU, a 24 MP photo about 2 s.
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

        info: weights_path, device, working_size, meta, parameters.
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
                "working_size": colorizer.working_size,
                "meta": dict(colorizer.meta),
                "counted_parameters": counted,
            }
        )

    @Slot(int, object, int)
    def colorize(self, request_id: int, photo: object, working_size: int) -> None:
        """Run both stages on ``photo`` (a Photo or an image array)."""
        if self.stopping or request_id != self.latest_id:
            return  # superseded while queued
        if self.colorizer is None:
            self.failed.emit(request_id, "No model is loaded. Load weights (Model > Load Weights) or train a model in the Train tab.")
            return
        self._current_id = request_id
        self.runs += 1
        self.started.emit(request_id)
        try:
            result = self.colorizer.colorize(photo, working_size=working_size or None)
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


class InferenceController(WorkerThread):
    """GUI-side handle: starts the worker thread and sends it requests."""

    _load_requested = Signal(object, str)
    _colorize_requested = Signal(int, object, int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(InferenceWorker(), "hsvcolorizer-inference", parent)
        # The worker lives in another thread, so these connections are queued.
        self._load_requested.connect(self.worker.load_weights)
        self._colorize_requested.connect(self.worker.colorize)

    def load_weights(self, path: str | None, device: str = "auto") -> None:
        # Loading supersedes any colorization in flight: its model is going away.
        self._new_id()
        self._load_requested.emit(path, device)

    def colorize(self, photo: object, working_size: int) -> int:
        """Queue a request; returns its id. Older requests become stale."""
        request_id = self._new_id()
        self._colorize_requested.emit(request_id, photo, int(working_size))
        return request_id


@dataclasses.dataclass
class RenderJob:
    """What to render: a stage of a Result with a mode and saturation gain."""

    request_id: int
    result: Result
    stage: str
    mode: str
    saturation: float


class RenderWorker(QObject):
    """Recomposes colour images from a cached Result (no network run).

    For photos larger than PREVIEW_MAX_SIDE it first emits a preview, then
    (unless a newer request arrived meanwhile) the full-size image.
    ``rendered(request_id, qimage, is_preview)``: qimage is 8-bit RGB, the
    photo's aspect ratio, at preview or full size.
    """

    rendered = Signal(int, QImage, bool)
    failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.latest_id = 0
        self.stopping = False
        self._preview_of: tuple[Result, Result] | None = None

    def _stale(self, request_id: int) -> bool:
        return self.stopping or request_id != self.latest_id

    def _preview(self, result: Result) -> Result:
        # Keep the last preview: while a slider moves every request uses the
        # same Result. Keyed by the Result itself, which the cache keeps alive:
        # an id() of a freed Result can be reused by the next photo's.
        if self._preview_of is None or self._preview_of[0] is not result:
            self._preview_of = (result, preview_result(result, PREVIEW_MAX_SIDE))
        return self._preview_of[1]

    @Slot(object)
    def render(self, job: RenderJob) -> None:
        if self._stale(job.request_id):
            return
        try:
            result = job.result
            if max(result.size) > PREVIEW_MAX_SIDE:
                small = self._preview(result).render(job.stage, job.mode, job.saturation)
                if self._stale(job.request_id):
                    return
                self.rendered.emit(job.request_id, display_image(small), True)
                if self._stale(job.request_id):
                    return
            full = result.render(job.stage, job.mode, job.saturation)
            if self._stale(job.request_id):
                return
            self.rendered.emit(job.request_id, display_image(full), False)
        except ColorizerError as exc:
            self.failed.emit(job.request_id, str(exc))
        except MemoryError:
            self.failed.emit(job.request_id, "Not enough memory to render this photo at full size.")
        except Exception as exc:
            self.failed.emit(job.request_id, unexpected_error(exc))


class RenderController(WorkerThread):
    """GUI-side handle of the render thread."""

    _render_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(RenderWorker(), "hsvcolorizer-render", parent)
        self._render_requested.connect(self.worker.render)

    def render(self, result: Result, stage: str, mode: str, saturation: float) -> int:
        request_id = self._new_id()
        self._render_requested.emit(RenderJob(request_id, result, stage, mode, float(saturation)))
        return request_id
