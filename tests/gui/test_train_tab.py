"""Train tab: real widgets and a real `hsvcolorizer train` child process on
a few tiny photos with a very narrow model."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QProcess, QSettings, Qt

from hsvcolorizer.gui.train_tab import TrainTab
from hsvcolorizer.imageio import write_image

pytestmark = pytest.mark.slow


def photo(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.dstack([127 + 120 * np.sin(xx / size * 6.3 + rng.random() * 6),
                     127 + 120 * np.sin(yy / size * 6.3 + rng.random() * 6),
                     127 + 120 * np.cos((xx + yy) / size * 3.1 + rng.random() * 6)])
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """8 colour photos: 6 to train on (3 steps of 2 per epoch), 2 to validate on."""
    root = tmp_path_factory.mktemp("photos")
    train, val = root / "train", root / "val"
    train.mkdir()
    val.mkdir()
    for i in range(6):
        write_image(train / f"t{i}.png", photo(i))
    for i in range(2):
        write_image(val / f"v{i}.png", photo(100 + i))
    return train, val



@pytest.fixture
def tab(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    widget = TrainTab(settings)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    assert widget.shutdown(5000)
    assert not widget.is_busy()


def fill_quick_form(tab: TrainTab, data: Path, val: Path | None, run: Path, epochs: int = 1,
                    steps: int = 0) -> None:
    tab.data_edit.setText(str(data))
    tab.val_edit.setText(str(val) if val else "")
    tab.run_edit.setText(str(run))
    tab.stage_combo.setCurrentIndex(tab.stage_combo.findData("both"))
    tab.epochs1_spin.setValue(epochs)
    tab.epochs2_spin.setValue(epochs)
    tab.steps1_spin.setValue(steps)
    tab.steps2_spin.setValue(steps)
    tab.batch_spin.setValue(2)
    tab.size_spin.setValue(32)
    tab.width_spin.setValue(0.125)
    tab.device_combo.setCurrentIndex(tab.device_combo.findData("cpu"))
    tab.workers_spin.setValue(0)
    tab.log_every_spin.setValue(1)
    tab.resume_check.setChecked(False)


def events(tab: TrainTab, name: str) -> list[dict]:
    return [e for e in tab.events_seen if e["event"] == name]


def test_a_short_run_fills_curves_preview_log_and_offers_its_weights(qtbot, tmp_path, tab, photos, errors):
    train, val = photos
    run = tmp_path / "run"
    fill_quick_form(tab, train, val, run, epochs=1, steps=2)
    assert "--width-scale" in tab.command() and "--events" in tab.command()
    assert not tab.use_button.isEnabled()

    with qtbot.waitSignal(tab.training_finished, timeout=120000) as blocker:
        qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
        assert tab.is_busy() and tab.stop_button.isEnabled() and not tab.start_button.isEnabled()
    assert blocker.args == [True], (errors, tab.log_text())

    assert not errors
    for stage in (1, 2):
        plot = tab.plots.plot(stage)
        assert plot.point_count("loss") == 2  # log every step, 2 steps per stage
        assert plot.point_count("loss_s") == plot.point_count("loss_h") == 2
        assert plot.point_count("val") == 1
        xs, ys = plot.series("loss")
        assert xs == [1.0, 2.0] and all(y > 0 for y in ys)
    log = tab.log_text()
    assert "training on 6 colour photos" in log and "weights written to" in log
    assert len(log.splitlines()) >= 6
    assert not tab.preview_pixmap().isNull()
    assert tab.preview_grid.isVisible()  # gray | stage 1 | refined | original, as a 2x2 grid
    for tile in tab.preview_tiles:
        assert not tile.pixmap().isNull() and tile.source().width() == tile.source().height() == 32
    assert "images/s" in tab.speed_label.text() and "PSNR" in tab.val_label.text()
    assert tab.phase_label.text() == "Finished"
    assert tab.process is None

    assert tab.use_button.isEnabled()
    with qtbot.waitSignal(tab.use_weights, timeout=1000) as used:
        qtbot.mouseClick(tab.use_button, Qt.MouseButton.LeftButton)
    assert used.args == [str(run / "model.safetensors")]
    assert (run / "model.safetensors").is_file()


def test_stop_ends_the_child_and_resume_continues(qtbot, tmp_path, tab, photos, errors):
    train, val = photos
    run = tmp_path / "run"
    fill_quick_form(tab, train, val, run, epochs=50)

    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    # Into the second epoch: tiny epochs write no checkpoint of their own, the
    # stop must write the one to resume from.
    qtbot.waitUntil(lambda: len(events(tab, "step")) >= 4, timeout=90000)
    assert not events(tab, "checkpoint")
    pid = tab.process.processId()
    states = []
    tab.process.stateChanged.connect(states.append)
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)
    assert tab.stop_button.text() == "Stop now" and tab.stop_button.isEnabled()
    assert tab.phase_label.text() == "Stopping after this step…"
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=30000)  # one tiny step, on a busy machine
    assert events(tab, "stopped"), "the trainer stopped itself, after checkpointing its step"
    assert events(tab, "checkpoint")[-1]["step"] == events(tab, "stopped")[0]["global_step"]
    assert tab.eta_label.text() == "ETA —"
    assert states[-1] == QProcess.ProcessState.NotRunning and tab.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped: no zombie either
    assert not errors  # a stop is not a failure
    assert tab.phase_label.text() == "Stopped"
    assert tab.resume_check.isChecked()  # offered for the next Start
    points = tab.plots.plot(1).point_count()
    assert points >= 1

    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert "--resume" in tab.command()
    qtbot.waitUntil(lambda: "resuming from" in tab.log_text(), timeout=60000)
    assert tab.plots.plot(1).point_count() >= points  # the curves are kept across a resume
    assert tab.shutdown(5000)
    assert not tab.is_busy()


def test_a_bad_data_folder_shows_the_childs_error(qtbot, tmp_path, tab, errors):
    fill_quick_form(tab, tmp_path / "no such folder", None, tmp_path / "run")
    with qtbot.waitSignal(tab.training_finished, timeout=60000) as blocker:
        qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [False]
    assert len(errors) == 1
    title, message = errors[0]
    assert title == "Training failed" and "does not exist" in message and "no such folder" in message
    assert "does not exist" in tab.log_text()
    assert tab.log_text().count("hsvcolorizer: error:") == 0  # the stderr copy is not repeated
    assert tab.phase_label.text() == "Failed"
    assert not tab.use_button.isEnabled() and tab.start_button.isEnabled()


def test_partial_lines_and_stray_output(qtbot, tab):
    child = tab.controller.process
    child.feed_stdout(b'{"event": "log", "time": 0, "mess')
    assert "hello" not in tab.log_text()
    child.feed_stdout(b'age": "hello"}\nnot json at all\n{"event": "step", "stage": 1, "epoch": 1, "epochs": 2, ')
    assert "hello" in tab.log_text() and "not json at all" in tab.log_text()
    child.feed_stdout(b'"step": 3, "steps_per_epoch": 5, "global_step": 3, "loss_s": 0.2, "loss_h": 0.5, '
                      b'"loss": 0.7, "lr": 0.0002, "images_per_s": 12.5, "eta_s": 65}\r\n{"event": "mystery"}\n'
                      b'[1, 2]\n{"event": "step", "stage": 1}\n')
    assert tab.plots.plot(1).series("loss") == ([3.0], [0.7])
    assert tab.speed_label.text() == "12.5 images/s (mean of the last 30 s)"
    assert tab.eta_label.text() == "ETA 1 min 05 s"
    assert tab.phase_label.text() == "Stage 1 · epoch 1 / 2 · step 3 / 5"
    assert "[1, 2]" in tab.log_text()
    assert '{"event": "step", "stage": 1}' in tab.log_text(), "an event without its fields is shown, not parsed"
    child.feed_stderr(b"a warning\nhalf")
    assert "a warning" in tab.log_text() and "half" not in tab.log_text()


def test_form_settings_round_trip_and_tooltips(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = TrainTab(settings)
    qtbot.addWidget(first)
    fill_quick_form(first, tmp_path / "d", tmp_path / "v", tmp_path / "r", epochs=3, steps=7)
    first.lr_spin.setValue(0.0005)
    first.stage_combo.setCurrentIndex(first.stage_combo.findData("1"))
    first.channel_combo.setCurrentIndex(first.channel_combo.findData("v"))
    first.size_spin.setValue(50)
    first._round_size()
    assert first.size_spin.value() % 4 == 0
    assert not first.epochs2_spin.isEnabled()  # stage 1 only
    settings.sync()

    second = TrainTab(settings)
    qtbot.addWidget(second)
    assert second.command() == first.command()
    cmd = second.command()
    for flag, value in (("--stage", "1"), ("--epochs-stage1", "3"), ("--steps-stage2", "7"), ("--lr", "0.0005"),
                        ("--input-channel", "v"), ("--device", "cpu"), ("--workers", "0"), ("--batch-size", "2")):
        assert cmd[cmd.index(flag) + 1] == value
    for w in (second.data_edit, second.val_edit, second.run_edit, second.stage_combo, second.epochs1_spin,
              second.epochs2_spin, second.batch_spin, second.lr_spin, second.size_spin, second.channel_combo,
              second.device_combo, second.resume_check, second.width_spin, second.steps1_spin, second.steps2_spin,
              second.workers_spin, second.start_button, second.stop_button, second.use_button, second.log_view,
              second.preview_label, second.plots.plot(1)):
        assert w.toolTip(), w


SLOW_STEP_TRAINER = r"""
import json, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print(json.dumps({"event": "log", "time": 0, "message": "a step takes a while on a CPU"}), flush=True)
while not stop:
    time.sleep(0.05)
