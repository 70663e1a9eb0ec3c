"""The Batch tab's controller and table model, without a window; and the
tab's layout at the smallest window size (1280x720)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt

from hsvcolorizer.batch import FileOutcome, plan_outputs
from hsvcolorizer.gui.batch_controller import BatchController
from hsvcolorizer.gui.batch_model import BatchTableModel
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import activity
from hsvcolorizer.imageio import read_image, write_image
from tests.conftest import colour_image

TIP = Qt.ItemDataRole.ToolTipRole
LONG = "the_whole_family_at_christmas_dinner_in_the_old_house_on_the_hill_1965_second_attempt.png"


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"p{i}.png", colour_image(24, 32, seed=i))
    write_image(folder / LONG, colour_image(24, 32, seed=9))
    (folder / "broken.png").write_bytes(b"this is not a PNG at all" * 10)
    return folder


@pytest.fixture
def make_controller(qtbot, qt_settings, tiny_weights):
    made: list[BatchController] = []

    def make(weights=None, settings=None) -> BatchController:
        controller = BatchController(lambda: str(weights or tiny_weights), settings or qt_settings,
                                     device_provider=lambda: "cpu")
        made.append(controller)
        return controller

    yield make
    for controller in made:
        assert controller.shutdown(10000)


@pytest.fixture
def seen_running():
    """Every text the status bar's list of running work showed during the test."""
    seen: list[str] = []
    record = seen.extend
    activity().changed.connect(record)
    yield seen
    activity().changed.disconnect(record)


def table(model: BatchTableModel) -> dict[str, tuple[str, str]]:
    """photo as shown -> (status, output-or-reason as shown)."""
    return {model.index(r, 0).data(): (model.status(r), model.index(r, 2).data()) for r in range(model.rowCount())}


def slow_photos(monkeypatch, seconds: float = 0.15) -> None:
    from hsvcolorizer.inference import Colorizer

    real = Colorizer.colorize

    def slow(self, *args, **kwargs):
        time.sleep(seconds)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "colorize", slow)


def test_a_batch_fills_waiting_rows_then_each_outcome(qtbot, make_controller, photos, tmp_path, seen_running):
    out = tmp_path / "out"
    c = make_controller()
    c.set_input_folder(str(photos))
    c.set_output(str(out))
    busy: list[bool] = []
    c.busy_changed.connect(busy.append)

    with qtbot.waitSignal(c.finished, timeout=60000) as finished:
        assert c.start()
        # Every photo has a row at once, before the model is even loaded.
        assert c.is_busy() and c.model.rowCount() == 6
        assert {c.model.status(r) for r in range(6)} == {"waiting"}
        assert c.summary == ("Colorizing 6 photos…", "running")
    report = finished.args[0]

    assert not c.is_busy() and busy[0] is True and busy[-1] is False
    assert report is c.last_report and (report.count("done"), report.count("failed")) == (5, 1)
    rows = table(c.model)
    assert rows["broken.png"][0] == "failed" and "cannot read broken.png" in rows["broken.png"][1]
    planned = dict(plan_outputs(photos, out, c.options()))
    for r in range(c.model.rowCount()):
        entry = c.model.entry(r)
        # The table shows names relative to the folders; tooltips give the full paths.
        assert c.model.index(r, 0).data(TIP) == str(entry.source)
        if entry.status == "done":
            assert c.model.index(r, 2).data() == planned[entry.source].name
            assert c.model.index(r, 2).data(TIP) == str(planned[entry.source])
            assert read_image(planned[entry.source]).size == (32, 24)
    assert c.model.index(c.model.row_of(photos / "broken.png"), 2).data(TIP).count(str(photos / "broken.png")) == 1
    assert c.counts == {"done": 5, "skipped": 0, "failed": 1}
    text, kind = c.summary
    assert kind == "failed" and text.startswith("5 done, 0 skipped, 1 failed")
    # The status bar was told what is running, as it went.
    assert "Batch: loading the model" in seen_running
    assert any(t.startswith("Batch: ") and t.endswith(" of 6 photos") for t in seen_running)
    assert not any(t.startswith("Batch") for t in activity().running())


