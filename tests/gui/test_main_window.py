"""Main window: tabs, drops, menus, settings, no-weights banner, clean close."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import time

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QLabel

import hsvcolorizer.weights
from hsvcolorizer.gui.colorize_tab import NO_WEIGHTS_TEXT
from hsvcolorizer.gui.main_window import MAX_RECENT, MainWindow, model_info_html
from hsvcolorizer.imageio import write_image

TIMEOUT = 30000


@pytest.fixture
def make_window(qtbot, qt_settings, tiny_weights):
    windows: list[MainWindow] = []

    def make(wait_for_model: bool = True, **kwargs) -> MainWindow:
        kwargs.setdefault("settings", qt_settings)
        kwargs.setdefault("device", "cpu")
        if kwargs.get("load_default_weights", True):
            kwargs.setdefault("weights", str(tiny_weights))
        window = MainWindow(**kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if wait_for_model:
            qtbot.waitUntil(lambda: window.colorize_tab.model_info is not None, timeout=TIMEOUT)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.colorize_tab.inference.thread.isFinished()
        assert window.colorize_tab.renderer.thread.isFinished()


def drop(window: MainWindow, paths) -> QDropEvent:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    return event


def test_window_has_three_tabs_and_complete_actions(make_window):
    window = make_window()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Colorize", "Batch", "Train"]
    for name, action in window.actions.items():
        assert action.toolTip(), name
        assert action.statusTip(), name
    assert window.actions["open"].shortcut().toString() == "Ctrl+O"
    assert window.actions["save_as"].shortcut().toString() == "Ctrl+S"
    assert window.actions["fit"].shortcut().toString() == "Ctrl+0"
    assert window.actions["actual_size"].shortcut().toString() == "Ctrl+1"
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "View", "Model", "Help"]
    assert window.device_label.text().strip() == "CPU"


def test_dropping_a_file_opens_it_in_the_input_view(qtbot, make_window, gray_png):
    window = make_window()
    window.tabs.setCurrentIndex(1)
    with qtbot.waitSignal(window.colorize_tab.result_displayed, timeout=TIMEOUT):
        event = drop(window, [gray_png])
        assert event.isAccepted()
        # The gray is shown at once, before the networks have run.
        view = window.colorize_tab.input_view
        assert not view.pixmap().isNull()
        assert view.image_size() == (40, 56)
    assert window.tabs.currentWidget() is window.colorize_tab
    assert window.colorize_tab.result_view.image_size() == (40, 56)
    assert window.recent_files() == [str(gray_png.resolve())]
    assert "photo.png" in window.windowTitle()
    assert "40 × 56" in window.size_label.text()
    assert window.time_label.text().strip().endswith("s")


def test_dropping_several_files_offers_the_batch_tab(make_window, tmp_path, gray_png, dialogs, gradient):
    window = make_window()
    if window.batch_tab is None:
        pytest.skip("the Batch tab is not available")
    other = tmp_path / "second.png"
    write_image(other, gradient(20, 30))
    added: list = []
    window.batch_tab.add_paths = lambda paths: added.append(list(paths))

    dialogs.answer = False
    drop(window, [gray_png, other])
    assert len(dialogs.questions) == 1 and added == []
    assert window.tabs.currentWidget() is window.colorize_tab

    dialogs.answer = True
    drop(window, [gray_png, other])
    assert added == [[str(gray_png), str(other)]]
    assert window.tabs.currentWidget() is window.batch_tab

    folders: list = []
    window.batch_tab.set_input_folder = folders.append
    drop(window, [tmp_path])
    assert folders == [str(tmp_path)]


def test_bad_drop_shows_an_error_and_the_window_lives(make_window, tmp_path, dialogs):
    window = make_window()
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    drop(window, [bad])
    assert dialogs.errors and "notes.jpg" in dialogs.errors[0][1]
    assert window.isVisible()
    assert not window.colorize_tab.input_view.has_image()


def test_no_default_weights_shows_the_banner(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(hsvcolorizer.weights, "default_weights", lambda: None)
    window = make_window(wait_for_model=False, weights=None)
    tab = window.colorize_tab
    assert tab.banner_visible()
    assert tab.banner_label.text() == NO_WEIGHTS_TEXT
    assert "No model" in window.device_label.text()
    assert not window.actions["model_info"].isEnabled()
    qtbot.mouseClick(tab.banner_train_button, Qt.MouseButton.LeftButton)
    assert window.tabs.currentIndex() == 2


def test_load_default_weights_false_shows_the_banner(make_window):
    window = make_window(wait_for_model=False, load_default_weights=False)
    assert window.colorize_tab.banner_visible()
    assert window.colorize_tab.model_info is None


def test_closing_while_inference_runs_exits_cleanly(qtbot, make_window, tmp_path, gradient):
    window = make_window()
    worker = window.colorize_tab.inference.worker
    # Slow every layer down so the close surely lands mid-inference.
    for m in worker.colorizer.model.modules():
        if not list(m.children()):
            m.register_forward_pre_hook(lambda *_: time.sleep(0.05))
    path = tmp_path / "slow.png"
    write_image(path, gradient(64, 64))
    started: list[int] = []
    finished: list[int] = []
    worker.started.connect(started.append)
    worker.finished.connect(lambda rid, _r: finished.append(rid))
    window.colorize_tab.open_path(path)
    qtbot.waitUntil(lambda: bool(started), timeout=TIMEOUT)
    assert window.is_busy()

    t0 = time.perf_counter()
    assert window.close()
    elapsed = time.perf_counter() - t0
    assert window.colorize_tab.inference.thread.isFinished()
    assert window.colorize_tab.renderer.thread.isFinished()
    assert elapsed < 5
    # The run was abandoned at a layer boundary, not finished.
    assert finished == []
    if window.batch_tab is not None:
        assert not window.batch_tab.is_busy()
    if window.train_tab is not None:
        assert not window.train_tab.is_busy()


def test_settings_persist(qtbot, make_window, qt_settings, gray_png):
    window = make_window()
    tab = window.colorize_tab
    tab.saturation_slider.setValue(150)
    tab.mode_combo.setCurrentIndex(tab.mode_combo.findData("v"))
    tab.working_size_spin.setValue(320)
    tab.open_path(gray_png)
    window.tabs.setCurrentIndex(2)
    window.close()
    qt_settings.sync()

    again = make_window(settings=QSettings(qt_settings.fileName(), QSettings.Format.IniFormat))
    t2 = again.colorize_tab
    assert t2.saturation_slider.value() == 150
    assert t2.saturation_value.text() == "150 %"
    assert t2.mode() == "v"
    assert t2.working_size() == 320
    assert again.recent_files() == [str(gray_png.resolve())]
    assert again.tabs.currentIndex() == 2
    # Geometry round trip (the offscreen screen is too small to compare sizes).
    assert not qt_settings.value("window/geometry").isEmpty()


def test_recent_files_are_capped_and_missing_ones_removed(make_window, tmp_path, dialogs):
    window = make_window()
    for i in range(MAX_RECENT + 3):
        window.add_recent_file(str(tmp_path / f"p{i}.png"))
    files = window.recent_files()
    assert len(files) == MAX_RECENT
    assert files[0].endswith(f"p{MAX_RECENT + 2}.png")
    entries = [a for a in window.recent_menu.actions() if a.text().startswith("&")]
    assert len(entries) >= MAX_RECENT
    window.open_recent(files[0])
    assert dialogs.errors and "no longer exists" in dialogs.errors[-1][1]
    assert files[0] not in window.recent_files()


def test_use_weights_from_train_tab_loads_them_and_switches(qtbot, make_window, tiny_weights):
    window = make_window()
    window.tabs.setCurrentIndex(2)
    with qtbot.waitSignal(window.colorize_tab.weights_loaded, timeout=TIMEOUT):
        window.use_trained_weights(str(tiny_weights))
    assert window.tabs.currentWidget() is window.colorize_tab


def test_broken_tab_module_becomes_a_placeholder(make_window, monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "hsvcolorizer.gui.batch_tab", None)
    window = make_window()
    assert window.batch_tab is None
    label = window.tabs.widget(1)
    assert isinstance(label, QLabel) and "not available" in label.text()
    assert window.tabs.tabText(1) == "Batch"


def test_model_info_shows_exact_parameter_counts(make_window):
    window = make_window()
    window.show_model_info()
    text = window._info_dialog.findChild(type(window._info_dialog.children()[1]), "modelInfoText")
    assert text is not None
    total = window.colorize_tab.model_info["counted_parameters"]["total"]
    plain = " ".join(text.toPlainText().replace("\u2009", " ").split())
    assert f"Total {total:,}".replace(",", " ") in plain
    # and the number format the networks run in on this machine
    precision = window.colorize_tab.model_info["precision"]
    assert precision in ("fp32", "bf16") and f"Networks compute in {precision}" in plain
    window._info_dialog.close()


def test_model_info_html_for_the_default_weights():
    path = hsvcolorizer.weights.default_weights()
    if path is None:
        pytest.skip("no default weights in models/")
    meta = hsvcolorizer.weights.read_metadata(path)
    page = model_info_html({"weights_path": str(path), "device": "CPU", "meta": meta})
    total = meta["parameters"]["total"]
    assert f"{total:,}".replace(",", "\u2009") in page
    assert "LR-CMGN" in page and "Validation" in page and "PSNR" in page
    # the shipped v3 reads colour hints and says what it was trained from
    assert "Colour hints" in page and "read: LR-CMGN also takes a hint map" in page
    assert "hsvcolorizer-v2.safetensors" in page


def test_excepthook_logs_and_shows_instead_of_crashing(monkeypatch, dialogs, caplog):
    from hsvcolorizer.gui.app import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(None)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert dialogs.errors and "boom in a slot" in dialogs.errors[0][1]
    assert "Traceback" in dialogs.errors[0][1]
    assert any("boom in a slot" in r.getMessage() for r in caplog.records)


def test_main_starts_and_quits(monkeypatch, tmp_path, tiny_weights, gray_png):
    """main() builds the app, opens the photo given on the command line and returns exec()'s code."""
    import logging

    import hsvcolorizer.gui.main_window as main_window_module
    from hsvcolorizer.gui import app as app_module

    # Keep the user's settings and log folder out of it.
    settings_file = str(tmp_path / "settings.ini")

    class TempSettingsWindow(MainWindow):
        def __init__(self, **kwargs):
            super().__init__(settings=QSettings(settings_file, QSettings.Format.IniFormat), **kwargs)

    monkeypatch.setattr(main_window_module, "MainWindow", TempSettingsWindow)
    monkeypatch.setattr(app_module, "log_file_path", lambda: tmp_path / "logs" / "gui.log")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    handlers_before = list(logging.getLogger().handlers)
    seen: dict = {}

    def fake_exec() -> int:
        app = QApplication.instance()
        windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        window = windows[-1]
        deadline = time.time() + 20
        while window.colorize_tab.result_view.image_size() is None and time.time() < deadline:
            app.processEvents()
            time.sleep(0.01)
        seen["size"] = window.colorize_tab.result_view.image_size()
        seen["icon"] = not app.windowIcon().isNull()
        window.close()
        window.deleteLater()
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    try:
        assert app_module.main([str(gray_png), "--weights", str(tiny_weights), "--device", "cpu"]) == 0
    finally:
        for h in list(logging.getLogger().handlers):
            if h not in handlers_before:
                logging.getLogger().removeHandler(h)
                h.close()
    assert seen == {"size": (40, 56), "icon": True}
    assert (tmp_path / "logs" / "gui.log").is_file()
    assert QSettings(settings_file, QSettings.Format.IniFormat).contains("window/geometry")