time.sleep(6.5)  # the step in progress, longer than any fixed grace period would wait
print(json.dumps({"event": "stopped", "time": 0, "stage": 1, "epoch": 1, "step": 3, "global_step": 3}), flush=True)
"""


def start_slow_trainer(qtbot, tab, photos, tmp_path, monkeypatch) -> None:
    """Start SLOW_STEP_TRAINER as the tab's child and wait until it runs."""
    train, val = photos
    script = tmp_path / "slow_trainer.py"
    script.write_text(SLOW_STEP_TRAINER)
    fill_quick_form(tab, train, val, tmp_path / "run")
    monkeypatch.setattr(tab, "command", lambda: [str(script)])
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "a step takes a while" in tab.log_text(), timeout=30000)


def test_stop_waits_for_a_slow_step_instead_of_killing_it(qtbot, tmp_path, tab, photos, errors, monkeypatch):
    """On a CPU one step takes 40-70 s: Stop must wait for the trainer's own
    "stopped" (its step checkpointed), not kill it after a few seconds."""
    start_slow_trainer(qtbot, tab, photos, tmp_path, monkeypatch)
    codes = []
    tab.process.finished.connect(lambda code, status: codes.append((code, status)))
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20000)
    assert codes == [(0, QProcess.ExitStatus.NormalExit)], "ended by itself, not killed"
    assert events(tab, "stopped") and "killing" not in tab.log_text()
    assert tab.phase_label.text() == "Stopped" and not errors


