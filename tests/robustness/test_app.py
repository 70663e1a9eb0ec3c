"""Issue part 6: the desktop application, closed while it works, and its workers' errors.

The real MainWindow (offscreen) is closed while the inference thread runs the
networks, while the batch thread is writing a photo, and while the training
child process is training.  Afterwards no thread is running, the child and
its data-loading workers are gone, and no ``.tmp`` file is left.  A worker's
error (bad photo, bad weights, a failing run) reaches the user as a message
through ``hsvcolorizer.gui.common.show_error``, whose ``error_hook`` records
it here instead of opening a dialog.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QProcess, QSettings  # noqa: E402

from hsvcolorizer import imageio  # noqa: E402
from hsvcolorizer.errors import ColorizerError  # noqa: E402
from hsvcolorizer.gui import common  # noqa: E402
from hsvcolorizer.imageio import read_image, write_image  # noqa: E402
from tests.conftest import colour_image  # noqa: E402
from tests.robustness.conftest import leftovers, make_text_as_jpg, snapshot  # noqa: E402

TIMEOUT = 60_000  # ms; a training child spends seconds importing torch
CLOSE_WITHIN = 8.0  # s; the tabs wait at most 5 s each for their workers


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def gui_thread_gc(qapp):
    """Garbage collection only on the GUI thread, as the application runs it
    (a collection in a worker thread may destroy a Qt object there: a crash)."""
    installed_here = common._gc_timer is None
    timer = common.install_gui_thread_gc(qapp)
    yield
    if installed_here:
        timer.stop()
        common._gc_timer = None
        gc.enable()


@pytest.fixture
def messages(monkeypatch) -> list[tuple[str, str]]:
    """(title, message) of every error the user would have been shown."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(common, "error_hook", lambda _parent, title, message: shown.append((title, message)))
    monkeypatch.setattr(common, "question_hook", lambda *_: True)
    return shown


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings, tiny_weights, messages):
    from hsvcolorizer.gui.main_window import MainWindow

    def make(weights=None, wait_for_model: bool = True):
        window = MainWindow(settings=settings, weights=str(weights or tiny_weights), device="cpu")
        qtbot.addWidget(window)
        window.show()
        if wait_for_model:
            qtbot.waitUntil(lambda: window.colorize_tab.model_info is not None, timeout=TIMEOUT)
        return window

    return make


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        write_image(folder / f"p{i}.png", colour_image(40, 48, seed=i))
    return folder


def close_and_time(window) -> float:
    started = time.monotonic()
    window.close()
    return time.monotonic() - started


def threads_of(window) -> dict:
    """Every QThread the window's tabs own (the controllers' threads have no Qt parent)."""
    ct = window.colorize_tab
    threads = {"inference": ct.inference.thread, "render": ct.renderer.thread}
    batch_thread = getattr(window.batch_tab, "_thread", None)
    if batch_thread is not None:
        threads["batch"] = batch_thread
    return threads


def assert_no_thread_running(window) -> None:
    running = [name for name, thread in threads_of(window).items() if thread.isRunning()]
    assert running == [], f"still running after close: {running}"
    assert not window.is_busy()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform.startswith("linux"):  # a zombie is dead, only not yet reaped by its new parent
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return True


def child_pids(pid: int) -> list[int]:
    if not sys.platform.startswith("linux"):
        return []
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


# ---------------------------------------------------------------------------
# Closing the window while it works
# ---------------------------------------------------------------------------


def test_close_during_inference(qtbot, make_window, photos, messages):
    window = make_window()
    tab = window.colorize_tab
    worker = tab.inference.worker
    # Slow the networks down (0.1 s a layer) so the close lands mid-forward.
    in_forward = threading.Event()

    def slow_layer(_module, _inputs):
        in_forward.set()
        time.sleep(0.1)

    hooks = [m.register_forward_pre_hook(slow_layer) for m in worker.colorizer.model.modules()
             if not list(m.children())]
    assert len(hooks) > 20, "the forward pass takes seconds now"
    tab.open_path(photos / "p0.png")
    qtbot.waitUntil(in_forward.is_set, timeout=TIMEOUT)
    assert tab.is_busy()
    assert close_and_time(window) < CLOSE_WITHIN
    assert_no_thread_running(window)
    assert tab.result is None, "the abandoned run produced nothing"
    assert messages == []