def test_quitting_during_training_asks_and_cancel_keeps_the_window(qtbot, make_window, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    window = make_window(wait_for_model=False, load_default_weights=False)
    monkeypatch.setattr(window.train_tab, "is_busy", lambda: True)
    seen = []

    def answer(button_text):
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        seen.append(box.text())
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()

    QTimer.singleShot(200, lambda: answer("Cancel"))
    window.close()
    assert seen and "training is running" in seen[0]
    assert window.isVisible(), "Cancel keeps the window (and the training)"
    QTimer.singleShot(200, lambda: answer("Stop training and quit"))
    window.close()
    assert len(seen) == 2 and not window.isVisible()


def run_batch_tab(qtbot, window, src, out):
    """Run the window's Batch tab from `src` into `out` and wait for the end; the tab."""
    tab = window.batch_tab
    tab.set_input_folder(str(src))
    tab.output_edit.setText(str(out))
    with qtbot.waitSignal(tab.batch_finished, timeout=60000):
        qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=10000)
    return tab


def test_the_batch_tab_runs_on_the_windows_device(qtbot, make_window, tmp_path, monkeypatch):
    """`hsvcolorizer-gui --device cpu` (or any device the window was given)
    is where a batch runs too, not "auto"."""
    import numpy as np

    from hsvcolorizer.imageio import write_image
    from hsvcolorizer.inference import Colorizer

    asked = []
    real_load = Colorizer.load.__func__

    def load(cls, weights=None, device="auto"):
        asked.append(device)
        return real_load(cls, weights, "cpu")

    window = make_window(device="cpu")
    monkeypatch.setattr(Colorizer, "load", classmethod(load))
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_image(src / "a.png", np.full((24, 32, 3), 120, np.uint8))
    run_batch_tab(qtbot, window, src, out)
    assert asked == ["cpu"]


