"""TrainController without a window: what a run's events make of the state
the Train tab shows (phase, smoothed throughput, ETA, progress, curves,
preview, log), the status bar's activity entry, Stop, and the form's
settings and command line."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import sys

import pytest
from PySide6.QtCore import QSettings

from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import activity
from hsvcolorizer.gui.train_controller import IDLE, STOPPING, Throughput, TrainController, TrainOptions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line(name: str, **fields) -> bytes:
    return (json.dumps({"event": name, "time": 0, **fields}) + "\n").encode()


START = line("start", config={"stage": "both", "epochs_stage1": 10, "epochs_stage2": 10, "steps_stage2": 5},
             parameters=1234, steps_per_epoch=3, batch_size=2, world_size=1, device="cpu", images_used=6,
             excluded_gray=0, unreadable=0)


def step(global_step: int, ips: float, stage: int = 1, eta: float = 65) -> bytes:
    epoch, in_epoch = divmod(global_step - 1, 3)
    return line("step", stage=stage, epoch=epoch + 1, epochs=10, step=in_epoch + 1, steps_per_epoch=3,
                global_step=global_step, loss_s=0.1, loss_h=0.2, loss=0.3 + global_step, lr=1e-4,
                images_per_s=ips, eta_s=eta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def controller(qtbot, clock):
    c = TrainController(clock=clock)
    yield c
    assert c.shutdown(5000)


def feed(c: TrainController, *lines: bytes) -> None:
    c.process.feed_stdout(b"".join(lines))


def test_events_fill_phase_progress_eta_curves_and_preview(controller, tmp_path):
    c = controller
    feed(c, START)
    assert c.progress == (0, 35), "10 epochs of 3 steps, then stage 2 capped at 5 steps"
    assert "1,234 parameters" in c.log_text() and "3 steps per epoch" in c.log_text()
    feed(c, step(1, 10.0), step(2, 10.0), step(4, 10.0))
    assert c.phase == "Stage 1 · epoch 2 / 10 · step 1 / 3"
    assert c.eta_text == "ETA 1 min 05 s" and c.progress == (4, 35)
    assert c.curves[1]["x"] == [1.0, 2.0, 4.0] and c.curves[1]["loss"] == [1.3, 2.3, 4.3]
    preview = tmp_path / "stage1_epoch001.png"
    feed(c, line("epoch", stage=1, epoch=1, epochs=10, preview=str(preview), val_loss=0.25, val_psnr=21.5))
    assert c.validation_text == "Validation loss 0.2500 · PSNR 21.50 dB"
    assert c.curves[1]["val"] == [(4.0, 0.25)]
    assert (c.preview_path, c.preview_caption) == (str(preview), "Validation photo after stage 1, epoch 1")


def test_one_step_reads_1_step(controller):
    feed(controller, line("start", config={"stage": "1", "epochs_stage1": 2}, parameters=5, steps_per_epoch=1,
                          batch_size=1, world_size=1, device="cpu", images_used=1, excluded_gray=0, unreadable=0))
    assert "1 step per epoch" in controller.log_text() and "1 steps" not in controller.log_text()


def test_throughput_is_a_mean_over_the_last_30_seconds(controller, clock):
    """A 64 px run's log windows swing sixfold (10 then 60 images/s): the
    figure shown is the time-weighted mean, and it follows a real change
    once the old windows are 30 s old."""
    c = controller
    shown = []
    c.speed_changed.connect(shown.append)
    g = 0
    for ips in (10.0, 60.0) * 4:
        g += 3
        clock.now += 3 / ips * 10
        feed(c, step(g, ips))
    # Each window weighs by its length: 10 steps at 10/s (the first window
    # counts as 1 step, the steps before it are unknown) and 12 at 60/s.
    assert c.speed_text == f"{22 / (10 / 10 + 12 / 60):.1f} images/s"
    values = [float(text.split()[0]) for text in shown[2:]]
    assert max(values) / min(values) < 1.6, f"smoothed, not swinging: {shown}"
    clock.now += 31  # the old windows leave the mean
    for _ in range(2):
        g += 3
        feed(c, step(g, 40.0))
    assert c.speed_text == "40.0 images/s"


def test_throughput_keeps_the_last_window_when_it_is_longer_than_30_s(clock):
    meter = Throughput(clock=clock)
    meter.add(0.05, 10)  # one step every 20 s
    clock.now += 200
    meter.add(0.04, 20)
    assert meter.value() == pytest.approx(0.04)


FAKE_TRAINER = r"""
import json, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
def ev(name, **f):
    print(json.dumps({"event": name, "time": 0, **f}), flush=True)
ev("start", config={"stage": "1", "epochs_stage1": 10}, parameters=5, steps_per_epoch=3, batch_size=2,
   world_size=1, device="cpu", images_used=6, excluded_gray=0, unreadable=0)
