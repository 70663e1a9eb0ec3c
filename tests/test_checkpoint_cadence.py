"""When the trainer writes checkpoints (issue 12, point 7): a run of many tiny
epochs must not write its whole state at every epoch's end, yet a kill or a
stop at any moment must still resume with exactly the losses of an
uninterrupted run."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hsvcolorizer.imageio import write_image
from hsvcolorizer.training import CHECKPOINT, TrainConfig, loop, train

from tests.conftest import colour_image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# 12 photos, one held out for validation, batch 2: 5 steps an epoch; 6 + 2
# epochs, 40 steps in all. The default step cadence (200) never falls due.
STEPS_PER_EPOCH = 5
TINY = dict(epochs_stage1=6, epochs_stage2=2, batch_size=2, size=32, width_scale=0.125, workers=0, device="cpu",
            log_every=1, seed=3)
TINY_ARGS = ["--epochs-stage1", "6", "--epochs-stage2", "2", "--batch-size", "2", "--size", "32",
             "--width-scale", "0.125", "--workers", "0", "--device", "cpu", "--log-every", "1", "--seed", "3",
             "--events", "jsonl"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        write_image(folder / f"p{i:02d}.png", colour_image(40 + i, 48, seed=i))
    return folder


def parse(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_in_process(photos: Path, out: Path, capsys, **changes) -> list[dict]:
    capsys.readouterr()
    train(TrainConfig(data=str(photos), out=str(out), events=True, **{**TINY, **changes}))
    return parse(capsys.readouterr().out)


def checkpoint_steps(events: list[dict]) -> list[int]:
    return [e["step"] for e in events if e["event"] == "checkpoint"]


def losses(events: list[dict]) -> dict[int, float]:
    return {e["global_step"]: e["loss"] for e in events if e["event"] == "step"}


def test_many_tiny_epochs_write_a_checkpoint_per_stage_not_per_epoch(photos, tmp_path, capsys):
    events = run_in_process(photos, tmp_path / "run", capsys)
    assert len([e for e in events if e["event"] == "epoch"]) == 8
    # Stage 1 ends at step 30 (its last epoch, then the stage marked done),
    # stage 2 and the run at 40: three writes instead of ten.
    assert checkpoint_steps(events) == [30, 30, 40]
    ck = torch.load(tmp_path / "run" / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ck["state"]["global_step"] == 40 and len(ck["state"]["history"]) == 40


def test_an_epoch_end_writes_when_enough_time_has_passed(photos, tmp_path, capsys, monkeypatch):
    # As if every epoch had taken longer than EPOCH_CHECKPOINT_SECONDS.
    monkeypatch.setattr(loop, "EPOCH_CHECKPOINT_SECONDS", 0.0)
    events = run_in_process(photos, tmp_path / "run", capsys, epochs_stage1=3, epochs_stage2=1)
    ends = [STEPS_PER_EPOCH * n for n in range(1, 5)]
    assert sorted(set(checkpoint_steps(events))) == ends


def test_an_epoch_end_on_the_step_cadence_writes(photos, tmp_path, capsys):
    events = run_in_process(photos, tmp_path / "run", capsys, epochs_stage1=3, epochs_stage2=1,
                            checkpoint_every=STEPS_PER_EPOCH * 2)
    assert sorted(set(checkpoint_steps(events))) == [10, 15, 20]  # the cadence, stage 1's end, the run's end


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photos) -> dict[int, float]:
    """The losses of an uninterrupted run, per global step."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", "train", "--data", str(photos), "--out", str(out),
                        *TINY_ARGS], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    ref = losses(parse(r.stdout))
    assert sorted(ref) == list(range(1, 41))
    return ref


def interrupt_at(photos: Path, out: Path, global_step: int, sig: int) -> list[dict]:
    """Run the CLI and send `sig` once it has logged `global_step`; its events."""
    proc = subprocess.Popen([sys.executable, "-m", "hsvcolorizer.cli", "train", "--data", str(photos),
                             "--out", str(out), *TINY_ARGS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT)
    seen = []
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                seen.append(json.loads(line))
                if seen[-1]["event"] == "step" and seen[-1]["global_step"] >= global_step:
                    proc.send_signal(sig)
                    break
        seen += parse(proc.stdout.read())
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen


def resume(photos: Path, out: Path) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", "train", "--data", str(photos), "--out", str(out),
                        *TINY_ARGS, "--resume"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return parse(r.stdout)


def test_sigkill_in_stage_two_resumes_from_stage_ones_end_with_the_same_losses(photos, tmp_path, reference):
    out = tmp_path / "run"
    before = interrupt_at(photos, out, 33, signal.SIGKILL)
    assert set(checkpoint_steps(before)) == {30}, "only stage 1's end was written before the kill"
    resumed = losses(resume(photos, out))
    assert sorted(resumed) == list(range(31, 41)), "continued after stage 1, lost only stage 2's steps"
    for step, loss in resumed.items():
        assert loss == pytest.approx(reference[step], abs=1e-4), f"step {step}"


def test_stop_between_epoch_checkpoints_loses_nothing(photos, tmp_path, reference):
    # SIGTERM (the window's Stop) in epoch 3, no checkpoint written since the start.
    out = tmp_path / "run"
    before = interrupt_at(photos, out, 12, signal.SIGTERM)
    stopped = [e for e in before if e["event"] == "stopped"]
    assert stopped and checkpoint_steps(before) == [stopped[0]["global_step"]]
    resumed = losses(resume(photos, out))
    assert min(resumed) == stopped[0]["global_step"] + 1 and max(resumed) == 40
    for step, loss in resumed.items():
        assert loss == pytest.approx(reference[step], abs=1e-4), f"step {step}"


def test_a_stop_while_validating_keeps_the_epochs_steps(photos, tmp_path, capsys, monkeypatch):
    """Epoch ends no longer always checkpoint, so a stop during validation (where
    SIGTERM unwinds at once) must write the whole epoch it follows."""
    real_validate = loop.Trainer.validate

    def validate_then_stop(self, stage):
        if self.state["epoch"] == 2:
            self._request_stop()  # what SIGTERM does outside the steps: raises KeyboardInterrupt
        return real_validate(self, stage)

    monkeypatch.setattr(loop.Trainer, "validate", validate_then_stop)
    out = tmp_path / "run"
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(data=str(photos), out=str(out), events=True, **TINY))
    events = parse(capsys.readouterr().out)
    stopped = [e for e in events if e["event"] == "stopped"]
    assert stopped and stopped[0]["global_step"] == 2 * STEPS_PER_EPOCH
    ck = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ck["state"]["global_step"] == 2 * STEPS_PER_EPOCH and ck["state"]["epoch"] == 2
    assert ck["state"]["step_in_epoch"] == 0, "resume starts with the next epoch"
