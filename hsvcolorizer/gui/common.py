"""Small helpers shared by every tab: numpy -> QImage, error dialogs, icons.

The Batch and Train tabs import from here too, so this module stays small,
stable and free of imports from the other GUI modules.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QTimer
from PySide6.QtGui import QIcon, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QMessageBox, QSizePolicy, QWidget

__all__ = [
    "ErrorHook",
    "ScaledImageLabel",
    "ask_yes_no",
    "error_hook",
    "format_duration",
    "icon",
    "install_gui_thread_gc",
    "numpy_to_qimage",
    "qimage_to_numpy",
    "question_hook",
    "resources_dir",
    "show_error",
    "show_info",
]

log = logging.getLogger(__name__)


def resources_dir() -> Path:
    """Folder holding icon.png/icon.svg.

    A PyInstaller build unpacks data files under ``sys._MEIPASS``; a source
    checkout or editable install keeps them two levels above this package.
    """
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        candidate = Path(meipass) / "resources"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "resources"


def numpy_to_qimage(arr: np.ndarray) -> QImage:
    """Convert an image array into a QImage that owns its own pixel copy.

    Accepted layouts: HxW (gray), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA, straight
    alpha).  Accepted ranges: uint8 0..255, uint16 0..65535 (kept at 16 bits
    per channel), float32/float64 in [0, 1] (clipped, shown as 8 bits).
    The returned QImage is detached from ``arr``, so the array may be freed or
    changed afterwards.
    """
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"numpy_to_qimage: unsupported shape {a.shape}")
    if a.dtype.kind == "f":
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"numpy_to_qimage: unsupported dtype {a.dtype}")

    h, w = a.shape[:2]
    sixteen = a.dtype == np.uint16
    if a.ndim == 2:
        fmt = QImage.Format.Format_Grayscale16 if sixteen else QImage.Format.Format_Grayscale8
    elif a.shape[2] == 3:
        if sixteen:
            # Qt has no packed 3x16-bit RGB format, so add an opaque alpha.
            a = np.dstack([a, np.full((h, w), 65535, np.uint16)])
            fmt = QImage.Format.Format_RGBA64
        else:
            fmt = QImage.Format.Format_RGB888
    else:
        fmt = QImage.Format.Format_RGBA64 if sixteen else QImage.Format.Format_RGBA8888
    a = np.ascontiguousarray(a)
    # QImage wraps the buffer without copying; .copy() detaches it so the
    # image outlives the numpy array.
    image = QImage(a.data, w, h, a.strides[0], fmt)
    return image.copy()


def qimage_to_numpy(image: QImage) -> np.ndarray:
    """QImage -> HxWx3 uint8 RGB, or HxWx4 uint8 RGBA (straight alpha) when the
    image has an alpha channel.  Always a copy that owns its memory."""
    has_alpha = image.hasAlphaChannel()
    fmt = QImage.Format.Format_RGBA8888 if has_alpha else QImage.Format.Format_RGB888
    img = image.convertToFormat(fmt)
    w, h, channels = img.width(), img.height(), 4 if has_alpha else 3
    # Rows are padded to 4 bytes, so read with the real stride and crop.
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * channels].reshape(h, w, channels).copy()


ErrorHook = Callable[[QWidget | None, str, str], None]

# Tests replace this with a function that records (title, message) so that no
# dialog is ever shown; when it is None show_error opens a real QMessageBox.
error_hook: ErrorHook | None = None


def show_error(parent: QWidget | None, title: str, message: str) -> QMessageBox | None:
    """Tell the user something went wrong without blocking the event loop.

    The box is window-modal but opened with ``open()`` (not ``exec()``), so the
    caller returns at once and a worker thread or a test keeps running.  Tests
    may set ``hsvcolorizer.gui.common.error_hook`` to capture the text instead.
    """
    log.warning("%s: %s", title, message)
    if error_hook is not None:
        error_hook(parent, title, message)
        return None
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(title)
    box.setInformativeText(message)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()
    return box


# Tests replace this with a function returning the answer they want, because
# a question needs an answer before the caller can go on (exec() blocks).
question_hook: Callable[[QWidget | None, str, str], bool] | None = None


def ask_yes_no(parent: QWidget | None, title: str, question: str, default_yes: bool = True) -> bool:
    """Ask a yes/no question (modal, blocking); tests set ``question_hook``."""
    if question_hook is not None:
        return bool(question_hook(parent, title, question))
    yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, title, question, yes | no, yes if default_yes else no)
    return answer == yes


def show_info(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """Non-blocking information box (same rules as ``show_error``)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(message)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


_icon_cache: dict[tuple[str, str | None], QIcon] = {}


def icon(name: str, color: str | None = None) -> QIcon:
    """qtawesome icon such as ``"fa5s.folder-open"``; an empty QIcon if unavailable.

    The fallback keeps the GUI usable when qtawesome or its fonts are missing
    (e.g. a trimmed frozen build): actions just show their text.
    """
    key = (name, color)
    cached = _icon_cache.get(key)
    if cached is not None:
        return cached
    try:
        import qtawesome

        kwargs = {"color": color} if color else {}
        result = qtawesome.icon(name, **kwargs)
    except Exception as exc:  # any qtawesome failure must not break the GUI
        log.debug("icon %s unavailable: %s", name, exc)
        result = QIcon()
    _icon_cache[key] = result
    return result


_gc_timer: QTimer | None = None


def install_gui_thread_gc(parent: QObject, interval_ms: int = 500) -> QTimer:
    """Run Python's cyclic garbage collector only on the GUI thread.

    Automatic collection runs in whichever thread happens to allocate, so a
    worker thread could destroy a Qt widget caught in a reference cycle, and
    Qt objects must die in their own thread (a crash otherwise).  Automatic
    collection is switched off and a GUI-thread timer collects instead, using
    the same per-generation thresholds Python would.
    """
    global _gc_timer
    if _gc_timer is not None:
        return _gc_timer
    gc.disable()
    thresholds = gc.get_threshold()

    def collect() -> None:
        counts = gc.get_count()
        if counts[0] > thresholds[0]:
            generation = 0
            if counts[1] > thresholds[1]:
                generation = 2 if counts[2] > thresholds[2] else 1
            gc.collect(generation)

    timer = QTimer(parent)
    timer.setInterval(interval_ms)
    timer.timeout.connect(collect)
    timer.start()
    _gc_timer = timer
    return timer


def format_duration(seconds: float | None) -> str:
    """12 -> '12 s', 185 -> '3 min 05 s', 7300 -> '2 h 01 min'; None -> '—'."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class ScaledImageLabel(QLabel):
    """Shows a pixmap scaled to fit (aspect kept), rescaled when resized.

    Used by the Batch tab's before/after preview and the Train tab's epoch
    previews.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._source = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 60)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_source(self, pixmap: QPixmap) -> None:
        self._source = pixmap
        self._rescale()

    def source(self) -> QPixmap:
        return self._source

    def clear_source(self, text: str = "") -> None:
        self._source = QPixmap()
        self.clear()
        self.setText(text)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._source.isNull():
            return
        size = self.contentsRect().size()
        if size.width() < 2 or size.height() < 2:
            size = QSize(max(size.width(), 160), max(size.height(), 60))
        # Small pictures (training previews) are enlarged, but not past 4x,
        # where they would only be blur.
        limit = self._source.size() * 4
        size = size.boundedTo(limit)
        self.setPixmap(self._source.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
