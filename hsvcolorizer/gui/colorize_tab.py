"""The Colorize tab: open one photo, see the gray the model sees beside its colours.

Left to right it reads as the job: controls, the input (gray) and the result,
with both stages' thumbnails underneath.  The networks run in the inference
thread; saturation and recomposition changes only re-render the cached
Result, in the render thread, so the window never waits on either.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QSettings, QSignalBlocker, QStandardPaths, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer import color
from hsvcolorizer import weights as weights_mod
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.common import ask_yes_no, icon, numpy_to_qimage, qimage_to_numpy, show_error
from hsvcolorizer.gui.image_view import ImageView
from hsvcolorizer.gui.stage_panel import KIND_CAPTIONS, STAGE_TITLES, StagePanel
from hsvcolorizer.gui.workers import InferenceController, RenderController, preview_result
from hsvcolorizer.choices import RECOMPOSE_MODES, SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN
from hsvcolorizer.imageio import READ_EXTENSIONS, Photo, read_image, to_8bit, write_image
from hsvcolorizer.inference import DEFAULT_WORKING_SIZE, Result

__all__ = ["ColorizeTab", "MODES", "NO_WEIGHTS_TEXT", "SAVE_FILTERS"]

log = logging.getLogger(__name__)

NO_WEIGHTS_TEXT = (
    "No model weights found in models/. Load weights (Model > Load Weights) "
    "or train a model in the Train tab."
)
_MODE_LABELS = {"luma": "Luma — keeps the photo's gray exactly", "v": "V — the paper's"}
MODES = tuple((mode, _MODE_LABELS.get(mode, mode)) for mode in RECOMPOSE_MODES)
SAVE_FILTERS = {
    "PNG image (*.png)": ".png",
    "JPEG image (*.jpg *.jpeg)": ".jpg",
    "TIFF image (*.tif *.tiff)": ".tif",
    "WebP image (*.webp)": ".webp",
}
WORKING_SIZE_STEP = 32  # the range is the core's: choices.WORKING_SIZE_MIN to WORKING_SIZE_MAX
# The saturation slider shows the core's gain (choices.SATURATION_MIN/MAX) in percent.
SATURATION_PERCENT_MIN, SATURATION_PERCENT_MAX = round(SATURATION_MIN * 100), round(SATURATION_MAX * 100)
# The slider fires on every pixel of movement; wait for a short pause.
RENDER_DEBOUNCE_MS = 60
# Re-running the networks costs a second or more, so wait until the user
# has stopped clicking the spin box arrows.
WORKING_SIZE_DEBOUNCE_MS = 450
THUMB_MAX_SIDE = 256
DEFAULT_SPLIT = 0.5


def _documents_dir() -> str:
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation) or str(Path.home())


def _same_file(a: Path, b: Path) -> bool:
    """True when both paths name one file (also through links or case-insensitive file systems)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def _section_title(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


# Files bigger than this are decoded on a pool thread so the window stays
# responsive (a 24-megapixel JPEG takes about half a second); smaller ones are
# read at once, which keeps opening a small photo immediate and synchronous.
ASYNC_READ_BYTES = 4 * 1024 * 1024


class _ReadSignals(QObject):
    """Carries a pool thread's result back to the GUI thread (queued signals)."""

    done = Signal(int, object, str)  # request id, Photo, path
    failed = Signal(int, str, str)  # request id, message, path


class _ReadTask(QRunnable):
    def __init__(self, request: int, path: Path, signals: _ReadSignals) -> None:
        super().__init__()
        self.request, self.path, self.signals = request, path, signals

    def run(self) -> None:
        try:
            photo = read_image(self.path)
        except ColorizerError as exc:
            self.signals.failed.emit(self.request, str(exc), str(self.path))
        except Exception as exc:  # a decoder bug must not take the window down
            log.exception("reading %s failed", self.path)
            self.signals.failed.emit(self.request, f"Unexpected error reading {self.path.name}: {exc}", str(self.path))
        else:
            self.signals.done.emit(self.request, photo, str(self.path))


class ColorizeTab(QWidget):
    """One photo at a time: input gray, colour result, stage thumbnails, controls.

    Signals:
      status_message(str): a line for the status bar.
      busy_changed(bool): weights loading or networks running.
      info_changed(): device, photo size or timing changed (status labels).
      photo_opened(str): a file was opened (for the recent-files list).
      train_requested(): the banner's "Open Train tab" button.
      weights_loaded(dict): the worker's info dict after a successful load.
      result_displayed(int): the request id whose full-resolution result is
        now on screen (after colorizing or re-rendering).
    """

    status_message = Signal(str)
    busy_changed = Signal(bool)
    info_changed = Signal()
    photo_opened = Signal(str)
    train_requested = Signal()
    weights_loaded = Signal(dict)
    result_displayed = Signal(int)

    def __init__(self, settings: QSettings, device: str = "auto", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("colorizeTab")
        self._settings = settings
        self._device = device
        self._photo: Photo | None = None
        self._photo_name = ""
        self._result: Result | None = None
        self._result_id = 0
        self._thumb_result: Result | None = None
        self._gray_image = QImage()
        self._inflight_id: int | None = None
        self._loading = False
        self._model_info: dict | None = None
        self._view_key: tuple[str, str] = ("refined", "image")
        self._split = DEFAULT_SPLIT
        self._syncing = False
        self._working_size_set_by_user = settings.contains("colorize/working_size")
        self._shut_down = False

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

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_DEBOUNCE_MS)
        self._render_timer.timeout.connect(self._rerender)
        self._ws_timer = QTimer(self)
        self._ws_timer.setSingleShot(True)
        self._ws_timer.setInterval(WORKING_SIZE_DEBOUNCE_MS)
        self._ws_timer.timeout.connect(self.colorize)

        self._build_ui()
        self._restore_settings()

    # =================================================================== UI

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(8)
        outer.addWidget(self._build_banner())

        self.main_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.main_splitter.setObjectName("colorizeMainSplitter")
        self.main_splitter.setChildrenCollapsible(False)
        self.main_splitter.addWidget(self._build_controls())

        self.outer_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.outer_splitter.setChildrenCollapsible(False)
        self.views_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.views_splitter.setChildrenCollapsible(False)

        self.input_view = ImageView("Drop a black-and-white photo here\nor open one with Ctrl+O")
        self.input_view.setObjectName("inputView")
        self.result_view = ImageView("The colorized photo appears here")
        self.result_view.setObjectName("resultView")
        self.result_view.set_split_labels("Gray", "Colour")

        self.input_title = QLabel("Input · the gray the model sees")
        self.result_title = QLabel("Result · " + STAGE_TITLES["refined"])
        self.back_button = QToolButton()
        self.back_button.setText("Back to result")
        self.back_button.setIcon(icon("fa5s.undo"))
        self.back_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.back_button.setAutoRaise(True)
        self.back_button.setToolTip("Show the refined colour result again")
        self.back_button.setVisible(False)
        self.back_button.clicked.connect(self.show_result)
        self.views_splitter.addWidget(self._pane(self.input_title, self.input_view, self._build_zoom_bar()))
        self.views_splitter.addWidget(self._pane(self.result_title, self.result_view, self.back_button))
        # Equal stretch keeps the two views the same size, so "Fit" gives
        # both the same zoom and they stay comparable.
        self.views_splitter.setStretchFactor(0, 1)
        self.views_splitter.setStretchFactor(1, 1)

        self.stage_panel = StagePanel(self)
        self.stage_panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.stage_panel.selected.connect(self.show_stage)

        self.outer_splitter.addWidget(self.views_splitter)
        self.outer_splitter.addWidget(self.stage_panel)
        self.outer_splitter.setStretchFactor(0, 1)
        self.outer_splitter.setStretchFactor(1, 0)
        self.main_splitter.addWidget(self.outer_splitter)
        self.main_splitter.setStretchFactor(0, 0)
        self.main_splitter.setStretchFactor(1, 1)
        outer.addWidget(self.main_splitter, 1)

        self.input_view.view_changed.connect(lambda: self._sync(self.input_view, self.result_view))
        self.result_view.view_changed.connect(lambda: self._sync(self.result_view, self.input_view))
        self.input_view.view_changed.connect(self._update_zoom_label)
        self.result_view.view_changed.connect(self._update_zoom_label)
        self.result_view.split_changed.connect(self._on_split_dragged)
        self.result_view.clicked.connect(self._on_result_clicked)

    def _pane(self, title: QLabel, view: ImageView, extra: QWidget | None) -> QWidget:
        pane = QWidget()
        col = QVBoxLayout(pane)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        head = QHBoxLayout()
        head.setContentsMargins(2, 0, 2, 0)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        title.setMinimumHeight(24)
        head.addWidget(title)
        head.addStretch(1)
        if extra is not None:
            head.addWidget(extra)
        col.addLayout(head)
        frame = QFrame()
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(frame)
        inner.setContentsMargins(1, 1, 1, 1)
        inner.addWidget(view)
        col.addWidget(frame, 1)
        return pane

    def _build_banner(self) -> QFrame:
        self.banner = QFrame(self)
        self.banner.setObjectName("noWeightsBanner")
        # Translucent amber reads as a warning on light and dark palettes alike.
        self.banner.setStyleSheet(
            "#noWeightsBanner { background: rgba(255, 176, 32, 48); border: 1px solid rgba(230, 150, 0, 160);"
            " border-radius: 6px; }"
        )
        row = QHBoxLayout(self.banner)
        row.setContentsMargins(12, 8, 12, 8)
        row.setSpacing(10)
        warn = QLabel()
        warn.setPixmap(icon("fa5s.exclamation-triangle", "#e69600").pixmap(20, 20))
        row.addWidget(warn)
        self.banner_label = QLabel(NO_WEIGHTS_TEXT)
        self.banner_label.setWordWrap(True)
        row.addWidget(self.banner_label, 1)
        self.banner_load_button = QPushButton(icon("fa5s.file-import"), "Load Weights…")
        self.banner_load_button.setToolTip("Choose a .safetensors weights file")
        self.banner_load_button.clicked.connect(self.load_weights_dialog)
        row.addWidget(self.banner_load_button)
        self.banner_train_button = QPushButton(icon("fa5s.dumbbell"), "Open Train tab")
        self.banner_train_button.setToolTip("Train a model on your own photos")
        self.banner_train_button.clicked.connect(self.train_requested)
        row.addWidget(self.banner_train_button)
        self.banner.setVisible(False)
        return self.banner

    def _build_controls(self) -> QWidget:
        panel = QWidget(self)
        panel.setObjectName("colorizeControls")
        panel.setMinimumWidth(270)
        panel.setMaximumWidth(380)
        col = QVBoxLayout(panel)
        col.setContentsMargins(0, 0, 6, 0)
        col.setSpacing(10)

        # --- Photo
        photo_box = QGroupBox("Photo", panel)
        pl = QVBoxLayout(photo_box)
        pl.setSpacing(6)
        buttons = QHBoxLayout()
        self.open_button = QPushButton(icon("fa5s.folder-open"), "Open…")
        self.open_button.setToolTip("Open a photo (Ctrl+O); you can also drop one on the window")
        self.open_button.clicked.connect(self.open_dialog)
        self.paste_button = QPushButton(icon("fa5s.paste"), "Paste")
        self.paste_button.setToolTip("Colorize the image on the clipboard (Ctrl+V)")
        self.paste_button.clicked.connect(self.paste)
        buttons.addWidget(self.open_button, 1)
        buttons.addWidget(self.paste_button, 1)
        pl.addLayout(buttons)
        self.photo_label = QLabel("No photo open")
        self.photo_label.setWordWrap(True)
        self.photo_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.photo_details = QLabel("")
        self.photo_details.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.photo_details.setWordWrap(True)
        pl.addWidget(self.photo_label)
        pl.addWidget(self.photo_details)
        col.addWidget(photo_box)

        # --- Model / networks
        model_box = QGroupBox("Model", panel)
        ml = QVBoxLayout(model_box)
        ml.setSpacing(6)
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.model_details = QLabel("")
        self.model_details.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.model_details.setWordWrap(True)
        ml.addWidget(self.model_label)
        ml.addWidget(self.model_details)
        form = QFormLayout()
        form.setContentsMargins(0, 4, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.working_size_spin = QSpinBox()
        self.working_size_spin.setRange(WORKING_SIZE_MIN, WORKING_SIZE_MAX)
        self.working_size_spin.setSingleStep(WORKING_SIZE_STEP)
        self.working_size_spin.setStepType(QSpinBox.StepType.DefaultStepType)
        self.working_size_spin.setSuffix(" px")
        self.working_size_spin.setValue(DEFAULT_WORKING_SIZE)
        self.working_size_spin.setToolTip(
            f"Long side of the image the networks see ({WORKING_SIZE_MIN}–{WORKING_SIZE_MAX}). "
            "Larger sizes give finer colour boundaries but take longer; the output is always full size. "
            "Changing it colorizes again."
        )
        self.working_size_spin.valueChanged.connect(self._on_working_size_changed)
        form.addRow("Working size", self.working_size_spin)
        ml.addLayout(form)
        model_buttons = QHBoxLayout()
        self.load_button = QPushButton(icon("fa5s.file-import"), "Load…")
        self.load_button.setToolTip("Load a .safetensors weights file (Model > Load Weights)")
        self.load_button.clicked.connect(self.load_weights_dialog)
        self.rerun_button = QPushButton(icon("fa5s.magic"), "Colorize")
        self.rerun_button.setToolTip("Run both networks on the photo again")
        # While the networks run the same button cancels them (a working size
        # of 1024 takes half a minute on a CPU).
        self.rerun_button.clicked.connect(self._colorize_or_cancel)
        model_buttons.addWidget(self.load_button, 1)
        model_buttons.addWidget(self.rerun_button, 1)
        ml.addLayout(model_buttons)
        col.addWidget(model_box)

        # --- Rendering (no network run)
        render_box = QGroupBox("Colour", panel)
        rl = QVBoxLayout(render_box)
        rl.setSpacing(6)
        sat_row = QHBoxLayout()
        sat_row.addWidget(QLabel("Saturation"))
        sat_row.addStretch(1)
        self.saturation_value = QLabel("100 %")
        self.saturation_value.setMinimumWidth(
            self.saturation_value.fontMetrics().horizontalAdvance(f"{SATURATION_PERCENT_MAX} %") + 4)
        self.saturation_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        sat_row.addWidget(self.saturation_value)
        # One click back to the colours as predicted.
        self.saturation_reset = QToolButton()
        self.saturation_reset.setText("Reset")
        self.saturation_reset.setToolTip("Back to the saturation as predicted (100 %)")
        self.saturation_reset.clicked.connect(lambda: self.saturation_slider.setValue(100))
        sat_row.addWidget(self.saturation_reset)
        rl.addLayout(sat_row)
        self.saturation_slider = QSlider(Qt.Orientation.Horizontal)
        self.saturation_slider.setRange(SATURATION_PERCENT_MIN, SATURATION_PERCENT_MAX)
        self.saturation_slider.setValue(100)
        self.saturation_slider.setSingleStep(5)
        self.saturation_slider.setPageStep(25)
        self.saturation_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.saturation_slider.setTickInterval(50)
        self.saturation_slider.setToolTip("Gain on the predicted saturation: 0 % is gray, 100 % as predicted, "
                                          f"200 % doubled, up to {SATURATION_PERCENT_MAX} %")
        self.saturation_slider.valueChanged.connect(self._on_saturation_changed)
        rl.addWidget(self.saturation_slider)
        rl.addSpacing(2)
        rl.addWidget(QLabel("Recompose with"))
        self.mode_combo = QComboBox()
        for key, text in MODES:
            self.mode_combo.addItem(text, key)
        self.mode_combo.setToolTip(
            "How H and S are put back together with the gray. Luma keeps the photo's gray exactly "
            "(its brightness is untouched); V uses the gray as HSV value, as in the paper."
        )
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        rl.addWidget(self.mode_combo)
        self.compare_check = QCheckBox("Before/after divider on the result")
        self.compare_check.setChecked(True)
        self.compare_check.setToolTip("Drag the divider on the result: gray on its left, colour on its right")
        self.compare_check.toggled.connect(self._on_compare_toggled)
        rl.addWidget(self.compare_check)
        col.addWidget(render_box)

        col.addStretch(1)
        tips = QLabel(
            "Stage 1 predicts hue and saturation at 1/4 size; stage 2 refines them at the working size. "
            "The photo's own gray is kept at full resolution.\n\n"
            "Drag the divider on the result to compare, click a stage thumbnail to inspect it, "
            "wheel to zoom and drag to pan."
        )
        tips.setWordWrap(True)
        tips.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        tips.setContentsMargins(4, 0, 4, 4)
        col.addWidget(tips)

        # --- Save
        self.save_button = QPushButton(icon("fa5s.save"), "Save As…")
        self.save_button.setToolTip("Save the full-size colour photo (PNG, JPEG, TIFF or WebP) (Ctrl+S)")
        self.save_button.clicked.connect(self.save_as_dialog)
        self.save_stages_button = QPushButton(icon("fa5s.layer-group"), "Save Stages…")
        self.save_stages_button.setToolTip("Save stage 1's colour image and both stages' hue and saturation maps into a folder")
        self.save_stages_button.clicked.connect(self.save_stages_dialog)
        save_row = QHBoxLayout()
        save_row.addWidget(self.save_button, 1)
        save_row.addWidget(self.save_stages_button, 1)
        col.addLayout(save_row)
        self._update_enabled()
        return panel

    def _build_zoom_bar(self) -> QWidget:
        """Fit / 100% / zoom buttons and the zoom level, for both (synced) views."""
        bar = QWidget(self)
        row = QHBoxLayout(bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self.zoom_label = QLabel("")
        self.zoom_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("3200 %") + 8)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.zoom_label.setToolTip("Zoom of both views (wheel to zoom, drag to pan)")
        row.addWidget(self.zoom_label)
        self.fit_button = self._tool(bar, "fa5s.expand", "Fit", "Fit the photo in the views (Ctrl+0)", self.fit)
        self.actual_button = self._tool(bar, "fa5s.search", "100%", "One photo pixel per screen pixel (Ctrl+1)", self.actual_size)
        self.zoom_out_button = self._tool(bar, "fa5s.search-minus", "", "Zoom out (Ctrl+-)", self.zoom_out)
        self.zoom_in_button = self._tool(bar, "fa5s.search-plus", "", "Zoom in (Ctrl++)", self.zoom_in)
        for b in (self.fit_button, self.actual_button, self.zoom_out_button, self.zoom_in_button):
            row.addWidget(b)
        return bar

    @staticmethod
    def _tool(parent: QWidget, icon_name: str, text: str, tip: str, slot) -> QToolButton:  # noqa: ANN001
        b = QToolButton(parent)
        b.setIcon(icon(icon_name))
        b.setAutoRaise(True)
        if text:
            b.setText(text)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def _update_zoom_label(self) -> None:
        view = self._leader()
        self.zoom_label.setText(f"{view.scale_factor() * 100:.0f} %" if view.has_image() else "")

    # ============================================================= settings

    def _restore_settings(self) -> None:
        s = self._settings
        with QSignalBlocker(self.saturation_slider):
            self.saturation_slider.setValue(int(s.value("colorize/saturation", 100, int)))
        self.saturation_value.setText(f"{self.saturation_slider.value()} %")
        mode = str(s.value("colorize/mode", "luma"))
        idx = self.mode_combo.findData(mode)
        with QSignalBlocker(self.mode_combo):
            self.mode_combo.setCurrentIndex(max(0, idx))
        with QSignalBlocker(self.working_size_spin):
            self.working_size_spin.setValue(int(s.value("colorize/working_size", DEFAULT_WORKING_SIZE, int)))
        with QSignalBlocker(self.compare_check):
            self.compare_check.setChecked(s.value("colorize/compare", True, bool))
        self._splitters_restored = True
        for key, splitter in self._splitters().items():
            state = s.value(key)
            if state is None or not splitter.restoreState(state):
                self._splitters_restored = False

    def showEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().showEvent(event)
        if not self._splitters_restored:
            # First start: a narrow control column and equal halves for input
            # and result (the splitters would otherwise follow the size hints
            # of wrapped labels and headers). Large numbers are scaled to fit.
            self._splitters_restored = True
            self.main_splitter.setSizes([300, 100000])
            self.views_splitter.setSizes([10000, 10000])

    def save_settings(self) -> None:
        s = self._settings
        s.setValue("colorize/saturation", self.saturation_slider.value())
        s.setValue("colorize/mode", self.mode())
        if self._working_size_set_by_user:
            s.setValue("colorize/working_size", self.working_size_spin.value())
        s.setValue("colorize/compare", self.compare_check.isChecked())
        for key, splitter in self._splitters().items():
            s.setValue(key, splitter.saveState())

    def _splitters(self) -> dict[str, QSplitter]:
        return {
            "colorize/splitter_main": self.main_splitter,
            "colorize/splitter_views": self.views_splitter,
            "colorize/splitter_outer": self.outer_splitter,
        }

    # ============================================================ accessors

    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    def saturation(self) -> float:
        return self.saturation_slider.value() / 100.0

    def working_size(self) -> int:
        return int(self.working_size_spin.value())

    @property
    def photo(self) -> Photo | None:
        return self._photo

    @property
    def result(self) -> Result | None:
        return self._result

    @property
    def photo_name(self) -> str:
        return self._photo_name

    @property
    def model_info(self) -> dict | None:
        return self._model_info

    def weights_path(self) -> str | None:
        """The loaded weights file (the Batch tab uses the same), or None."""
        return (self._model_info or {}).get("weights_path")

    def is_busy(self) -> bool:
        return self._loading or self._inflight_id is not None

    def device(self) -> str:
        """The device this window was asked to run the networks on (a name of choices.DEVICES or "cuda:N")."""
        return self._device

    def device_text(self) -> str:
        return (self._model_info or {}).get("device", "")

    def size_text(self) -> str:
        if self._photo is None:
            return ""
        w, h = self._photo.size
        return f"{w} × {h} px · {self._photo.bit_depth}-bit"

    def time_text(self) -> str:
        if self._result is None:
            return ""
        return f"{self._result.seconds:.2f} s"

    # =============================================================== model

    def start(self, weights: str | None = None, load_default: bool = True) -> None:
        """Load the given weights, else the default ones; show the banner if there are none."""
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
        """Load weights in the inference thread; ``weights_loaded`` reports success."""
        self._loading = True
        self._inflight_id = None
        self._update_busy()
        self.status_message.emit(f"Loading weights {Path(path).name if path else '(default)'}…")
        self.inference.load_weights(path, self._device)

    def load_default_weights(self) -> None:
        """Back to the shipped model (models/), whatever was loaded since."""
        self.load_weights(None)

    def load_weights_dialog(self) -> None:
        start = str(self._settings.value("paths/last_weights_dir", str(Path.cwd() / "models")))
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", start, "Weights (*.safetensors);;All files (*)")
        if path:
            self._settings.setValue("paths/last_weights_dir", str(Path(path).parent))
            self.load_weights(path)

    def _on_loaded(self, info: dict) -> None:
        self._loading = False
        self._model_info = info
        self._set_banner(False)
        if not self._working_size_set_by_user:
            with QSignalBlocker(self.working_size_spin):
                self.working_size_spin.setValue(int(info.get("working_size") or DEFAULT_WORKING_SIZE))
        meta = info.get("meta", {})
        name = meta.get("name") or Path(info.get("weights_path") or "model").stem
        self.model_label.setText(name)
        params = (meta.get("parameters") or {}).get("total") or info["counted_parameters"]["total"]
        self.model_details.setText(f"{params / 1e6:.1f} M parameters · {info.get('device', '')}")
        self.model_label.setToolTip(info.get("weights_path") or "")
        self._update_busy()
        self._update_enabled()
        self.info_changed.emit()
        self.weights_loaded.emit(info)
        self.status_message.emit(f"Loaded {name} on {info.get('device', '')}")
        if self._photo is not None:
            self.colorize()

    def _on_load_failed(self, message: str) -> None:
        self._loading = False
        self._update_busy()
        if self._model_info is None:
            self._set_banner(True)
        elif self._photo is not None and self._result is None:
            # The load request cancelled a colorization in flight; the
            # previous model is still loaded, so finish the job with it.
            self.colorize()
        show_error(self, "Could not load weights", message)
        self.status_message.emit("Loading weights failed")

    def _set_banner(self, visible: bool) -> None:
        self.banner.setVisible(visible)
        if visible and self._photo is not None and self._result is None:
            self.result_view.set_placeholder("No model loaded — load weights to colorize")

    def banner_visible(self) -> bool:
        return not self.banner.isHidden()

    # =============================================================== photos

    def open_dialog(self) -> None:
        start = str(self._settings.value("paths/last_open_dir", _documents_dir()))
        patterns = " ".join(f"*{e}" for e in sorted(READ_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", start, f"Images ({patterns});;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Read a photo and colorize it; a bad file shows an error and returns False.

        A big file is decoded on a pool thread (returns True at once; an error
        then shows when the read fails); a newer open supersedes it.
        """
        path = Path(path)
        self._read_request = getattr(self, "_read_request", 0) + 1
        try:
            big = path.is_file() and path.stat().st_size > ASYNC_READ_BYTES
        except OSError:
            big = False
        if big:
            if not hasattr(self, "_read_signals"):
                self._read_signals = _ReadSignals(self)
                self._read_signals.done.connect(self._on_read_done)
                self._read_signals.failed.connect(self._on_read_failed)
            self.result_view.set_placeholder(f"Reading {path.name}…")
            self.status_message.emit(f"Reading {path.name}…")
            QThreadPool.globalInstance().start(_ReadTask(self._read_request, path, self._read_signals))
            return True
        try:
            photo = read_image(path)
        except ColorizerError as exc:
            show_error(self, "Could not open the photo", str(exc))
            return False
        except Exception as exc:  # a decoder bug must not take the window down
            log.exception("reading %s failed", path)
            show_error(self, "Could not open the photo", f"Unexpected error reading {path.name}: {exc}")
            return False
        self._opened(photo, path)
        return True

    def _opened(self, photo: Photo, path: Path) -> None:
        self._settings.setValue("paths/last_open_dir", str(path.parent))
        self.set_photo(photo, path.name)
        self.photo_opened.emit(str(path))

    def _on_read_done(self, request: int, photo: Photo, path: str) -> None:
        if request == self._read_request and not getattr(self, "_shut_down", False):
            self._opened(photo, Path(path))

    def _on_read_failed(self, request: int, message: str, path: str) -> None:
        if request == self._read_request and not getattr(self, "_shut_down", False):
            show_error(self, "Could not open the photo", message)

    def paste(self) -> bool:
        """Colorize the clipboard's image (or the image file it names)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files and Path(files[0]).is_file():
                return self.open_path(files[0])
        image = QGuiApplication.clipboard().image()
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

    def set_photo(self, photo: Photo, name: str) -> None:
        """Show ``photo``'s gray in the input view and start colorizing it.

        photo.pixels: HxW or HxWx3, uint8 or uint16 (see imageio.Photo).
        """
        # The newest photo wins: a big file still being read when this one
        # arrives (a paste, say) must not replace it when its read ends.
        self._read_request = getattr(self, "_read_request", 0) + 1
        self._photo = photo
        self._photo_name = name
        self._result = None
        self._thumb_result = None
        self.renderer.cancel()
        gray = color.gray_of(photo.pixels)  # HxW float32 in [0, 1]
        self._gray_image = numpy_to_qimage(gray)
        self.input_view.set_image(self._gray_image)
        self._update_zoom_label()
        self.result_view.clear()
        self.result_view.set_placeholder("Colorizing…" if self._model_ready_or_loading() else "No model loaded — load weights to colorize")
        self.stage_panel.clear()
        self._view_key = ("refined", "image")
        self._update_titles()
        w, h = photo.size
        self.photo_label.setText(name)
        self.photo_label.setToolTip(str(photo.path) if photo.path else name)
        details = f"{w} × {h} px · {photo.bit_depth}-bit"
        if photo.alpha is not None:
            details += " · alpha"
        if photo.is_color:
            details += " · colour (its gray is used)"
        self.photo_details.setText(details)
        self._update_enabled()
        self.info_changed.emit()
        self.colorize()

    def _model_ready_or_loading(self) -> bool:
        return self._loading or self._model_info is not None

    # ============================================================ inference

    def colorize(self) -> int | None:
        """Run the networks on the open photo; returns the request id (None if not started)."""
        self._ws_timer.stop()
        if self._photo is None or self._shut_down:
            return None
        if self._model_info is None:
            if not self._loading:
                self.status_message.emit("Load weights to colorize (Model > Load Weights)")
            # When loading finishes, _on_loaded colorizes the open photo.
            return None
        request_id = self.inference.colorize(self._photo, self.working_size())
        self._inflight_id = request_id
        self._update_busy()
        return request_id

    def _colorize_or_cancel(self) -> None:
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
        if self._result is None:
            self.result_view.set_placeholder("Cancelled — press Colorize to run the networks")
        self.status_message.emit(f"Colorizing {self._photo_name} cancelled")
        self._update_busy()

    def _on_started(self, request_id: int) -> None:
        if request_id == self.inference.latest_id:
            self.status_message.emit(f"Colorizing {self._photo_name} at working size {self.working_size()} px…")

    def _on_finished(self, request_id: int, result: Result) -> None:
        if request_id != self.inference.latest_id:
            return  # an older request finished after a newer one was sent
        self._inflight_id = None
        self._result = result
        self._result_id = request_id
        self._thumb_result = preview_result(result, THUMB_MAX_SIDE)
        h1, w1 = result.stage1_hs.shape[1:]
        h2, w2 = result.refined_hs.shape[1:]
        self.stage_panel.set_details("stage1", f"maps {w1} × {h1}")
        self.stage_panel.set_details("refined", f"maps {w2} × {h2}")
        self._update_thumbnails(maps=True)
        # The input view already holds the gray as a pixmap; share it.
        self.result_view.set_compare_image(self.input_view.pixmap())
        self._show_current()
        self._update_busy()
        self._update_enabled()
        self.info_changed.emit()
        self.status_message.emit(f"Colorized {self._photo_name} in {result.seconds:.2f} s on {result.device}")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self.inference.latest_id:
            return
        self._inflight_id = None
        self._update_busy()
        if self._result is None:
            self.result_view.set_placeholder("Colorizing failed")
        show_error(self, "Colorizing failed", message)
        self.status_message.emit("Colorizing failed")

    def _on_working_size_changed(self, _value: int) -> None:
        self._working_size_set_by_user = True
        if self._photo is not None and self._model_info is not None:
            self._ws_timer.start()

    # ============================================================ rendering

    def _on_saturation_changed(self, value: int) -> None:
        self.saturation_value.setText(f"{value} %")
        self._render_timer.start()

    def _on_mode_changed(self, _index: int) -> None:
        self._render_timer.start()

    def _rerender(self) -> None:
        if self._result is None:
            return
        self._update_thumbnails(maps=False)
        self._show_current()

    def _update_thumbnails(self, maps: bool) -> None:
        """Thumbnails are rendered from a small copy of the result on this thread (a few ms)."""
        r = self._thumb_result
        if r is None:
            return
        mode, sat = self.mode(), self.saturation()
        images: dict[tuple[str, str], QImage] = {}
        try:
            for stage in ("stage1", "refined"):
                images[(stage, "image")] = numpy_to_qimage(_to8(r.render(stage, mode, sat)))
                if maps:
                    images[(stage, "hue")] = numpy_to_qimage(r.hue_image(stage))
                    images[(stage, "saturation")] = numpy_to_qimage(r.saturation_image(stage))
        except ColorizerError as exc:
            show_error(self, "Could not render", str(exc))
            return
        self.stage_panel.set_images(images)

    def _show_current(self) -> None:
        """Put what ``_view_key`` names into the result view (maps now, images via the render thread)."""
        if self._result is None:
            return
        stage, kind = self._view_key
        self.stage_panel.set_selected(stage, kind)
        self._update_titles()
        if kind == "image":
            self.renderer.render(self._result, stage, self.mode(), self.saturation())
            return
        self.renderer.cancel()
        arr = self._result.hue_image(stage) if kind == "hue" else self._result.saturation_image(stage)
        self._display(numpy_to_qimage(arr), split=False)
        self.result_displayed.emit(self._result_id)

    def _on_rendered(self, render_id: int, image: QImage, is_preview: bool) -> None:
        if render_id != self.renderer.latest_id or self._result is None:
            return
        self._display(image, split=True)
        if not is_preview:
            self.result_displayed.emit(self._result_id)

    def _on_render_failed(self, render_id: int, message: str) -> None:
        if render_id == self.renderer.latest_id:
            show_error(self, "Could not render", message)

    def _display(self, image: QImage, split: bool) -> None:
        first = not self.result_view.has_image()
        self.result_view.set_image(image, photo_size=self._result.size)
        self.result_view.set_split(self._split if split and self.compare_check.isChecked() else None)
        if first and self.input_view.has_image():
            # Take over whatever zoom the user chose on the input meanwhile.
            self._sync(self.input_view, self.result_view)

    def show_stage(self, stage: str, kind: str) -> None:
        """Show one stage's image or map large in the result view."""
        self._view_key = (stage, kind)
        self._show_current()
        self._update_titles()

    def show_result(self) -> None:
        self.show_stage("refined", "image")

    def _on_result_clicked(self) -> None:
        if self._view_key != ("refined", "image"):
            self.show_result()

    def _update_titles(self) -> None:
        stage, kind = self._view_key
        if (stage, kind) == ("refined", "image"):
            self.result_title.setText("Result · " + STAGE_TITLES["refined"])
        else:
            self.result_title.setText(f"{STAGE_TITLES[stage]} · {KIND_CAPTIONS[kind]}")
        self.back_button.setVisible((stage, kind) != ("refined", "image"))

    def _on_compare_toggled(self, on: bool) -> None:
        if self._view_key[1] == "image" and self.result_view.has_image():
            self.result_view.set_split(self._split if on else None)

    def _on_split_dragged(self, fraction: float) -> None:
        self._split = fraction

    def set_split(self, fraction: float) -> None:
        """Move the before/after divider (0: all colour, 1: all gray)."""
        self._split = min(1.0, max(0.0, fraction))
        if self.result_view.split() is not None:
            self.result_view.set_split(self._split)

    # ================================================================= view

    def _sync(self, src: ImageView, dst: ImageView) -> None:
        if self._syncing or not src.has_image() or not dst.has_image():
            return
        if src.image_size() != dst.image_size():
            return
        self._syncing = True
        try:
            if src.is_fit():
                # Each view fits its own viewport (they may differ in size).
                dst.fit_quietly()
            else:
                dst.apply_view_state(*src.view_state())
        finally:
            self._syncing = False

    def _leader(self) -> ImageView:
        return self.input_view if self.input_view.has_image() else self.result_view

    def fit(self) -> None:
        self._leader().fit()

    def actual_size(self) -> None:
        self._leader().actual_size()

    def zoom_in(self) -> None:
        self._leader().zoom_by(1.25)

    def zoom_out(self) -> None:
        self._leader().zoom_by(0.8)

    # ================================================================ saving

    def _default_save_name(self, suffix: str) -> str:
        stem = Path(self._photo_name).stem if self._photo_name else "photo"
        stem = stem.replace(" ", "_")
        return f"{stem}{suffix}"

    def save_as_dialog(self) -> None:
        if self._result is None:
            self.status_message.emit("Nothing to save yet")
            return
        folder = str(self._settings.value("paths/last_save_dir", self._settings.value("paths/last_open_dir", _documents_dir())))
        start = str(Path(folder) / self._default_save_name("_color.png"))  # as `hsvcolorizer colorize` names it
        path, chosen = QFileDialog.getSaveFileName(self, "Save colorized photo", start, ";;".join(SAVE_FILTERS))
        if not path:
            return
        if not Path(path).suffix:
            path += SAVE_FILTERS.get(chosen, ".png")
        self.save_to(path)

    def save_to(self, path: str | os.PathLike[str]) -> bool:
        """Write the full-size refined colour photo (current mode and saturation).

        PNG/TIFF keep 16 bits for 16-bit photos; alpha is kept where the
        format allows. Refuses to overwrite the input photo.
        """
        path = Path(path)
        if self._result is None or self._photo is None:
            show_error(self, "Nothing to save", "Open and colorize a photo first.")
            return False
        if self._photo.path is not None and _same_file(path, self._photo.path):
            show_error(
                self,
                "Will not overwrite the input",
                f"{path.name} is the photo you opened; choose another name so the original is kept.",
            )
            return False
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            pixels = self._result.render("refined", self.mode(), self.saturation())
            write_image(path, pixels, alpha=self._result.alpha)
        except ColorizerError as exc:
            show_error(self, "Could not save", str(exc))
            return False
        except Exception as exc:
            log.exception("saving %s failed", path)
            show_error(self, "Could not save", f"Unexpected error writing {path.name}: {exc}")
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        self._settings.setValue("paths/last_save_dir", str(path.parent))
        self.status_message.emit(f"Saved {path}")
        return True

    def save_stages_dialog(self) -> None:
        if self._result is None:
            self.status_message.emit("Nothing to save yet")
            return
        start = str(self._settings.value("paths/last_save_dir", self._settings.value("paths/last_open_dir", _documents_dir())))
        folder = QFileDialog.getExistingDirectory(self, "Save stages into folder", start)
        if folder:
            self.save_stages_to(folder)

    def stage_file_names(self) -> dict[str, str]:
        """What save_stages_to writes: key -> file name."""
        return {
            "result": self._default_save_name("_color.png"),
            "stage1": self._default_save_name("_stage1.png"),
            "stage1_hue": self._default_save_name("_stage1_hue.png"),
            "stage1_saturation": self._default_save_name("_stage1_saturation.png"),
            "stage2_hue": self._default_save_name("_stage2_hue.png"),
            "stage2_saturation": self._default_save_name("_stage2_saturation.png"),
        }

    def save_stages_to(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write the result, stage 1's full-size colour image and both stages'
        H and S maps (at each stage's own resolution) as PNGs into ``folder``,
        made if missing (as the command line's --save-stages does)."""
        folder = Path(folder)
        if self._result is None:
            show_error(self, "Nothing to save", "Open and colorize a photo first.")
            return []
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            show_error(self, "Could not save the stages", f"cannot make the folder {folder}: {exc.strerror or exc}")
            return []
        names = self.stage_file_names()
        targets = {k: folder / n for k, n in names.items()}
        if self._photo is not None and self._photo.path is not None:
            for t in targets.values():
                if _same_file(t, self._photo.path):
                    show_error(self, "Will not overwrite the input", f"{t.name} in {folder} is the photo you opened.")
                    return []
        existing = [t.name for t in targets.values() if t.exists()]
        if existing and not ask_yes_no(
            self, "Replace files?", f"{len(existing)} of the files already exist in {folder} ({existing[0]}…). Replace them?"
        ):
            return []
        r = self._result
        written: list[Path] = []
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            write_image(targets["result"], r.render("refined", self.mode(), self.saturation()), alpha=r.alpha)
            written.append(targets["result"])
            write_image(targets["stage1"], r.render("stage1", self.mode(), self.saturation()), alpha=r.alpha)
            written.append(targets["stage1"])
            for stage, prefix in (("stage1", "stage1"), ("refined", "stage2")):
                write_image(targets[f"{prefix}_hue"], r.hue_image(stage))
                written.append(targets[f"{prefix}_hue"])
                write_image(targets[f"{prefix}_saturation"], r.saturation_image(stage))
                written.append(targets[f"{prefix}_saturation"])
        except ColorizerError as exc:
            show_error(self, "Could not save the stages", str(exc))
            return written
        finally:
            QGuiApplication.restoreOverrideCursor()
        self._settings.setValue("paths/last_save_dir", str(folder))
        self.status_message.emit(f"Saved {len(written)} stage images to {folder}")
        return written

    # ================================================================ state

    def _update_busy(self) -> None:
        self.busy_changed.emit(self.is_busy())
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_result = self._result is not None
        self.save_button.setEnabled(has_result)
        self.save_stages_button.setEnabled(has_result)
        self.rerun_button.setEnabled(self._photo is not None and self._model_info is not None)
        running = self._inflight_id is not None
        self.rerun_button.setText("Cancel" if running else "Colorize")
        self.rerun_button.setIcon(icon("fa5s.stop" if running else "fa5s.magic"))
        self.rerun_button.setToolTip("Stop the networks now" if running else "Run both networks on the photo again")

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop both worker threads (a running inference aborts at its next layer)."""
        self._shut_down = True
        self._render_timer.stop()
        self._ws_timer.stop()
        ok_inference = self.inference.shutdown(timeout_ms)
        ok_render = self.renderer.shutdown(timeout_ms)
        # A photo still being decoded only reads: let it end before Qt goes.
        QThreadPool.globalInstance().waitForDone(max(0, int(timeout_ms)))
        self._inflight_id = None
        self._loading = False
        return ok_inference and ok_render


def _to8(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8/uint16 -> uint8 for thumbnails (the core's imageio.to_8bit)."""
    return to_8bit(rgb)