ev("step", stage=1, epoch=3, epochs=10, step=1, steps_per_epoch=3, global_step=7, loss_s=0.1, loss_h=0.1,
   loss=0.2, lr=1e-4, images_per_s=4.0, eta_s=30)
while not stop:
    time.sleep(0.05)
time.sleep(0.5)  # the step in progress
ev("checkpoint", path=sys.argv[1] + "/checkpoint.pt", stage=1, epoch=3, step=8)
open(sys.argv[1] + "/checkpoint.pt", "w").write("x")
ev("stopped", stage=1, epoch=3, step=2, global_step=8)
"""


def options_for(tmp_path, **changes) -> TrainOptions:
    return TrainOptions(data=str(tmp_path / "photos"), run=str(tmp_path / "run"), **changes)


def start_fake(c: TrainController, tmp_path, **changes) -> None:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    assert c.start(options_for(tmp_path, **changes), [str(script), str(run)])


def test_the_running_training_is_in_the_activity_list_until_it_stops(qtbot, controller, tmp_path):
    c = controller
    start_fake(c, tmp_path)
    assert "Training: starting" in activity().running()
    qtbot.waitUntil(lambda: "Training stage 1, epoch 3 of 10" in activity().running(), timeout=30000)
    assert c.eta_text == "ETA 30 s" and c.phase.startswith("Stage 1 · epoch 3 / 10")

    offered = []
    c.resume_offered.connect(offered.append)
    with qtbot.waitSignal(c.finished, timeout=30000) as ended:
        c.stop()
        assert c.state == STOPPING
        assert c.phase == "Stopping after this step…" and c.eta_text == "ETA —"
        assert "Training: stopping after this step" in activity().running()
    assert ended.args == [False]
    assert c.phase == "Stopped" and c.eta_text == "ETA —" and c.state == IDLE
    assert offered == [True], "the stop's checkpoint is offered for Resume"
    assert not [text for text in activity().running() if text.startswith("Training")]


def test_a_new_run_clears_the_curves_a_resume_in_the_same_folder_keeps_them(qtbot, controller, tmp_path):
    c = controller
    start_fake(c, tmp_path)
    qtbot.waitUntil(lambda: bool(c.curves[1]["x"]), timeout=30000)
    with qtbot.waitSignal(c.finished, timeout=30000):
        c.stop()
    start_fake(c, tmp_path, resume=True)
    assert c.curves[1]["x"] == [7.0], "a resume continues the same curves"
    assert "Stopping after the current step" in c.log_text(), "and the same log"
    with qtbot.waitSignal(c.finished, timeout=30000):
        c.stop()
        c.stop()  # Stop now
    assert "Ending the training now" in c.log_text()

    other = tmp_path / "other"
    other.mkdir()
    (other / "photos").mkdir()
    script = tmp_path / "fake_trainer.py"
    assert c.start(TrainOptions(data=str(other / "photos"), run=str(other / "run"), resume=True),
                   [str(script), str(other)])
    assert c.curves[1]["x"] == [] and "Ending the training now" not in c.log_text()


def test_an_incomplete_form_is_refused_with_a_reason(controller, tmp_path):
    failed = []
    controller.failed.connect(lambda title, message: failed.append(title))
    assert not controller.start(TrainOptions(run=str(tmp_path)))
    assert not controller.start(TrainOptions(data=str(tmp_path)))
    assert failed == ["No training folder", "No run folder"] and not controller.is_busy()


def test_options_round_trip_through_the_settings_and_make_the_command(tmp_path):
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert TrainOptions.from_settings(settings) == TrainOptions()
    chosen = TrainOptions(data=str(tmp_path / "d"), val="", run=str(tmp_path / "r"), stage="1", epochs_stage1=3,
                          lr=0.0005, width_scale=0.125, steps_stage2=7, workers=0, resume=True)
    chosen.save(settings)
    settings.sync()
    again = TrainOptions.from_settings(AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)))
    assert again == chosen
    cmd = again.command()
    assert cmd[:3] == ["-m", "hsvcolorizer.cli", "train"] and cmd[-1] == "--resume"
    for flag, value in (("--stage", "1"), ("--epochs-stage1", "3"), ("--lr", "0.0005"), ("--width-scale", "0.125"),
                        ("--steps-stage2", "7"), ("--workers", "0"), ("--out", str(tmp_path / "r"))):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--val" not in cmd and "--steps-stage1" not in cmd
    assert "--workers" not in TrainOptions().command(), "Auto: the trainer's own choice"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_a_malformed_event_does_not_stop_the_next_ones(controller):
    feed(controller, line("step", stage="x", epoch=1, epochs=1, step=1, steps_per_epoch=1, global_step=1, loss_s=0,
                          loss_h=0, loss=0, lr=0, images_per_s=1), step(1, 5.0))
    assert controller.curves[1]["x"] == [1.0]
