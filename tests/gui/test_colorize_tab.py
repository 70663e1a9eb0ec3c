"""Colorize tab: real widgets, the real inference and render threads, a tiny random model."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget

from hsvcolorizer.gui.colorize_tab import NO_WEIGHTS_TEXT, ColorizeTab
from hsvcolorizer.gui.common import numpy_to_qimage, qimage_to_numpy
from hsvcolorizer.gui.image_view import ImageView
from hsvcolorizer.gui.workers import InferenceController, preview_result
from hsvcolorizer.imageio import Photo, read_image, write_image

TIMEOUT = 30000


@pytest.fixture
def tab(qtbot, qt_settings, tiny_weights):
    t = ColorizeTab(qt_settings, device="cpu")
    qtbot.addWidget(t)
    t.resize(1200, 800)
    t.show()
    with qtbot.waitSignal(t.weights_loaded, timeout=TIMEOUT):
        t.start(str(tiny_weights))
    yield t
    assert t.shutdown(10000)
    assert t.inference.thread.isFinished() and t.renderer.thread.isFinished()


def shown(view: ImageView) -> np.ndarray:
    """The result view's main picture as HxWx3 uint8."""
    return qimage_to_numpy(view.pixmap().toImage())[..., :3]


def save_and_wait(qtbot, tab, path) -> None:
    """Save As writes on a pool thread; wait until it says the file is written."""
    with qtbot.waitSignal(tab.saved, timeout=TIMEOUT) as blocker:
        assert tab.save_to(path)
    assert blocker.args == [[path]]


def colorize_file(qtbot, tab, path) -> None:
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        assert tab.open_path(path)


def test_colorizing_fills_both_views_and_the_stage_panel(qtbot, tab, gray_png, dialogs):
    colorize_file(qtbot, tab, gray_png)

    assert not tab.input_view.pixmap().isNull()
    assert tab.input_view.image_size() == (40, 56)
    assert (tab.input_view.pixmap().width(), tab.input_view.pixmap().height()) == (40, 56)
    assert not tab.result_view.pixmap().isNull()
    assert tab.result_view.image_size() == (40, 56)
    assert (tab.result_view.pixmap().width(), tab.result_view.pixmap().height()) == (40, 56)
    # The before/after divider compares against the gray.
    assert not tab.result_view.compare_pixmap().isNull()
    assert tab.result_view.split() is not None
    for stage in ("stage1", "refined"):
        for kind in ("image", "hue", "saturation"):
            thumb = tab.stage_panel.thumbnail(stage, kind)
            assert not thumb.pixmap().isNull(), (stage, kind)
            assert thumb.isEnabled()
    # Stage 1's maps are at 1/4 of the working image, stage 2's at its full size.
    assert tab.stage_panel.thumbnail("stage1", "hue").pixmap().size().toTuple() == (10, 14)
    assert tab.stage_panel.thumbnail("refined", "hue").pixmap().size().toTuple() == (40, 56)
    # The input view shows the gray exactly.
    gray = qimage_to_numpy(tab.input_view.pixmap().toImage())
    np.testing.assert_array_equal(gray[..., 0], read_image(gray_png).pixels)
    assert tab.result.size == (40, 56)
    assert dialogs.errors == []


def test_saturation_slider_rerenders_without_running_the_networks(qtbot, tab, gray_png):
    colorize_file(qtbot, tab, gray_png)
    runs = tab.inference.worker.runs
    started: list[int] = []
    tab.inference.worker.started.connect(started.append)
    before = shown(tab.result_view)

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.saturation_slider.setValue(0)
    assert tab.saturation_value.text() == "0 %"
    after = shown(tab.result_view)
    assert not np.array_equal(before, after)
    # Luma mode at 0 % saturation is the photo's gray exactly.
    assert np.abs(after.astype(int) - after[..., :1].astype(int)).max() <= 1

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.mode_combo.setCurrentIndex(tab.mode_combo.findData("v"))
        tab.saturation_slider.setValue(200)
    assert not np.array_equal(after, shown(tab.result_view))

    qtbot.wait(100)
    assert tab.inference.worker.runs == runs
    assert started == []


