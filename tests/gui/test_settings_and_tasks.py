"""The window's two shared layers: typed, versioned settings and background tasks."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QSettings

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.gui import tasks
from hsvcolorizer.gui.settings import SCHEMA, SETTINGS_VERSION, VERSION_KEY, AppSettings


@pytest.fixture
def ini(tmp_path):
    return str(tmp_path / "settings.ini")


def test_values_read_back_as_their_type_from_an_ini_file(qapp, ini):
    s = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    s.set("batch/recursive", True)
    s.set("batch/saturation_percent", 150)
    s.set("train/lr", 0.0003)
    s.set("recent_files", ["/a.jpg"])
    s.sync()
    # A fresh reader of the same file: INI stores text, the getters give types.
    again = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    assert again.get("batch/recursive") is True
    assert again.get("batch/saturation_percent") == 150
    assert again.get("train/lr") == pytest.approx(0.0003)
    assert again.get("recent_files") == ["/a.jpg"]  # a one-item list, not "/a.jpg"


def test_missing_or_damaged_values_give_the_default(qapp, ini):
    raw = QSettings(ini, QSettings.Format.IniFormat)
    raw.setValue("batch/saturation_percent", "lots")
    raw.setValue("batch/recursive", "perhaps")
    raw.sync()
    s = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    assert s.get("batch/saturation_percent") == 100
    assert s.get("batch/recursive") is False
    assert s.get("batch/format") == "png"
    assert s.get("recent_files") == []
    assert not s.contains("batch/format")


def test_a_value_of_the_wrong_type_is_refused_when_stored(qapp, ini):
    s = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    with pytest.raises(TypeError):
        s.set("batch/saturation_percent", "150")
    with pytest.raises(KeyError):
        s.set("no/such/key", 1)


def test_old_settings_are_migrated_once_and_newer_ones_left_alone(qapp, ini):
    raw = QSettings(ini, QSettings.Format.IniFormat)
    raw.setValue("batch/input", "/photos")  # written by version 1: no version key
    raw.sync()
    s = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    assert s.version() == SETTINGS_VERSION
    assert s.get("batch/input") == "/photos"

    raw = QSettings(ini, QSettings.Format.IniFormat)
    raw.setValue(VERSION_KEY, SETTINGS_VERSION + 5)
    raw.sync()
    s = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    assert s.version() == SETTINGS_VERSION + 5  # a downgrade does not rewrite a newer file
    assert s.get("batch/input") == "/photos"


def test_every_schema_default_has_its_declared_type(qapp):
    for key, spec in SCHEMA.items():
        value = spec.default_value()
        if value is not None:
            assert isinstance(value, spec.kind), key


def test_a_task_reports_its_result_and_is_listed_as_running_meanwhile(qtbot):
    gate = threading.Event()
    seen: list[list[str]] = []
    tasks.activity().changed.connect(seen.append)
    try:
        task = tasks.run_task("Saving a.png", lambda: (gate.wait(5), 42)[1])
        assert "Saving a.png" in tasks.activity().running()
        with qtbot.waitSignal(task.done, timeout=5000) as done:
            gate.set()
        assert done.args == [42]
        qtbot.waitUntil(lambda: task.finished, timeout=5000)
        assert "Saving a.png" not in tasks.activity().running()
    finally:
        tasks.activity().changed.disconnect(seen.append)
    assert ["Saving a.png"] in seen


def test_a_task_failure_is_one_line_for_the_user(qtbot):
    def fails():
        raise ColorizerError("cannot write /x/a.png: the folder is read-only")

    task = tasks.run_task("Saving", fails)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        pass
    assert failed.args == ["cannot write /x/a.png: the folder is read-only"]

    task = tasks.run_task("Oops", lambda: 1 / 0)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        pass
    assert failed.args[0].startswith("Unexpected error: ZeroDivisionError")


def test_a_task_reports_progress_and_can_be_cancelled(qtbot):
    started = threading.Event()

    def work(report, cancelled):
        n = 0
        started.set()
        while not cancelled() and n < 10_000:
            n += 1
            report(n)
            threading.Event().wait(0.001)
        return n

    task = tasks.run_task("Counting", work, report=True, cancellable=True)
    progress: list[int] = []
    task.progress.connect(progress.append)
    assert started.wait(5)
    qtbot.waitUntil(lambda: len(progress) > 0, timeout=5000)
    with qtbot.waitSignal(task.done, timeout=5000) as done:
        task.cancel()
    assert done.args[0] < 10_000
    assert tasks.wait_for_tasks(5000)


def test_a_task_deleted_with_its_parent_leaves_the_status_bar(qtbot):
    from PySide6.QtCore import QObject

    parent = QObject()
    gate = threading.Event()
    tasks.run_task("Saving the hints in b.hints.json", lambda: gate.wait(5), parent=parent)
    assert "Saving the hints in b.hints.json" in tasks.activity().running()
    parent.deleteLater()  # a tab closed while its save runs
    qtbot.waitUntil(lambda: "Saving the hints in b.hints.json" not in tasks.activity().running(), timeout=5000)
    gate.set()
    assert tasks.wait_for_tasks(5000)
