"""The Colorize tab: open one photo, see the gray the model sees beside its colours.

Left to right it reads as the job: controls, the input (gray) and the result,
with both stages' thumbnails underneath. This module is the view: layout,
bindings and dialogs. The state and the work (reading, the networks,
re-rendering at the size on screen, saving) are the ColorizeController's
(colorize_controller.py), so the window never waits on any of it.

The colour-hint tool lives here too: with "Add hints" on, a click on the
result adds a point at that photo pixel, its colour chosen in a dialog that
starts on the colour shown there; the points themselves (drawn over the
result, dragged, removed) are hint_overlay.HintOverlay's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPalette
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

from hsvcolorizer.choices import RECOMPOSE_MODES, SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN
from hsvcolorizer.gui.dialogs import file_dialog
from hsvcolorizer.gui.colorize_controller import ColorizeController
from hsvcolorizer.gui.common import ask_yes_no, icon, show_error
from hsvcolorizer.gui.elided import ElidedLabel
from hsvcolorizer.gui.hint_colour import choose_hint_colour
from hsvcolorizer.gui.hint_overlay import HintOverlay
from hsvcolorizer.gui.image_view import ImageView
from hsvcolorizer.gui.settings import AppSettings, documents_dir
from hsvcolorizer.gui.stage_panel import KIND_CAPTIONS, STAGE_TITLES, StagePanel
from hsvcolorizer.gui.tasks import Task
from hsvcolorizer.imageio import READ_EXTENSIONS, Photo, to_8bit
from hsvcolorizer.inference import DEFAULT_WORKING_SIZE, Result

__all__ = ["ColorizeTab", "HINTS_UNREAD_TEXT", "MODES", "NO_WEIGHTS_TEXT", "SAVE_FILTERS", "file_dialog"]

log = logging.getLogger(__name__)

NO_WEIGHTS_TEXT = (
    "No model weights found in models/. Load weights (Model > Load Weights) "
    "or train a model in the Train tab."
)
HINTS_UNREAD_TEXT = ("This model does not take colour hints; load one trained with --hints "
                     "(Model > Load Weights)")
HINT_TOOL_TIP = ("Click the result to add a point of known colour; drag a point to move it, "
                 "double-click it to change its colour, right-click it or press Delete to remove it. "
                 "Every change colorizes again.")
_MODE_LABELS = {"luma": "Luma — keeps the photo's gray", "v": "V — the paper's"}
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
DEFAULT_SPLIT = 0.5
# Qt's own file dialog opens at about 520 x 360, where the Name column shows
# a dozen characters of a photo's name; this size shows names, sizes and dates.


class ColorizeTab(QWidget):
    """One photo at a time: input gray, colour result, stage thumbnails, controls.

    ``controller`` (a ColorizeController) holds the state and does the work;
    the methods here that change state hand over to it.

    Signals:
      status_message(str): a line for the status bar.
      busy_changed(bool): weights loading or networks running.
      info_changed(): device, photo size or timing changed (status labels).
      photo_opened(str): a file was opened (for the recent-files list).
      train_requested(): the banner's "Open Train tab" button.
      weights_loaded(dict): the worker's info dict after a successful load.
      result_displayed(int): the request id whose result, as the options
        ask, is now on screen (after colorizing, re-rendering or zooming).
      saved(list): the paths a Save As or Save Stages wrote, once written.
    """

    status_message = Signal(str)
    busy_changed = Signal(bool)
    info_changed = Signal()
    photo_opened = Signal(str)
    train_requested = Signal()
    weights_loaded = Signal(dict)
    result_displayed = Signal(int)
    saved = Signal(list)

    def __init__(self, settings: AppSettings, device: str = "auto", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("colorizeTab")
        self._settings = AppSettings.wrap(settings)
        self.controller = ColorizeController(self._settings, device, self)
        self.inference = self.controller.inference
        self.renderer = self.controller.renderer
        self._split = DEFAULT_SPLIT
        self._syncing = False

        self._build_ui()
        self._restore_settings()
        self._bind()
        self._update_hint_tool()
        # The size the photo takes on screen changes with every zoom, pan
        # and resize; it is read once those settle.
        self._side_timer = QTimer(self)
        self._side_timer.setSingleShot(True)
        self._side_timer.setInterval(0)
        self._side_timer.timeout.connect(self._update_display_side)

    def _bind(self) -> None:
        c = self.controller
        c.status_message.connect(self.status_message)
        c.busy_changed.connect(self.busy_changed)
        c.busy_changed.connect(lambda _busy: self._update_enabled())
        c.info_changed.connect(self.info_changed)
        c.info_changed.connect(self._update_enabled)
        c.photo_opened.connect(self.photo_opened)
        c.error.connect(lambda title, message: show_error(self, title, message))
        c.photo_changed.connect(self._on_photo_changed)
        c.placeholder_changed.connect(self.result_view.set_placeholder)
        c.model_loaded.connect(self._on_model_loaded)
        c.banner_changed.connect(self.banner.setVisible)
        c.result_changed.connect(self._on_result_changed)
        c.thumbnails_changed.connect(self.stage_panel.set_images)
        c.view_changed.connect(self._on_view_changed)
        c.image_ready.connect(self._display)
        c.result_displayed.connect(self.result_displayed)
        c.saved.connect(self.saved)
        c.hints_changed.connect(self._on_hints_changed)

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

        self.input_title = ElidedLabel("Input · the gray the model sees", mode=Qt.TextElideMode.ElideRight)
        self.result_title = ElidedLabel("Result · " + STAGE_TITLES["refined"], mode=Qt.TextElideMode.ElideRight)
        self.back_button = QToolButton()
        self.back_button.setText("Back to result")
        self.back_button.setIcon(icon("fa5s.undo"))
        self.back_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.back_button.setAutoRaise(True)
        self.back_button.setToolTip("Show the refined colour result again")
        self.back_button.setVisible(False)
        self.back_button.clicked.connect(self.show_result)
        self.views_splitter.addWidget(self._pane(self.input_title, self.input_view, self._build_zoom_bar()))
        result_tools = QWidget(self)
        tools_row = QHBoxLayout(result_tools)
        tools_row.setContentsMargins(0, 0, 0, 0)
        tools_row.setSpacing(6)
        tools_row.addWidget(self._build_hint_bar())
        tools_row.addWidget(self.back_button)
        self.views_splitter.addWidget(self._pane(self.result_title, self.result_view, result_tools))
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
        for view in (self.input_view, self.result_view):
            view.view_changed.connect(self._update_zoom_label)
            view.view_changed.connect(self._schedule_display_side)
        self.result_view.split_changed.connect(self._on_split_dragged)
        self.result_view.clicked_at.connect(self._on_result_clicked)
        self.hint_overlay = HintOverlay(self.result_view)
        self.hint_overlay.move_requested.connect(self._on_hint_moved)
        self.hint_overlay.recolour_requested.connect(self._on_hint_recolour)
        self.hint_overlay.remove_requested.connect(self._on_hint_removed)

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
        # The title gives way (elided) to the buttons beside it.
        head.addWidget(title, 1)
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
        # One line, elided: a long file name must not widen the panel.
        self.photo_label = ElidedLabel("No photo open")
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
        self.model_label = ElidedLabel("No model loaded")
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
        self.working_size_spin.valueChanged.connect(self.controller.set_working_size)
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
        self.rerun_button.clicked.connect(self.controller.colorize_or_cancel)
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
        self.mode_combo.currentIndexChanged.connect(lambda _i: self.controller.set_mode(self.mode()))
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

    def _build_hint_bar(self) -> QWidget:
        """The hint tool over the result: the tool, the points' visibility,
        undo, redo and clear. Beside the view it acts on, as the zoom bar is,
        so it costs the control column no height."""
        bar = QWidget(self)
        bar.setObjectName("hintBar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self.hint_button = QToolButton(bar)
        self.hint_button.setObjectName("hintTool")
        self.hint_button.setCheckable(True)
        self.hint_button.setIcon(icon("fa5s.eye-dropper"))
        self.hint_button.setText("Hints")
        self.hint_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.hint_button.setAutoRaise(True)
        self.hint_button.toggled.connect(lambda _on: self._update_hint_tool())
        row.addWidget(self.hint_button)
        self.show_hints_button = QToolButton(bar)
        self.show_hints_button.setCheckable(True)
        self.show_hints_button.setChecked(True)
        self.show_hints_button.setAutoRaise(True)
        self.show_hints_button.setIcon(icon("fa5s.map-marker-alt"))
        self.show_hints_button.setToolTip("Show or hide the hint points on the result (they are kept either way)")
        self.show_hints_button.toggled.connect(self._on_show_hints_toggled)
        row.addWidget(self.show_hints_button)

        # Actions, so Ctrl+Z / Ctrl+Shift+Z work with the focus anywhere in
        # this tab (the result view after a click); a focused text field
        # keeps them for its own undo. The window has no other undo.
        self.undo_hint_action = self._hint_action("Undo hint", "fa5s.undo-alt", "Undo the last hint change",
                                                  [QKeySequence.StandardKey.Undo], self.controller.undo_hints)
        self.redo_hint_action = self._hint_action("Redo hint", "fa5s.redo-alt", "Redo the hint change undone",
                                                  [QKeySequence.StandardKey.Redo, "Ctrl+Shift+Z"],
                                                  self.controller.redo_hints)
        self.clear_hints_action = self._hint_action("Clear hints", "fa5s.trash-alt",
                                                    "Clear hints: remove every hint of this photo (Undo brings them back)",
                                                    [], self.controller.clear_hints)
        self.undo_hint_button, self.redo_hint_button, self.clear_hints_button = (
            self._action_button(a) for a in (self.undo_hint_action, self.redo_hint_action, self.clear_hints_action))
        for b in (self.undo_hint_button, self.redo_hint_button, self.clear_hints_button):
            row.addWidget(b)
        return bar

    def _hint_action(self, text: str, icon_name: str, tip: str, keys: list, slot) -> QAction:  # noqa: ANN001
        action = QAction(icon(icon_name), text, self)
        sequences: list[QKeySequence] = []
        for key in keys:
            for seq in (QKeySequence.keyBindings(key) if isinstance(key, QKeySequence.StandardKey) else [QKeySequence(key)]):
                if not seq.isEmpty() and seq not in sequences:
                    sequences.append(seq)
        action.setShortcuts(sequences)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        if sequences:
            tip = f"{tip} ({sequences[0].toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    @staticmethod
    def _action_button(action: QAction) -> QToolButton:
        b = QToolButton()
        b.setDefaultAction(action)
        # Icon only where there is an icon (the action's text is its tooltip's start).
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly if not action.icon().isNull()
                             else Qt.ToolButtonStyle.ToolButtonTextOnly)
        b.setAutoRaise(True)
        return b

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
        c = self.controller
        with QSignalBlocker(self.saturation_slider):
            self.saturation_slider.setValue(round(c.saturation() * 100))
        self.saturation_value.setText(f"{self.saturation_slider.value()} %")
        with QSignalBlocker(self.mode_combo):
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(c.mode())))
        with QSignalBlocker(self.working_size_spin):
            self.working_size_spin.setValue(c.working_size())
        with QSignalBlocker(self.compare_check):
            self.compare_check.setChecked(self._settings.get("colorize/compare"))
        self.show_hints_button.setChecked(self._settings.get("colorize/show_hints"))
        self._splitters_restored = True
        for key, splitter in self._splitters().items():
            state = self._settings.get(key)
            if state is None or not splitter.restoreState(state):
                self._splitters_restored = False

    def showEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().showEvent(event)
        if not self._splitters_restored:
            # First start: a narrow control column and equal halves for input
            # and result (the splitters would otherwise follow the size hints
            # of wrapped labels and headers). Large numbers are scaled to fit.
            self._splitters_restored = True
            self.main_splitter.setSizes([290, 100000])
            self.views_splitter.setSizes([10000, 10000])
        self._schedule_display_side()

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().resizeEvent(event)
        self._schedule_display_side()

    def save_settings(self) -> None:
        self.controller.save_settings()
        self._settings.set("colorize/compare", self.compare_check.isChecked())
        self._settings.set("colorize/show_hints", self.show_hints_button.isChecked())
        for key, splitter in self._splitters().items():
            self._settings.set(key, splitter.saveState())

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
        return self.controller.photo

    @property
    def result(self) -> Result | None:
        return self.controller.result

    @property
    def photo_name(self) -> str:
        return self.controller.photo_name

    @property
    def model_info(self) -> dict | None:
        return self.controller.model_info

    def weights_path(self) -> str | None:
        """The loaded weights file (the Batch tab uses the same), or None."""
        return self.controller.weights_path()

    def is_busy(self) -> bool:
        return self.controller.is_busy()

    def device(self) -> str:
        """The device this window was asked to run the networks on (a name of choices.DEVICES or "cuda:N")."""
        return self.controller.device()

    def device_text(self) -> str:
        return self.controller.device_text()

    def size_text(self) -> str:
        return self.controller.size_text()

    def time_text(self) -> str:
        return self.controller.time_text()

    def banner_visible(self) -> bool:
        return not self.banner.isHidden()

    # ================================================================ model

    def start(self, weights: str | None = None, load_default: bool = True) -> None:
        """Load the given weights, else the default ones; show the banner if there are none."""
        self.controller.start(weights, load_default)

    def load_weights(self, path: str | None) -> None:
        """Load weights in the inference thread; ``weights_loaded`` reports success."""
        self.controller.load_weights(path)

    def load_default_weights(self) -> None:
        """Back to the shipped model (models/), whatever was loaded since."""
        self.controller.load_default_weights()

    def load_weights_dialog(self) -> None:
        chosen = file_dialog(self, "Load weights", self._settings.get("paths/last_weights_dir"),
                             "Weights (*.safetensors);;All files (*)")
        if chosen:
            self._settings.set("paths/last_weights_dir", str(Path(chosen[0]).parent))
            self.load_weights(chosen[0])

    def _on_model_loaded(self, info: dict) -> None:
        c = self.controller
        with QSignalBlocker(self.working_size_spin):
            self.working_size_spin.setValue(c.working_size())
        self.model_label.setText(c.model_name())
        self.model_label.set_tooltip(info.get("weights_path") or "")
        self.model_details.setText(c.model_details())
        self._update_enabled()
        self._update_hint_tool()
        self.weights_loaded.emit(info)

    # =============================================================== photos

    def open_dialog(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(READ_EXTENSIONS))
        chosen = file_dialog(self, "Open photo", self._settings.get("paths/last_open_dir") or documents_dir(),
                             f"Images ({patterns});;All files (*)")
        if chosen:
            self.open_path(chosen[0])

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Read a photo and colorize it; a bad file shows an error and returns False.

        A big file is decoded on a pool thread (returns True at once; an error
        then shows when the read fails); a newer open supersedes it.
        """
        return self.controller.open_path(path)

    def paste(self) -> bool:
        """Colorize the clipboard's image (or the image file it names)."""
        return self.controller.paste()

    def set_photo(self, photo: Photo, name: str) -> None:
        """Show ``photo``'s gray in the input view and start colorizing it."""
        self.controller.set_photo(photo, name)

    def _on_photo_changed(self) -> None:
        c = self.controller
        self.input_view.set_image(c.gray_image)
        self._update_zoom_label()
        self.result_view.clear()
        self.stage_panel.clear()
        self.photo_label.setText(c.photo_name)
        self.photo_label.set_tooltip(str(c.photo.path) if c.photo.path else c.photo_name)
        self.photo_details.setText(c.photo_details())
        self.hint_overlay.select(None)
        self._update_display_side()
        self._update_enabled()

    # ============================================================ inference

    def colorize(self) -> int | None:
        """Run the networks on the open photo; returns the request id (None if not started)."""
        return self.controller.colorize()

    def cancel_colorize(self) -> None:
        """Stop the colorization in progress; the photo and any earlier result stay."""
        self.controller.cancel_colorize()

    def _on_result_changed(self) -> None:
        for stage, text in self.controller.stage_details().items():
            self.stage_panel.set_details(stage, text)
        # The input view already holds the gray as a pixmap; share it.
        self.result_view.set_compare_image(self.input_view.pixmap())
        self._update_display_side()

    # ============================================================ rendering

    def _on_saturation_changed(self, value: int) -> None:
        self.saturation_value.setText(f"{value} %")
        self.controller.set_saturation(value / 100.0)

    def _display(self, image: QImage, colour: bool, _final: bool) -> None:
        result = self.controller.result
        if result is None:
            return
        first = not self.result_view.has_image()
        self.result_view.set_image(image, photo_size=result.size)
        self.result_view.set_split(self._split if colour and self.compare_check.isChecked() else None)
        if first and self.input_view.has_image():
            # Take over whatever zoom the user chose on the input meanwhile.
            self._sync(self.input_view, self.result_view)

    def show_stage(self, stage: str, kind: str) -> None:
        """Show one stage's image or map large in the result view."""
        self.controller.set_view(stage, kind)

    def show_result(self) -> None:
        self.show_stage("refined", "image")

    def _on_view_changed(self, stage: str, kind: str) -> None:
        self.stage_panel.set_selected(stage, kind)
        if (stage, kind) == ("refined", "image"):
            self.result_title.setText("Result · " + STAGE_TITLES["refined"])
        else:
            self.result_title.setText(f"{STAGE_TITLES[stage]} · {KIND_CAPTIONS[kind]}")
        self.back_button.setVisible((stage, kind) != ("refined", "image"))

    def _on_result_clicked(self, pos: QPointF) -> None:
        if self._hint_tool_on() and self.controller.view_key[1] == "image":
            self._add_hint_at(pos)
        elif self.controller.view_key != ("refined", "image"):
            self.show_result()

    def _on_compare_toggled(self, on: bool) -> None:
        if self.controller.view_key[1] == "image" and self.result_view.has_image():
            self.result_view.set_split(self._split if on else None)

    def _on_split_dragged(self, fraction: float) -> None:
        self._split = fraction

    def set_split(self, fraction: float) -> None:
        """Move the before/after divider (0: all colour, 1: all gray)."""
        self._split = min(1.0, max(0.0, fraction))
        if self.result_view.split() is not None:
            self.result_view.set_split(self._split)

    # ================================================================ hints

    def _hint_tool_on(self) -> bool:
        return self.hint_button.isChecked() and self.hint_button.isEnabled()

    def _colour_shown_at(self, x: int, y: int) -> QColor:
        """The colour the result view shows at photo pixel (x, y): what the
        model gives there now, at the mode and saturation chosen (the picture
        on screen is the render, scaled to the screen)."""
        pix = self.result_view.pixmap()
        size = self.result_view.image_size()
        if pix.isNull() or size is None:
            source, size = self.input_view.pixmap(), self.input_view.image_size()
            if source.isNull() or size is None:
                return QColor(128, 128, 128)
            pix = source
        image = pix.toImage()
        px = min(image.width() - 1, int((x + 0.5) * image.width() / size[0]))
        py = min(image.height() - 1, int((y + 0.5) * image.height() / size[1]))
        colour = image.pixelColor(px, py)
        return QColor(colour.red(), colour.green(), colour.blue())

    def _other_colours(self, skip: int | None = None) -> list[QColor]:
        return [QColor(*h.rgb) for i, h in enumerate(self.controller.hints) if i != skip]

    def _add_hint_at(self, pos: QPointF) -> None:
        pixel = self.result_view.photo_pixel_at(pos)
        if pixel is None or self.hint_overlay.point_at(pos) is not None:
            return
        chosen = choose_hint_colour(self, self._colour_shown_at(*pixel), self._other_colours())
        if chosen is None:
            return  # Cancel adds nothing
        if not self.show_hints_button.isChecked():
            self.show_hints_button.setChecked(True)  # the new point must be seen
        if self.controller.add_hint(pixel[0], pixel[1], (chosen.red(), chosen.green(), chosen.blue())):
            self.hint_overlay.select(len(self.controller.hints) - 1)
        self.result_view.setFocus(Qt.FocusReason.MouseFocusReason)

    def _on_hint_moved(self, index: int, x: int, y: int) -> None:
        self.controller.move_hint(index, x, y)

    def _on_hint_recolour(self, index: int) -> None:
        hints = self.controller.hints
        if not 0 <= index < len(hints):
            return
        chosen = choose_hint_colour(self, QColor(*hints[index].rgb), self._other_colours(skip=index))
        if chosen is not None:
            self.controller.recolour_hint(index, (chosen.red(), chosen.green(), chosen.blue()))

    def _on_hint_removed(self, index: int) -> None:
        if self.controller.remove_hint(index):
            self.hint_overlay.select(None)

    def _on_show_hints_toggled(self, on: bool) -> None:
        self.hint_overlay.set_visible(on)
        self._update_hint_tool()

    def _on_hints_changed(self) -> None:
        self.hint_overlay.set_hints(self.controller.hints)
        self._update_hint_tool()

    def _update_hint_tool(self) -> None:
        """Enable the hint tool for a model that reads hints; say why not otherwise."""
        c = self.controller
        reads = c.reads_hints()
        self.hint_button.setEnabled(reads and c.photo is not None)
        n = len(c.hints)
        self.hint_button.setText(f"Hints ({n})" if n else "Hints")
        if c.model_info is not None and not reads:
            self.hint_button.setToolTip(HINTS_UNREAD_TEXT)
        elif c.model_info is None:
            self.hint_button.setToolTip("Load a model trained with --hints to give colour hints")
        else:
            summary = self.hints_summary()
            self.hint_button.setToolTip(HINT_TOOL_TIP + (f"\n\n{summary}" if summary else ""))
        # Showing or hiding points means something only when there are some
        # or there can be (a model that reads hints): greyed out otherwise.
        self.show_hints_button.setEnabled(bool(n) or (reads and c.photo is not None))
        editable = self._hint_tool_on() and self.show_hints_button.isChecked()
        self.hint_overlay.set_editable(editable)
        self.result_view.set_hover_cursor(Qt.CursorShape.CrossCursor if self._hint_tool_on()
                                          else Qt.CursorShape.OpenHandCursor)
        self.undo_hint_action.setEnabled(c.can_undo_hints())
        self.redo_hint_action.setEnabled(c.can_redo_hints())
        self.clear_hints_action.setEnabled(c.can_edit_hints() and bool(c.hints))

    def hints_summary(self) -> str:
        """How many hints the open photo has and where they are kept."""
        c = self.controller
        if c.photo is None:
            return ""
        n = len(c.hints)
        count = f"{n} hint{'s' if n != 1 else ''}" if n else "No hints"
        if c.model_info is not None and not c.reads_hints():
            return f"{count} · this model does not take hints" if n else "This model does not take colour hints"
        if not n:
            return "Turn on Add hints and click the result where you know the colour"
        where = c.hint_file()
        return f"{count} · saved in {where.name}" if where is not None else f"{count} · kept in memory only"

    # ================================================================= view

    def _schedule_display_side(self) -> None:
        if hasattr(self, "_side_timer"):
            self._side_timer.start()

    def _update_display_side(self) -> None:
        """Tell the controller how large the photo is on screen: it renders
        the colours at that size (full size only when zoomed in beyond it)."""
        side = max(self.input_view.display_side(), self.result_view.display_side())
        if side:
            self.controller.set_display_side(side)

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

    def save_as_dialog(self) -> None:
        c = self.controller
        if c.result is None:
            self.status_message.emit("Nothing to save yet")
            return
        start = str(Path(c.save_dir() or documents_dir()) / c.default_save_name("_color.png"))  # as the CLI names it
        chosen = file_dialog(self, "Save colorized photo", start, ";;".join(SAVE_FILTERS), save=True)
        if not chosen:
            return
        path, name_filter = chosen
        if not Path(path).suffix:
            path += SAVE_FILTERS.get(name_filter, ".png")
        self.save_to(path)

    def save_to(self, path: str | os.PathLike[str]) -> Task | None:
        """Write the full-size refined colour photo (current mode and
        saturation) in the background; ``saved`` says when it is written.
        Returns the running Task, or None when refused (nothing to save, or
        the path is the input photo)."""
        return self.controller.save_to(path)

    def save_stages_dialog(self) -> None:
        c = self.controller
        if c.result is None:
            self.status_message.emit("Nothing to save yet")
            return
        chosen = file_dialog(self, "Save stages into folder", c.save_dir() or documents_dir(),
                             mode=QFileDialog.FileMode.Directory)
        if chosen:
            self.save_stages_to(chosen[0])

    def stage_file_names(self) -> dict[str, str]:
        """What save_stages_to writes: key -> file name."""
        return self.controller.stage_file_names()

    def save_stages_to(self, folder: str | os.PathLike[str]) -> Task | None:
        """Write the result, stage 1's colour image and both stages' maps into
        ``folder`` (made if missing) in the background, after asking before
        replacing files; None when refused or declined."""
        existing = self.controller.existing_stage_files(folder)
        if existing and self.controller.result is not None and not ask_yes_no(
            self, "Replace files?", f"{len(existing)} of the files already exist in {folder} ({existing[0]}…). Replace them?"
        ):
            return None
        return self.controller.save_stages_to(folder)

    # ================================================================ state

    def _update_enabled(self) -> None:
        c = self.controller
        has_result = c.result is not None
        self.save_button.setEnabled(has_result)
        self.save_stages_button.setEnabled(has_result)
        self.rerun_button.setEnabled(c.can_colorize())
        running = c.is_colorizing()
        self.rerun_button.setText("Cancel" if running else "Colorize")
        self.rerun_button.setIcon(icon("fa5s.stop" if running else "fa5s.magic"))
        self.rerun_button.setToolTip("Stop the networks now" if running else "Run both networks on the photo again")

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop both worker threads (a running inference aborts at its next
        layer) and let a read or save in flight end."""
        self._side_timer.stop()
        return self.controller.shutdown(timeout_ms)


def _to8(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8/uint16 -> uint8 for thumbnails (the core's imageio.to_8bit)."""
    return to_8bit(rgb)