def test_working_size_change_runs_the_networks_again(qtbot, tab, tmp_path, gradient):
    path = tmp_path / "big.png"
    write_image(path, gradient(300, 400))
    colorize_file(qtbot, tab, path)
    assert tab.result.working_size == (192, 256)
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.working_size_spin.setValue(128)
    assert tab.result.working_size == (96, 128)
    assert tab.result_view.image_size() == (400, 300)


def test_newer_request_supersedes_older_one(qtbot, tab, gradient):
    displayed: list[int] = []
    tab.result_displayed.connect(displayed.append)
    tab.set_photo(Photo(gradient(56, 40, seed=1)), "first")
    first = tab.inference.latest_id
    tab.set_photo(Photo(gradient(48, 64, seed=2)), "second")
    second = tab.inference.latest_id
    assert second > first

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT) as blocker:
        pass
    assert blocker.args == [second]
    qtbot.wait(300)  # give a stale result time to (wrongly) arrive
    assert displayed == [second]
    assert tab.result.size == (64, 48)
    assert tab.result_view.image_size() == (64, 48)


def test_controller_only_finishes_the_latest_request(qtbot, tiny_weights, gradient):
    ctl = InferenceController()
    try:
        # Worker signals are emitted in the worker thread, so wait on their
        # effects rather than with waitSignal (whose timer lives here).
        ctl.load_weights(str(tiny_weights), "cpu")
        qtbot.waitUntil(lambda: ctl.worker.colorizer is not None, timeout=TIMEOUT)
        finished: list[int] = []
        ctl.worker.finished.connect(lambda rid, _result: finished.append(rid))
        ids = [ctl.colorize(gradient(40 + 8 * i, 48), 256) for i in range(3)]
        qtbot.waitUntil(lambda: finished == [ids[-1]], timeout=TIMEOUT)
        qtbot.wait(200)
        assert finished == [ids[-1]]
    finally:
        assert ctl.shutdown(10000)


def test_worker_skips_a_request_that_is_stale_before_it_starts(qtbot, tiny_weights, gradient):
    from hsvcolorizer.gui.workers import InferenceWorker

    worker = InferenceWorker()  # used synchronously on this thread
    worker.load_weights(str(tiny_weights), "cpu")
    events: list = []
    worker.started.connect(lambda rid: events.append(("started", rid)))
    worker.finished.connect(lambda rid, _r: events.append(("finished", rid)))
    worker.latest_id = 2
    worker.colorize(1, gradient(20, 20), 256)
    assert worker.runs == 0 and events == []
    worker.colorize(2, gradient(20, 20), 256)
    assert worker.runs == 1 and events == [("started", 2), ("finished", 2)]


def test_bad_file_shows_an_error_and_the_tab_keeps_working(qtbot, tab, tmp_path, gray_png, dialogs):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    assert not tab.open_path(bad)
    assert len(dialogs.errors) == 1
    title, message = dialogs.errors[0]
    assert title == "Could not open the photo"
    assert "broken.png" in message
    assert not tab.open_path(tmp_path / "missing.jpg")
    assert "does not exist" in dialogs.errors[-1][1]
    colorize_file(qtbot, tab, gray_png)
    assert tab.result is not None


def test_bad_weights_show_an_error(qtbot, tab, tmp_path, dialogs):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    tab.load_weights(str(bad))
    qtbot.waitUntil(lambda: len(dialogs.errors) == 1, timeout=TIMEOUT)
    assert dialogs.errors[0][0] == "Could not load weights"
    assert "bad.safetensors" in dialogs.errors[0][1]
    # The model loaded before stays in use; no banner.
    assert tab.model_info is not None
    assert not tab.banner_visible()
    assert not tab.is_busy()


