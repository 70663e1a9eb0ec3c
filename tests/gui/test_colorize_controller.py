"""The Colorize tab's controller on its own, without a window: the real
inference and render threads, a tiny random model, real files."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time

import numpy as np
import pytest

from hsvcolorizer import imageio
from hsvcolorizer.gui import colorize_controller
from hsvcolorizer.gui.colorize_controller import ColorizeController
from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import activity
from hsvcolorizer.imageio import Photo, read_image
from hsvcolorizer.inference import Result

TIMEOUT = 60000


@pytest.fixture
def controller(qtbot, qt_settings, tiny_weights):
    c = ColorizeController(AppSettings(qt_settings), device="cpu")
    with qtbot.waitSignal(c.model_loaded, timeout=TIMEOUT):
        c.start(str(tiny_weights))
    yield c
    assert c.shutdown(20000)


@pytest.fixture
def render_sizes(monkeypatch):
    """(height, width) of every picture Result.render makes, on any thread."""
    sizes: list[tuple[int, int]] = []
    real = Result.render

    def recording(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        sizes.append(tuple(out.shape[:2]))
        return out

    monkeypatch.setattr(Result, "render", recording)
    return sizes


def big_photo(height: int = 4000, width: int = 6000) -> Photo:
    """A 24-megapixel gray photo (a tiled gradient: quick to make)."""
    tile = np.linspace(20, 230, 200, dtype=np.float32)[None, :] + np.linspace(0, 20, 100, dtype=np.float32)[:, None]
    return Photo(np.tile(tile.astype(np.uint8), (height // 100, width // 200)))


def test_a_slider_on_a_24_megapixel_photo_renders_what_the_screen_shows(qtbot, controller, render_sizes, tmp_path):
    """Issue 11, point 2: saturation changes re-render at the size on screen;
    only zooming beyond it, and saving, render the full size."""
    frames: list[tuple[int, int, bool]] = []
    controller.image_ready.connect(lambda image, _colour, final: frames.append((image.width(), image.height(), final)))
    controller.set_display_side(900)  # the view shows the photo 900 device pixels wide
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        controller.set_photo(big_photo(), "big.png")
    assert frames[-1] == (900, 600, True)
    assert (4000, 6000) not in render_sizes, "nothing was rendered at full size"

    frames.clear()
    render_sizes.clear()
    t0 = time.perf_counter()
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        controller.set_saturation(1.6)
    slider_s = time.perf_counter() - t0
    assert frames == [(900, 600, True)]
    assert render_sizes and max(max(s) for s in render_sizes) <= 900, render_sizes

    # Zoomed to 100 %: the view now shows every pixel, so the full size is
    # rendered (the screen-sized picture with the new colours comes first).
    frames.clear()
    render_sizes.clear()
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        controller.set_display_side(6000)
    assert frames[-1] == (6000, 4000, True)
    assert (4000, 6000) in render_sizes
    assert all(not final for *_, final in frames[:-1])

    # Zooming out again keeps the sharp picture: nothing is rendered.
    render_sizes.clear()
    controller.set_display_side(900)
    qtbot.wait(400)
    assert render_sizes == []

    # A save writes the full size, whatever the screen shows.
    out = tmp_path / "big_color.jpg"
    with qtbot.waitSignal(controller.saved, timeout=TIMEOUT) as saved:
        assert controller.save_to(out)
    assert saved.args == [[out]]
    assert read_image(out).size == (6000, 4000)
    assert slider_s < 5, f"a slider change took {slider_s:.1f} s"


def test_saving_runs_off_the_gui_thread_and_is_listed_as_running(qtbot, controller, gray_png, tmp_path, monkeypatch):
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        assert controller.open_path(gray_png)
    writers: list[bool] = []
    release = threading.Event()
    real = colorize_controller.write_image

    def slow_write(path, *args, **kwargs):
        writers.append(threading.current_thread() is threading.main_thread())
        release.wait(10)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(colorize_controller, "write_image", slow_write)
    out = tmp_path / "saved.png"
    with qtbot.waitSignal(controller.saved, timeout=TIMEOUT):
        task = controller.save_to(out)
        assert task is not None
        qtbot.waitUntil(lambda: bool(writers), timeout=TIMEOUT)
        assert "Saving saved.png" in activity().running()
        assert controller.is_saving()
        release.set()
    assert writers == [False], "written on a pool thread"
    assert read_image(out).size == (40, 56)
    qtbot.waitUntil(lambda: "Saving saved.png" not in activity().running(), timeout=5000)
    assert controller.settings.get("paths/last_save_dir") == str(tmp_path)


def test_shutting_down_finishes_a_save_in_flight(qtbot, controller, gray_png, tmp_path, monkeypatch):
    """Closing the window while a photo is being written must not lose it."""
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        controller.open_path(gray_png)
    writing = threading.Event()
    real = imageio._write_bytes

    def slow(fileobj, data):
        fileobj.write(data[: len(data) // 2])
        writing.set()
        time.sleep(1.0)
        real(fileobj, data[len(data) // 2:])

    monkeypatch.setattr(imageio, "_write_bytes", slow)
    out = tmp_path / "late.png"
    controller.save_to(out)
    assert writing.wait(TIMEOUT / 1000)
    assert controller.shutdown(10000)
    assert read_image(out).size == (40, 56)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("late")] == ["late.png"]


def test_colorizing_is_listed_as_running_until_it_ends_or_is_cancelled(qtbot, controller, gray_png):
    hooks = [m.register_forward_pre_hook(lambda *_: time.sleep(0.05))
             for m in controller.inference.worker.colorizer.model.modules() if not list(m.children())]
    try:
        controller.open_path(gray_png)
        assert "Colorizing photo.png at 256 px" in activity().running()
        controller.cancel_colorize()
        assert not any(t.startswith("Colorizing") for t in activity().running())
        with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
            controller.colorize()
            assert "Colorizing photo.png at 256 px" in activity().running()
        assert not any(t.startswith("Colorizing") for t in activity().running())
    finally:
        for h in hooks:
            h.remove()


def test_refusals_and_failures_are_errors_not_exceptions(qtbot, controller, gray_png, tmp_path):
    errors: list[tuple[str, str]] = []
    controller.error.connect(lambda title, message: errors.append((title, message)))
    assert controller.save_to(tmp_path / "x.png") is None
    assert errors[-1][0] == "Nothing to save"
    with qtbot.waitSignal(controller.result_displayed, timeout=TIMEOUT):
        controller.open_path(gray_png)
    assert controller.save_to(gray_png) is None
    assert errors[-1][0] == "Will not overwrite the input"
    # A folder that cannot be made (a file is in the way) fails in the task.
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with qtbot.waitSignal(controller.save_failed, timeout=TIMEOUT):
        assert controller.save_stages_to(blocker / "stages")
    assert errors[-1][0] == "Could not save the stages" and "cannot make the folder" in errors[-1][1]


def test_options_persist_through_the_settings(qtbot, qt_settings, tiny_weights):
    first = ColorizeController(AppSettings(qt_settings), device="cpu")
    first.set_saturation(1.35)
    first.set_mode("v")
    first.set_working_size(320)
    first.save_settings()
    assert first.shutdown(5000)
    again = ColorizeController(AppSettings(qt_settings), device="cpu")
    try:
        assert (again.saturation(), again.mode(), again.working_size()) == (1.35, "v", 320)
    finally:
        assert again.shutdown(5000)