def test_cancel_keeps_finished_photos_and_marks_the_rest_not_processed(qtbot, make_controller, tmp_path,
                                                                       monkeypatch, seen_running):
    slow_photos(monkeypatch)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(20):
        write_image(src / f"p{i:02d}.png", colour_image(16, 16, seed=i))
    c = make_controller()
    c.set_input(str(src))
    c.set_output(str(out))

    with qtbot.waitSignal(c.finished, timeout=60000) as finished:
        c.start()
        qtbot.waitUntil(lambda: c.counts["done"] >= 1, timeout=30000)
        c.cancel()
        assert c.is_cancelling() and c.eta.startswith("Stopping")
    report = finished.args[0]

    assert report.cancelled and not c.is_busy()
    done = report.count("done")
    assert 1 <= done < 20
    statuses = [c.model.status(r) for r in range(c.model.rowCount())]
    assert statuses.count("done") == done and statuses.count("cancelled") == 20 - len(report.outcomes)
    row = statuses.index("cancelled")
    assert c.model.index(row, 1).data() == "Not processed"
    assert sorted(p.name for p in out.iterdir()) == sorted(o.output.name for o in report.outcomes
                                                           if o.status == "done")
    assert c.summary[1] == "cancelled" and "(cancelled)" in c.summary[0]
    assert "Batch: stopping after the current photo" in seen_running


def test_shutdown_waits_for_the_batch_and_reports_it_once(qtbot, make_controller, tmp_path, monkeypatch):
    slow_photos(monkeypatch, 0.3)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(8):
        write_image(src / f"p{i}.png", colour_image(16, 16, seed=i))
    c = make_controller()
    c.set_input(str(src))
    c.set_output(str(out))
    reports = []
    c.finished.connect(reports.append)
    c.start()
    qtbot.waitUntil(lambda: c.counts["done"] >= 1, timeout=30000)

    assert c.shutdown(20000)  # the window closing: no event loop runs after this

    assert not c.is_busy() and len(reports) == 1 and reports[0].cancelled
    done = [o for o in reports[0].outcomes if o.status == "done"]
    assert sorted(p.name for p in out.iterdir()) == sorted(o.output.name for o in done)
    # The rows hold every outcome, including those whose signal was still queued.
    assert [c.model.status(r) for r in range(c.model.rowCount())].count("done") == len(done)
    qtbot.wait(300)  # the task's own, late signals change nothing
    assert len(reports) == 1 and not c.is_busy()


def test_a_model_that_cannot_load_is_one_message_and_nothing_runs(qtbot, make_controller, photos, tmp_path):
    c = make_controller(weights=tmp_path / "nowhere.safetensors")
    c.set_input(str(photos))
    c.set_output(str(tmp_path / "out"))
    errors = []
    c.error.connect(lambda title, message: errors.append((title, message)))
    c.start()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=30000)
    assert len(errors) == 1 and errors[0][0] == "Batch failed" and "nowhere.safetensors" in errors[0][1]
    assert c.summary[1] == "error" and "could not run" in c.summary[0]
    assert {c.model.status(r) for r in range(c.model.rowCount())} == {"cancelled"}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_folders_are_checked_before_anything_starts(qtbot, make_controller, photos, tmp_path):
    c = make_controller()
    errors = []
    c.error.connect(lambda title, message: errors.append((title, message)))
    assert not c.ready() and not c.start() and errors[-1][0] == "No input folder"
    c.set_input(str(photos))
    c.set_output(str(photos))
    assert c.ready() and not c.start()
    assert errors[-1][0] == "Cannot start the batch" and "input folder" in errors[-1][1]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    write_image(empty / "sub" / "a.png", colour_image(16, 16))
    c.set_input(str(empty))
    c.set_output(str(tmp_path / "out"))
    assert not c.start() and errors[-1][0] == "No photos found" and "sub-folders" in errors[-1][1]
    assert not c.is_busy() and c.model.rowCount() == 0


def test_options_are_typed_settings_and_bad_stored_values_fall_back(qtbot, tmp_path, tiny_weights):
    path = tmp_path / "settings.ini"
    raw = QSettings(str(path), QSettings.Format.IniFormat)
    # What a hand-edited or older file may hold.
    for key, value in (("batch/format", "bmp"), ("batch/overwrite", "always"), ("batch/mode", "x"),
                       ("batch/saturation_percent", "lots"), ("batch/working_size", "9"),
                       ("batch/recursive", "true"), ("batch/input", "/photos")):
        raw.setValue(key, value)
    raw.sync()
    c = BatchController(lambda: str(tiny_weights), QSettings(str(path), QSettings.Format.IniFormat))
    o = c.options()
    assert (o.format, o.overwrite, o.mode, o.saturation, o.working_size, o.recursive) == (
        "png", "skip", None, 1.0, None, True)
    assert c.input_dir() == "/photos"

    changes = []
    c.options_changed.connect(lambda: changes.append(1))
    c.set_render_options("v", 1.35, 384)
    c.set_format("jpg")
    c.set_overwrite("rename")
    c.set_output("  /out  ")
    assert len(changes) == 6
    assert "recomposition V (the paper's), saturation 135 %, working size 384 px" in c.options_summary()
    c.set_format("jpg")  # no change, no signal
    assert len(changes) == 6

    again = BatchController(lambda: None, AppSettings(QSettings(str(path), QSettings.Format.IniFormat)))
    o = again.options()
    assert (o.format, o.overwrite, o.mode, o.saturation, o.working_size) == ("jpg", "rename", "v", 1.35, 384)
    assert again.output_dir() == "/out"
    again.set_render_options(None, 1.0, 0)
    assert again.options().mode is None and again.options().working_size is None


