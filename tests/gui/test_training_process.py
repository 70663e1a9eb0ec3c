"""TrainingProcess: the trainer child, its JSON-line events as typed signals,
Stop that waits for the trainer's own "stopped", Stop now, and how it ended.
Fake children print the events; one real `hsvcolorizer train` run on tiny
photos checks the real protocol end to end."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
from pathlib import Path

import pytest

from hsvcolorizer.gui import training_process
from hsvcolorizer.gui.training_process import IDLE, RUNNING, STOPPING, TrainingProcess
from hsvcolorizer.imageio import write_image

from tests.conftest import colour_image


@pytest.fixture
def child(qtbot):
    proc = TrainingProcess()
    yield proc
    assert proc.shutdown(5000)


def run_script(tmp_path: Path, proc: TrainingProcess, source: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(source)
    proc.start([str(script)], str(tmp_path))


def record(proc: TrainingProcess) -> list[tuple]:
    """Every signal of `proc`, in order, as (name, argument)."""
    seen: list[tuple] = []
    for name in ("state_changed", "started_run", "logged", "step", "epoch", "checkpoint", "stopped", "done",
                 "error", "output", "stderr_line", "finished"):
        getattr(proc, name).connect(lambda arg, name=name: seen.append((name, arg)))
    return seen


A_WHOLE_RUN = r"""
import json, sys
def ev(name, **f):
    print(json.dumps({"event": name, "time": 0, **f}), flush=True)
ev("start", config={"stage": "1", "epochs_stage1": 1}, parameters=10, steps_per_epoch=1, batch_size=2, world_size=1,
   device="cpu", images_used=2, excluded_gray=0, unreadable=0)
