"""The Batch tab: colorize every photo of a folder on a worker thread.

The core's run_batch does the real work (it never overwrites an input,
writes each file atomically, and stops after the current photo when its
cancel event is set); this tab gathers the options, shows a live table of
outcomes, and keeps the user's choices in QSettings.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, QSize, Qt, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QImageReader, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
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
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer.batch import FORMATS, OVERWRITE_POLICIES, BatchOptions, BatchReport, FileOutcome, plan_outputs, run_batch
from hsvcolorizer.choices import (RECOMPOSE_MODES, SAME_FORMAT, SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX,
                                  WORKING_SIZE_MIN)
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui import common

__all__ = ["BatchTab", "format_duration"]

log = logging.getLogger(__name__)

# Status -> (label, icon, colour). Colours are mid-tones that read on light
# and dark palettes; the icon carries the meaning for colour-blind users.
STATUS_STYLE = {
    "waiting": ("Waiting", "fa5s.clock", "#8a8f98"),
    "done": ("Done", "fa5s.check-circle", "#1e9e4a"),
    "skipped": ("Skipped", "fa5s.forward", "#c98a00"),
    "failed": ("Failed", "fa5s.times-circle", "#d0312d"),
    "cancelled": ("Not processed", "fa5s.ban", "#8a8f98"),
}

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

COLUMNS = ("File", "Status", "Output / reason", "Time")


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


# QSettings returns strings for every value with some back ends (INI files),
# so each read converts and falls back to the default on garbage.
def setting_str(settings: QSettings, key: str, default: str = "") -> str:
    value = settings.value(key, default)
    return default if value is None else str(value)


def setting_bool(settings: QSettings, key: str, default: bool = False) -> bool:
    value = settings.value(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def setting_int(settings: QSettings, key: str, default: int) -> int:
    try:
        return int(float(settings.value(key, default)))
    except (TypeError, ValueError):
        return default


def setting_float(settings: QSettings, key: str, default: float) -> float:
    try:
        return float(settings.value(key, default))
    except (TypeError, ValueError):
        return default


class ScaledImageLabel(QLabel):
    """Shows a pixmap scaled to fit (aspect kept), rescaled when resized.

    Shared with the Train tab, which shows its epoch previews in one.
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


class _BatchWorker(QObject):
    """Loads its own Colorizer and runs run_batch; lives on a QThread.

    Loading happens here, not in the GUI thread, because reading weights and
    moving them to a GPU can take seconds.
    """

    model_ready = Signal(str)  # device name
    progress = Signal(int, int, object)  # index, total, FileOutcome
    finished = Signal(object)  # BatchReport
    failed = Signal(str)

    def __init__(self, weights: str | None, in_dir: Path, out_dir: Path, options: BatchOptions,
                 cancel: threading.Event, device: str = "auto"):
        super().__init__()
        self.weights, self.in_dir, self.out_dir, self.device = weights, in_dir, out_dir, device
        self.options, self.cancel = options, cancel

    @Slot()
    def run(self) -> None:
        try:
            from hsvcolorizer.inference import Colorizer

            colorizer = Colorizer.load(self.weights, device=self.device)
            self.model_ready.emit(colorizer.device_name)
            # Called on this thread; the signal is queued to the GUI thread.
            report = run_batch(colorizer, self.in_dir, self.out_dir, self.options,
                               lambda i, n, outcome: self.progress.emit(i, n, outcome), self.cancel)
            self.finished.emit(report)
        except ColorizerError as e:
            self.failed.emit(str(e))
        except MemoryError:
            self.failed.emit("not enough memory to load the model")
        except Exception as e:  # noqa: BLE001 - a bug must reach the user, not kill the thread silently
            log.error("batch worker crashed:\n%s", traceback.format_exc())
            self.failed.emit(f"unexpected error: {type(e).__name__}: {e}")