def test_worker_error_becomes_a_message(qtbot, tab, dialogs, gradient):
    tab.set_photo(Photo(gradient(40, 40)), "x")
    qtbot.waitUntil(lambda: tab.result is not None, timeout=TIMEOUT)
    # A photo the core rejects: the worker must report, not die.
    tab.inference.colorize(np.zeros((4, 4, 2), np.uint8), 256)
    qtbot.waitUntil(lambda: len(dialogs.errors) == 1, timeout=TIMEOUT)
    assert dialogs.errors[0][0] == "Colorizing failed"
    assert "expected a gray or RGB image" in dialogs.errors[0][1]
    assert not tab.is_busy()


def test_save_as_writes_full_size_png_and_never_overwrites_the_input(qtbot, tab, gray_png, tmp_path, dialogs):
    colorize_file(qtbot, tab, gray_png)
    original = gray_png.read_bytes()

    assert not tab.save_to(gray_png)
    assert dialogs.errors and dialogs.errors[-1][0] == "Will not overwrite the input"
    assert gray_png.read_bytes() == original
    # The same file reached through another spelling of the path is refused too.
    assert not tab.save_to(gray_png.parent / "." / gray_png.name)
    assert gray_png.read_bytes() == original

    out = tmp_path / "out" / "colour.png"
    out.parent.mkdir()
    save_and_wait(qtbot, tab, out)
    saved = read_image(out)
    assert saved.size == (40, 56)
    assert saved.pixels.shape == (56, 40, 3)
    np.testing.assert_array_equal(saved.pixels, tab.result.render("refined", tab.mode(), tab.saturation()))
    for ext in (".jpg", ".tif", ".webp"):
        save_and_wait(qtbot, tab, tmp_path / f"colour{ext}")
        assert read_image(tmp_path / f"colour{ext}").size == (40, 56)


def test_sixteen_bit_photo_saves_sixteen_bit_png(qtbot, tab, tmp_path, gradient):
    path = tmp_path / "deep.png"
    write_image(path, gradient(30, 36).astype(np.uint16) * 257)
    colorize_file(qtbot, tab, path)
    out = tmp_path / "deep_colour.png"
    save_and_wait(qtbot, tab, out)
    assert read_image(out).pixels.dtype == np.uint16


def test_save_stages_writes_stage_images_and_maps(qtbot, tab, gray_png, tmp_path, dialogs):
    colorize_file(qtbot, tab, gray_png)
    folder = tmp_path / "stages" / "new"  # made if missing, as the CLI does
    with qtbot.waitSignal(tab.saved, timeout=TIMEOUT) as blocker:
        assert tab.save_stages_to(folder)
    written = blocker.args[0]
    assert sorted(p.name for p in written) == sorted(tab.stage_file_names().values())
    sizes = {p.name: read_image(p).size for p in written}
    assert sizes["photo_color.png"] == (40, 56), "the result too, named as `hsvcolorizer colorize` names it"
    assert sizes["photo_color_stage1.png"] == (40, 56)
    assert sizes["photo_color_stage1_hue.png"] == (10, 14)
    assert sizes["photo_color_stage2_saturation.png"] == (40, 56)
    # Writing again asks before replacing; "no" leaves the files alone.
    dialogs.answer = False
    assert tab.save_stages_to(folder) is None
    assert dialogs.questions


def test_clicking_a_thumbnail_shows_it_large_and_back(qtbot, tab, gray_png):
    colorize_file(qtbot, tab, gray_png)
    qtbot.mouseClick(tab.stage_panel.thumbnail("stage1", "hue"), Qt.MouseButton.LeftButton)
    assert tab.result_title.text().startswith("Stage 1")
    assert tab.back_button.isVisible()
    # Maps are stretched over the photo rectangle, so zoom stays in sync.
    assert tab.result_view.image_size() == (40, 56)
    assert tab.result_view.pixmap().width() == 10
    assert tab.result_view.split() is None

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.stage_panel.thumbnail("stage1", "image").click()
    assert tab.result_view.pixmap().width() == 40

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.back_button.click()
    assert tab.result_title.text().startswith("Result")
    assert not tab.back_button.isVisible()
    assert tab.stage_panel.current() == ("refined", "image")