def test_stop_now_ends_a_slow_step_at_once(qtbot, tmp_path, tab, photos, errors, monkeypatch):
    start_slow_trainer(qtbot, tab, photos, tmp_path, monkeypatch)
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)  # "Stop now"
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=3000)
    assert "Ending the training now" in tab.log_text()
    assert tab.phase_label.text() == "Stopped"


QUICK_TRAINER = r"""
import json
print(json.dumps({"event": "log", "time": 0, "message": "started"}), flush=True)
"""


def test_a_run_in_another_folder_starts_with_clean_curves_and_no_resume_tick(qtbot, tmp_path, tab, photos, errors,
                                                                               monkeypatch):
    train, val = photos
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    (first / "checkpoint.pt").write_bytes(b"x")  # what a stopped run leaves
    fill_quick_form(tab, train, val, first)
    script = tmp_path / "quick.py"
    script.write_text(QUICK_TRAINER)
    monkeypatch.setattr(tab, "command", lambda: [str(script)])
    tab.resume_check.setChecked(False)
    tab.start()
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=30000)
    for x in range(1, 4):  # the first run's curves, both stages
        tab.plots.add_step(1, x, {"loss_s": 0.5, "loss_h": 0.5, "loss": 1.0})
        tab.plots.add_step(2, x, {"loss_s": 0.5, "loss_h": 0.5, "loss": 1.0})
    tab.resume_check.setChecked(True)  # as Stop leaves it

    tab.run_edit.setText(str(other))
    assert not tab.resume_check.isChecked(), "nothing to resume in the other folder"
    tab.resume_check.setChecked(True)  # even ticked by hand, another folder's curves are not this run's
    tab.start()
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=30000)
    assert tab.plots.plot(1).point_count() == 0 and tab.plots.plot(2).point_count() == 0
