"""The Batch tab's view: colorize every photo of a folder.

Layout and bindings only. The options, the running batch, its counts and
summary live in ``BatchController`` (batch_controller.py) and the table's
rows in ``BatchTableModel`` (batch_model.py); this widget shows them and
passes the user's edits and clicks on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import shiboken6
from PySide6.QtCore import QModelIndex, QSettings, QSignalBlocker, QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer.batch import FORMATS, OVERWRITE_POLICIES, BatchOptions, BatchReport
from hsvcolorizer.choices import RECOMPOSE_MODES, SAME_FORMAT, WORKING_SIZE_MAX, WORKING_SIZE_MIN
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui.dialogs import choose_folder
from hsvcolorizer.gui import common
from hsvcolorizer.gui.batch_controller import SATURATION_PERCENT_RANGE, BatchController
from hsvcolorizer.gui.batch_model import DETAIL, PHOTO, STATUS, STATUS_STYLE, TIME, BatchTableModel
# Shared with the Train tab, which imports them from here.
from hsvcolorizer.gui.common import ScaledImageLabel, format_duration
from hsvcolorizer.gui.elided import ElidedLabel
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import run_task

__all__ = ["BatchTab", "ScaledImageLabel", "format_duration"]

log = logging.getLogger(__name__)

FORMAT_TIPS = {
    "png": "PNG: lossless, keeps 16-bit depth and transparency",
    "jpg": "JPEG: small files, lossy (quality 95), no transparency",
    "tiff": "TIFF: lossless, keeps 16-bit depth; large files",
    "webp": "WebP: small files, lossy (quality 95)",
    "same": "The format of each input photo where it can be written (PNG otherwise)",
}
OVERWRITE_TIPS = {
    "skip": "Keep an existing output file and mark the photo as skipped (safe to re-run after an interruption)",
    "replace": "Write over an existing output file (inputs are never overwritten)",
    "rename": "Keep an existing output file and write the new one as NAME (1).png, NAME (2).png, ...",
}
_MODE_LABELS = {"luma": "Luma — keeps the photo's gray exactly", "v": "V — the paper's gray-as-value"}
MODE_ITEMS = (("Model default", ""), *((_MODE_LABELS.get(mode, mode), mode) for mode in RECOMPOSE_MODES))
# The working-size spin box: the core's range, and one value below it that
# reads "Model default" (the spin box's special value).
WORKING_SIZE_DEFAULT = WORKING_SIZE_MIN - 1
PREVIEW_BOX = QSize(800, 800)
SUMMARY_ICONS = {
    "done": ("fa5s.check-circle", STATUS_STYLE["done"][2]),
    "cancelled": ("fa5s.ban", STATUS_STYLE["skipped"][2]),
    "failed": ("fa5s.exclamation-triangle", STATUS_STYLE["failed"][2]),
    "error": ("fa5s.times-circle", STATUS_STYLE["failed"][2]),
}
_INPUT_TIP = ("The photos to colorize. They are only read, never changed.\n"
              "You can also drop a folder or photos on the window.")
_OUTPUT_TIP = ("Where the colorized photos are written, keeping each photo's name.\n"
               "Must differ from the input folder.")


class BatchTab(QWidget):
    """Folder in, folder out: options, Start/Cancel, progress and a table of outcomes."""

    status_message = Signal(str)
    batch_finished = Signal(object)  # BatchReport, also after a cancel
    open_photo = Signal(str)  # a row's photo, to open in the Colorize tab
    take_colorize_options = Signal()  # asks the window for the Colorize tab's options

    def __init__(self, weights_provider: Callable[[], str | None], settings: AppSettings | QSettings,
                 parent: QWidget | None = None, device_provider: Callable[[], str] = lambda: "auto"):
        super().__init__(parent)
        self.controller = BatchController(weights_provider, settings, device_provider, self)
        self.model: BatchTableModel = self.controller.model
        self._preview_request = self._preview_shown = 0
        self._build_ui()
        self._bind()
        self._show_options()
        self._update_buttons()

    # ================================================================ layout
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(8)
        top = QHBoxLayout()
        top.setSpacing(10)
        root.addLayout(top)
        top.addWidget(self._build_folders(), 5)
        top.addWidget(self._build_files(), 2)
        top.addWidget(self._build_rendering(), 3)
        root.addLayout(self._build_actions())

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        # Long names lose their middle, not the end that tells photos apart;
        # the full path is in each cell's tooltip.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        for column in (PHOTO, STATUS, TIME):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(DETAIL, QHeaderView.ResizeMode.Stretch)
        # Fixed starting widths rather than ResizeToContents, which measures
        # every row again at each update: slow for a folder of thousands.
        metrics = self.table.fontMetrics()
        self.table.setColumnWidth(PHOTO, 260)
        self.table.setColumnWidth(STATUS, metrics.horizontalAdvance(STATUS_STYLE["cancelled"][0]) + 48)
        self.table.setColumnWidth(TIME, metrics.horizontalAdvance("000.00 s") + 24)
        self.table.setToolTip("One row per photo: its status, where the result went or why it failed, "
                              "and how long it took.\nDouble-click a row to open the photo in the Colorize tab.")

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(self._build_preview())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([900, 340])
        root.addWidget(splitter, 1)

        bottom = QHBoxLayout()
        self.summary_icon = QLabel()
        self.summary_icon.setFixedSize(20, 20)
        self.summary_label = ElidedLabel(mode=Qt.TextElideMode.ElideRight)
        self.open_button = QPushButton(common.icon("fa5s.external-link-alt"), "Open output folder")
        self.open_button.setToolTip("Show the output folder in the file manager")
        bottom.addWidget(self.summary_icon)
        bottom.addWidget(self.summary_label, 1)
        bottom.addWidget(self.open_button)
        root.addLayout(bottom)

    def _build_folders(self) -> QGroupBox:
        box = QGroupBox("Folders")
        grid = QGridLayout(box)
        grid.setColumnStretch(1, 1)
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("Folder with black-and-white photos")
        self.input_edit.setToolTip(_INPUT_TIP)
        self.input_browse = _browse_button("Choose the input folder")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("Folder for the colour results (created if missing)")
        self.output_edit.setToolTip(_OUTPUT_TIP)
        self.output_browse = _browse_button("Choose the output folder")
        self.recursive_check = QCheckBox("Include sub-folders")
        self.recursive_check.setToolTip("Also colorize photos in sub-folders; the output keeps the same "
                                        "sub-folder layout")
        grid.addWidget(QLabel("Input"), 0, 0)
        grid.addWidget(self.input_edit, 0, 1)
        grid.addWidget(self.input_browse, 0, 2)
        grid.addWidget(QLabel("Output"), 1, 0)
        grid.addWidget(self.output_edit, 1, 1)
        grid.addWidget(self.output_browse, 1, 2)
        grid.addWidget(self.recursive_check, 2, 1)
        return box

    def _build_files(self) -> QGroupBox:
        box = QGroupBox("Output files")
        form = QFormLayout(box)
        self.format_combo = QComboBox()
        for fmt in FORMATS:
            self.format_combo.addItem("Same as input" if fmt == SAME_FORMAT else fmt.upper(), fmt)
            self.format_combo.setItemData(self.format_combo.count() - 1, FORMAT_TIPS.get(fmt, fmt),
                                          Qt.ItemDataRole.ToolTipRole)
        self.overwrite_combo = QComboBox()
        for policy in OVERWRITE_POLICIES:
            self.overwrite_combo.addItem(policy.capitalize(), policy)
            self.overwrite_combo.setItemData(self.overwrite_combo.count() - 1, OVERWRITE_TIPS.get(policy, policy),
                                             Qt.ItemDataRole.ToolTipRole)
        form.addRow("Format", self.format_combo)
        form.addRow("If output exists", self.overwrite_combo)
        return box

    def _build_rendering(self) -> QGroupBox:
        box = QGroupBox("Rendering")
        form = QFormLayout(box)
        self.mode_combo = QComboBox()
        for label, value in MODE_ITEMS:
            self.mode_combo.addItem(label, value)
        self.mode_combo.setToolTip("How the predicted hue and saturation are combined with the photo's gray:\n"
                                   "Luma keeps the gray exactly (recommended); V is the paper's recomposition.")
        self.saturation_spin = QSpinBox()
        self.saturation_spin.setRange(*SATURATION_PERCENT_RANGE)  # the gain in %
        self.saturation_spin.setSingleStep(5)
        self.saturation_spin.setSuffix(" %")
        self.saturation_spin.setValue(100)
        self.saturation_spin.setToolTip("Saturation gain on the predicted colours: 100 % as predicted, "
                                        "less for muted colours, more for vivid ones")
        self.working_spin = _WorkingSizeSpin()
        # The core's range; the value just below it shows as "Model default".
        self.working_spin.setRange(WORKING_SIZE_DEFAULT, WORKING_SIZE_MAX)
        self.working_spin.setSingleStep(64)
        self.working_spin.setSpecialValueText("Model default")
        self.working_spin.setSuffix(" px")
        self.working_spin.setToolTip("Long side the networks see. Colours are computed at this size and "
                                     "applied to the full-resolution photo,\nso larger is slower but can "
                                     "resolve finer colour detail. Model default: 256 px.")
        # Saturation and working size share a row so the group stays short
        # enough for the table to keep its room at 1280x720.
        numbers = QHBoxLayout()
        numbers.setSpacing(6)
        numbers.addWidget(self.saturation_spin, 1)
        size_label = QLabel("Working size")
        numbers.addWidget(size_label)
        numbers.addWidget(self.working_spin, 1)
        form.addRow("Recompose", self.mode_combo)
        form.addRow("Saturation", numbers)
        # The batch's own options, kept between sessions; the Colorize tab's
        # are taken only when asked (they used to overwrite these at every
        # visit to this tab), and the line below says what a batch will use.
        self.take_options_button = QPushButton(common.icon("fa5s.magic"), "Use the Colorize tab's options")
        self.take_options_button.setToolTip("Copy the recomposition, saturation and working size "
                                            "set on the Colorize tab")
        form.addRow("", self.take_options_button)
        self.options_summary = QLabel()
        self.options_summary.setWordWrap(True)
        self.options_summary.setToolTip("The colour options the next batch will use")
        form.addRow(self.options_summary)
        return box

    def _build_actions(self) -> QHBoxLayout:
        actions = QHBoxLayout()
        actions.setSpacing(8)
        self.start_button = QPushButton(common.icon("fa5s.play"), "Start")
        self.start_button.setDefault(True)
        self.start_button.setMinimumWidth(110)
        self.start_button.setToolTip("Colorize every photo of the input folder into the output folder")
        self.cancel_button = QPushButton(common.icon("fa5s.stop"), "Cancel")
        self.cancel_button.setMinimumWidth(110)
        self.cancel_button.setToolTip("Stop after the photo being colorized now; finished files are kept "
                                      "and no half-written file is left")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")  # "%v / %m" once a batch has started
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setToolTip("Photos processed out of the photos found")
        self.progress_bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.eta_label = QLabel("")
        self.eta_label.setMinimumWidth(190)
        self.eta_label.setToolTip("Estimated time left, from the average time per photo so far")
        actions.addWidget(self.start_button)
        actions.addWidget(self.cancel_button)
        actions.addSpacing(6)
        actions.addWidget(self.progress_bar, 1)
        actions.addWidget(self.eta_label)
        return actions

    def _build_preview(self) -> QGroupBox:
        preview = QGroupBox("Preview")
        pv = QVBoxLayout(preview)
        self.before_label = ScaledImageLabel()
        self.before_label.setToolTip("The selected input photo")
        self.after_label = ScaledImageLabel()
        self.after_label.setToolTip("Its colorized result")
        self.before_caption = ElidedLabel()
        self.after_caption = ElidedLabel()
        for caption in (self.before_caption, self.after_caption):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pv.addWidget(self.before_label, 1)
        pv.addWidget(self.before_caption)
        pv.addWidget(self.after_label, 1)
        pv.addWidget(self.after_caption)
        preview.setMinimumWidth(220)
        return preview

    # =============================================================== binding
    def _bind(self) -> None:
        c = self.controller
        # Widgets -> controller.
        self.input_edit.textChanged.connect(c.set_input)
        self.output_edit.textChanged.connect(c.set_output)
        self.recursive_check.toggled.connect(c.set_recursive)
        self.format_combo.currentIndexChanged.connect(lambda: c.set_format(self.format_combo.currentData()))
        self.overwrite_combo.currentIndexChanged.connect(lambda: c.set_overwrite(self.overwrite_combo.currentData()))
        self.mode_combo.currentIndexChanged.connect(lambda: c.set_mode(self.mode_combo.currentData()))
        self.saturation_spin.valueChanged.connect(c.set_saturation_percent)
        self.working_spin.valueChanged.connect(
            lambda value: c.set_working_size(value if value >= WORKING_SIZE_MIN else 0))
        self.input_browse.clicked.connect(self._browse_input)
        self.output_browse.clicked.connect(self._browse_output)
        self.take_options_button.clicked.connect(self.take_colorize_options)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_output_folder)
        self.table.doubleClicked.connect(self._open_row)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _old: self._show_preview(current.row()))
        # Controller -> widgets.
        c.options_changed.connect(self._show_options)
        c.busy_changed.connect(self._update_buttons)
        c.progress_changed.connect(self._show_progress)
        c.eta_changed.connect(self.eta_label.setText)
        c.summary_changed.connect(self._show_summary)
        c.row_changed.connect(self._on_row_changed)
        c.status_message.connect(self.status_message)
        c.error.connect(lambda title, message: common.show_error(self, title, message))
        c.finished.connect(self.batch_finished)
        self.model.modelReset.connect(lambda: self._show_preview(None))
        self._show_summary(*c.summary)
        self._show_preview(None)

    @Slot()
    def _show_options(self) -> None:
        """Show the controller's options; signals are blocked so that this
        does not echo back, and a field being typed in keeps its cursor."""
        c = self.controller
        for edit, name, tip in ((self.input_edit, "input", _INPUT_TIP), (self.output_edit, "output", _OUTPUT_TIP)):
            if edit.text() != c.value(name):
                with QSignalBlocker(edit):
                    edit.setText(str(c.value(name)))
            # A long path does not fit the field: the tooltip has all of it.
            path = edit.text().strip()
            edit.setToolTip(f"{tip}\n\n{path}" if path else tip)
        with QSignalBlocker(self.recursive_check):
            self.recursive_check.setChecked(bool(c.value("recursive")))
        for combo, name in ((self.format_combo, "format"), (self.overwrite_combo, "overwrite"),
                            (self.mode_combo, "mode")):
            with QSignalBlocker(combo):
                _select_data(combo, c.value(name))
        with QSignalBlocker(self.saturation_spin):
            self.saturation_spin.setValue(int(c.value("saturation_percent")))
        with QSignalBlocker(self.working_spin):
            self.working_spin.setValue(int(c.value("working_size")) or WORKING_SIZE_DEFAULT)
        # The closed combos' tooltips explain the choice they show now.
        self.overwrite_combo.setToolTip(OVERWRITE_TIPS.get(self.overwrite_combo.currentData(), ""))
        self.format_combo.setToolTip("File format of the colorized photos. "
                                     + FORMAT_TIPS.get(self.format_combo.currentData(), ""))
        self.options_summary.setText(c.options_summary())
        self._update_buttons()

    @Slot()
    def _update_buttons(self) -> None:
        c = self.controller
        busy = c.is_busy()
        self.start_button.setEnabled(not busy and c.ready())
        self.cancel_button.setEnabled(busy and not c.is_cancelling())
        for w in (self.input_edit, self.output_edit, self.input_browse, self.output_browse, self.recursive_check,
                  self.format_combo, self.overwrite_combo, self.mode_combo, self.saturation_spin,
                  self.working_spin, self.take_options_button):
            w.setEnabled(not busy)
        self.open_button.setEnabled(bool(c.output_dir()))

    @Slot(int, int)
    def _show_progress(self, processed: int, total: int) -> None:
        self.progress_bar.setFormat("%v / %m")
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(processed)

    @Slot(str, str)
    def _show_summary(self, text: str, kind: str) -> None:
        self.summary_label.setText(text)
        icon = SUMMARY_ICONS.get(kind)
        if icon is None:
            self.summary_icon.clear()
        else:
            self.summary_icon.setPixmap(common.icon(*icon).pixmap(18, 18))

    @Slot(int)
    def _on_row_changed(self, row: int) -> None:
        self.table.scrollTo(self.model.index(row, PHOTO), QAbstractItemView.ScrollHint.EnsureVisible)
        if row == self.table.currentIndex().row():
            self._show_preview(row)

    # ================================================================ public
    @property
    def last_report(self) -> BatchReport | None:
        return self.controller.last_report

    def options(self) -> BatchOptions:
        return self.controller.options()

    def set_input_folder(self, path: str) -> None:
        """Use `path` as the input; suggest "<name>_colorized" beside it when no output is set."""
        self.controller.set_input_folder(path)

    def add_paths(self, paths: list[str]) -> None:
        """Files or folders dropped on the window (see BatchController.add_paths)."""
        self.controller.add_paths(paths)

    def set_render_options(self, mode: str | None, saturation: float, working_size: int | None) -> None:
        """Take over the Colorize tab's options (see BatchController.set_render_options)."""
        self.controller.set_render_options(mode, saturation, working_size)

    def is_busy(self) -> bool:
        return self.controller.is_busy()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a running batch and wait for it; True when it has ended."""
        return self.controller.shutdown(timeout_ms)

    def row_status(self, row: int) -> str:
        """done | skipped | failed | waiting | cancelled of a table row (tests, scripts)."""
        return self.model.status(row)

    @Slot()
    def start(self) -> None:
        self.controller.start()

    @Slot()
    def cancel(self) -> None:
        self.controller.cancel()

    @Slot()
    def open_output_folder(self) -> None:
        folder = Path(self.controller.output_dir()).expanduser()
        if not folder.is_dir():
            common.show_error(self, "No output folder", f"{folder} does not exist yet.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder.resolve())))

    # =============================================================== preview
    def _show_preview(self, row: int | None) -> None:
        """Before/after of a table row, read on a pool thread; the result
        only once it is written."""
        self._preview_request += 1
        if row is None or not 0 <= row < self.model.rowCount():
            self._preview_shown = self._preview_request
            self.before_label.clear_source("Select a photo in the list\nto compare it with its result")
            self.after_label.clear_source("")
            self.before_caption.setText("Before")
            self.after_caption.setText("After")
            return
        entry = self.model.entry(row)
        out = str(entry.output) if entry.output and entry.status in ("done", "skipped") else ""
        self.before_caption.setText(f"Before · {entry.source.name}")
        self.after_caption.setText(f"After · {Path(out).name}" if out else "After")
        if not out:
            self.after_label.clear_source({
                "failed": "Not colorized: see the reason in the list", "waiting": "Not colorized yet",
                "cancelled": "Not colorized: the batch stopped before this photo"}.get(entry.status, "No preview"))
        request = self._preview_request
        task = run_task(f"Reading {entry.source.name} for the preview", _thumbnails, str(entry.source), out,
                        PREVIEW_BOX)
        task.done.connect(lambda images: self._set_preview(request, out, *images))
        task.failed.connect(lambda _message: self._set_preview(request, out, QImage(), QImage()))

    def _set_preview(self, request: int, out: str, before: QImage, after: QImage) -> None:
        if not shiboken6.isValid(self):
            return  # the tab was closed while the photo was being read
        if request != self._preview_request:
            return  # another row was selected meanwhile
        self._preview_shown = request
        if before.isNull():
            self.before_label.clear_source("No preview")
        else:
            self.before_label.set_source(QPixmap.fromImage(before))
        if out:
            if after.isNull():
                self.after_label.clear_source("No preview")
            else:
                self.after_label.set_source(QPixmap.fromImage(after))

    def preview_is_current(self) -> bool:
        """True when the preview shows the selected row, not an older one
        or a read still under way (tests wait for it)."""
        return self._preview_shown == self._preview_request

    @Slot(QModelIndex)
    def _open_row(self, index: QModelIndex) -> None:
        """Double-click: the row's photo opens in the Colorize tab, where its
        stages can be inspected (and a failed one shows why it failed)."""
        if not index.isValid():
            return
        path = self.model.entry(index.row()).source
        if not path.is_file():
            self.status_message.emit(f"{path.name} is no longer there")
            return
        self.open_photo.emit(str(path))

    # ============================================================ dialogs
    def _browse_input(self) -> None:
        start = self.controller.input_dir() or str(Path.home())
        path = choose_folder(self, "Folder with photos to colorize", start)
        if path:
            self.set_input_folder(path)

    def _browse_output(self) -> None:
        start = self.controller.output_dir() or self.controller.input_dir() or str(Path.home())
        path = choose_folder(self, "Folder for the colorized photos", start)
        if path:
            self.controller.set_output(path)


class _WorkingSizeSpin(QSpinBox):
    """The working-size spin box: its minimum is "Model default", and its
    arrows step from 0 (64, 128, ... px) rather than from that minimum."""

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        value = self.value()
        base = 0 if value < WORKING_SIZE_MIN else value
        target = base + steps * self.singleStep()
        self.setValue(target if target >= WORKING_SIZE_MIN else self.minimum())


def _browse_button(tip: str) -> QToolButton:
    button = QToolButton()
    button.setText("Browse…")
    button.setIcon(common.icon("fa5s.folder-open"))
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setToolTip(tip)
    return button


def _thumbnails(source: str, output: str, box: QSize) -> tuple[QImage, QImage]:
    """Previews of a photo and its result (a null image for none); pool thread."""
    return _thumbnail(source, box), (_thumbnail(output, box) if output else QImage())


def _thumbnail(path: str, box: QSize) -> QImage:
    """A picture of `path` no larger than `box`, or a null image.

    QImageReader decodes JPEGs at reduced size, so a 24-megapixel photo
    previews quickly; formats Qt cannot read go through the core's reader.
    """
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and (size.width() > box.width() or size.height() > box.height()):
        reader.setScaledSize(size.scaled(box, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        try:
            from hsvcolorizer.imageio import read_image, to_8bit

            image = common.numpy_to_qimage(to_8bit(read_image(path).pixels))
        except (ColorizerError, OSError, ValueError):
            return QImage()
        image = image.scaled(box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image


def _select_data(combo: QComboBox, value) -> None:
    """Select the item whose data equals `value`; unknown values keep the current item."""
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)