def test_close_during_batch(qtbot, make_window, photos, tmp_path, monkeypatch, messages):
    window = make_window()
    batch = window.batch_tab
    out = tmp_path / "out"
    before = snapshot(photos)
    real_write = imageio._write_bytes
    writing = threading.Event()

    def slow_write(fileobj, data):  # half the bytes, a pause, the rest: the close lands mid-file
        fileobj.write(data[: len(data) // 2])
        writing.set()
        time.sleep(0.5)
        real_write(fileobj, data[len(data) // 2 :])

    monkeypatch.setattr(imageio, "_write_bytes", slow_write)
    batch.input_edit.setText(str(photos))
    batch.output_edit.setText(str(out))
    batch.start()
    assert batch.is_busy()
    qtbot.waitUntil(writing.is_set, timeout=TIMEOUT)
    assert leftovers(out), "a photo is being written right now"
    assert close_and_time(window) < CLOSE_WITHIN
    assert_no_thread_running(window)
    assert leftovers(out) == [], "no half-written file"
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 6, "the photo being written was finished, then the batch stopped"
    for path in written:
        assert read_image(path).pixels.shape == (40, 48, 3)
    assert snapshot(photos) == before
    assert messages == []


def test_close_while_a_photo_takes_longer_than_the_grace_period(qtbot, make_window, photos, tmp_path, monkeypatch,
                                                                messages):
    # A huge photo can take longer to write than the 5 s the window first
    # waits: it must still be finished (not aborted mid-file) before exit.
    window = make_window()
    batch = window.batch_tab
    out = tmp_path / "out"
    real_write = imageio._write_bytes
    writing = threading.Event()

    def very_slow_write(fileobj, data):
        fileobj.write(data[: len(data) // 2])
        writing.set()
        time.sleep(6.5)
        real_write(fileobj, data[len(data) // 2 :])

    monkeypatch.setattr(imageio, "_write_bytes", very_slow_write)
    batch.input_edit.setText(str(photos))
    batch.output_edit.setText(str(out))
    batch.start()
    qtbot.waitUntil(writing.is_set, timeout=TIMEOUT)
    window.close()
    assert_no_thread_running(window)
    assert leftovers(out) == [], "no half-written file"
    written = sorted(out.iterdir())
    # The batch writes while the networks go on, so a photo or two may be in
    # flight at close: each is finished whole, and no new photo is started.
    assert 1 <= len(written) < 6
    assert all(read_image(path).pixels.shape == (40, 48, 3) for path in written)
    assert messages == []


@pytest.mark.skipif(sys.platform == "win32", reason="QProcess.terminate is a no-op for console children")
def test_close_during_training(qtbot, make_window, photos, tmp_path, monkeypatch, messages):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child inherits it
    window = make_window()
    train = window.train_tab
    run = tmp_path / "run"
    train.data_edit.setText(str(photos))
    train.run_edit.setText(str(run))
    train.epochs1_spin.setValue(500)  # far longer than the test
    train.epochs2_spin.setValue(1)
    train.batch_spin.setValue(2)
    train.size_spin.setValue(32)
    train.width_spin.setValue(0.125)
    train.log_every_spin.setValue(1)
    train.device_combo.setCurrentIndex(train.device_combo.findData("cpu"))
    train.workers_spin.setValue(1)  # one data-loading worker process, a grandchild
    train.resume_check.setChecked(False)
    train.start()
    qtbot.waitUntil(lambda: any(e.get("event") == "step" for e in train.events_seen), timeout=TIMEOUT)
    proc = train.process
    assert proc is not None and proc.state() == QProcess.ProcessState.Running
    pid = proc.processId()
    workers = child_pids(pid)
    if sys.platform.startswith("linux"):
        assert workers, "the run has a data-loading worker"

    # Quitting asks first; "Cancel" keeps the window and the training.
    asked = []
    monkeypatch.setattr(window, "confirm_quit_during_training", lambda: asked.append(1) or False)
    window.close()
    assert asked and window.isVisible() and train.is_busy()
    monkeypatch.setattr(window, "confirm_quit_during_training", lambda: asked.append(1) or True)
    assert close_and_time(window) < CLOSE_WITHIN
    assert len(asked) == 2
    assert proc.state() == QProcess.ProcessState.NotRunning
    assert not train.is_busy()
    assert not pid_exists(pid), "the training process is gone"
    # It unwound (SIGTERM acts as Ctrl+C in the CLI) instead of dying on the
    # spot, so it stopped its data-loading worker itself: no orphan waits for
    # PyTorch's 5-second watchdog to notice the parent is gone.
    assert "hsvcolorizer: interrupted" in train.log_text()
    qtbot.waitUntil(lambda: not any(pid_exists(w) for w in workers), timeout=2000)
    assert_no_thread_running(window)
    assert leftovers(run) == [], "no half-written checkpoint, weights or preview"
    assert not (run / "model.safetensors").exists()
    if (run / "checkpoint.pt").exists():
        import torch

        torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert messages == [], "stopping by closing is not an error"


# ---------------------------------------------------------------------------
# A worker's error becomes a message
# ---------------------------------------------------------------------------


def test_bad_photo_is_a_message(make_window, tmp_path, messages):
    window = make_window()
    bad = make_text_as_jpg(tmp_path / "letter.jpg")
    assert window.colorize_tab.open_path(bad) is False
    assert len(messages) == 1
    title, message = messages[0]
    assert title == "Could not open the photo" and "letter.jpg" in message and "not a JPEG, PNG" in message


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_bad_weights_in_the_inference_worker_are_a_message(qtbot, make_window, tmp_path, messages):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    window = make_window(weights=evil, wait_for_model=False)
    qtbot.waitUntil(lambda: bool(messages), timeout=TIMEOUT)
    title, message = messages[0]
    assert title == "Could not load weights" and "evil.pt" in message and "pickled" in message
    assert window.colorize_tab.banner_visible() and window.colorize_tab.model_info is None
    assert not marker.exists()


def test_inference_worker_errors_are_messages_and_it_keeps_working(qtbot, make_window, photos, monkeypatch, messages):
    from hsvcolorizer.inference import Colorizer

    window = make_window()
    tab = window.colorize_tab
    real_colorize = Colorizer.colorize
    failures = [ColorizerError("the photo is too strange"), RuntimeError("a bug in a layer")]

    def failing(self, *args, **kwargs):
        if failures:
            raise failures.pop(0)
        return real_colorize(self, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "colorize", failing)
    tab.open_path(photos / "p0.png")
    qtbot.waitUntil(lambda: len(messages) == 1, timeout=TIMEOUT)
    assert messages[0] == ("Colorizing failed", "the photo is too strange")
    tab.colorize()
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=TIMEOUT)
    assert messages[1][0] == "Colorizing failed" and "RuntimeError: a bug in a layer" in messages[1][1]
    tab.colorize()  # the thread survived both
    qtbot.waitUntil(lambda: tab.result is not None, timeout=TIMEOUT)
    assert len(messages) == 2


def test_batch_worker_errors_are_messages(qtbot, settings, tmp_path, photos, messages):
    from hsvcolorizer.gui.batch_tab import BatchTab

    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": ")
    tab = BatchTab(lambda: str(truncated), settings)
    qtbot.addWidget(tab)
    tab.input_edit.setText(str(photos))
    tab.output_edit.setText(str(tmp_path / "out"))
    tab.start()
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=TIMEOUT)
    assert len(messages) == 1
    title, message = messages[0]
    assert title == "Batch failed" and "cut.safetensors" in message and "not a valid safetensors" in message
    assert tab.shutdown(5000)


def test_bad_files_in_a_batch_are_reported_per_row(qtbot, make_window, photos, tmp_path, messages):
    window = make_window()
    batch = window.batch_tab
    make_text_as_jpg(photos / "zz letter.jpg")
    batch.input_edit.setText(str(photos))
    batch.output_edit.setText(str(tmp_path / "out"))
    batch.start()
    qtbot.waitUntil(lambda: batch.last_report is not None, timeout=TIMEOUT)
    report = batch.last_report
    assert report.count("done") == 6 and len(report.failed) == 1
    assert "zz letter.jpg" in report.failed[0].reason
    statuses = [batch.row_status(row) for row in range(batch.table.model().rowCount())]
    assert statuses.count("failed") == 1 and statuses.count("done") == 6
    assert messages == [], "one bad photo is a row, not a dialog"


@pytest.mark.skipif(sys.platform == "win32", reason="slow child start")
def test_training_child_error_is_a_message(qtbot, make_window, tmp_path, monkeypatch, messages):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    window = make_window()
    train = window.train_tab
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(3):
        write_image(gray / f"g{i}.png", np.full((24, 24), 40 * i + 20, np.uint8))
    train.data_edit.setText(str(gray))
    train.run_edit.setText(str(tmp_path / "run"))
    train.size_spin.setValue(32)
    train.width_spin.setValue(0.125)
    train.workers_spin.setValue(0)
    train.device_combo.setCurrentIndex(train.device_combo.findData("cpu"))
    with qtbot.waitSignal(train.training_finished, timeout=TIMEOUT) as finished:
        train.start()
    assert finished.args == [False]
    assert len(messages) == 1
    title, message = messages[0]
    assert title == "Training failed" and "no colour photos to train on" in message and "3 grayscale" in message
    assert "Traceback" not in train.log_text()
