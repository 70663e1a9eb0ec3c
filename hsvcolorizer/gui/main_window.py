"""The main window: Colorize, Batch and Train tabs, menus, toolbar, status bar."""

from __future__ import annotations

import html
import logging
import platform
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QSettings, QSize, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QTabWidget,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer import __version__
from hsvcolorizer.gui.colorize_tab import ColorizeTab
from hsvcolorizer.gui.common import ask_yes_no, icon, show_error
from hsvcolorizer.gui.elided import ElidedLabel, elide_middle
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import activity, wait_for_tasks
from hsvcolorizer.imageio import READ_EXTENSIONS, iter_image_files

__all__ = ["MAX_RECENT", "MainWindow", "model_info_html"]

log = logging.getLogger(__name__)

MAX_RECENT = 10
APP_NAME = "HSV Colorizer"
# A window title shows this many characters of the photo's name at most (the
# middle of a longer one becomes "…"); the Colorize tab shows it in full.
TITLE_NAME_CHARS = 60
# The smallest size at which every tab's controls stay usable: a 1280 x 720
# screen, less a taskbar and the title bar, must hold the window.
MINIMUM_SIZE = QSize(1024, 600)


class MainWindow(QMainWindow):
    """The application window.

    settings: where window layout, folders, recent files and render options
      persist (tests pass an INI file in a temp folder); wrapped in an
      AppSettings, which every tab is given.
    weights: a weights file to load at start; otherwise the default weights
      are loaded when ``load_default_weights`` is true.
    device: a name of hsvcolorizer.choices.DEVICES for the Colorize tab.
    """

    def __init__(
        self,
        settings: QSettings | AppSettings | None = None,
        weights: str | None = None,
        load_default_weights: bool = True,
        device: str = "auto",
    ) -> None:
        super().__init__()
        self.settings = AppSettings.wrap(settings)
        self._closed = False
        # Ctrl+V in a text field pastes an image into the Colorize tab when
        # the clipboard holds an image and no text (see eventFilter).
        QApplication.instance().installEventFilter(self)
        self._info_dialog: QDialog | None = None
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.setMinimumSize(MINIMUM_SIZE)

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.colorize_tab = ColorizeTab(self.settings, device, self)
        self.tabs.addTab(self.colorize_tab, icon("fa5s.palette"), "Colorize")
        self.batch_tab = self._make_batch_tab()
        self.train_tab = self._make_train_tab()
        self.setCentralWidget(self.tabs)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect_tabs()
        self._restore_settings()
        self._update_actions()

        self.colorize_tab.start(weights, load_default_weights)

    # ================================================================ tabs

    def _placeholder(self, name: str, error: BaseException) -> QWidget:
        label = QLabel(f"{name} not available: {error}")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setObjectName(f"{name.lower()}Placeholder")
        return label

    def _make_batch_tab(self) -> QWidget | None:
        # Imported here so a missing or broken Batch tab costs only its tab.
        try:
            from hsvcolorizer.gui.batch_tab import BatchTab

            tab = BatchTab(self.colorize_tab.weights_path, self.settings, self,
                           device_provider=self.colorize_tab.device)
        except Exception as exc:
            log.exception("Batch tab unavailable")
            self.tabs.addTab(self._placeholder("Batch", exc), icon("fa5s.images"), "Batch")
            return None
        self.tabs.addTab(tab, icon("fa5s.images"), "Batch")
        tab.open_photo.connect(self._open_in_colorize_tab)
        tab.take_colorize_options.connect(self._push_render_options)
        return tab

    @Slot(str)
    def _open_in_colorize_tab(self, path: str) -> None:
        self.tabs.setCurrentWidget(self.colorize_tab)
        self.colorize_tab.open_path(path)

    def _make_train_tab(self) -> QWidget | None:
        try:
            from hsvcolorizer.gui.train_tab import TrainTab

            tab = TrainTab(self.settings, self)
        except Exception as exc:
            log.exception("Train tab unavailable")
            self.tabs.addTab(self._placeholder("Train", exc), icon("fa5s.dumbbell"), "Train")
            return None
        self.tabs.addTab(tab, icon("fa5s.dumbbell"), "Train")
        return tab

    def _connect_tabs(self) -> None:
        ct = self.colorize_tab
        ct.status_message.connect(self._show_status)
        ct.info_changed.connect(self._update_status_labels)
        ct.info_changed.connect(self._update_actions)
        ct.photo_opened.connect(self.add_recent_file)
        ct.train_requested.connect(self.show_train_tab)
        ct.weights_loaded.connect(lambda _info: self._update_status_labels())
        ct.weights_loaded.connect(lambda _info: self._update_actions())
        for tab in (self.batch_tab, self.train_tab):
            signal = getattr(tab, "status_message", None)
            if signal is not None:
                signal.connect(self._show_status)
        use_weights = getattr(self.train_tab, "use_weights", None)
        if use_weights is not None:
            use_weights.connect(self.use_trained_weights)
        self.tabs.currentChanged.connect(self._on_tab_changed)

    def _on_tab_changed(self, _index: int) -> None:
        self._update_actions()

    def _push_render_options(self) -> None:
        """The Batch tab takes the options tried out on the Colorize tab, when asked."""
        if self.batch_tab is None:
            return
        ct = self.colorize_tab
        try:
            self.batch_tab.set_render_options(ct.mode(), ct.saturation(), ct.working_size())
        except Exception:  # the other tab's bug must not break switching tabs
            log.exception("BatchTab.set_render_options failed")

    def show_train_tab(self) -> None:
        self.tabs.setCurrentIndex(2)

    def use_trained_weights(self, path: str) -> None:
        """Train tab's "use these weights": load them and show the Colorize tab."""
        self.colorize_tab.load_weights(path)
        self.tabs.setCurrentWidget(self.colorize_tab)

    # ============================================================= actions

    def _action(self, name: str, text: str, icon_name: str | None, tip: str,
                slot: Callable[[], object], shortcuts: list | None = None) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        keys = [QKeySequence(s) for s in shortcuts or []]
        keys = [k for k in keys if not k.isEmpty()]  # a standard key may be unbound on this platform
        if keys:
            action.setShortcuts(keys)
            tip = f"{tip} ({keys[0].toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.actions[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions: dict[str, QAction] = {}
        ct = self.colorize_tab
        self._action("open", "&Open…", "fa5s.folder-open", "Open a photo to colorize", self._open, [QKeySequence.StandardKey.Open])
        self._action("paste", "&Paste Image", "fa5s.paste", "Colorize the image on the clipboard", self._paste, [QKeySequence.StandardKey.Paste])
        self._action("save_as", "&Save As…", "fa5s.save", "Save the full-size colour photo", ct.save_as_dialog, ["Ctrl+S"])
        self._action("save_stages", "Save S&tages…", "fa5s.layer-group",
                     "Save stage 1's colour image and both stages' hue and saturation maps", ct.save_stages_dialog)
        self._action("quit", "&Quit", "fa5s.power-off", "Quit HSV Colorizer", self.close, ["Ctrl+Q"])
        self.actions["quit"].setMenuRole(QAction.MenuRole.QuitRole)
        self._action("fit", "&Fit", "fa5s.expand", "Fit the photo in the views", self._view(ct.fit), ["Ctrl+0"])
        self._action("actual_size", "&100%", "fa5s.search", "Show one photo pixel per screen pixel", self._view(ct.actual_size), ["Ctrl+1"])
        self._action("zoom_in", "Zoom &In", "fa5s.search-plus", "Zoom in", self._view(ct.zoom_in), ["Ctrl++", "Ctrl+="])
        self._action("zoom_out", "Zoom &Out", "fa5s.search-minus", "Zoom out", self._view(ct.zoom_out), ["Ctrl+-"])
        self._action("load_weights", "&Load Weights…", "fa5s.file-import", "Load a .safetensors weights file", ct.load_weights_dialog)
        self._action("default_weights", "Use the &Default Model", "fa5s.undo", "Load the shipped model again",
                     ct.load_default_weights)
        self._action("model_info", "Model &Info…", "fa5s.info-circle",
                     "Architecture, parameter counts, training and validation of the loaded model", self.show_model_info)
        self._action("about", "&About HSV Colorizer", "fa5s.question-circle", "Version and credits", self.show_about)
        self.actions["about"].setMenuRole(QAction.MenuRole.AboutRole)
        self._action("clear_recent", "&Clear Recent", None, "Forget the recently opened photos", self.clear_recent_files)

    def _view(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            self.tabs.setCurrentWidget(self.colorize_tab)
            fn()
        return run

    def _open(self) -> None:
        self.tabs.setCurrentWidget(self.colorize_tab)
        self.colorize_tab.open_dialog()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """A text field takes Ctrl+V for itself, so with the focus in one (a
        folder, the working size) an image on the clipboard went nowhere. The
        field keeps text pastes; an image with no text goes to the Colorize tab."""
        if (event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent)
                and event.matches(QKeySequence.StandardKey.Paste) and not self._closed):
            focus = QApplication.focusWidget()
            in_field = isinstance(focus, (QLineEdit, QAbstractSpinBox)) or isinstance(
                getattr(focus, "parent", lambda: None)(), QAbstractSpinBox)
            if in_field and focus.window() is self:
                mime = QGuiApplication.clipboard().mimeData()
                has_text = mime is not None and mime.hasText() and not mime.hasUrls() and bool(mime.text().strip())
                has_image = mime is not None and (mime.hasImage() or mime.hasUrls())
                if has_image and not has_text:
                    self._paste()
                    return True
        return super().eventFilter(watched, event)

    def _paste(self) -> None:
        self.tabs.setCurrentWidget(self.colorize_tab)
        self.colorize_tab.paste()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        a = self.actions
        file_menu = bar.addMenu("&File")
        file_menu.addAction(a["open"])
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setIcon(icon("fa5s.history"))
        self.recent_menu.setToolTipsVisible(True)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(a["paste"])
        file_menu.addSeparator()
        file_menu.addAction(a["save_as"])
        file_menu.addAction(a["save_stages"])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])
        view_menu = bar.addMenu("&View")
        for key in ("fit", "actual_size", "zoom_in", "zoom_out"):
            view_menu.addAction(a[key])
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(a["load_weights"])
        model_menu.addAction(a["default_weights"])
        model_menu.addAction(a["model_info"])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(a["about"])
        for menu in (file_menu, view_menu, model_menu, help_menu):
            menu.setToolTipsVisible(True)
        self._rebuild_recent_menu()

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main toolbar", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        a = self.actions
        for key in ("open", "save_as", "save_stages"):
            tb.addAction(a[key])
        tb.addSeparator()
        for key in ("fit", "actual_size", "zoom_out", "zoom_in"):
            tb.addAction(a[key])
        tb.addSeparator()
        for key in ("load_weights", "model_info"):
            tb.addAction(a[key])
        # Zoom buttons are self-explanatory as icons; the rest carry text.
        for key in ("zoom_in", "zoom_out"):
            button = tb.widgetForAction(a[key])
            if button is not None:
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        # What is running, from every tab (tasks.activity()): the newest item,
        # e.g. "Colorizing photo.jpg at 256 px" or "Saving photo_color.png".
        self.activity_label = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle)
        # Wide enough for "Training stage 1, epoch 3 of 10" beside the busy
        # bar: an elided label may otherwise be squeezed to one letter by a
        # status message on the left.
        self.activity_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.activity_label.setMinimumWidth(240)
        self.activity_label.setMaximumWidth(380)
        self.activity_label.setVisible(False)
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)  # range 0..0: Qt's "busy" animation
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setVisible(False)
        sb.addPermanentWidget(self.activity_label)
        self.device_label = QLabel()
        self.device_label.setToolTip("Device the networks run on")
        self.size_label = QLabel()
        self.size_label.setToolTip("Size and bit depth of the open photo")
        self.time_label = QLabel()
        self.time_label.setToolTip("Time the last colorization took (reading, both networks, recomposition)")
        for w in (self.busy_bar, self.size_label, self.time_label, self.device_label):
            sb.addPermanentWidget(w)
        self._update_status_labels()
        activity().changed.connect(self._show_activity)
        self._show_activity(activity().running())

    def _show_status(self, message: str) -> None:
        # Elided to the room left of the permanent labels: a long photo name
        # must not push "on CPU" under them (the full text is in the log).
        sb = self.statusBar()
        room = sb.width() - sum(w.width() for w in (self.activity_label, self.busy_bar, self.size_label,
                                                    self.time_label, self.device_label) if w.isVisible()) - 40
        if room > 80:
            message = sb.fontMetrics().elidedText(message, Qt.TextElideMode.ElideMiddle, room)
        sb.showMessage(message, 8000)

    @Slot(list)
    def _show_activity(self, running: list) -> None:
        """The newest running item, all of them in the tooltip; the busy bar while anything runs."""
        busy = bool(running) and not self._closed
        self.busy_bar.setVisible(busy)
        self.activity_label.setVisible(busy)
        if not busy:
            return
        more = f"  (+{len(running) - 1} more)" if len(running) > 1 else ""
        self.activity_label.setText(f"{running[0]}{more}")
        tip = "\n".join(running)
        self.activity_label.set_tooltip(tip)
        self.busy_bar.setToolTip(tip)

    def activity_text(self) -> str:
        """What the status bar says is running ("" when nothing is)."""
        return self.activity_label.text() if self.activity_label.isVisible() else ""

    def _update_status_labels(self) -> None:
        ct = self.colorize_tab
        device = ct.device_text()
        self.device_label.setText(f"  {device}  " if device else "  No model  ")
        size = ct.size_text()
        self.size_label.setText(f"  {size}  " if size else "")
        self.size_label.setVisible(bool(size))
        t = ct.time_text()
        self.time_label.setText(f"  {t}  " if t else "")
        self.time_label.setVisible(bool(t))
        name = elide_middle(ct.photo_name, TITLE_NAME_CHARS)
        self.setWindowTitle(f"{name} — {APP_NAME}" if name else APP_NAME)

    def _update_actions(self) -> None:
        ct = self.colorize_tab
        has_result = ct.result is not None
        self.actions["save_as"].setEnabled(has_result)
        self.actions["save_stages"].setEnabled(has_result)
        self.actions["model_info"].setEnabled(ct.model_info is not None)
        # Zooming is about the Colorize tab's views: on the other tabs the
        # buttons would only switch tabs, which surprised a user.
        on_colorize = self.tabs.currentWidget() is ct
        for key in ("fit", "actual_size", "zoom_in", "zoom_out"):
            self.actions[key].setEnabled(on_colorize)

    # ======================================================= recent files

    def recent_files(self) -> list[str]:
        return self.settings.get("recent_files")

    def add_recent_file(self, path: str) -> None:
        path = str(Path(path).resolve())
        files = [p for p in self.recent_files() if p != path]
        files.insert(0, path)
        self.settings.set("recent_files", files[:MAX_RECENT])
        self._rebuild_recent_menu()
        self._update_status_labels()
        self._update_actions()

    def clear_recent_files(self) -> None:
        self.settings.set("recent_files", [])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.recent_files()
        for i, path in enumerate(files):
            # Numbered accelerators (&1..&9, 1&0) make the list keyboard friendly.
            accel = f"&{i + 1}" if i < 9 else "1&0"
            action = menu.addAction(f"{accel}  {elide_middle(Path(path).name, TITLE_NAME_CHARS)}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_recent(p))
        if files:
            menu.addSeparator()
        menu.addAction(self.actions["clear_recent"])
        self.actions["clear_recent"].setEnabled(bool(files))
        menu.setEnabled(True)

    def open_recent(self, path: str) -> None:
        self.tabs.setCurrentWidget(self.colorize_tab)
        if not Path(path).is_file():
            show_error(self, "Photo not found", f"{path} no longer exists; it was removed from the recent files.")
            self.settings.set("recent_files", [p for p in self.recent_files() if p != path])
            self._rebuild_recent_menu()
            return
        self.colorize_tab.open_path(path)

    # ===================================================== drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: list[str]) -> None:
        """One file opens in Colorize; several files or a folder may go to Batch."""
        if len(paths) == 1 and not Path(paths[0]).is_dir():
            self.tabs.setCurrentWidget(self.colorize_tab)
            self.colorize_tab.open_path(paths[0])
            return
        if self.batch_tab is None:
            show_error(self, "Batch tab not available", "Several photos or a folder need the Batch tab, which failed to load.")
            return
        folders = [p for p in paths if Path(p).is_dir()]
        what = f"the folder {Path(folders[0]).name}" if len(paths) == 1 else f"these {len(paths)} items"
        if not ask_yes_no(self, "Colorize in the Batch tab?",
                          f"Send {what} to the Batch tab to colorize them all?"):
            return
        self._push_render_options()
        try:
            if len(paths) == 1:
                self.batch_tab.set_input_folder(paths[0])
            else:
                files: list[str] = []
                for p in paths:
                    if Path(p).is_dir():
                        files.extend(str(f) for f in iter_image_files(p))
                    elif Path(p).suffix.lower() in READ_EXTENSIONS:
                        files.append(p)
                self.batch_tab.add_paths(files)
        except Exception as exc:
            log.exception("sending paths to the Batch tab failed")
            show_error(self, "Could not add the photos", str(exc))
            return
        self.tabs.setCurrentWidget(self.batch_tab)

    # ========================================================== dialogs

    def show_model_info(self) -> None:
        info = self.colorize_tab.model_info
        if info is None:
            show_error(self, "No model loaded", "Load weights first (Model > Load Weights).")
            return
        if self._info_dialog is not None:
            self._info_dialog.close()
        dialog = QDialog(self)
        dialog.setWindowTitle("Model Info")
        dialog.resize(580, 720)
        layout = QVBoxLayout(dialog)
        browser = QTextBrowser(dialog)
        browser.setObjectName("modelInfoText")
        browser.setOpenExternalLinks(False)
        browser.setHtml(model_info_html(info))
        layout.addWidget(browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: setattr(self, "_info_dialog", None))
        self._info_dialog = dialog
        dialog.open()  # non-blocking: the worker threads keep reporting

    def confirm_quit_during_training(self) -> bool:
        """Ask before quitting ends a running training; True to quit."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Quit while training?")
        box.setText("A training is running in the Train tab.")
        box.setInformativeText("Quitting stops it now: the steps since its last checkpoint are lost, and "
                               "Resume continues from that checkpoint. To lose nothing, press Stop in the "
                               "Train tab and quit when it has stopped.")
        quit_button = box.addButton("Stop training and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is quit_button

    def show_about(self) -> None:
        import PySide6
        import torch

        box = QMessageBox(self)
        box.setWindowTitle("About HSV Colorizer")
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(
            f"<h3>HSV Colorizer {html.escape(__version__)}</h3>"
            "<p>Colorizes black-and-white photos with a two-stage convolutional network "
            "working in HSV colour space: LR-CMGN predicts hue and saturation at 1/4 size, "
            "the RCN refines them at full size, and the photo's own gray is kept.</p>"
            f"<p style='color:gray'>PySide6 {PySide6.__version__} · PyTorch {torch.__version__} · "
            f"Python {platform.python_version()}</p>"
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # ========================================================= settings

    def _restore_settings(self) -> None:
        geometry = self.settings.get("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self._default_size()
        state = self.settings.get("window/state")
        if state is not None:
            self.restoreState(state)
        index = self.settings.get("window/tab")
        if 0 <= index < self.tabs.count():
            self.tabs.setCurrentIndex(index)

    def _default_size(self) -> None:
        """1400 x 900, or what the screen holds (a 1280 x 720 laptop)."""
        size = QSize(1400, 900)
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            room = screen.availableGeometry().size()
            size = size.boundedTo(QSize(max(room.width() - 40, MINIMUM_SIZE.width()),
                                        max(room.height() - 60, MINIMUM_SIZE.height())))
        self.resize(size)

    def save_settings(self) -> None:
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("window/tab", self.tabs.currentIndex())
        self.colorize_tab.save_settings()
        self.settings.sync()

    # ============================================================ close

    def is_busy(self) -> bool:
        busy = self.colorize_tab.is_busy()
        for tab in (self.batch_tab, self.train_tab):
            try:
                busy = busy or bool(tab is not None and tab.is_busy())
            except Exception:
                log.exception("is_busy failed")
        return busy

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._closed:
            event.accept()
            return
        if self.train_tab is not None and self.train_tab.is_busy() and not self.confirm_quit_during_training():
            event.ignore()
            return
        self._closed = True
        QApplication.instance().removeEventFilter(self)
        try:
            self.save_settings()
        except Exception:
            log.exception("saving settings failed")
        # Each part is told to stop (inference aborts at its next layer, a batch
        # after the photo it is writing, training gets SIGTERM then SIGKILL)
        # and waited for. A thread still busy after 5 s (a huge photo being
        # written) is waited for until it ends: destroying a running QThread
        # aborts the process and would leave a half-written temporary file.
        parts = [self.colorize_tab] + [t for t in (self.batch_tab, self.train_tab) if t is not None]
        pending = []
        for part in parts:
            try:
                if part.shutdown(5000) is False:
                    pending.append(part)
            except Exception:
                log.exception("%s.shutdown failed", type(part).__name__)
        if pending:
            self.statusBar().showMessage("Finishing the current photo before closing…")
            QApplication.processEvents()
            for part in pending:
                try:
                    if part.shutdown(10 * 60 * 1000) is False:
                        log.error("%s did not stop within 10 minutes", type(part).__name__)
                except Exception:
                    log.exception("%s.shutdown failed", type(part).__name__)
        # A save (or any other one-off task) in flight is finished, never cut
        # off: the user's file is written before the program ends.
        if not wait_for_tasks(2000):
            self.statusBar().showMessage("Finishing saving before closing…")
            QApplication.processEvents()
            if not wait_for_tasks(10 * 60 * 1000):
                log.error("background tasks did not end within 10 minutes")
        if self._info_dialog is not None:
            self._info_dialog.close()
        event.accept()


# ---------------------------------------------------------------- model info


def _fmt_int(value: object) -> str:
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) else html.escape(str(value))


def _fmt_seconds(value: object) -> str:
    if not isinstance(value, (int, float)):
        return html.escape(str(value))
    minutes, seconds = divmod(float(value), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds:.0f} s"
    return f"{seconds:.1f} s"


_PRECISION_TEXT = {
    "bf16": "bf16 (native on this device: faster than fp32, nearly the same colours)",
    "fp32": "fp32",
}


def model_info_html(info: dict) -> str:
    """The Model Info dialog's text from the worker's ``loaded`` info dict."""
    meta = info.get("meta") or {}
    arch = meta.get("architecture") or {}
    params = meta.get("parameters") or {}
    counted = info.get("counted_parameters") or {}
    training = meta.get("training") or {}
    validation = meta.get("validation") or {}

    def table(rows: list[tuple[str, str]]) -> str:
        # A leading "  " in a key marks a detail row of the row above: indented.
        cells = []
        for k, v in rows:
            if v in (None, ""):
                continue
            indent = 14 if k.startswith("  ") else 0
            cells.append(
                f"<tr><td valign='top' style='padding:2px 16px 2px {indent}px; color:#888'>{html.escape(k.strip())}</td>"
                f"<td valign='top' style='padding:2px 0'>{v}</td></tr>"
            )
        return f"<table cellspacing='0' cellpadding='0'>{''.join(cells)}</table>"

    e = html.escape
    parts = [f"<h2>{e(str(meta.get('name') or Path(info.get('weights_path') or 'model').stem))}</h2>"]
    parts.append(table([
        ("File", e(str(info.get("weights_path") or "—"))),
        ("Device", e(str(info.get("device", "")))),
        ("Networks compute in", _PRECISION_TEXT.get(info.get("precision", ""), e(str(info.get("precision", ""))))),
        ("Input channel", e(str(meta.get("input_channel", "luma")))),
        ("Default recomposition", e(str(meta.get("recompose", "luma")))),
        ("Working size", f"{e(str(meta.get('working_size', info.get('working_size', ''))))} px (long side)"),
    ]))

    rcn = arch.get("rcn", "pyramid")
    parts.append("<h3>Architecture</h3>")
    rows = [
        ("Stage 1", "LR-CMGN: 12 convolutions, output at 1/4 size"),
        ("  widths", e(", ".join(str(w) for w in arch.get("lrcmgn_widths", [])))),
        ("Stage 2", "RCN, pyramidal (the paper's final design)" if rcn == "pyramid" else "RCN, plain (the paper's original design)"),
    ]
    if rcn == "pyramid":
        rows += [
            ("  branch widths", e(", ".join(str(w) for w in arch.get("rcn_branch_widths", [])))),
            ("  fuse / head", e(f"{arch.get('rcn_fuse_width', '')} / {', '.join(str(w) for w in arch.get('rcn_head_widths', []))}")),
        ]
    else:
        rows.append(("  width × depth", e(f"{arch.get('plain_width', '')} × {arch.get('plain_depth', '')}")))
    if any(d != 1 for d in arch.get("lrcmgn_dilations") or []):
        rows.append(("  dilations", e(", ".join(str(d) for d in arch["lrcmgn_dilations"]))))
    rows.append(("Hue output", "unit vector (cos, sin): H is its angle" if arch.get("hue_vector") else "one tanh value"))
    rows.append(("Hue resizing", "circular (as an angle)" if arch.get("circular_resize", True) else "plain"))
    rows.append(("Colour hints", "read: LR-CMGN also takes a hint map (the Hints tool above the result)"
                 if arch.get("hint_input") else "not read (a model trained with --hints reads them)"))
    parts.append(table(rows))

    parts.append("<h3>Parameters</h3>")
    parts.append(table([
        ("Total", _fmt_int(params.get("total", counted.get("total")))),
        ("LR-CMGN", _fmt_int(params.get("lrcmgn", counted.get("lrcmgn")))),
        ("RCN", _fmt_int(params.get("rcn", counted.get("rcn")))),
    ]))

    if training:
        parts.append("<h3>Training</h3>")
        rows = [
            ("Data", e(str(training.get("data", "")))),
            ("Started from", e(str(training["init"])) if training.get("init") else ""),
            ("Simulated hints", "yes" if training.get("hints") else ""),
            ("Images used", _fmt_int(training.get("images_used", ""))),
            ("Image size", e(f"{training['size']} px") if "size" in training else ""),
            ("Steps", _fmt_int(training.get("steps", ""))),
            ("Epochs (stage 1 / 2)", e(f"{training.get('epochs_stage1', '')} / {training.get('epochs_stage2', '')}")
             if "epochs_stage1" in training else ""),
            ("Batch size", _fmt_int(training.get("batch_size", ""))),
            ("Learning rate", e(str(training.get("lr", "")))),
            ("Hue loss", e(str(training.get("hue_loss", "")))
             + (e(f", weighted by {training['hue_weighting']}") if training.get("hue_weighting") not in (None, "none") else "")),
            ("Sampling / crops", e(f"{training['sampling']} / {training.get('crop', '')}") if "sampling" in training else ""),
            ("Stage-1 loss in stage 2", e(str(training["stage1_weight"])) if "stage1_weight" in training else ""),
            ("Schedule / EMA", e(f"{training['schedule']} / {training.get('ema', '')}") if "schedule" in training else ""),
            ("Device", e(str(training.get("device", "")))),
            ("Wall time", _fmt_seconds(training["wall_time_s"]) if "wall_time_s" in training else ""),
            ("Seed", e(str(training.get("seed", "")))),
        ]
        parts.append(table(rows))
    if validation:
        parts.append("<h3>Validation during training</h3>")
        side = training.get("size", 256) if training else 256
        parts.append(f"<p>{side}×{side} centre crops of up to 64 of the run's validation photos, at its last epoch. "
                     "Figures on whole photos come from <code>hsvcolorizer evaluate</code> "
                     "(see models/README.md).</p>")
        names = {"loss": "Loss (H + S)", "loss_h": "Hue loss", "loss_s": "Saturation loss", "psnr": "PSNR"}
        rows = []
        for key, value in validation.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            if key == "psnr":
                text += " dB"
            rows.append((names.get(key, key), e(text)))
        parts.append(table(rows))
    return "".join(parts)