def test_dropped_photos_choose_their_folder(qtbot, make_controller, photos, tmp_path):
    c = make_controller()
    messages = []
    c.status_message.connect(messages.append)
    c.add_paths([str(photos / "p0.png"), str(photos / "p1.png")])
    assert c.input_dir() == str(photos) and c.output_dir() == str(tmp_path / "in_colorized")
    assert "every photo in it" in messages[-1]
    c.add_paths([str(tmp_path), str(photos / "p0.png")])
    assert c.input_dir() == str(tmp_path) and "ignored" in messages[-1]
    assert c.output_dir() == str(tmp_path / "in_colorized")  # a chosen output is kept


def test_the_model_adds_a_row_for_a_photo_that_appeared_after_start(qapp, tmp_path):
    model = BatchTableModel()
    src, out = tmp_path / "in", tmp_path / "out"
    model.reset([(src / "a.png", out / "a_color.png")], src, out)
    inserted = []
    model.rowsInserted.connect(lambda *args: inserted.append(args[1]))
    assert model.apply(FileOutcome(src / "late.png", "done", out / "late_color.png", seconds=1.5)) == 1
    assert inserted == [1] and model.rowCount() == 2
    assert model.index(1, 0).data() == "late.png" and model.index(1, 3).data() == "1.50 s"
    assert model.index(0, 2).data() == "a_color.png" and "Will be written as" in model.index(0, 2).data(TIP)
    assert model.index(0, 1).data(Qt.ItemDataRole.DecorationRole) is not None
    model.mark_unprocessed(cancelled=True)
    assert model.status(0) == "cancelled" and model.status(1) == "done"


def test_the_tab_fits_1280x720_and_elides_long_names(qtbot, qt_settings, make_controller, photos, tmp_path):
    from hsvcolorizer.gui.main_window import MainWindow

    window = MainWindow(settings=qt_settings, load_default_weights=False)
    qtbot.addWidget(window)
    tab = window.batch_tab
    window.tabs.setCurrentWidget(tab)
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    # Every control is inside the window, none cut off at the bottom.
    for widget in (tab.input_edit, tab.output_browse, tab.format_combo, tab.working_spin, tab.take_options_button,
                   tab.start_button, tab.cancel_button, tab.progress_bar, tab.open_button, tab.summary_label):
        corner = widget.mapTo(window, QPoint(widget.width(), widget.height()))
        assert widget.isVisible() and 0 < corner.x() <= window.width() and 0 < corner.y() <= window.height(), widget
    assert tab.table.viewport().height() >= 8 * tab.table.verticalHeader().defaultSectionSize()

    tab.controller.model.reset([(photos / LONG, tmp_path / "out" / LONG)], photos, tmp_path / "out")
    shown = tab.table.visualRect(tab.model.index(0, 0))
    assert shown.width() < tab.table.fontMetrics().horizontalAdvance(LONG)  # too long to show whole:
    assert tab.table.textElideMode() == Qt.TextElideMode.ElideMiddle  # the middle gives way
    assert tab.model.index(0, 0).data(TIP) == str(photos / LONG)
    tab.before_caption.setText(f"Before · {LONG}")
    assert tab.before_caption.toolTip() == f"Before · {LONG}"
    assert tab.before_caption.minimumSizeHint().width() < 100  # long captions do not widen the preview
    window.close()


def test_the_summary_says_how_many_photos_in_sub_folders_were_not_looked_at(qtbot, make_controller, photos, tmp_path):
    sub = photos / "more"
    sub.mkdir()
    for name in ("x.png", "y.png"):
        (sub / name).write_bytes((photos / "a.png").read_bytes() if (photos / "a.png").exists()
                                 else next(photos.glob("*.png")).read_bytes())
    c = make_controller()
    c.set_input_folder(str(photos))
    c.set_output(str(tmp_path / "out"))
    with qtbot.waitSignal(c.finished, timeout=60000):
        assert c.start()
    text, _ = c.summary
    assert "2 photos in sub-folders were not looked at" in text