ev("log", message="stage 1: 1 epoch of 1 step")
print("a library's own print", flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
ev("step", stage=1, epoch=1, epochs=1, step=1, steps_per_epoch=1, global_step=1, loss_s=0.1, loss_h=0.2, loss=0.3,
   lr=1e-4, images_per_s=5.0, eta_s=0)
ev("epoch", stage=1, epoch=1, epochs=1, preview=None)
ev("checkpoint", path="run/checkpoint.pt", stage=1, epoch=1, step=1)
ev("done", weights="run/model.safetensors", elapsed_s=1.0)
sys.stdout.write('{"event": "log", "time": 0, "message": "no newline at the end"}')
"""


def test_events_become_typed_signals_and_a_whole_run_finishes(qtbot, tmp_path, child):
    seen = record(child)
    with qtbot.waitSignal(child.finished, timeout=30000) as ended:
        run_script(tmp_path, child, A_WHOLE_RUN)
        assert child.state == RUNNING and child.is_running()
    outcome = ended.args[0]
    assert outcome.kind == "finished" and outcome.ok and outcome.weights == "run/model.safetensors"
    names = [name for name, _ in seen]
    for name in ("started_run", "logged", "output", "stderr_line", "step", "epoch", "checkpoint", "done"):
        assert name in names, name
    assert names.index("started_run") < names.index("step") < names.index("epoch") < names.index("done")
    assert ("logged", "no newline at the end") in seen, "the unterminated last line is read too"
    assert ("output", "a library's own print") in seen and ("stderr_line", "a warning on stderr") in seen
    assert next(arg for name, arg in seen if name == "step")["loss"] == 0.3
    assert [arg for name, arg in seen if name == "state_changed"] == [RUNNING, IDLE]
    assert names[-1] == "finished" and child.process is None and child.state == IDLE
    assert [e["event"] for e in child.events_seen] == ["start", "log", "step", "epoch", "checkpoint", "done", "log"]


AN_ERROR = r"""
import json, sys
print(json.dumps({"event": "error", "time": 0, "message": "no colour photos to train on"}), flush=True)
print("hsvcolorizer: error: no colour photos to train on", file=sys.stderr, flush=True)
sys.exit(2)
"""


def test_the_trainers_error_is_the_outcome_and_its_stderr_copy_is_dropped(qtbot, tmp_path, child):
    seen = record(child)
    with qtbot.waitSignal(child.finished, timeout=30000) as ended:
        run_script(tmp_path, child, AN_ERROR)
    outcome = ended.args[0]
    assert outcome.kind == "failed" and outcome.exit_code == 2 and outcome.message == "no colour photos to train on"
    assert ("error", "no colour photos to train on") in seen
    assert not [arg for name, arg in seen if name == "stderr_line"]


def test_a_crash_names_the_exit_code_and_the_last_lines_of_stderr(qtbot, tmp_path, child):
    with qtbot.waitSignal(child.finished, timeout=30000) as ended:
        run_script(tmp_path, child, "import sys\nprint('Killed by the OOM guard', file=sys.stderr)\nsys.exit(3)\n")
    outcome = ended.args[0]
    assert outcome.kind == "failed" and "exit code 3" in outcome.message and "OOM guard" in outcome.message


SLOW_STEP = r"""
import json, signal, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print(json.dumps({"event": "log", "time": 0, "message": "in a step"}), flush=True)
while not stop:
    time.sleep(0.05)
time.sleep(6.5)  # the step in progress, longer than any fixed grace period would wait
print(json.dumps({"event": "stopped", "time": 0, "stage": 1, "epoch": 1, "step": 3, "global_step": 3}), flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="QProcess.terminate is a no-op for console children")
def test_stop_waits_for_the_trainers_own_stopped_event(qtbot, tmp_path, child):
    seen = record(child)
    run_script(tmp_path, child, SLOW_STEP)
    qtbot.waitUntil(lambda: ("logged", "in a step") in seen, timeout=30000)
    with qtbot.waitSignal(child.finished, timeout=30000) as ended:
        child.stop()
        assert child.state == STOPPING and child.is_running()
    outcome = ended.args[0]
    assert outcome.kind == "stopped" and outcome.exit_code == 0, "ended by itself, not killed"
    assert outcome.stopped_event["global_step"] == 3
    assert [arg for name, arg in seen if name == "state_changed"] == [RUNNING, STOPPING, IDLE]


def test_stop_twice_kills_at_once(qtbot, tmp_path, child):
    seen = record(child)
    run_script(tmp_path, child, SLOW_STEP)
    qtbot.waitUntil(lambda: ("logged", "in a step") in seen, timeout=30000)
    with qtbot.waitSignal(child.finished, timeout=3000) as ended:
        child.stop()
        child.stop()  # "Stop now"
    assert ended.args[0].kind == "stopped" and ended.args[0].stopped_event is None


def test_a_child_that_cannot_start_is_a_failure(qtbot, tmp_path, child, monkeypatch):
    monkeypatch.setattr(training_process.sys, "executable", str(tmp_path / "no-such-python"))
    with qtbot.waitSignal(child.finished, timeout=10000) as ended:
        child.start(["-c", "pass"], str(tmp_path))
    outcome = ended.args[0]
    assert outcome.kind == "failed" and outcome.exit_code is None and "Could not start" in outcome.message
    assert child.state == IDLE and not child.is_running()


@pytest.mark.slow
def test_a_real_short_training_run(qtbot, tmp_path, child):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        write_image(photos / f"p{i}.png", colour_image(40, 40, seed=i))
    run = tmp_path / "run"
    args = ["-m", "hsvcolorizer.cli", "train", "--data", str(photos), "--out", str(run), "--stage", "1",
            "--epochs-stage1", "1", "--steps-stage1", "2", "--batch-size", "2", "--size", "32", "--width-scale",
            "0.125", "--workers", "0", "--device", "cpu", "--log-every", "1", "--events", "jsonl"]
    steps = []
    child.step.connect(steps.append)
    with qtbot.waitSignal(child.finished, timeout=180000) as ended:
        child.start(args, str(tmp_path))
    outcome = ended.args[0]
    assert outcome.ok, (outcome.message, outcome.stderr_tail)
    assert Path(outcome.weights) == run / "model.safetensors" and Path(outcome.weights).is_file()
    assert [s["global_step"] for s in steps] == [1, 2]
    kinds = {e["event"] for e in child.events_seen}
    assert {"start", "log", "step", "epoch", "checkpoint", "done"} <= kinds
