"""The Colorize tab's state and logic, without widgets.

``ColorizeController`` holds the open photo, the loaded model's info, the
result and the render options (the stage and kind shown, mode, saturation,
working size), and keeps all slow work off the GUI thread: big photos are
read and every save is written by ``run_task``, the networks run in the
inference thread (InferenceController) and recomposition in the render
thread (RenderController). Request ids make a newer photo, run or render
supersede an older one. The view (colorize_tab.ColorizeTab) binds widgets
to its signals; tests drive it directly, without a window.

Colour hints (points of the photo whose colour the user knows) belong to the
open photo: every edit re-runs the networks at once with them (when the
model reads hints), goes on an undo stack (hint_history.HintHistory) and is
written beside the photo as NAME.hints.json (hint_saver.HintSaver), from
where they come back when the photo is opened again.

Recomposition runs at the size the screen shows (``set_display_side``): a
saturation change on a 24-megapixel photo recomposes about a megapixel, and
the full size is rendered only when the view is zoomed in beyond that, and
for saving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage

from hsvcolorizer import color
from hsvcolorizer import weights as weights_mod
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.common import numpy_to_qimage, qimage_to_numpy
from hsvcolorizer.gui.hint_history import HintHistory
from hsvcolorizer.gui.hint_saver import HintSaver
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import Task, run_task
from hsvcolorizer.gui.workers import PREVIEW_MAX_SIDE, InferenceController, RenderController, preview_result
from hsvcolorizer.hints import Hint, check_inside, hints_path_for, read_hints
from hsvcolorizer.imageio import Photo, read_image, to_8bit, write_image
from hsvcolorizer.inference import DEFAULT_WORKING_SIZE, Result

__all__ = ["ASYNC_READ_BYTES", "ColorizeController", "THUMB_MAX_SIDE", "same_file"]

log = logging.getLogger(__name__)

# Files bigger than this are decoded on a pool thread so the window stays
# responsive (a 24-megapixel JPEG takes about half a second); smaller ones are
# read at once, which keeps opening a small photo immediate and synchronous.
ASYNC_READ_BYTES = 4 * 1024 * 1024
# The slider fires on every pixel of movement: one frame's pause gathers a
# burst into one request (the render thread also skips requests gone stale).
RENDER_DEBOUNCE_MS = 15
# Zooming in step by step: render the sharper picture once the zooming pauses.
ZOOM_RENDER_DEBOUNCE_MS = 150
# Re-running the networks costs a second or more, so wait until the user
# has stopped clicking the spin box arrows.
WORKING_SIZE_DEBOUNCE_MS = 450
THUMB_MAX_SIDE = 256
# A full-size render above this long side takes long enough to show the
# screen-sized picture first and to say so in the status bar.
SLOW_RENDER_SIDE = 2 * PREVIEW_MAX_SIDE


def same_file(a: Path, b: Path) -> bool:
    """True when both paths name one file (also through links or case-insensitive file systems)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def _read_photo(path: Path) -> Photo:
    """read_image for a pool thread: a decoder bug becomes a message naming the file."""
    try:
        return read_image(path)
    except ColorizerError:
        raise
    except Exception as exc:
        log.exception("reading %s failed", path)
        raise ColorizerError(f"Unexpected error reading {path.name}: {exc}") from exc


def _read_photo_and_hints(path: Path) -> tuple[Photo, list[Hint], str]:
    """The photo, the hints saved beside it (none when there is no file) and
    what was wrong with that file ("" when nothing): a bad hint file must not
    keep the photo from opening."""
    photo = _read_photo(path)
    hint_path = hints_path_for(path)
    if not hint_path.exists():
        return photo, [], ""
    try:
        hints = read_hints(hint_path)
        check_inside(hints, photo.size[0], photo.size[1], hint_path.name)
    except ColorizerError as exc:
        return photo, [], str(exc)
    return photo, hints, ""


