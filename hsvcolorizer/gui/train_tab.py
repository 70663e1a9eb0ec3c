"""The Train tab: runs `hsvcolorizer train --events jsonl` as a child process.

Training runs in its own process, not a thread: it can use every core or
the GPU without freezing the window, a crash in it cannot take the window
down, and Stop can end it at any moment (its checkpoints are written
atomically, so Resume continues from the last one). The child prints one
JSON event per line; this tab turns them into loss curves, a preview and a
log.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, QSettings, Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

import hsvcolorizer
from hsvcolorizer.choices import DEVICES, INPUT_CHANNELS
from hsvcolorizer.training.runfolder import CHECKPOINT, EVENTS
from hsvcolorizer.gui import common
from hsvcolorizer.gui.batch_tab import ScaledImageLabel, format_duration, setting_bool, setting_float, setting_int, setting_str
from hsvcolorizer.gui.plots import StageLossPlots

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
CHECKPOINT_NAME = CHECKPOINT  # the run folder's resume state (hsvcolorizer.training.runfolder, torch-free)

LOG_COLOURS = {"error": "#d0312d", "stderr": "#8a8f98", "checkpoint": "#1e7fc2", "done": "#1e9e4a",
               "info": None}


class TrainTab(QWidget):
    """A form for `hsvcolorizer train`, Start/Stop, live curves, preview and log."""

    use_weights = Signal(str)
    status_message = Signal(str)
    training_finished = Signal(bool)  # True when the run wrote its final weights

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self._settings = settings
        self._restoring = False
        self.process: QProcess | None = None
        self._stdout_buf = b""
        self._stderr_buf = b""
        self._stopping = False
        self._error_message: str | None = None
        self._stderr_tail: list[str] = []
        self._weights_path: str | None = None
        self._steps_per_epoch = 1
        self._total_steps: int | None = None
        self._started_at = 0.0
        self.events_seen: list[dict] = []  # every parsed event of the current run (tests, diagnostics)
        self._build_ui()
        self._restore_settings()
        self._update_controls()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(12)

        # Left: the form, scrollable so small windows still reach every field.
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

        buttons = QHBoxLayout()
        self.start_button = QPushButton(common.icon("fa5s.play"), "Start")
        self.start_button.setDefault(True)
        self.start_button.setToolTip("Start training in a separate process")
        self.stop_button = QPushButton(common.icon("fa5s.stop"), "Stop")
        self.stop_button.setToolTip("End the training now. The last checkpoint is kept: tick Resume and press "
                                    "Start to continue")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        left.addLayout(buttons)
        self.use_button = QPushButton(common.icon("fa5s.magic"), "Use these weights")
        self.use_button.setToolTip("Colorize with the model this run has just trained")
        left.addWidget(self.use_button)
        left.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(form_host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(400)
        scroll.setMaximumWidth(470)
        root.addWidget(scroll)

        # Right: progress figures, curves, preview and log.
        right = QVBoxLayout()
        right.setSpacing(8)
        stats = QHBoxLayout()
        stats.setSpacing(18)
        self.phase_label = QLabel("Not running")
        self.phase_label.setToolTip("Stage, epoch and step of the running training")
        font = self.phase_label.font()
        font.setBold(True)
        self.phase_label.setFont(font)
        self.speed_label = QLabel("— images/s")
        self.speed_label.setToolTip("Training speed over the last logged steps")
        self.eta_label = QLabel("ETA —")
        self.eta_label.setToolTip("Estimated time until both stages are done")
        self.val_label = QLabel("Validation —")
        self.val_label.setToolTip("Validation loss and PSNR (dB, higher is better) after the last epoch")
        stats.addWidget(self.phase_label)
        stats.addStretch(1)
        stats.addWidget(self.val_label)
        stats.addWidget(self.speed_label)
        stats.addWidget(self.eta_label)
        right.addLayout(stats)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p %")
        self.progress_bar.setToolTip("Steps done out of all the steps planned for this run")
        right.addWidget(self.progress_bar)

        self.plots = StageLossPlots(self)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plots)

        lower = QSplitter(Qt.Orientation.Horizontal)
        preview_box = QGroupBox("Preview")
        pv = QVBoxLayout(preview_box)
        # The trainer writes gray | stage 1 | refined | original side by side;
        # shown as a 2x2 grid each tile gets four times the area in this box.
        tiles = QGridLayout()
        tiles.setSpacing(6)
        self.preview_tiles: list[ScaledImageLabel] = []
        for i, (name, tip) in enumerate(PREVIEW_TILES):
            tile = ScaledImageLabel()
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
        self.preview_caption = QLabel()
        self.preview_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pv.addWidget(self.preview_grid, 1)
        pv.addWidget(self.preview_label, 1)
        pv.addWidget(self.preview_caption)
        self._clear_preview()
        lower.addWidget(preview_box)
        log_box = QGroupBox("Log")
        lv = QVBoxLayout(log_box)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
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

        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self._emit_use_weights)
        self.stage_combo.currentIndexChanged.connect(self._update_controls)
        self.run_edit.textChanged.connect(self._update_checkpoint_hint)
        self.size_spin.editingFinished.connect(self._round_size)
        for edit in (self.data_edit, self.val_edit, self.run_edit):
            edit.textChanged.connect(self._save_settings)
            edit.textChanged.connect(self._update_controls)
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
        edit.setToolTip(tip)
        browse = QToolButton()
        browse.setIcon(common.icon("fa5s.folder-open"))
        browse.setText("…")
        browse.setToolTip("Choose a folder")
        return edit, browse

    # ------------------------------------------------------------ settings
    def _restore_settings(self) -> None:
        s = self._settings
        self._restoring = True
        try:
            self.data_edit.setText(setting_str(s, "train/data"))
            self.val_edit.setText(setting_str(s, "train/val"))
            self.run_edit.setText(setting_str(s, "train/run"))
            _select_data(self.stage_combo, setting_str(s, "train/stage", "both"))
            self.epochs1_spin.setValue(setting_int(s, "train/epochs_stage1", 10))
            self.epochs2_spin.setValue(setting_int(s, "train/epochs_stage2", 10))
            self.batch_spin.setValue(setting_int(s, "train/batch_size", 16))
            self.lr_spin.setValue(setting_float(s, "train/lr", 0.0002))
            self.size_spin.setValue(setting_int(s, "train/size", 256))
            _select_data(self.channel_combo, setting_str(s, "train/input_channel", "luma"))
            _select_data(self.device_combo, setting_str(s, "train/device", "auto"))
            self.resume_check.setChecked(setting_bool(s, "train/resume"))
            self.width_spin.setValue(setting_float(s, "train/width_scale", 1.0))
            self.steps1_spin.setValue(setting_int(s, "train/steps_stage1", 0))
            self.steps2_spin.setValue(setting_int(s, "train/steps_stage2", 0))
            self.workers_spin.setValue(setting_int(s, "train/workers", -1))
            self.log_every_spin.setValue(setting_int(s, "train/log_every", 10))
            self.advanced_button.setChecked(setting_bool(s, "train/advanced_open"))
        finally:
            self._restoring = False
        self._update_checkpoint_hint()

    @Slot()
    def _save_settings(self) -> None:
        if self._restoring:
            return
        s = self._settings
        s.setValue("train/data", self.data_edit.text().strip())
        s.setValue("train/val", self.val_edit.text().strip())
        s.setValue("train/run", self.run_edit.text().strip())
        s.setValue("train/stage", self.stage_combo.currentData())
        s.setValue("train/epochs_stage1", self.epochs1_spin.value())
        s.setValue("train/epochs_stage2", self.epochs2_spin.value())
        s.setValue("train/batch_size", self.batch_spin.value())
        s.setValue("train/lr", self.lr_spin.value())
        s.setValue("train/size", self.size_spin.value())
        s.setValue("train/input_channel", self.channel_combo.currentData())
        s.setValue("train/device", self.device_combo.currentData())
        s.setValue("train/resume", self.resume_check.isChecked())
        s.setValue("train/width_scale", self.width_spin.value())
        s.setValue("train/steps_stage1", self.steps1_spin.value())
        s.setValue("train/steps_stage2", self.steps2_spin.value())
        s.setValue("train/workers", self.workers_spin.value())
        s.setValue("train/log_every", self.log_every_spin.value())
        s.setValue("train/advanced_open", self.advanced_button.isChecked())

    # -------------------------------------------------------------- public
    def is_busy(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """End a running training and wait; True when no child process is left.

        SIGTERM first (the child's checkpoints are atomic, so any moment is
        safe), then kill if it has not gone within `timeout_ms`.
        """
        proc = self.process
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return True
        self._stopping = True
        proc.terminate()
        if not proc.waitForFinished(max(0, int(timeout_ms))):
            proc.kill()
            proc.waitForFinished(3000)
        return proc.state() == QProcess.ProcessState.NotRunning

    def command(self) -> list[str]:
        """The child's arguments after the Python executable (a frozen build drops
        the leading "-m hsvcolorizer.cli")."""
        args = ["-m", "hsvcolorizer.cli", "train",
                "--data", _abs(self.data_edit.text()),
                "--out", _abs(self.run_edit.text()),
                "--stage", self.stage_combo.currentData(),
                "--epochs-stage1", str(self.epochs1_spin.value()),
                "--epochs-stage2", str(self.epochs2_spin.value()),
                "--batch-size", str(self.batch_spin.value()),
                "--size", str(self.size_spin.value()),
                "--lr", repr(self.lr_spin.value()),
                "--input-channel", self.channel_combo.currentData(),
                "--device", self.device_combo.currentData(),
                "--log-every", str(self.log_every_spin.value()),
                "--events", "jsonl"]
        if self.val_edit.text().strip():
            args += ["--val", _abs(self.val_edit.text())]
        if abs(self.width_spin.value() - 1.0) > 1e-9:
            args += ["--width-scale", repr(self.width_spin.value())]
        if self.steps1_spin.value() > 0:
            args += ["--steps-stage1", str(self.steps1_spin.value())]
        if self.steps2_spin.value() > 0:
            args += ["--steps-stage2", str(self.steps2_spin.value())]
        if self.workers_spin.value() >= 0:
            args += ["--workers", str(self.workers_spin.value())]
        if self.resume_check.isChecked():
            args.append("--resume")
        return args

    def weights_path(self) -> str | None:
        """The final weights of the last finished run, if any."""
        return self._weights_path

    # ------------------------------------------------------------- actions
    @Slot()
    def start(self) -> None:
        if self.is_busy():
            return
        self._round_size()
        if not self.data_edit.text().strip():
            common.show_error(self, "No training folder", "Choose a folder of colour photos to train on.")
            return
        if not self.run_edit.text().strip():
            common.show_error(self, "No run folder", "Choose a folder where the run keeps its checkpoints "
                                                     "and weights.")
            return
        args = self.command()
        resume = self.resume_check.isChecked()

        self._stdout_buf = self._stderr_buf = b""
        self._stopping = False
        self._error_message = None
        self._stderr_tail = []
        self._weights_path = None
        self._total_steps = None
        self.events_seen = []
        run_folder = _abs(self.run_edit.text())
        if not resume or run_folder != getattr(self, "_curves_run", None):
            # A resumed run continues the same curves; a new run, or a run in
            # another folder, starts clean.
            self.plots.clear()
            self._clear_preview()
            self.val_label.setText("Validation —")
            self.log_view.clear()
        self.progress_bar.setRange(0, 0)  # busy until the child reports its plan
        self.phase_label.setText("Starting…")
        self.speed_label.setText("— images/s")
        self.eta_label.setText("ETA —")
        self._curves_run = run_folder
        self._append_log(("Resuming" if resume else "Starting") + " training: python " + " ".join(
            _quote(a) for a in args), "info")

        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # Unbuffered so each event arrives as it happens, not in 8 KiB lumps.
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        # The package's own folder first, so a source checkout that is not
        # installed runs the same code as this window.
        pkg_root = str(Path(hsvcolorizer.__file__).resolve().parent.parent)
        old = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", pkg_root + (os.pathsep + old if old else ""))
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(_existing_ancestor(Path(_abs(self.run_edit.text()))))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_process_error)
        self.process = proc
        self._started_at = time.monotonic()
        if getattr(sys, "frozen", False):
            # A frozen build has no Python to run -m with; its executable
            # dispatches `train ...` to the command line itself.
            proc.start(sys.executable, args[2:])
        else:
            proc.start(sys.executable, args)
        self._update_controls()
        self.status_message.emit("Training started")

    @Slot()
    def stop(self) -> None:
        """First press: ask the trainer to stop after the step it is in, which
        it checkpoints (a CPU step can take a minute; nothing is lost). A
        second press ("Stop now") ends it at once, losing the steps since the
        last checkpoint; it is also the way out where the request cannot be
        delivered (terminate() is a no-op for console programs on Windows)."""
        proc = self.process
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return
        if self._stopping:
            self._append_log("Ending the training now; the steps since the last checkpoint are lost", "error")
            proc.kill()
            return
        self._stopping = True
        self._append_log("Stopping after the current step, which is checkpointed first. Press Stop now to end it "
                         "at once and lose the steps since the last checkpoint.", "info")
        self.phase_label.setText("Stopping after this step…")
        self.eta_label.setText("ETA —")
        proc.terminate()
        self._update_controls()

    @Slot()
    def _emit_use_weights(self) -> None:
        if self._weights_path:
            self.use_weights.emit(self._weights_path)
            self.status_message.emit(f"Using the weights {self._weights_path}")

    # --------------------------------------------------------- child output
    @Slot()
    def _read_stdout(self) -> None:
        if self.process is not None:
            self.feed_stdout(bytes(self.process.readAllStandardOutput().data()))

    @Slot()
    def _read_stderr(self) -> None:
        if self.process is not None:
            self.feed_stderr(bytes(self.process.readAllStandardError().data()))

    def feed_stdout(self, data: bytes) -> None:
        """Take a chunk of the child's stdout; handles whole lines only, since a
        JSON event may arrive split over two reads."""
        self._stdout_buf += data
        *lines, self._stdout_buf = self._stdout_buf.split(b"\n")
        for raw in lines:
            self._handle_stdout_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def feed_stderr(self, data: bytes) -> None:
        self._stderr_buf += data
        *lines, self._stderr_buf = self._stderr_buf.split(b"\n")
        for raw in lines:
            self._handle_stderr_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _flush_buffers(self) -> None:
        """Read what is left once the child has ended, including an unterminated last line."""
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buf.strip():
            self._handle_stdout_line(self._stdout_buf.decode("utf-8", "replace").rstrip("\r"))
        if self._stderr_buf.strip():
            self._handle_stderr_line(self._stderr_buf.decode("utf-8", "replace").rstrip("\r"))
        self._stdout_buf = self._stderr_buf = b""

    def _handle_stdout_line(self, line: str) -> None:
        if not line.strip():
            return
        event = None
        if line.lstrip().startswith("{"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
        if not isinstance(event, dict) or event.get("event") not in EVENTS:
            self._append_log(line, "info")  # a stray print of some library
            return
        self.events_seen.append(event)
        handler = getattr(self, f"_on_event_{event['event']}", None)
        if handler is not None:
            try:
                handler(event)
            except (KeyError, TypeError, ValueError) as e:
                # A malformed event must not break the reading of the next ones.
                log.warning("bad %s event %r: %s", event.get("event"), event, e)

    def _handle_stderr_line(self, line: str) -> None:
        if not line.strip():
            return
        # The CLI repeats an error event's message on stderr; show it once.
        if self._error_message and line.strip() == f"hsvcolorizer: error: {self._error_message}":
            return
        self._stderr_tail = (self._stderr_tail + [line])[-20:]
        self._append_log(line, "stderr")

    # -------------------------------------------------------------- events
    def _on_event_start(self, ev: dict) -> None:
        self._steps_per_epoch = max(1, int(ev.get("steps_per_epoch") or 1))
        cfg = ev.get("config") or {}
        stages = {"1": [1], "2": [2], "both": [1, 2]}.get(str(cfg.get("stage", "both")), [1, 2])
        total = 0
        for s in stages:
            n = int(cfg.get(f"epochs_stage{s}", 0)) * self._steps_per_epoch
            cap = cfg.get(f"steps_stage{s}")
            total += min(n, int(cap)) if cap else n
        self._total_steps = total or None
        self.progress_bar.setRange(0, max(1, total))
        params = ev.get("parameters")
        self._append_log(f"Model: {params:,} parameters on {ev.get('device', '?')}; {self._steps_per_epoch} steps "
                         f"per epoch (batch {ev.get('batch_size', '?')})" if isinstance(params, int) else
                         f"{self._steps_per_epoch} steps per epoch", "info")
        self.phase_label.setText("Preparing…")

    def _on_event_log(self, ev: dict) -> None:
        self._append_log(str(ev.get("message", "")), "info")

    def _on_event_step(self, ev: dict) -> None:
        stage = int(ev["stage"])
        spe = int(ev.get("steps_per_epoch") or self._steps_per_epoch)
        x = (int(ev["epoch"]) - 1) * spe + int(ev["step"])
        self.plots.add_step(stage, x, ev)
        if self._stopping:
            return  # keep "Stopping…" up; the last steps still reach the curves
        self.phase_label.setText(f"Stage {stage} · epoch {ev['epoch']} / {ev.get('epochs', '?')} · "
                                 f"step {ev['step']} / {spe}")
        ips = ev.get("images_per_s")
        if ips is not None:
            self.speed_label.setText(f"{float(ips):.1f} images/s")
        self.eta_label.setText(f"ETA {format_duration(ev.get('eta_s'))}")
        if self._total_steps:
            self.progress_bar.setValue(min(int(ev.get("global_step", 0)), self._total_steps))

    def _on_event_epoch(self, ev: dict) -> None:
        stage = int(ev["stage"])
        if ev.get("val_loss") is not None:
            self.plots.add_validation(stage, float(ev["val_loss"]))
            psnr = ev.get("val_psnr")
            self.val_label.setText(f"Validation loss {float(ev['val_loss']):.4f}" +
                                   (f" · PSNR {float(psnr):.2f} dB" if psnr is not None else ""))
        preview = ev.get("preview")
        if preview:
            pixmap = QPixmap(str(preview))
            if not pixmap.isNull():
                self._show_preview(pixmap)
                self.preview_caption.setText(f"Validation photo after stage {stage}, epoch {ev['epoch']}")

    def _on_event_checkpoint(self, ev: dict) -> None:
        self._append_log(f"Checkpoint saved at step {ev.get('step', '?')}: {ev.get('path', '')}", "checkpoint")

    def _on_event_done(self, ev: dict) -> None:
        # The trainer logs where it wrote them; the success line comes when the process ends.
        self._weights_path = str(ev["weights"])

    def _on_event_error(self, ev: dict) -> None:
        self._error_message = str(ev.get("message", "unknown error"))
        self._append_log(f"Error: {self._error_message}", "error")

    # ------------------------------------------------------------ finishing
    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._flush_buffers()
        elapsed = format_duration(time.monotonic() - self._started_at)
        stopped = self._stopping
        ok = code == 0 and status == QProcess.ExitStatus.NormalExit and not stopped
        if stopped:
            has_ckpt = self._checkpoint_exists()
            self._append_log("Training stopped." + (" Resume is ticked: press Start to continue from the last "
                                                    "checkpoint." if has_ckpt else " No checkpoint was written "
                                                                                   "yet."), "info")
            if has_ckpt:
                self.resume_check.setChecked(True)
            self.phase_label.setText("Stopped")
            self.status_message.emit("Training stopped")
        elif ok and self._weights_path:
            self.phase_label.setText("Finished")
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1)
            self.eta_label.setText(f"took {elapsed}")
            self._append_log(f"Training finished in {elapsed}. Press “Use these weights” to colorize with "
                             "the new model.", "done")
            self.status_message.emit(f"Training finished in {elapsed}")
        else:
            if self._error_message:
                message = self._error_message
            elif status == QProcess.ExitStatus.CrashExit:
                message = "The training process crashed." + _tail(self._stderr_tail)
            else:
                message = f"The training process ended with exit code {code}." + _tail(self._stderr_tail)
            self._append_log(f"Training failed: {message}", "error")
            self.phase_label.setText("Failed")
            self.status_message.emit("Training failed")
            common.show_error(self, "Training failed", message)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        self._stopping = False
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self._update_controls()
        self._update_checkpoint_hint()
        self.training_finished.emit(ok and bool(self._weights_path))

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self.process is None:
            return  # crashes and exits are reported by finished
        message = f"Could not start {sys.executable}: {self.process.errorString()}"
        self._append_log(message, "error")
        self.process.deleteLater()
        self.process = None
        self.phase_label.setText("Failed")
        self.progress_bar.setRange(0, 1)
        self._update_controls()
        common.show_error(self, "Training could not start", message)

    # ------------------------------------------------------------- helpers
    def preview_pixmap(self) -> QPixmap:
        """The last epoch's preview as the trainer wrote it (null before the first epoch)."""
        return self.preview_label.source()

    def _show_preview(self, pixmap: QPixmap) -> None:
        self.preview_label.set_source(pixmap)
        h, w = pixmap.height(), pixmap.width()
        as_tiles = h > 0 and w == 4 * h
        if as_tiles:
            for i, tile in enumerate(self.preview_tiles):
                tile.set_source(pixmap.copy(i * h, 0, h, h))
        self.preview_grid.setVisible(as_tiles)
        self.preview_label.setVisible(not as_tiles)

    def _clear_preview(self) -> None:
        for tile in self.preview_tiles:
            tile.clear_source()
        self.preview_label.clear_source("A validation photo appears here after each epoch")
        self.preview_grid.setVisible(False)
        self.preview_label.setVisible(True)
        self.preview_caption.setText("")

    def log_text(self) -> str:
        return self.log_view.toPlainText()

    def _append_log(self, text: str, kind: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        colour = LOG_COLOURS.get(kind)
        body = html.escape(text)
        if colour:
            body = f'<span style="color:{colour}">{body}</span>'
        bar = self.log_view.verticalScrollBar()
        # Follow new lines unless the user has scrolled up to read older ones.
        follow = bar.value() >= bar.maximum() - 4
        self.log_view.appendHtml(f'<span style="color:#8a8f98">{stamp}</span>&nbsp;&nbsp;{body}')
        if follow:
            bar.setValue(bar.maximum())

    def _checkpoint_exists(self) -> bool:
        text = self.run_edit.text().strip()
        return bool(text) and (Path(text).expanduser() / CHECKPOINT_NAME).is_file()

    @Slot()
    def _update_checkpoint_hint(self) -> None:
        if not self._checkpoint_exists() and not self.is_busy():
            # Nothing to resume in this folder: a tick left from another
            # run's Stop would only pretend to continue it.
            self.resume_check.setChecked(False)
        if self._checkpoint_exists():
            self.checkpoint_hint.setText("This run folder has a checkpoint. Tick Resume to continue it; "
                                         "otherwise training starts over and replaces it.")
        else:
            self.checkpoint_hint.setText("")
        self.checkpoint_hint.setVisible(bool(self.checkpoint_hint.text()))

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
        start = edit.text().strip() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, title, start)
        if path:
            edit.setText(path)

    @Slot()
    def _update_controls(self) -> None:
        busy = self.is_busy()
        stage = self.stage_combo.currentData()
        ready = bool(self.data_edit.text().strip() and self.run_edit.text().strip())
        self.start_button.setEnabled(not busy and ready)
        self.stop_button.setEnabled(busy)
        self.stop_button.setText("Stop now" if busy and self._stopping else "Stop")
        self.use_button.setEnabled(not busy and bool(self._weights_path))
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


def _abs(text: str) -> str:
    return str(Path(text.strip()).expanduser().absolute())


def _existing_ancestor(path: Path) -> str:
    for p in (path, *path.parents):
        if p.is_dir():
            return str(p)
    return str(Path.home())


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def _tail(lines: list[str]) -> str:
    useful = [line for line in lines if line.strip()][-3:]
    return ("\n\n" + "\n".join(useful)) if useful else ""
