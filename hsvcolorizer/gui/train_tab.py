"""The Train tab's view: the form for `hsvcolorizer train`, Start/Stop, live
curves, preview and log, bound to a ``TrainController``
(hsvcolorizer/gui/train_controller.py), which holds the run's state and owns
the child process (hsvcolorizer/gui/training_process.py).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer.choices import DEVICES, INPUT_CHANNELS
from hsvcolorizer.gui.dialogs import choose_folder
from hsvcolorizer.gui import common
from hsvcolorizer.gui.elided import ElidedLabel
from hsvcolorizer.gui.plots import StageLossPlots
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.train_controller import (
    SPEED_UNKNOWN,
    SPEED_WINDOW_S,
    STOPPING,
    TrainController,
    TrainOptions,
    has_checkpoint,
)

try:  # moving to common.py (issue 12); batch_tab.py keeps it until then
    from hsvcolorizer.gui.common import ScaledImageLabel
except ImportError:
    from hsvcolorizer.gui.batch_tab import ScaledImageLabel

__all__ = ["TrainTab"]

log = logging.getLogger(__name__)

STAGE_ITEMS = (("Both (1 then 2)", "both"), ("Stage 1 only (LR-CMGN)", "1"), ("Stage 2 only (RCN)", "2"))
_CHANNEL_LABELS = {"luma": "Luma (recommended)", "v": "V (the paper's)"}
CHANNEL_ITEMS = tuple((_CHANNEL_LABELS.get(c, c), c) for c in INPUT_CHANNELS)
DEVICE_LABELS = {"auto": "Auto (GPU if available)", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}
PREVIEW_TILES = (
    ("Gray input", "What the networks see"),
    ("Stage 1 · LR-CMGN", "Colour from the low-resolution network alone"),
    ("Refined · RCN", "The final result after the refinement network"),
    ("Original", "The true colours of the validation photo"),
)
LOG_COLOURS = {"error": "#d0312d", "stderr": "#8a8f98", "checkpoint": "#1e7fc2", "done": "#1e9e4a",
               "info": None}
SPEED_OVER = f"mean of the last {SPEED_WINDOW_S:.0f} s"


class TrainTab(QWidget):
    """A form for `hsvcolorizer train`, Start/Stop, live curves, preview and log."""

    use_weights = Signal(str)
    status_message = Signal(str)
    training_finished = Signal(bool)  # True when the run wrote its final weights

    def __init__(self, settings: AppSettings | QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = AppSettings.wrap(settings)
        self._restoring = False
        self.controller = TrainController(self)
        self._build_ui()
        self._bind_controller()
        self._restore_settings()
        self._update_controls()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(12)

        # Left: the form, scrollable so small windows still reach every field,
        # above a bar of Start/Stop that never scrolls away.
        form_host = QWidget()
        left = QVBoxLayout(form_host)
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(10)

        data = QGroupBox("Data")
        dgrid = QGridLayout(data)
        dgrid.setColumnStretch(1, 1)
        self.data_edit, data_browse = self._folder_row(
            "Folder of colour photos to learn from (sub-folders included), a Places365 root, or a cache "
            "made by “hsvcolorizer prepare”.\nGrayscale photos are found and left out automatically.",
            "Folder of colour photos")
        self.val_edit, val_browse = self._folder_row(
            "Optional folder of colour photos to validate on after each epoch (loss, PSNR, preview).\n"
            "Empty: a fixed 5 % of the training photos is set aside.", "Optional: 5 % of the training photos")
        self.run_edit, run_browse = self._folder_row(
            "Where this run keeps its checkpoint, previews and the trained weights (model.safetensors).\n"
            "Created if missing.", "Folder for checkpoints and weights")
        for row, (label, edit, browse) in enumerate((("Training", self.data_edit, data_browse),
                                                     ("Validation", self.val_edit, val_browse),
                                                     ("Run folder", self.run_edit, run_browse))):
            dgrid.addWidget(QLabel(label), row, 0)
            dgrid.addWidget(edit, row, 1)
            dgrid.addWidget(browse, row, 2)
        self._browse_buttons = (data_browse, val_browse, run_browse)
        data_browse.clicked.connect(lambda: self._browse(self.data_edit, "Folder of colour photos"))
        val_browse.clicked.connect(lambda: self._browse(self.val_edit, "Validation photos"))
        run_browse.clicked.connect(lambda: self._browse(self.run_edit, "Run folder"))
        left.addWidget(data)

        opts = QGroupBox("Training")
        form = QFormLayout(opts)
        self.stage_combo = QComboBox()
        for label, value in STAGE_ITEMS:
            self.stage_combo.addItem(label, value)
        self.stage_combo.setToolTip("Stage 1 trains LR-CMGN on quarter-size colour; stage 2 trains the RCN "
                                    "while fine-tuning LR-CMGN.\nStage 2 alone continues from the run "
                                    "folder's stage1.safetensors.")
        self.epochs1_spin = _spin(0, 10000, 10, "Passes over the training photos in stage 1")
        self.epochs2_spin = _spin(0, 10000, 10, "Passes over the training photos in stage 2")
        self.batch_spin = _spin(1, 1024, 16, "Photos per optimisation step; lower it if memory runs out")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(0.000001, 1.0)
        self.lr_spin.setSingleStep(0.00005)
        self.lr_spin.setValue(0.0002)
        self.lr_spin.setToolTip("Adam learning rate (default 0.0002). Lower it if the loss jumps or becomes NaN")
        self.size_spin = _spin(16, 2048, 256, "Side of the square training crops in pixels (a multiple of 4). "
                                              "Smaller trains faster")
        self.size_spin.setSingleStep(32)
        self.size_spin.setSuffix(" px")
        self.channel_combo = QComboBox()
        for label, value in CHANNEL_ITEMS:
            self.channel_combo.addItem(label, value)
        self.channel_combo.setToolTip("What the networks see: Luma (the photo's gray, recommended) or "
                                      "V (HSV value, as in the paper)")
        self.device_combo = QComboBox()
        for dev in DEVICES:
            self.device_combo.addItem(DEVICE_LABELS.get(dev, dev), dev)
        self.device_combo.setToolTip("Where to train. Auto uses a CUDA or Apple GPU when there is one")
        self.resume_check = QCheckBox("Resume from the run folder's checkpoint")
        self.resume_check.setToolTip("Continue a stopped run exactly where its last checkpoint left it.\n"
                                     "Unticked, training starts over in the run folder.")
        form.addRow("Stages", self.stage_combo)
        form.addRow("Epochs, stage 1", self.epochs1_spin)
        form.addRow("Epochs, stage 2", self.epochs2_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Image size", self.size_spin)
        form.addRow("Input channel", self.channel_combo)
        form.addRow("Device", self.device_combo)
        form.addRow(self.resume_check)
        self.checkpoint_hint = QLabel()
        self.checkpoint_hint.setWordWrap(True)
        form.addRow(self.checkpoint_hint)
        left.addWidget(opts)

        # Advanced: folded away, they matter for quick trials only.
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setToolTip("Options for quick trials: narrower networks and step budgets")
        left.addWidget(self.advanced_button)
        self.advanced_box = QFrame()
        self.advanced_box.setFrameShape(QFrame.Shape.StyledPanel)
        aform = QFormLayout(self.advanced_box)
        self.width_spin = QDoubleSpinBox()
        self.width_spin.setDecimals(3)
        self.width_spin.setRange(0.05, 4.0)
        self.width_spin.setSingleStep(0.125)
        self.width_spin.setValue(1.0)
        self.width_spin.setToolTip("Multiplies the width of every layer. Below 1 gives a smaller, much faster "
                                   "model for quick trials;\n1 is the full model")
        self.steps1_spin = _spin(0, 10_000_000, 0, "Stop stage 1 after this many steps even if epochs remain")
        self.steps1_spin.setSpecialValueText("No limit")
        self.steps2_spin = _spin(0, 10_000_000, 0, "Stop stage 2 after this many steps even if epochs remain")
        self.steps2_spin.setSpecialValueText("No limit")
        self.workers_spin = _spin(-1, 64, -1, "Processes that decode photos in parallel. "
                                              "Auto: up to 4; 0 decodes in the training process")
        self.workers_spin.setSpecialValueText("Auto")
        self.log_every_spin = _spin(1, 10000, 10, "Steps between points on the loss curves")
        aform.addRow("Width scale", self.width_spin)
        aform.addRow("Max steps, stage 1", self.steps1_spin)
        aform.addRow("Max steps, stage 2", self.steps2_spin)
        aform.addRow("Data workers", self.workers_spin)
        aform.addRow("Plot every", self.log_every_spin)
        self.log_every_spin.setSuffix(" steps")
        self.advanced_box.setVisible(False)
        left.addWidget(self.advanced_box)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        left.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(form_host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.start_button = QPushButton(common.icon("fa5s.play"), "Start")
        self.start_button.setDefault(True)
        self.start_button.setToolTip("Start training in a separate process")
        self.stop_button = QPushButton(common.icon("fa5s.stop"), "Stop")
        self.stop_button.setToolTip("Stop after the current step, which is checkpointed first: tick Resume and "
                                    "press Start to continue.\nPressed again (Stop now), it ends the training at "
                                    "once and loses the steps since the last checkpoint")
        self.use_button = QPushButton(common.icon("fa5s.magic"), "Use these weights")
        self.use_button.setToolTip("Colorize with the model this run has just trained")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 6, 0, 0)
        bar.addWidget(self.start_button)
        bar.addWidget(self.stop_button)
        bar.addWidget(self.use_button)

        left_column = QWidget()
        lc = QVBoxLayout(left_column)
        lc.setContentsMargins(0, 0, 0, 0)
        lc.setSpacing(0)
        lc.addWidget(scroll, 1)
        lc.addLayout(bar)
        left_column.setMinimumWidth(400)
        left_column.setMaximumWidth(470)
        root.addWidget(left_column)

        # Right: progress figures, curves, preview and log.
        right = QVBoxLayout()
        right.setSpacing(6)
        stats = QGridLayout()
        stats.setHorizontalSpacing(18)
        stats.setVerticalSpacing(2)
        # Elided where the column is narrow, the whole text then in the tooltip.
        self.phase_label = ElidedLabel("Not running", mode=Qt.TextElideMode.ElideRight)
        font = self.phase_label.font()
        font.setBold(True)
        self.phase_label.setFont(font)
        self.eta_label = QLabel("ETA —")
        self.eta_label.setToolTip("Estimated time until both stages are done")
        self.val_label = ElidedLabel("Validation —", mode=Qt.TextElideMode.ElideRight)
        self.speed_label = QLabel(_speed_text(SPEED_UNKNOWN))
        self.speed_label.setToolTip(f"Training speed, the {SPEED_OVER}: single log lines of a small run "
                                    "swing several-fold")
        stats.addWidget(self.phase_label, 0, 0)
        stats.addWidget(self.eta_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        stats.addWidget(self.val_label, 1, 0)
        stats.addWidget(self.speed_label, 1, 1, Qt.AlignmentFlag.AlignRight)
        stats.setColumnStretch(0, 1)
        right.addLayout(stats)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p %")
        self.progress_bar.setToolTip("Steps done out of all the steps planned for this run")
        right.addWidget(self.progress_bar)

        self.plots = StageLossPlots(self)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.plots)

        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.setChildrenCollapsible(False)
        preview_box = QGroupBox("Preview")
        pv = QVBoxLayout(preview_box)
        # The trainer writes gray | stage 1 | refined | original side by side;
        # shown as a 2x2 grid each tile gets four times the area in this box.
        tiles = QGridLayout()
        tiles.setSpacing(6)
        self.preview_tiles: list[ScaledImageLabel] = []
        for i, (name, tip) in enumerate(PREVIEW_TILES):
            tile = ScaledImageLabel()
            tile.setMinimumSize(60, 40)
            tile.setToolTip(tip)
            caption = QLabel(name)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tiles.addWidget(tile, (i // 2) * 2, i % 2)
            tiles.addWidget(caption, (i // 2) * 2 + 1, i % 2)
            tiles.setRowStretch((i // 2) * 2, 1)
            self.preview_tiles.append(tile)
        self.preview_grid = QWidget()
        self.preview_grid.setLayout(tiles)
        self.preview_label = ScaledImageLabel()  # the whole picture when it is not four tiles
        self.preview_label.setToolTip("A validation photo after the last epoch: gray input, stage 1, "
                                      "refined result, original")
        self.preview_caption = ElidedLabel(mode=Qt.TextElideMode.ElideRight)
        self.preview_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pv.addWidget(self.preview_grid, 1)
        pv.addWidget(self.preview_label, 1)
        pv.addWidget(self.preview_caption)
        lower.addWidget(preview_box)
        log_box = QGroupBox("Log")
        lv = QVBoxLayout(log_box)
        self.log_view = _LogView()
        self.log_view.document().setMaximumBlockCount(5000)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.log_view.setMinimumHeight(90)
        self.log_view.setToolTip("Messages of the training process: data found, stages, validation, "
                                 "checkpoints and errors")
        lv.addWidget(self.log_view)
        lower.addWidget(log_box)
        lower.setStretchFactor(0, 1)
        lower.setStretchFactor(1, 1)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        right.addWidget(splitter, 1)
        root.addLayout(right, 1)
        self._show_preview("", "")

        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self._emit_use_weights)
        self.stage_combo.currentIndexChanged.connect(self._update_controls)
        self.run_edit.textChanged.connect(self._update_checkpoint_hint)
        self.size_spin.editingFinished.connect(self._round_size)
        for edit in (self.data_edit, self.val_edit, self.run_edit):
            edit.textChanged.connect(self._save_settings)
            edit.textChanged.connect(self._update_controls)
            # The whole path where the field is too narrow for it.
            edit.textChanged.connect(lambda text, e=edit: e.setToolTip(
                e.property("help") + (f"\n\n{text}" if text else "")))
        for combo in (self.stage_combo, self.channel_combo, self.device_combo):
            combo.currentIndexChanged.connect(self._save_settings)
        for spin in (self.epochs1_spin, self.epochs2_spin, self.batch_spin, self.lr_spin, self.size_spin,
                     self.width_spin, self.steps1_spin, self.steps2_spin, self.workers_spin, self.log_every_spin):
            spin.valueChanged.connect(self._save_settings)
        self.resume_check.toggled.connect(self._save_settings)
        self.advanced_button.toggled.connect(self._save_settings)

    def _folder_row(self, tip: str, placeholder: str) -> tuple[QLineEdit, QToolButton]:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setProperty("help", tip)
        edit.setToolTip(tip)
        browse = QToolButton()
        browse.setIcon(common.icon("fa5s.folder-open"))
        browse.setText("…")
        browse.setToolTip("Choose a folder")
        return edit, browse

    def _bind_controller(self) -> None:
        c = self.controller
        c.state_changed.connect(self._update_controls)
        c.phase_changed.connect(self.phase_label.setText)
        c.speed_changed.connect(lambda text: self.speed_label.setText(_speed_text(text)))
        c.eta_changed.connect(self.eta_label.setText)
        c.validation_changed.connect(self.val_label.setText)
        c.progress_changed.connect(self._show_progress)
        c.curves_cleared.connect(self.plots.clear)
        c.curve_point.connect(self.plots.add_step)
        c.validation_point.connect(self.plots.add_validation)
        c.preview_changed.connect(self._show_preview)
        c.log_cleared.connect(self.log_view.clear)
        c.log_added.connect(self._append_log)
        c.resume_offered.connect(self.resume_check.setChecked)
        c.weights_changed.connect(self._update_controls)
        c.status_message.connect(self.status_message)
        c.failed.connect(lambda title, message: common.show_error(self, title, message))
        c.finished.connect(self._on_finished)

    # ------------------------------------------------------------ settings
    def options(self) -> TrainOptions:
        """The form as the controller takes it."""
        return TrainOptions(
            data=self.data_edit.text().strip(), val=self.val_edit.text().strip(), run=self.run_edit.text().strip(),
            stage=self.stage_combo.currentData(), epochs_stage1=self.epochs1_spin.value(),
            epochs_stage2=self.epochs2_spin.value(), batch_size=self.batch_spin.value(), lr=self.lr_spin.value(),
            size=self.size_spin.value(), input_channel=self.channel_combo.currentData(),
            device=self.device_combo.currentData(), resume=self.resume_check.isChecked(),
            width_scale=self.width_spin.value(), steps_stage1=self.steps1_spin.value(),
            steps_stage2=self.steps2_spin.value(), workers=self.workers_spin.value(),
            log_every=self.log_every_spin.value())

    def _restore_settings(self) -> None:
        o = TrainOptions.from_settings(self.settings)
        self._restoring = True
        try:
            self.data_edit.setText(o.data)
            self.val_edit.setText(o.val)
            self.run_edit.setText(o.run)
            _select_data(self.stage_combo, o.stage)
            self.epochs1_spin.setValue(o.epochs_stage1)
            self.epochs2_spin.setValue(o.epochs_stage2)
            self.batch_spin.setValue(o.batch_size)
            self.lr_spin.setValue(o.lr)
            self.size_spin.setValue(o.size)
            _select_data(self.channel_combo, o.input_channel)
            _select_data(self.device_combo, o.device)
            self.resume_check.setChecked(o.resume)
            self.width_spin.setValue(o.width_scale)
            self.steps1_spin.setValue(o.steps_stage1)
            self.steps2_spin.setValue(o.steps_stage2)
            self.workers_spin.setValue(o.workers)
            self.log_every_spin.setValue(o.log_every)
            self.advanced_button.setChecked(self.settings.get("train/advanced_open"))
        finally:
            self._restoring = False
        self._update_checkpoint_hint()

    @Slot()
    def _save_settings(self) -> None:
        if self._restoring:
            return
        self.options().save(self.settings)
        self.settings.set("train/advanced_open", self.advanced_button.isChecked())

    # -------------------------------------------------------------- public
    def is_busy(self) -> bool:
        return self.controller.is_busy()

    @property
    def process(self):
        """The running child's QProcess, None when none runs."""
        return self.controller.process.process

    @property
    def events_seen(self) -> list[dict]:
        """Every event of the current run (tests, diagnostics)."""
        return self.controller.events_seen

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """End a running training and wait; True when no child process is left.

        SIGTERM first (the child's checkpoints are atomic, so any moment is
        safe), then kill if it has not gone within `timeout_ms`.
        """
        return self.controller.shutdown(timeout_ms)

    def command(self) -> list[str]:
        """The child's arguments after the Python executable."""
        return self.options().command()

    def weights_path(self) -> str | None:
        """The final weights of the last finished run, if any."""
        return self.controller.weights_path

    def log_text(self) -> str:
        return self.log_view.toPlainText()

    def preview_pixmap(self) -> QPixmap:
        """The last epoch's preview as the trainer wrote it (null before the first epoch)."""
        return self.preview_label.source()

    # ------------------------------------------------------------- actions
    @Slot()
    def start(self) -> None:
        if self.is_busy():
            return
        self._round_size()
        self.controller.start(self.options(), self.command())

    @Slot()
    def stop(self) -> None:
        """First press: stop after the step in progress, which the trainer
        checkpoints. Second press ("Stop now"): at once."""
        self.controller.stop()

    @Slot()
    def _emit_use_weights(self) -> None:
        path = self.controller.weights_path
        if path:
            self.use_weights.emit(path)
            self.status_message.emit(f"Using the weights {path}")

    @Slot(bool)
    def _on_finished(self, ok: bool) -> None:
        self._update_controls()
        self._update_checkpoint_hint()
        self.training_finished.emit(ok)

    # ------------------------------------------------------------ bindings
    @Slot(int, int)
    def _show_progress(self, value: int, maximum: int) -> None:
        self.progress_bar.setRange(0, maximum)
        self.progress_bar.setValue(value)

    @Slot(str, str)
    def _show_preview(self, path: str, caption: str) -> None:
        pixmap = QPixmap(path) if path else QPixmap()
        if pixmap.isNull():
            for tile in self.preview_tiles:
                tile.clear_source()
            self.preview_label.clear_source("A validation photo appears here after each epoch")
            self.preview_grid.setVisible(False)
            self.preview_label.setVisible(True)
            self.preview_caption.setText("")
            return
        self.preview_label.set_source(pixmap)
        h, w = pixmap.height(), pixmap.width()
        as_tiles = h > 0 and w == 4 * h
        if as_tiles:
            for i, tile in enumerate(self.preview_tiles):
                tile.set_source(pixmap.copy(i * h, 0, h, h))
        self.preview_grid.setVisible(as_tiles)
        self.preview_label.setVisible(not as_tiles)
        self.preview_caption.setText(caption)

    @Slot(str, str, str)
    def _append_log(self, stamp: str, text: str, kind: str) -> None:
        colour = LOG_COLOURS.get(kind)
        body = html.escape(text)
        if colour:
            body = f'<span style="color:{colour}">{body}</span>'
        self.log_view.append_line(f'<span style="color:#8a8f98">{stamp}</span>&nbsp;&nbsp;{body}')

    @Slot()
    def _update_checkpoint_hint(self) -> None:
        exists = has_checkpoint(self.run_edit.text())
        if not exists and not self.is_busy():
            # Nothing to resume in this folder: a tick left from another
            # run's Stop would only pretend to continue it.
            self.resume_check.setChecked(False)
        self.checkpoint_hint.setText("This run folder has a checkpoint. Tick Resume to continue it; otherwise "
                                     "training starts over and replaces it." if exists else "")
        self.checkpoint_hint.setVisible(exists)

    @Slot()
    def _round_size(self) -> None:
        v = self.size_spin.value()
        if v % 4:
            self.size_spin.setValue(max(16, int(round(v / 4)) * 4))

    @Slot(bool)
    def _toggle_advanced(self, open_: bool) -> None:
        self.advanced_box.setVisible(open_)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

    def _browse(self, edit: QLineEdit, title: str) -> None:
        path = choose_folder(self, title, edit.text().strip() or str(Path.home()))
        if path:
            edit.setText(path)

    @Slot()
    def _update_controls(self) -> None:
        busy = self.is_busy()
        stage = self.stage_combo.currentData()
        ready = bool(self.data_edit.text().strip() and self.run_edit.text().strip())
        self.start_button.setEnabled(not busy and ready)
        self.stop_button.setEnabled(busy)
        self.stop_button.setText("Stop now" if busy and self.controller.state == STOPPING else "Stop")
        self.use_button.setEnabled(not busy and bool(self.controller.weights_path))
        for w in (self.data_edit, self.val_edit, self.run_edit, self.stage_combo, self.batch_spin, self.lr_spin,
                  self.size_spin, self.channel_combo, self.device_combo, self.resume_check, self.width_spin,
                  self.workers_spin, self.log_every_spin):
            w.setEnabled(not busy)
        self.epochs1_spin.setEnabled(not busy and stage != "2")
        self.steps1_spin.setEnabled(not busy and stage != "2")
        self.epochs2_spin.setEnabled(not busy and stage != "1")
        self.steps2_spin.setEnabled(not busy and stage != "1")
        for browse in self._browse_buttons:
            browse.setEnabled(not busy)


class _LogView(QTextEdit):
    """The read-only log. It keeps its last line in view as lines arrive and
    when it is resized, unless the user has scrolled up to read older ones.
    (A QTextEdit, not a QPlainTextEdit: that one scrolls by whole paragraphs,
    so a wrapped last line could stay half below the fold.)"""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.following = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda value: setattr(self, "following", value >= bar.maximum()))
        bar.rangeChanged.connect(lambda _low, _high: self._follow())

    def append_line(self, html_text: str) -> None:
        self.append(html_text)
        self._follow()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._follow()

    def _follow(self) -> None:
        if self.following:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())


def _speed_text(figure: str) -> str:
    """"14.8 images/s (mean of the last 30 s)": the figure says what it is a mean of."""
    return f"{figure} ({SPEED_OVER})"


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    spin.setAccelerated(True)
    return spin


def _select_data(combo: QComboBox, value) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)