def test_views_zoom_and_pan_together(qtbot, tab, tmp_path, gradient):
    path = tmp_path / "wide.png"
    write_image(path, gradient(300, 500))
    colorize_file(qtbot, tab, path)
    tab.zoom_in()
    tab.zoom_in()
    assert tab.input_view.scale_factor() == pytest.approx(tab.result_view.scale_factor())
    assert not tab.input_view.is_fit()
    tab.result_view.zoom_by(2.0)
    assert tab.input_view.scale_factor() == pytest.approx(tab.result_view.scale_factor())
    tab.result_view.horizontalScrollBar().setValue(tab.result_view.horizontalScrollBar().value() + 40)
    ci = tab.input_view.view_state()[1]
    cr = tab.result_view.view_state()[1]
    assert abs(ci.x() - cr.x()) < 2 and abs(ci.y() - cr.y()) < 2
    tab.actual_size()
    assert tab.input_view.scale_factor() == pytest.approx(1.0)
    assert tab.result_view.scale_factor() == pytest.approx(1.0)
    tab.fit()
    assert tab.result_view.is_fit()


def test_dragging_the_divider_moves_the_split(qtbot, tab, gray_png):
    colorize_file(qtbot, tab, gray_png)
    view = tab.result_view
    tab.set_split(0.5)
    mid = view.mapFromScene(QPointF(20, 28))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=mid)
    target = view.mapFromScene(QPointF(30, 28))
    qtbot.mouseMove(view.viewport(), pos=target)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=target)
    assert view.split() == pytest.approx(0.75, abs=0.1)
    tab.compare_check.setChecked(False)
    assert view.split() is None


def test_no_weights_banner(qtbot, qt_settings, monkeypatch):
    import hsvcolorizer.weights

    monkeypatch.setattr(hsvcolorizer.weights, "default_weights", lambda: None)
    t = ColorizeTab(qt_settings, device="cpu")
    qtbot.addWidget(t)
    try:
        t.start(None, load_default=True)
        assert t.banner_visible()
        assert t.banner_label.text() == NO_WEIGHTS_TEXT
        with qtbot.waitSignal(t.train_requested, timeout=1000):
            t.banner_train_button.click()
    finally:
        t.shutdown()


def test_preview_result_keeps_colours_and_shrinks_gray(qtbot, tiny_weights, gradient):
    from hsvcolorizer.inference import Colorizer

    result = Colorizer.load(tiny_weights, "cpu").colorize(gradient(300, 400))
    small = preview_result(result, 100)
    assert small.size == (100, 75)
    assert small.render().shape == (75, 100, 3)
    assert preview_result(result, 1000) is result