class BatchTab(QWidget):
    """Folder in, folder out: options, Start/Cancel, progress and a table of outcomes."""

    status_message = Signal(str)
    batch_finished = Signal(object)  # BatchReport, also after a cancel
    open_photo = Signal(str)  # a row's photo, to open in the Colorize tab
    take_colorize_options = Signal()  # asks the window for the Colorize tab's options

    def __init__(self, weights_provider: Callable[[], str | None], settings: QSettings,
                 parent: QWidget | None = None, device_provider: Callable[[], str] = lambda: "auto"):
        super().__init__(parent)
        self._weights_provider = weights_provider
        # The window's device (--device, or the Colorize tab's): a batch runs where a photo does.
        self._device_provider = device_provider
        self._settings = settings
        self._thread: QThread | None = None
        self._worker: _BatchWorker | None = None
        self._cancel = threading.Event()
        self._rows: dict[str, int] = {}
        self._counts = {"done": 0, "skipped": 0, "failed": 0}
        self._t_files: float | None = None
        self._restoring = False
        self.last_report: BatchReport | None = None
        self._build_ui()
        self._restore_settings()
        self._update_buttons()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(10)

        top = QHBoxLayout()
        top.setSpacing(10)
        root.addLayout(top)

        # Folders ------------------------------------------------------------
        folders = QGroupBox("Folders")
        grid = QGridLayout(folders)
        grid.setColumnStretch(1, 1)
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("Folder with black-and-white photos")
        self.input_edit.setToolTip("The photos to colorize. They are only read, never changed.\n"
                                   "You can also drop a folder or photos on the window.")
        self.input_browse = QToolButton()
        self.input_browse.setText("Browse…")
        self.input_browse.setIcon(common.icon("fa5s.folder-open"))
        self.input_browse.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.input_browse.setToolTip("Choose the input folder")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("Folder for the colour results (created if missing)")
        self.output_edit.setToolTip("Where the colorized photos are written, keeping each photo's name.\n"
                                    "Must differ from the input folder.")
        self.output_browse = QToolButton()
        self.output_browse.setText("Browse…")
        self.output_browse.setIcon(common.icon("fa5s.folder-open"))
        self.output_browse.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.output_browse.setToolTip("Choose the output folder")
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
        top.addWidget(folders, 5)

        # Files ----------------------------------------------------------------
        files = QGroupBox("Output files")
        form = QFormLayout(files)
        self.format_combo = QComboBox()
        for fmt in FORMATS:
            self.format_combo.addItem("Same as input" if fmt == SAME_FORMAT else fmt.upper(), fmt)
            self.format_combo.setItemData(self.format_combo.count() - 1, FORMAT_TIPS.get(fmt, fmt),
                                          Qt.ItemDataRole.ToolTipRole)
        self.format_combo.setToolTip("File format of the colorized photos")
        self.overwrite_combo = QComboBox()
        for policy in OVERWRITE_POLICIES:
            self.overwrite_combo.addItem(policy.capitalize(), policy)
            self.overwrite_combo.setItemData(self.overwrite_combo.count() - 1, OVERWRITE_TIPS.get(policy, policy),
                                             Qt.ItemDataRole.ToolTipRole)
        self.overwrite_combo.setToolTip(OVERWRITE_TIPS["skip"])
        form.addRow("Format", self.format_combo)
        form.addRow("If output exists", self.overwrite_combo)
        top.addWidget(files, 2)

        # Rendering (the Colorize tab's options) -------------------------------
        render = QGroupBox("Rendering")
        rform = QFormLayout(render)
        self.mode_combo = QComboBox()
        for label, value in MODE_ITEMS:
            self.mode_combo.addItem(label, value)
        self.mode_combo.setToolTip("How the predicted hue and saturation are combined with the photo's gray:\n"
                                   "Luma keeps the gray exactly (recommended); V is the paper's recomposition.")
        self.saturation_spin = QSpinBox()
        self.saturation_spin.setRange(round(SATURATION_MIN * 100), round(SATURATION_MAX * 100))  # the gain in %
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
        rform.addRow("Recompose", self.mode_combo)
        rform.addRow("Saturation", self.saturation_spin)
        rform.addRow("Working size", self.working_spin)
        # The batch's own options, kept between sessions; the Colorize tab's
        # are taken only when asked (they used to overwrite these at every
        # visit to this tab), and the line below says what a batch will use.
        self.take_options_button = QPushButton(common.icon("fa5s.magic"), "Use the Colorize tab's options")
        self.take_options_button.setToolTip("Copy the recomposition, saturation and working size "
                                            "set on the Colorize tab")
        self.take_options_button.clicked.connect(self.take_colorize_options)
        rform.addRow("", self.take_options_button)
        self.options_summary = QLabel()
        self.options_summary.setWordWrap(True)
        rform.addRow(self.options_summary)
        top.addWidget(render, 3)

        # Actions and progress ---------------------------------------------------
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
        self.progress_bar.setFormat("%v / %m")
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
        root.addLayout(actions)

        # Table ----------------------------------------------------------------
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(0, 300)
        self.table.setToolTip("One row per photo: its status, where the result went or why it failed, "
                              "and how long it took.\nDouble-click a finished row to open the result.")
        preview = QGroupBox("Preview")
        pv = QVBoxLayout(preview)
        self.before_label = ScaledImageLabel()
        self.before_label.setToolTip("The selected input photo")
        self.after_label = ScaledImageLabel()
        self.after_label.setToolTip("Its colorized result")
        self.before_caption = QLabel("Before")
        self.after_caption = QLabel("After")
        for caption in (self.before_caption, self.after_caption):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pv.addWidget(self.before_label, 1)
        pv.addWidget(self.before_caption)
        pv.addWidget(self.after_label, 1)
        pv.addWidget(self.after_caption)
        self._show_preview(None)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(preview)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([900, 380])
        root.addWidget(splitter, 1)

        # Summary --------------------------------------------------------------
        bottom = QHBoxLayout()
        self.summary_icon = QLabel()
        self.summary_label = QLabel("Choose an input and an output folder, then press Start.")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label.setToolTip("Outcome of the last batch")
        self.open_button = QPushButton(common.icon("fa5s.external-link-alt"), "Open output folder")
        self.open_button.setToolTip("Show the output folder in the file manager")
        bottom.addWidget(self.summary_icon)
        bottom.addWidget(self.summary_label, 1)
        bottom.addWidget(self.open_button)
        root.addLayout(bottom)

        # Wiring ---------------------------------------------------------------
        self.input_browse.clicked.connect(self._browse_input)
        self.output_browse.clicked.connect(self._browse_output)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_output_folder)
        self.table.cellDoubleClicked.connect(self._open_row)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_preview(row))
        for edit in (self.input_edit, self.output_edit):
            edit.textChanged.connect(self._save_settings)
            edit.textChanged.connect(self._update_buttons)
        self.recursive_check.toggled.connect(self._save_settings)
        for combo in (self.format_combo, self.overwrite_combo, self.mode_combo):
            combo.currentIndexChanged.connect(self._save_settings)
        # The closed combo's tooltip explains the policy it shows now.
        self.overwrite_combo.currentIndexChanged.connect(
            lambda: self.overwrite_combo.setToolTip(OVERWRITE_TIPS.get(self.overwrite_combo.currentData(), "")))
        self.format_combo.currentIndexChanged.connect(
            lambda: self.format_combo.setToolTip("File format of the colorized photos. "
                                                 + FORMAT_TIPS.get(self.format_combo.currentData(), "")))
        self.saturation_spin.valueChanged.connect(self._save_settings)
        self.working_spin.valueChanged.connect(self._save_settings)
        for changed in (self.mode_combo.currentIndexChanged, self.saturation_spin.valueChanged,
                        self.working_spin.valueChanged):
            changed.connect(self._update_options_summary)
        self._update_options_summary()

    @Slot()
    def _update_options_summary(self) -> None:
        """One plain line: the colour options the next batch will use."""
        o = self.options()
        mode = {"luma": "luma (keeps the gray)", "v": "V (the paper's)"}.get(o.mode or "", "the model's default")
        size = f"{o.working_size} px" if o.working_size else "the model's default"
        self.options_summary.setText(f"A batch uses: recomposition {mode}, saturation {round(o.saturation * 100)} %, "
                                     f"working size {size}.")

    # ------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        s = self._settings
        self._restoring = True
        try:
            self.input_edit.setText(setting_str(s, "batch/input"))
            self.output_edit.setText(setting_str(s, "batch/output"))
            self.recursive_check.setChecked(setting_bool(s, "batch/recursive"))
            _select_data(self.format_combo, setting_str(s, "batch/format", "png"))
            _select_data(self.overwrite_combo, setting_str(s, "batch/overwrite", "skip"))
            _select_data(self.mode_combo, setting_str(s, "batch/mode", ""))
            self.saturation_spin.setValue(setting_int(s, "batch/saturation_percent", 100))
            self.working_spin.setValue(setting_int(s, "batch/working_size", WORKING_SIZE_DEFAULT))
        finally:
            self._restoring = False

    @Slot()
    def _save_settings(self) -> None:
        if self._restoring:
            return
        s = self._settings
        s.setValue("batch/input", self.input_edit.text().strip())
        s.setValue("batch/output", self.output_edit.text().strip())
        s.setValue("batch/recursive", self.recursive_check.isChecked())
        s.setValue("batch/format", self.format_combo.currentData())
        s.setValue("batch/overwrite", self.overwrite_combo.currentData())
        s.setValue("batch/mode", self.mode_combo.currentData())
        s.setValue("batch/saturation_percent", self.saturation_spin.value())
        ws = self.working_spin.value()
        s.setValue("batch/working_size", ws if ws >= WORKING_SIZE_MIN else 0)  # 0: model default, as always

    # -------------------------------------------------------------- public
    def set_input_folder(self, path: str) -> None:
        """Use `path` as the input; suggest "<name>_colorized" beside it when no output is set."""
        self.input_edit.setText(str(path))
        if not self.output_edit.text().strip() and path:
            p = Path(path)
            self.output_edit.setText(str(p.with_name(f"{p.name}_colorized")))

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
            self.status_message.emit(f"The dropped photos are in {len(parents)} folders; "
                                     f"using {parents[0]}")

    def set_render_options(self, mode: str | None, saturation: float, working_size: int | None) -> None:
        """Take over the Colorize tab's options: mode luma|v (None/'' = model default),
        saturation as a gain (1.0 = 100 %), working size in px (None/0 = model default)."""
        _select_data(self.mode_combo, mode or "")
        self.saturation_spin.setValue(int(round(float(saturation) * 100)))
        self.working_spin.setValue(int(working_size or WORKING_SIZE_DEFAULT))

    def is_busy(self) -> bool:
        return self._thread is not None

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a running batch and wait for its thread; True when it has ended."""
        if self._thread is None:
            return True
        self._cancel.set()
        thread = self._thread
        ended = thread.wait(max(0, int(timeout_ms)))
        if not ended:
            log.warning("the batch thread did not end within %d ms", timeout_ms)
            return False
        self._on_thread_finished()
        return True

    def options(self) -> BatchOptions:
        ws = self.working_spin.value()
        return BatchOptions(
            recursive=self.recursive_check.isChecked(),
            format=self.format_combo.currentData(),
            overwrite=self.overwrite_combo.currentData(),
            mode=self.mode_combo.currentData() or None,
            saturation=self.saturation_spin.value() / 100.0,
            working_size=ws if ws >= WORKING_SIZE_MIN else None,
        )

    # ------------------------------------------------------------- actions
    @Slot()
    def start(self) -> None:
        if self.is_busy():
            return
        in_text, out_text = self.input_edit.text().strip(), self.output_edit.text().strip()
        if not in_text:
            common.show_error(self, "No input folder", "Choose the folder with the photos to colorize.")
            return
        if not out_text:
            common.show_error(self, "No output folder", "Choose a folder for the colorized photos.")
            return
        in_dir, out_dir = Path(in_text).expanduser(), Path(out_text).expanduser()
        options = self.options()
        # Check the folders here, in the GUI thread, so a mistake is reported
        # before any model is loaded; run_batch plans the same list again.
        try:
            pairs = plan_outputs(in_dir, out_dir, options)
        except ColorizerError as e:
            common.show_error(self, "Cannot start the batch", str(e))
            return
        if not pairs:
            hint = "" if options.recursive else " Tick “Include sub-folders” to look in sub-folders."
            common.show_error(self, "No photos found", f"There are no photos in {in_dir}.{hint}")
            return
        try:
            weights = self._weights_provider()
        except Exception as e:  # noqa: BLE001 - the provider belongs to the main window
            common.show_error(self, "No model", f"Cannot tell which model to use: {e}")
            return

        self._fill_waiting_rows(pairs, in_dir)
        self._counts = {"done": 0, "skipped": 0, "failed": 0}
        self.last_report = None
        self._t_files = None
        self.progress_bar.setRange(0, len(pairs))
        self.progress_bar.setValue(0)
        self.eta_label.setText("Loading the model…")
        self.summary_icon.clear()
        self.summary_label.setText(f"Colorizing {len(pairs)} photo{'s' if len(pairs) != 1 else ''}…")
        self.status_message.emit(f"Batch started: {len(pairs)} photos from {in_dir}")

        self._cancel = threading.Event()
        self._thread = QThread(self)
        self._thread.setObjectName("batch-worker")
        self._worker = _BatchWorker(str(weights) if weights else None, in_dir, out_dir, options, self._cancel,
                                    self._device_provider())
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.model_ready.connect(self._on_model_ready)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        # quit() from the worker's thread ends the loop as soon as run() returns.
        self._worker.finished.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._worker.failed.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._thread.start()
        self._update_buttons()

    @Slot()
    def cancel(self) -> None:
        if not self.is_busy() or self._cancel.is_set():
            return
        self._cancel.set()
        self.cancel_button.setEnabled(False)
        self.eta_label.setText("Stopping after the current photo…")
        self.status_message.emit("Batch: stopping after the current photo")

    @Slot()
    def open_output_folder(self) -> None:
        folder = Path(self.output_edit.text().strip()).expanduser()
        if not folder.is_dir():
            common.show_error(self, "No output folder", f"{folder} does not exist yet.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder.resolve())))

    # ------------------------------------------------------ worker signals
    @Slot(str)
    def _on_model_ready(self, device: str) -> None:
        self._t_files = time.monotonic()
        self.eta_label.setText(f"Model loaded on {device}")

    @Slot(int, int, object)
    def _on_progress(self, index: int, total: int, outcome: FileOutcome) -> None:
        self._set_row(outcome)
        if outcome.status in self._counts:
            self._counts[outcome.status] += 1
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(index)
        if self._cancel.is_set():
            return
        if self._t_files is not None and index < total:
            per_file = (time.monotonic() - self._t_files) / index
            self.eta_label.setText(f"About {format_duration(per_file * (total - index))} left")
        elif index >= total:
            self.eta_label.setText("Finishing…")
        c = self._counts
        self.summary_label.setText(f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed so far")

    @Slot(object)
    def _on_finished(self, report: BatchReport) -> None:
        self.last_report = report
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 1)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == "waiting":
                self._style_status(row, "cancelled" if report.cancelled else "waiting")
        elapsed = time.monotonic() - self._t_files if self._t_files is not None else 0.0
        text = report.summary()
        if report.outcomes:
            text += f" in {format_duration(elapsed)}"
        self.summary_label.setText(text)
        name = "fa5s.exclamation-triangle" if report.failed else (
            "fa5s.ban" if report.cancelled else "fa5s.check-circle")
        colour = STATUS_STYLE["failed"][2] if report.failed else (
            STATUS_STYLE["skipped"][2] if report.cancelled else STATUS_STYLE["done"][2])
        self.summary_icon.setPixmap(common.icon(name, colour).pixmap(18, 18))
        self.eta_label.setText("Cancelled" if report.cancelled else "Finished")
        self.status_message.emit(f"Batch finished: {text}")
        self.batch_finished.emit(report)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.eta_label.setText("Failed")
        self.summary_icon.setPixmap(common.icon("fa5s.times-circle", STATUS_STYLE["failed"][2]).pixmap(18, 18))
        self.summary_label.setText(f"The batch could not run: {message}")
        self.status_message.emit("Batch failed")
        common.show_error(self, "Batch failed", message)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, worker = self._thread, self._worker
        if thread is None:
            return  # already handled by shutdown()
        self._thread = self._worker = None
        thread.wait()
        if worker is not None:
            worker.deleteLater()
        thread.deleteLater()
        self._update_buttons()

    # ---------------------------------------------------------------- table
    def _shown_output(self, path: Path | None) -> str:
        """The output's path relative to the output folder: the folder itself is shown above."""
        if path is None:
            return ""
        try:
            return str(Path(path).relative_to(Path(self.output_edit.text().strip()).expanduser()))
        except ValueError:
            return str(path)

    def _fill_waiting_rows(self, pairs: list[tuple[Path, Path]], in_dir: Path) -> None:
        self.table.setRowCount(0)
        self._show_preview(None)
        self._rows.clear()
        self.table.setRowCount(len(pairs))
        for row, (src, dst) in enumerate(pairs):
            try:
                shown = str(src.relative_to(in_dir))
            except ValueError:
                shown = src.name
            item = QTableWidgetItem(shown)
            item.setToolTip(str(src))
            item.setData(Qt.ItemDataRole.UserRole, str(src))
            self.table.setItem(row, 0, item)
            self.table.setItem(row, 1, QTableWidgetItem())
            out = QTableWidgetItem(self._shown_output(dst))
            out.setToolTip(str(dst))
            out.setForeground(QBrush(QColor(STATUS_STYLE["waiting"][2])))
            self.table.setItem(row, 2, out)
            self.table.setItem(row, 3, QTableWidgetItem(""))
            self._style_status(row, "waiting")
            self._rows[str(src)] = row

    def _set_row(self, outcome: FileOutcome) -> None:
        key = str(outcome.source)
        row = self._rows.get(key)
        if row is None:  # a photo that appeared after Start was pressed
            row = self.table.rowCount()
            self.table.insertRow(row)
            item = QTableWidgetItem(outcome.source.name)
            item.setData(Qt.ItemDataRole.UserRole, str(outcome.source))
            self.table.setItem(row, 0, item)
            for col in (1, 2, 3):
                self.table.setItem(row, col, QTableWidgetItem())
            self._rows[key] = row
        self._style_status(row, outcome.status)
        detail = self.table.item(row, 2)
        if outcome.status == "done":
            detail.setText(self._shown_output(outcome.output))
            detail.setForeground(self.palette().text())
            detail.setToolTip(str(outcome.output))
        elif outcome.status == "skipped":
            detail.setText(outcome.reason + (f": {self._shown_output(outcome.output)}" if outcome.output else ""))
            detail.setForeground(QBrush(QColor(STATUS_STYLE["skipped"][2])))
            detail.setToolTip(outcome.reason + (f": {outcome.output}" if outcome.output else ""))
        else:
            reason = outcome.reason or "unknown error"
            # The row already names the photo; its full path only crowds the reason.
            detail.setText(reason.replace(str(outcome.source), outcome.source.name))
            detail.setForeground(QBrush(QColor(STATUS_STYLE["failed"][2])))
            detail.setToolTip(reason)
        secs = self.table.item(row, 3)
        secs.setText(f"{outcome.seconds:.2f} s")
        secs.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        detail.setData(Qt.ItemDataRole.UserRole, str(outcome.output) if outcome.output else "")
        self.table.scrollToItem(self.table.item(row, 0), QAbstractItemView.ScrollHint.EnsureVisible)
        if row == self.table.currentRow():
            self._show_preview(row)

    def _style_status(self, row: int, status: str) -> None:
        label, icon_name, colour = STATUS_STYLE[status]
        item = self.table.item(row, 1)
        item.setText(label)
        item.setIcon(common.icon(icon_name, colour))
        item.setForeground(QBrush(QColor(colour)))
        item.setData(Qt.ItemDataRole.UserRole, status)

    def row_status(self, row: int) -> str:
        """done | skipped | failed | waiting | cancelled of a table row (tests, scripts)."""
        return self.table.item(row, 1).data(Qt.ItemDataRole.UserRole)

    def _show_preview(self, row: int | None) -> None:
        """Before/after of a table row; the result only once it is written."""
        src_item = self.table.item(row, 0) if row is not None and row >= 0 else None
        if src_item is None:
            self.before_label.clear_source("Select a photo in the list\nto compare it with its result")
            self.after_label.clear_source("")
            self.before_caption.setText("Before")
            self.after_caption.setText("After")
            return
        src = src_item.data(Qt.ItemDataRole.UserRole) or ""
        out_item = self.table.item(row, 2)
        out = out_item.data(Qt.ItemDataRole.UserRole) if out_item is not None else ""
        box = QSize(800, 800)
        before = _thumbnail(src, box) if src else QPixmap()
        if before.isNull():
            self.before_label.clear_source("No preview")
        else:
            self.before_label.set_source(before)
        self.before_caption.setText(f"Before · {Path(src).name}" if src else "Before")
        status = self.row_status(row)
        after = _thumbnail(out, box) if out and status in ("done", "skipped") else QPixmap()
        if after.isNull():
            text = {"failed": "Not colorized: see the reason in the list", "waiting": "Not colorized yet",
                    "cancelled": "Not colorized (the batch was cancelled)"}.get(status, "No preview")
            self.after_label.clear_source(text)
            self.after_caption.setText("After")
        else:
            self.after_label.set_source(after)
            self.after_caption.setText(f"After · {Path(out).name}")

    @Slot(int, int)
    def _open_row(self, row: int, _column: int) -> None:
        """Double-click: the row's photo opens in the Colorize tab, where its
        stages can be inspected (and a failed one shows why it failed)."""
        item = self.table.item(row, 0)
        path = item.data(Qt.ItemDataRole.UserRole) if item is not None else ""
        if not path:
            return
        if not Path(path).is_file():
            self.status_message.emit(f"{Path(path).name} is no longer there")
            return
        self.open_photo.emit(str(path))

    # ------------------------------------------------------------- helpers
    def _browse_input(self) -> None:
        start = self.input_edit.text().strip() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Folder with photos to colorize", start)
        if path:
            self.set_input_folder(path)

    def _browse_output(self) -> None:
        start = self.output_edit.text().strip() or self.input_edit.text().strip() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Folder for the colorized photos", start)
        if path:
            self.output_edit.setText(path)

    @Slot()
    def _update_buttons(self) -> None:
        busy = self.is_busy()
        ready = bool(self.input_edit.text().strip() and self.output_edit.text().strip())
        self.start_button.setEnabled(not busy and ready)
        self.cancel_button.setEnabled(busy and not self._cancel.is_set())
        for w in (self.input_edit, self.output_edit, self.input_browse, self.output_browse, self.recursive_check,
                  self.format_combo, self.overwrite_combo, self.mode_combo, self.saturation_spin,
                  self.working_spin):
            w.setEnabled(not busy)
        self.open_button.setEnabled(bool(self.output_edit.text().strip()))


class _WorkingSizeSpin(QSpinBox):
    """The working-size spin box: its minimum is "Model default", and its
    arrows step from 0 (64, 128, ... px) rather than from that minimum."""

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        value = self.value()
        base = 0 if value < WORKING_SIZE_MIN else value
        target = base + steps * self.singleStep()
        self.setValue(target if target >= WORKING_SIZE_MIN else self.minimum())


def _thumbnail(path: str, box: QSize) -> QPixmap:
    """A picture of `path` no larger than `box`, or a null pixmap.

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
            return QPixmap()
        image = image.scaled(box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return QPixmap.fromImage(image)


def _select_data(combo: QComboBox, value) -> None:
    """Select the item whose data equals `value`; unknown values keep the current item."""
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)
