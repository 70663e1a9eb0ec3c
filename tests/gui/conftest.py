"""Fixtures for the GUI tests: offscreen Qt, temp settings, captured dialogs.

Dialogs never block a test: ``show_error`` goes through
``hsvcolorizer.gui.common.error_hook`` and questions through
``common.question_hook``; the autouse fixture below replaces both with
recorders, so a test can assert on what the user would have been told.
"""

import os

# Must be set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from hsvcolorizer.gui import common
from hsvcolorizer.imageio import write_image


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """Collect garbage only on the GUI thread, as the application does.

    Otherwise a collection triggered in a worker thread may destroy a window
    left over from an earlier test there, which crashes Qt.
    """
    timer = common.install_gui_thread_gc(qapp)
    yield
    timer.stop()
    gc.enable()


@pytest.fixture(autouse=True)
def collect_garbage_between_tests():
    yield
    gc.collect()


class DialogLog:
    """Records show_error calls and answers ask_yes_no questions."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.questions: list[tuple[str, str]] = []
        self.answer = True

    def error(self, _parent, title: str, message: str) -> None:
        self.errors.append((title, message))

    def question(self, _parent, title: str, text: str) -> bool:
        self.questions.append((title, text))
        return self.answer


@pytest.fixture(autouse=True)
def dialogs(monkeypatch) -> DialogLog:
    log = DialogLog()
    monkeypatch.setattr(common, "error_hook", log.error)
    monkeypatch.setattr(common, "question_hook", log.question)
    return log


@pytest.fixture
def qt_settings(tmp_path) -> QSettings:
    """Settings in a temp INI file, so tests never touch the user's settings."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def make_gradient(height: int, width: int, seed: int = 0) -> np.ndarray:
    """HxW uint8 gray gradient with a little texture (so the model sees edges)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = 20 + 200 * (xx / max(1, width - 1)) * 0.6 + 200 * (yy / max(1, height - 1)) * 0.4
    g += rng.normal(0, 4, (height, width))
    return np.clip(g, 0, 255).astype(np.uint8)


@pytest.fixture
def gray_png(tmp_path) -> Path:
    """A 40 x 56 (width x height) gray gradient PNG."""
    path = tmp_path / "photo.png"
    write_image(path, make_gradient(56, 40))
    return path


@pytest.fixture
def gradient():
    """make_gradient(height, width, seed=0) -> HxW uint8 test photo."""
    return make_gradient


@pytest.fixture
def errors(monkeypatch) -> list:
    """(title, message) of every show_error call instead of a dialog."""
    captured: list = []
    monkeypatch.setattr(common, "error_hook", lambda parent, title, message: captured.append((title, message)))
    return captured