def test_double_clicking_a_batch_row_opens_its_photo_in_the_colorize_tab(qtbot, make_window, tmp_path):
    import numpy as np

    from hsvcolorizer.imageio import write_image

    window = make_window()
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_image(src / "first.png", np.full((24, 32, 3), 120, np.uint8))
    write_image(src / "second.png", np.full((24, 32, 3), 60, np.uint8))
    tab = run_batch_tab(qtbot, window, src, out)
    window.tabs.setCurrentWidget(tab)
    model = tab.table.model()
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == "second.png")
    rect = tab.table.visualRect(tab.table.model().index(row, 0))
    # A double-click as a user makes it: press, release, then the double-click.
    qtbot.mouseClick(tab.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(tab.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.tabs.currentWidget() is window.colorize_tab
    qtbot.waitUntil(lambda: window.colorize_tab.photo_name == "second.png", timeout=10000)


def test_ctrl_v_in_a_text_field_pastes_an_image_but_keeps_text_pastes(qtbot, make_window):
    from PySide6.QtGui import QGuiApplication, QImage

    window = make_window()
    field = window.batch_tab.input_edit
    window.tabs.setCurrentWidget(window.batch_tab)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=2000)
    image = QImage(30, 20, QImage.Format.Format_RGB888)
    image.fill(0x336699)
    QGuiApplication.clipboard().setImage(image)
    qtbot.keyClick(field, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.colorize_tab
    assert window.colorize_tab.photo_name == "Pasted image"
    # Text on the clipboard still goes into the field.
    window.tabs.setCurrentWidget(window.batch_tab)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=2000)
    field.clear()
    QGuiApplication.clipboard().setText("/some/folder")
    qtbot.keyClick(field, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert field.text() == "/some/folder" and window.tabs.currentWidget() is window.batch_tab


def test_batch_options_are_its_own_until_asked_and_say_what_a_batch_uses(qtbot, make_window):
    window = make_window()
    batch = window.batch_tab
    batch.saturation_spin.setValue(100)
    window.colorize_tab.saturation_slider.setValue(150)
    window.tabs.setCurrentWidget(batch)  # a visit no longer overwrites the batch's own options
    assert batch.saturation_spin.value() == 100
    assert "saturation 100 %" in batch.options_summary.text()
    qtbot.mouseClick(batch.take_options_button, Qt.MouseButton.LeftButton)
    assert batch.saturation_spin.value() == 150
    assert "saturation 150 %" in batch.options_summary.text()


def test_model_menu_goes_back_to_the_default_model(qtbot, make_window):
    window = make_window()  # started on other weights (the tiny test model)
    default = hsvcolorizer.weights.default_weights()
    assert window.colorize_tab.weights_path() != str(default)
    window.actions["default_weights"].trigger()
    qtbot.waitUntil(lambda: window.colorize_tab.weights_path() == str(default), timeout=60000)


def test_saturation_goes_back_to_100_percent_in_one_click(qtbot, make_window):
    window = make_window()
    ct = window.colorize_tab
    ct.saturation_slider.setValue(235)
    qtbot.mouseClick(ct.saturation_reset, Qt.MouseButton.LeftButton)
    assert ct.saturation_slider.value() == 100 and ct.saturation_value.text() == "100 %"


def test_a_colorize_in_progress_can_be_cancelled(qtbot, make_window, gray_png):
    import threading
    import time as _time

    window = make_window()
    tab = window.colorize_tab
    worker = tab.inference.worker
    in_forward = threading.Event()

    def slow_layer(_module, _inputs):  # a forward pass of seconds, like 1024 px on a CPU
        in_forward.set()
        _time.sleep(0.1)

    hooks = [m.register_forward_pre_hook(slow_layer) for m in worker.colorizer.model.modules()
             if not list(m.children())]
    try:
        shown, said = [], []
        tab.result_displayed.connect(lambda *a: shown.append(1))
        tab.status_message.connect(said.append)
        tab.open_path(gray_png)
        qtbot.waitUntil(in_forward.is_set, timeout=TIMEOUT)
        assert tab.rerun_button.text() == "Cancel"
        qtbot.mouseClick(tab.rerun_button, Qt.MouseButton.LeftButton)
        assert not tab.is_busy() and tab.rerun_button.text() == "Colorize"
        assert any("cancelled" in m for m in said)
        qtbot.wait(1000)  # the worker aborts at its next layer; nothing arrives
        assert not shown, "the cancelled run shows no result"
    finally:
        for h in hooks:
            h.remove()


def test_the_status_bar_says_what_is_running(qtbot, make_window, gray_png):
    window = make_window()
    tab = window.colorize_tab
    hooks = [m.register_forward_pre_hook(lambda *_: time.sleep(0.05))
             for m in tab.inference.worker.colorizer.model.modules() if not list(m.children())]
    try:
        assert window.activity_text() == "" and not window.busy_bar.isVisible()
        with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
            tab.open_path(gray_png)
            assert window.activity_text().startswith("Colorizing photo.png at ")
            assert window.busy_bar.isVisible()
        qtbot.waitUntil(lambda: window.activity_text() == "", timeout=5000)
        assert not window.busy_bar.isVisible()
    finally:
        for h in hooks:
            h.remove()


def test_closing_while_saving_finishes_the_file(qtbot, make_window, gray_png, tmp_path, monkeypatch):
    """A save in flight when the window closes is written in full, never cut off."""
    import threading

    from hsvcolorizer import imageio
    from hsvcolorizer.imageio import read_image

    window = make_window()
    tab = window.colorize_tab
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.open_path(gray_png)
    writing = threading.Event()
    real = imageio._write_bytes

    def slow(fileobj, data):
        fileobj.write(data[: len(data) // 2])
        writing.set()
        time.sleep(1.5)
        real(fileobj, data[len(data) // 2:])

    monkeypatch.setattr(imageio, "_write_bytes", slow)
    out = tmp_path / "saved" / "photo_color.png"
    out.parent.mkdir()
    assert tab.save_to(out)
    assert writing.wait(30)
    assert window.activity_text() == "Saving photo_color.png"
    window.close()
    assert [p.name for p in out.parent.iterdir()] == ["photo_color.png"], "no temporary file left"
    assert read_image(out).size == (40, 56)


def test_the_window_fits_1280_by_720_with_every_colorize_control_visible(qtbot, make_window, gray_png):
    window = make_window()
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720), timeout=2000)
    assert window.minimumSize().width() <= 1280 and window.minimumSize().height() <= 660
    with qtbot.waitSignal(window.colorize_tab.result_displayed, timeout=TIMEOUT):
        window.colorize_tab.open_path(gray_png)
    tab = window.colorize_tab
    for widget in (tab.open_button, tab.rerun_button, tab.saturation_slider, tab.mode_combo, tab.save_button,
                   tab.save_stages_button, tab.stage_panel.thumbnail("refined", "saturation")):
        assert widget.isVisible()
        corner = widget.mapTo(window, widget.rect().bottomRight())
        assert window.rect().contains(corner), (widget, corner)
        assert widget.height() >= widget.minimumSizeHint().height()


def test_a_long_photo_name_is_shortened_in_the_title(qtbot, make_window, gradient):
    from hsvcolorizer.imageio import Photo

    window = make_window()
    name = "x" * 50 + "_the_middle_of_a_very_long_name_" + "y" * 50 + ".png"
    window.colorize_tab.set_photo(Photo(gradient(20, 20)), name)
    title = window.windowTitle()
    assert "…" in title and title.endswith("y.png — HSV Colorizer") and len(title) < 90


def test_zoom_buttons_are_for_the_colorize_tab_only(make_window):
    window = make_window()
    window.tabs.setCurrentIndex(2)
    assert not window.actions["fit"].isEnabled() and not window.actions["zoom_in"].isEnabled()
    window.tabs.setCurrentWidget(window.colorize_tab)
    assert window.actions["fit"].isEnabled()


def test_a_long_status_message_is_shortened_to_the_room_left(make_window, qtbot):
    window = make_window()
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    long = "Colorized " + "family_reunion_" * 12 + ".jpg in 1.45 s on CPU"
    window._show_status(long)
    shown = window.statusBar().currentMessage()
    assert shown != long and "…" in shown and shown.endswith("on CPU")