def test_numpy_qimage_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(qimage_to_numpy(numpy_to_qimage(rgb)), rgb)
    gray = numpy_to_qimage(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    assert gray.format() == QImage.Format.Format_Grayscale8
    assert numpy_to_qimage(np.zeros((3, 4, 3), np.uint16)).format() == QImage.Format.Format_RGBA64
    with pytest.raises(ValueError):
        numpy_to_qimage(np.zeros((3, 4, 2), np.uint8))


def test_big_files_are_read_off_the_gui_thread(qtbot, tab, gray_png, tmp_path, dialogs, monkeypatch):
    import threading

    import hsvcolorizer.gui.colorize_controller as ct

    monkeypatch.setattr(ct, "ASYNC_READ_BYTES", 0)  # every file counts as big
    readers = []
    real = ct.read_image

    def recording_read(path, *a, **k):
        readers.append(threading.current_thread() is threading.main_thread())
        return real(path, *a, **k)

    monkeypatch.setattr(ct, "read_image", recording_read)
    colorize_file(qtbot, tab, gray_png)
    assert readers == [False], "decoded on a pool thread"
    assert tab.input_view.image_size() == (40, 56)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    assert tab.open_path(bad)  # accepted at once; the error comes when the read fails
    qtbot.waitUntil(lambda: len(dialogs.errors) == 1, timeout=TIMEOUT)
    assert "broken.png" in dialogs.errors[0][1]


def test_render_preview_belongs_to_the_photo_being_rendered(qtbot, tiny_weights, monkeypatch):
    """The preview cache must never hand one photo's preview to another,
    also when the second Result gets the id() the freed first one had
    (forced here: every id() is the same)."""
    import numpy as np

    from hsvcolorizer.gui import workers
    from hsvcolorizer.inference import Colorizer

    monkeypatch.setattr(workers, "id", lambda _obj: 1, raising=False)
    colorizer = Colorizer.load(tiny_weights, device="cpu")
    side = 400
    dark = np.full((side, 64), 30, np.uint8)
    light = np.full((side, 64), 220, np.uint8)
    worker = workers.RenderWorker()
    first = worker._preview(colorizer.colorize(dark, working_size=64), side - 40)
    second = worker._preview(colorizer.colorize(light, working_size=64), side - 40)
    assert first.gray.mean() < 0.2 and second.gray.mean() > 0.8


def test_a_paste_is_not_replaced_by_a_big_file_still_being_read(qtbot, tab, gray_png, monkeypatch):
    """Open a big photo, paste another before it is decoded: the paste stays."""
    import time

    from PySide6.QtGui import QGuiApplication

    import hsvcolorizer.gui.colorize_controller as ct

    monkeypatch.setattr(ct, "ASYNC_READ_BYTES", 0)  # every file counts as big
    real = ct.read_image

    def slow_read(path, *a, **k):
        time.sleep(0.8)
        return real(path, *a, **k)

    monkeypatch.setattr(ct, "read_image", slow_read)
    assert tab.open_path(gray_png)  # 40x56, still being read
    pasted = QImage(30, 20, QImage.Format.Format_RGB888)
    pasted.fill(0x336699)
    QGuiApplication.clipboard().setImage(pasted)
    assert tab.paste()
    assert tab.photo_name == "Pasted image"
    qtbot.wait(1500)  # the big file's read has ended by now
    assert tab.photo_name == "Pasted image" and tab.input_view.image_size() == (30, 20)


def test_the_result_view_is_rendered_at_the_size_on_screen_and_full_size_at_100_percent(qtbot, tab, monkeypatch):
    """Issue 11, point 2, through the widgets: a slider change recomposes the
    picture the view shows, not the whole photo; 100 % shows every pixel."""
    from hsvcolorizer.inference import Result

    sizes: list = []
    real = Result.render
    monkeypatch.setattr(Result, "render", lambda self, *a, **k: sizes.append(self.gray.shape) or real(self, *a, **k))
    photo = np.tile(np.linspace(20, 230, 300, dtype=np.float32).astype(np.uint8), (2000, 10))  # 3000 x 2000
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.set_photo(Photo(photo), "wide.png")
    screen = tab.result_view.display_side()
    assert 100 < screen < 1000
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.saturation_slider.setValue(150)
    pixmap = tab.result_view.pixmap()
    assert max(pixmap.width(), pixmap.height()) <= screen
    assert (2000, 3000) not in sizes, "nothing rendered at full size"
    assert tab.result_view.image_size() == (3000, 2000)

    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.actual_size()
    assert (tab.result_view.pixmap().width(), tab.result_view.pixmap().height()) == (3000, 2000)
    assert tab.result_view.scale_factor() == pytest.approx(1.0)


def test_a_long_photo_name_is_elided_with_the_full_name_in_a_tooltip(qtbot, tab, gradient):
    name = "a_very_long_scanned_family_album_page_from_grandmothers_attic_number_0042_final_v2.png"
    tab.set_photo(Photo(gradient(40, 40)), name)
    label = tab.photo_label
    assert label.text() == name
    assert label.is_elided() and "…" in label.shown_text()
    assert label.fontMetrics().horizontalAdvance(label.shown_text()) <= label.width()
    assert name in label.toolTip()
    controls = tab.findChild(QWidget, "colorizeControls")
    assert controls.width() <= controls.maximumWidth()