def _write_result(path: Path, result: Result, mode: str, saturation: float, photo: Photo) -> list[Path]:
    """The full-size refined colour photo, with the input's EXIF and ICC profile (as the CLI writes it)."""
    pixels = result.render("refined", mode, saturation)
    write_image(path, pixels, alpha=result.alpha, exif=photo.exif, icc_profile=photo.icc_profile)
    return [path]


def _write_stages(folder: Path, targets: dict[str, Path], result: Result, mode: str, saturation: float) -> list[Path]:
    """The result, stage 1's colour image and both stages' H and S maps."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ColorizerError(f"cannot make the folder {folder}: {exc.strerror or exc}") from exc
    written: list[Path] = []
    try:
        write_image(targets["result"], result.render("refined", mode, saturation), alpha=result.alpha)
        written.append(targets["result"])
        write_image(targets["stage1"], result.render("stage1", mode, saturation), alpha=result.alpha)
        written.append(targets["stage1"])
        for stage, prefix in (("stage1", "stage1"), ("refined", "stage2")):
            write_image(targets[f"{prefix}_hue"], result.hue_image(stage))
            written.append(targets[f"{prefix}_hue"])
            write_image(targets[f"{prefix}_saturation"], result.saturation_image(stage))
            written.append(targets[f"{prefix}_saturation"])
    except ColorizerError as exc:
        raise ColorizerError(f"{exc} ({len(written)} of {len(targets)} files were written)") from exc
    return written


class ColorizeController(QObject):
    """One photo at a time: read, colorize, re-render, save.

    Signals:
      status_message(str): a line for the status bar.
      error(title, message): something the user must be told (the view shows it).
      busy_changed(bool): weights loading or the networks running.
      info_changed(): photo, model, result or timing changed.
      photo_changed(): a new photo; ``gray_image`` holds its gray.
      photo_opened(str): a file was opened (for the recent-files list).
      placeholder_changed(str): what the empty result view should say.
      model_loaded(dict): the inference worker's info after a successful load.
      banner_changed(bool): whether to offer loading or training a model.
      result_changed(): a new result arrived (stage details, thumbnails).
      thumbnails_changed(dict): (stage, kind) -> QImage.
      view_changed(str, str): the stage and kind shown large.
      image_ready(QImage, bool, bool): a picture for the result view, whether
        it is a colour image (the before/after divider applies) and whether
        it is the last one of its request (not a quick preview).
      result_displayed(int): the result (by request id) as the options ask
        is ready to be on screen.
      saved(list): the paths a save wrote, once written.
      save_failed(str): a save failed (``error`` says why too).
      hints_changed(): the open photo's hints, or whether they can be
        edited (a model that reads them, undo/redo), changed.
    """

    status_message = Signal(str)
    error = Signal(str, str)
    busy_changed = Signal(bool)
    info_changed = Signal()
    photo_changed = Signal()
    photo_opened = Signal(str)
    placeholder_changed = Signal(str)
    model_loaded = Signal(dict)
    banner_changed = Signal(bool)
    result_changed = Signal()
    thumbnails_changed = Signal(object)  # a dict with tuple keys: not a QVariantMap
    view_changed = Signal(str, str)
    image_ready = Signal(QImage, bool, bool)
    result_displayed = Signal(int)
    saved = Signal(list)
    save_failed = Signal(str)
    hints_changed = Signal()

    def __init__(self, settings: AppSettings, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = AppSettings.wrap(settings)
        self._device = device
        self.photo: Photo | None = None
        self.photo_name = ""
        self.gray_image = QImage()
        self.result: Result | None = None
        self.result_id = 0
        self.model_info: dict | None = None
        self._thumb_result: Result | None = None
        self._inflight_id: int | None = None
        self._loading = False
        self._shut_down = False
        self._read_request = 0
        self._tasks: set[Task] = set()
        self.view_key: tuple[str, str] = ("refined", "image")
        # Long side, in device pixels, the photo takes on screen (0: unknown),
        # and the long side asked of the latest render.
        self._display_side = 0
        self._requested_side = 0

        s = self.settings
        self._saturation = s.get("colorize/saturation") / 100.0
        self._mode = s.get("colorize/mode")
        self._working_size_set_by_user = s.contains("colorize/working_size")
        self._working_size = s.get("colorize/working_size") or DEFAULT_WORKING_SIZE

        self.inference = InferenceController(self)
        self.renderer = RenderController(self)
        w = self.inference.worker
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.started.connect(self._on_started)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        self.renderer.worker.rendered.connect(self._on_rendered)
        self.renderer.worker.failed.connect(self._on_render_failed)

        self._hints = HintHistory()
        self.hint_saver = HintSaver(self)
        self.hint_saver.message.connect(self.status_message)
        self.hint_saver.failed.connect(lambda message: self.error.emit("Could not save the hints", message))

        self._render_timer = self._timer(RENDER_DEBOUNCE_MS, self._rerender)
        self._zoom_timer = self._timer(ZOOM_RENDER_DEBOUNCE_MS, self.show_current)
        self._ws_timer = self._timer(WORKING_SIZE_DEBOUNCE_MS, self.colorize)

    def _timer(self, ms: int, slot) -> QTimer:  # noqa: ANN001
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    # ============================================================ accessors

    def mode(self) -> str:
        return self._mode

    def saturation(self) -> float:
        """The gain on the predicted saturation (1.0: as predicted)."""
        return self._saturation

    def working_size(self) -> int:
        return self._working_size

    def device(self) -> str:
        """The device this window was asked to run the networks on (a name of choices.DEVICES or "cuda:N")."""
        return self._device

    def weights_path(self) -> str | None:
        return (self.model_info or {}).get("weights_path")

    def is_busy(self) -> bool:
        return self._loading or self._inflight_id is not None

    def is_colorizing(self) -> bool:
        return self._inflight_id is not None

    def can_colorize(self) -> bool:
        return self.photo is not None and self.model_info is not None

    def is_saving(self) -> bool:
        return any(getattr(t, "kind", "") == "save" for t in self._tasks)

    def device_text(self) -> str:
        return (self.model_info or {}).get("device", "")

    def size_text(self) -> str:
        if self.photo is None:
            return ""
        w, h = self.photo.size
        return f"{w} × {h} px · {self.photo.bit_depth}-bit"

    def photo_details(self) -> str:
        if self.photo is None:
            return ""
        details = self.size_text()
        if self.photo.alpha is not None:
            details += " · alpha"
        if self.photo.is_color:
            details += " · colour (its gray is used)"
        return details

    def time_text(self) -> str:
        return f"{self.result.seconds:.2f} s" if self.result is not None else ""

    def model_name(self) -> str:
        info = self.model_info or {}
        return (info.get("meta") or {}).get("name") or Path(info.get("weights_path") or "model").stem

    def model_details(self) -> str:
        info = self.model_info or {}
        if not info:
            return ""
        params = ((info.get("meta") or {}).get("parameters") or {}).get("total") or info["counted_parameters"]["total"]
        return f"{params / 1e6:.1f} M parameters · {info.get('device', '')}"

    def stage_details(self) -> dict[str, str]:
        """Resolution of each stage's maps, for the stage panel."""
        if self.result is None:
            return {}
        h1, w1 = self.result.stage1_hs.shape[1:]
        h2, w2 = self.result.refined_hs.shape[1:]
        return {"stage1": f"maps {w1} × {h1}", "refined": f"maps {w2} × {h2}"}

    # ============================================================== options

    def set_mode(self, mode: str) -> None:
        if mode != self._mode:
            self._mode = mode
            self._render_timer.start()

    def set_saturation(self, gain: float) -> None:
        if gain != self._saturation:
            self._saturation = float(gain)
            self._render_timer.start()

    def set_working_size(self, size: int, by_user: bool = True) -> None:
        """A new working size runs the networks again (after a short pause)."""
        self._working_size_set_by_user |= by_user
        if int(size) == self._working_size:
            return
        self._working_size = int(size)
        if by_user and self.can_colorize():
            self._ws_timer.start()

    def set_display_side(self, side: int) -> None:
        """The long side, in device pixels, that the photo takes on screen at
        the view's zoom (at least the size that fits the view). A side larger
        than the picture rendered so far renders a sharper one."""
        side = max(0, int(side))
        if side == self._display_side:
            return
        self._display_side = side
        if self.result is not None and self.view_key[1] == "image" and self._target_side() > self._requested_side:
            self._zoom_timer.start()

    def display_side(self) -> int:
        return self._display_side

    def _target_side(self) -> int:
        """Long side to render at: what the screen shows, at most the photo's."""
        full = max(self.result.size) if self.result is not None else 0
        return min(full, self._display_side or PREVIEW_MAX_SIDE)

    def save_settings(self) -> None:
        s = self.settings
        s.set("colorize/saturation", round(self._saturation * 100))
        s.set("colorize/mode", self._mode)
        if self._working_size_set_by_user:
            s.set("colorize/working_size", self._working_size)

    # ================================================================ model

    def start(self, weights: str | None = None, load_default: bool = True) -> None:
        """Load the given weights, else the default ones; offer a model (banner) if there are none."""
        if weights:
            self.load_weights(weights)
            return
        path = weights_mod.default_weights() if load_default else None
        if path is None:
            self._set_banner(True)
            self.status_message.emit("No model weights loaded")
            return
        self.load_weights(str(path))

    def load_weights(self, path: str | None) -> None:
        """Load weights (None: the default) in the inference thread; ``model_loaded`` reports success."""
        self._loading = True
        self._inflight_id = None
        self._update_busy()
        self.status_message.emit(f"Loading weights {Path(path).name if path else '(default)'}…")
        self.inference.load_weights(path, self._device)

    def load_default_weights(self) -> None:
        """Back to the shipped model (models/), whatever was loaded since."""
        self.load_weights(None)

    def _on_loaded(self, info: dict) -> None:
        self._loading = False
        self.model_info = info
        self._set_banner(False)
        if not self._working_size_set_by_user:
            self._working_size = int(info.get("working_size") or DEFAULT_WORKING_SIZE)
        self._update_busy()
        self.info_changed.emit()
        self.model_loaded.emit(info)
        self.hints_changed.emit()  # the new model may or may not read them
        self.status_message.emit(f"Loaded {self.model_name()} on {info.get('device', '')}")
        if self.photo is not None:
            self.colorize()

    def _on_load_failed(self, message: str) -> None:
        self._loading = False
        self._update_busy()
        if self.model_info is None:
            self._set_banner(True)
        elif self.photo is not None and self.result is None:
            # The load request cancelled a colorization in flight; the
            # previous model is still loaded, so finish the job with it.
            self.colorize()
        self.error.emit("Could not load weights", message)
        self.status_message.emit("Loading weights failed")

    def _set_banner(self, visible: bool) -> None:
        self.banner_changed.emit(visible)
        if visible and self.photo is not None and self.result is None:
            self.placeholder_changed.emit("No model loaded — load weights to colorize")

    # =============================================================== photos

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Read a photo and colorize it; a bad file is reported and returns False.

        A big file is decoded on a pool thread (returns True at once; an error
        is reported when the read fails); a newer photo supersedes it.
        """
        path = Path(path)
        self._read_request += 1
        try:
            big = path.is_file() and path.stat().st_size > ASYNC_READ_BYTES
        except OSError:
            big = False
        if big:
            self.placeholder_changed.emit(f"Reading {path.name}…")
            self.status_message.emit(f"Reading {path.name}…")
            task = self._start(f"Reading {path.name}", self._on_read_ended, _read_photo_and_hints, path)
            task.kind, task.request, task.path = "read", self._read_request, path
            return True
        try:
            opened = _read_photo_and_hints(path)
        except ColorizerError as exc:
            self.error.emit("Could not open the photo", str(exc))
            return False
        self._opened(opened, path)
        return True

    def _opened(self, opened: tuple[Photo, list[Hint], str], path: Path) -> None:
        photo, hints, hint_error = opened
        self.settings.set("paths/last_open_dir", str(path.parent))
        self.set_photo(photo, path.name, hints)
        if hint_error:
            # The photo opens without them; the bad file stays as it is until
            # the user's first hint replaces it.
            self.error.emit("Could not read the saved hints", hint_error)
        self.photo_opened.emit(str(path))

    @Slot()
    def _on_read_ended(self) -> None:
        task = self._untrack(self.sender())
        if task is None or task.request != self._read_request or self._shut_down:
            return  # a newer photo (or a paste) came meanwhile
        kind, value = task.outcome
        if kind == "done":
            self._opened(value, task.path)
        else:
            self.error.emit("Could not open the photo", value)

    def paste(self) -> bool:
        """Colorize the clipboard's image (or the image file it names)."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files and Path(files[0]).is_file():
                return self.open_path(files[0])
        image = clipboard.image()
        if image.isNull():
            self.status_message.emit("The clipboard holds no image")
            return False
        arr = qimage_to_numpy(image)
        alpha = None
        if arr.shape[2] == 4:
            alpha = arr[..., 3].copy()
            if alpha.min() == 255:
                alpha = None
            arr = np.ascontiguousarray(arr[..., :3])
        self.set_photo(Photo(arr, alpha, None), "Pasted image")
        return True

    def set_photo(self, photo: Photo, name: str, hints: list[Hint] | None = None) -> None:
        """Make ``photo`` the open one (its gray shows at once) and colorize it
        with ``hints`` (those saved beside it; none by default).

        photo.pixels: HxW or HxWx3, uint8 or uint16 (see imageio.Photo).
        """
        # The newest photo wins: a big file still being read when this one
        # arrives (a paste, say) must not replace it when its read ends.
        self._read_request += 1
        self.photo = photo
        self.photo_name = name
        self.result = None
        self._thumb_result = None
        self._requested_side = 0
        self.renderer.cancel()
        self.gray_image = numpy_to_qimage(color.gray_of(photo.pixels))  # HxW float32 in [0, 1]
        self.view_key = ("refined", "image")
        self._hints.reset(hints)
        self.hint_saver.set_photo(photo.path)
        self.photo_changed.emit()
        self.hints_changed.emit()
        self.placeholder_changed.emit("Colorizing…" if (self._loading or self.model_info is not None)
                                      else "No model loaded — load weights to colorize")
        self.view_changed.emit(*self.view_key)
        self.info_changed.emit()
        self.colorize()

    # ============================================================ inference

    def colorize(self) -> int | None:
        """Run the networks on the open photo; returns the request id (None if not started)."""
        self._ws_timer.stop()
        if self.photo is None or self._shut_down:
            return None
        if self.model_info is None:
            if not self._loading:
                self.status_message.emit("Load weights to colorize (Model > Load Weights)")
            # When loading finishes, _on_loaded colorizes the open photo.
            return None
        ws = self.working_size()
        hints = self.hints_sent()
        with_hints = f" with {len(hints)} hint{'s' if len(hints) != 1 else ''}" if hints else ""
        request_id = self.inference.colorize(self.photo, ws, f"Colorizing {self.photo_name} at {ws} px{with_hints}",
                                             hints=hints)
        self._inflight_id = request_id
        self._update_busy()
        return request_id

    def colorize_or_cancel(self) -> None:
        if self._inflight_id is not None:
            self.cancel_colorize()
        else:
            self.colorize()

    def cancel_colorize(self) -> None:
        """Stop the colorization in progress (the networks abort at their next
        layer); the photo and any earlier result stay as they are."""
        if self._inflight_id is None:
            return
        self.inference.cancel()
        self._inflight_id = None
        if self.result is None:
            self.placeholder_changed.emit("Cancelled — press Colorize to run the networks")
        self.status_message.emit(f"Colorizing {self.photo_name} cancelled")
        self._update_busy()

    # ================================================================ hints

    @property
    def hints(self) -> list[Hint]:
        """The open photo's colour hints (full-size pixels, 8-bit sRGB)."""
        return self._hints.hints

    def reads_hints(self) -> bool:
        """Whether the loaded model takes colour hints (trained with --hints)."""
        return bool((self.model_info or {}).get("reads_hints"))

    def can_edit_hints(self) -> bool:
        return self.photo is not None and self.reads_hints()

    def hints_sent(self) -> list[Hint]:
        """What the networks get: the hints, when the model reads them. A
        photo's hints are kept (shown, saved) with a model that does not."""
        return self._hints.hints if self.reads_hints() else []

    def can_undo_hints(self) -> bool:
        return self.can_edit_hints() and self._hints.can_undo()

    def can_redo_hints(self) -> bool:
        return self.can_edit_hints() and self._hints.can_redo()

    def hint_file(self) -> Path | None:
        """Where the open photo's hints are saved (None: in memory only)."""
        return self.hint_saver.target()

    def _inside(self, x: int, y: int) -> tuple[int, int]:
        w, h = self.photo.size
        return min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)

    def add_hint(self, x: int, y: int, rgb: tuple[int, int, int]) -> bool:
        """A hint at column x, row y of the full-size photo (kept inside it)."""
        if not self.can_edit_hints():
            return False
        return self._hints_edited(self._hints.add(Hint(*self._inside(x, y), tuple(int(c) for c in rgb))))

    def move_hint(self, index: int, x: int, y: int) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.move(index, *self._inside(x, y)))

    def recolour_hint(self, index: int, rgb: tuple[int, int, int]) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.recolour(index, rgb))

    def remove_hint(self, index: int) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.remove(index))

    def clear_hints(self) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.clear())

    def undo_hints(self) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.undo())

    def redo_hints(self) -> bool:
        return self.can_edit_hints() and self._hints_edited(self._hints.redo())

    def _hints_edited(self, changed: bool) -> bool:
        """After an edit: show it, run the networks with it at once (the
        newest run supersedes one in flight) and write it beside the photo."""
        if not changed:
            return False
        self.hints_changed.emit()
        self.colorize()
        self.hint_saver.save(self._hints.hints)
        return True

    def _on_started(self, request_id: int) -> None:
        if request_id == self.inference.latest_id:
            self.status_message.emit(f"Colorizing {self.photo_name} at working size {self.working_size()} px…")

    def _on_finished(self, request_id: int, result: Result) -> None:
        if request_id != self.inference.latest_id:
            return  # an older request finished after a newer one was sent
        self._inflight_id = None
        self.result = result
        self.result_id = request_id
        self._requested_side = 0
        self._thumb_result = preview_result(result, THUMB_MAX_SIDE)
        self.result_changed.emit()
        self._update_thumbnails(maps=True)
        self.show_current()
        self._update_busy()
        self.info_changed.emit()
        self.status_message.emit(f"Colorized {self.photo_name} in {result.seconds:.2f} s on {result.device}")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self.inference.latest_id:
            return
        self._inflight_id = None
        self._update_busy()
        if self.result is None:
            self.placeholder_changed.emit("Colorizing failed")
        self.error.emit("Colorizing failed", message)
        self.status_message.emit("Colorizing failed")

    def _update_busy(self) -> None:
        self.busy_changed.emit(self.is_busy())

    # ============================================================ rendering

    def _rerender(self) -> None:
        if self.result is None:
            return
        self._update_thumbnails(maps=False)
        self.show_current()

    def _update_thumbnails(self, maps: bool) -> None:
        """Thumbnails are rendered from a small copy of the result on this thread (a few ms)."""
        r = self._thumb_result
        if r is None:
            return
        images: dict[tuple[str, str], QImage] = {}
        try:
            for stage in ("stage1", "refined"):
                images[(stage, "image")] = numpy_to_qimage(to_8bit(r.render(stage, self._mode, self._saturation)))
                if maps:
                    images[(stage, "hue")] = numpy_to_qimage(r.hue_image(stage))
                    images[(stage, "saturation")] = numpy_to_qimage(r.saturation_image(stage))
        except ColorizerError as exc:
            self.error.emit("Could not render", str(exc))
            return
        self.thumbnails_changed.emit(images)

    def set_view(self, stage: str, kind: str) -> None:
        """Show one stage's colour image ("image") or map ("hue", "saturation") large."""
        self.view_key = (stage, kind)
        self.view_changed.emit(stage, kind)
        self.show_current()

    def show_current(self) -> None:
        """Deliver what ``view_key`` names: maps at once, images through the render thread."""
        self._zoom_timer.stop()
        if self.result is None:
            return
        stage, kind = self.view_key
        if kind == "image":
            target = self._target_side()
            full = max(self.result.size)
            slow = target >= full > SLOW_RENDER_SIDE
            self._requested_side = target
            self.renderer.render(
                self.result, stage, self._mode, self._saturation, max_side=target,
                # A slow full-size render shows the screen-sized picture first.
                quick_side=PREVIEW_MAX_SIDE if slow else 0,
                description=f"Rendering {self.photo_name} at full size" if slow else "",
            )
            return
        self.renderer.cancel()
        arr = self.result.hue_image(stage) if kind == "hue" else self.result.saturation_image(stage)
        self.image_ready.emit(numpy_to_qimage(arr), False, True)
        self.result_displayed.emit(self.result_id)

    def _on_rendered(self, render_id: int, image: QImage, is_preview: bool) -> None:
        if render_id != self.renderer.latest_id or self.result is None:
            return
        self.image_ready.emit(image, True, not is_preview)
        if not is_preview:
            self.result_displayed.emit(self.result_id)

    def _on_render_failed(self, render_id: int, message: str) -> None:
        if render_id == self.renderer.latest_id:
            self.error.emit("Could not render", message)

    # =============================================================== saving

    def default_save_name(self, suffix: str) -> str:
        stem = Path(self.photo_name).stem if self.photo_name else "photo"
        return f"{stem.replace(' ', '_')}{suffix}"

    def save_dir(self) -> str:
        """Where save dialogs start: the last save folder, else the last open one."""
        return self.settings.get("paths/last_save_dir") or self.settings.get("paths/last_open_dir")

    def save_to(self, path: str | os.PathLike[str]) -> Task | None:
        """Write the full-size refined colour photo (current mode and saturation)
        on a pool thread; ``saved`` reports it written, ``error`` a failure.

        PNG/TIFF keep 16 bits for 16-bit photos; alpha is kept where the
        format allows. Refuses (None) to overwrite the input photo.
        """
        path = Path(path)
        if self.result is None or self.photo is None:
            self.error.emit("Nothing to save", "Open and colorize a photo first.")
            return None
        if self.photo.path is not None and same_file(path, self.photo.path):
            self.error.emit("Will not overwrite the input",
                            f"{path.name} is the photo you opened; choose another name so the original is kept.")
            return None
        task = self._start(f"Saving {path.name}", self._on_save_ended, _write_result, path, self.result, self._mode,
                           self._saturation, self.photo)
        task.kind, task.folder, task.error_title = "save", path.parent, "Could not save"
        self.status_message.emit(f"Saving {path.name}…")
        return task

    def stage_file_names(self) -> dict[str, str]:
        """What save_stages_to writes: key -> file name."""
        # The command line's names (colorize --save-stages): every file
        # starts with the result's own name, NAME_color.
        return {
            "result": self.default_save_name("_color.png"),
            "stage1": self.default_save_name("_color_stage1.png"),
            "stage1_hue": self.default_save_name("_color_stage1_hue.png"),
            "stage1_saturation": self.default_save_name("_color_stage1_saturation.png"),
            "stage2_hue": self.default_save_name("_color_stage2_hue.png"),
            "stage2_saturation": self.default_save_name("_color_stage2_saturation.png"),
        }

    def existing_stage_files(self, folder: str | os.PathLike[str]) -> list[str]:
        """Names of the files save_stages_to would replace in ``folder``."""
        return [n for n in self.stage_file_names().values() if (Path(folder) / n).exists()]

    def save_stages_to(self, folder: str | os.PathLike[str]) -> Task | None:
        """Write the result, stage 1's full-size colour image and both stages'
        H and S maps (at each stage's own resolution) as PNGs into ``folder``,
        made if missing (as the command line's --save-stages does), on a pool
        thread; replaces existing files (ask first: existing_stage_files)."""
        folder = Path(folder)
        if self.result is None:
            self.error.emit("Nothing to save", "Open and colorize a photo first.")
            return None
        targets = {k: folder / n for k, n in self.stage_file_names().items()}
        if self.photo is not None and self.photo.path is not None:
            for t in targets.values():
                if same_file(t, self.photo.path):
                    self.error.emit("Will not overwrite the input", f"{t.name} in {folder} is the photo you opened.")
                    return None
        task = self._start(f"Saving the stages of {self.photo_name}", self._on_save_ended, _write_stages, folder,
                           targets, self.result, self._mode, self._saturation)
        task.kind, task.folder, task.error_title = "save", folder, "Could not save the stages"
        self.status_message.emit(f"Saving the stages into {folder}…")
        return task

    @Slot()
    def _on_save_ended(self) -> None:
        task = self._untrack(self.sender())
        if task is None:
            return
        kind, value = task.outcome
        if kind == "done":
            self.settings.set("paths/last_save_dir", str(task.folder))
            what = str(value[0]) if len(value) == 1 else f"{len(value)} stage images to {task.folder}"
            self.status_message.emit(f"Saved {what}")
            self.saved.emit(value)
        else:
            self.status_message.emit("Saving failed")
            self.error.emit(task.error_title, value)
            self.save_failed.emit(value)

    # ================================================================ tasks

    def _start(self, description: str, on_ended, fn, *args) -> Task:  # noqa: ANN001
        """run_task(fn, *args), kept in ``_tasks`` until ``on_ended`` (a slot
        of this object, reading ``sender()``'s outcome) has run."""
        # Set on the pool thread when fn returns: shutdown waits on it, since
        # the Task's own outcome is delivered later, through the event loop.
        work_done = threading.Event()

        def work():  # noqa: ANN202
            try:
                return fn(*args)
            finally:
                work_done.set()

        task = run_task(description, work, parent=self)
        task.work_done = work_done
        self._tasks.add(task)
        task.ended.connect(on_ended)
        return task

    def _untrack(self, task: QObject | None) -> Task | None:
        if not isinstance(task, Task) or task not in self._tasks:
            return None
        self._tasks.discard(task)
        task.deleteLater()
        return task

    def wait_for_own_tasks(self, timeout_ms: int) -> bool:
        """Wait until this tab's reads and saves have ended; True if they did."""
        deadline = time.monotonic() + timeout_ms / 1000
        return all(t.work_done.wait(max(0.0, deadline - time.monotonic())) for t in list(self._tasks))

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop both worker threads (a running inference aborts at its next
        layer) and let a read or a save in flight end: a save is never cut off."""
        self._shut_down = True
        for timer in (self._render_timer, self._zoom_timer, self._ws_timer):
            timer.stop()
        ok_inference = self.inference.shutdown(timeout_ms)
        ok_render = self.renderer.shutdown(timeout_ms)
        ok_tasks = self.wait_for_own_tasks(timeout_ms) and self.hint_saver.wait(timeout_ms)
        self._inflight_id = None
        self._loading = False
        return ok_inference and ok_render and ok_tasks
