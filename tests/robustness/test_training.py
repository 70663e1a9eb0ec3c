"""Issue part 5: training interrupted, fed bad data, or diverging.

- SIGKILL in the middle of writing a checkpoint leaves the previous
  checkpoint intact (loadable with ``torch.load(weights_only=True)``), and
  resuming from it repeats the uninterrupted run's losses.
- A damaged checkpoint is detected and left as it is.
- An empty, all-gray or all-unreadable data folder is a clear error.
- A NaN loss, or NaN weights, stop training with a message; no NaN weights
  are ever written.

Tolerance for "the same losses": 1e-4 absolute on the logged losses (which
are rounded to 5 decimals).  The killed run is a separate process and the
reference and resumed runs are in-process, all on one math thread, so in
practice the numbers agree exactly; the tolerance only absorbs a possible
last-digit rounding flip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hsvcolorizer.cli import main
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import write_image
from hsvcolorizer.training import CHECKPOINT, FINAL_WEIGHTS, STAGE1_WEIGHTS, TrainConfig, train
from hsvcolorizer.weights import load_weights
from tests.conftest import colour_image
from tests.robustness.conftest import (
    ROOT,
    assert_one_line_error,
    cli_env,
    make_text_as_jpg,
    make_truncated_png,
    make_zero_byte,
    valid_png_bytes,
)

LOSS_TOLERANCE = 1e-4
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# Tiny and fast: 5 steps an epoch, 15 steps in all, a checkpoint every 3 steps.
TINY_TRAINING = dict(epochs_stage1=2, epochs_stage2=1, batch_size=2, size=32, width_scale=0.125, workers=0,
                     device="cpu", log_every=1, checkpoint_every=3, seed=3)
TINY_ARGS = ["--epochs-stage1", "2", "--epochs-stage2", "1", "--batch-size", "2", "--size", "32",
             "--width-scale", "0.125", "--workers", "0", "--device", "cpu", "--log-every", "1",
             "--checkpoint-every", "3", "--seed", "3"]


def config(data: Path, out: Path, **changes) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), **{**TINY_TRAINING, **changes})


def history(run: Path) -> dict[int, float]:
    """global step -> logged loss, from the run's checkpoint (saved at the end of each stage)."""
    ck = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    return {h["global_step"]: h["loss"] for h in ck["state"]["history"]}


def all_finite(tensors: dict) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def no_weights(run: Path) -> bool:
    return not (run / FINAL_WEIGHTS).exists() and not (run / STAGE1_WEIGHTS).exists()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Like tests/conftest.py's photo_folder (12 colour PNGs), shared by the module."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        write_image(folder / f"p{i:02d}.png", colour_image(40 + i, 48, seed=i))
    return folder


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, photos) -> Path:
    """The uninterrupted run the interrupted ones must match."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(config(photos, out))
    return out


# ---------------------------------------------------------------------------
# SIGKILL while a checkpoint is being written, then resume
# ---------------------------------------------------------------------------

# Runs `hsvcolorizer train ARGS` with torch.save replaced: save number
# KILL_AT_SAVE writes the first half of the real checkpoint bytes to the
# temporary file, then either SIGKILLs its own process, as a power cut or
# `kill -9` would (MODE=kill), or waits there for a signal (MODE=wait).
KILLED_DURING_SAVE = r"""
import io, json, os, signal, sys, time
import torch
import hsvcolorizer.training.checkpoint as training

KILL_AT = int(os.environ["KILL_AT_SAVE"])
MODE = os.environ.get("MODE", "kill")
real_save = torch.save
saves = 0

def save_then_die(obj, f, *args, **kwargs):
    global saves
    saves += 1
    if saves < KILL_AT:
        return real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    print(json.dumps({"event": "dying", "written": len(data) // 2, "of": len(data)}), flush=True)
    if MODE == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)

training.torch.save = save_then_die
from hsvcolorizer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, photos):
    """A run SIGKILLed while writing its second checkpoint (the first was at step 3)."""
    out = tmp_path_factory.mktemp("killed") / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DURING_SAVE, "train", "--data", str(photos), "--out", str(out),
         "--events", "jsonl", *TINY_ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env({"KILL_AT_SAVE": "2"}))
    return out, proc


def test_sigkill_during_checkpoint_write_keeps_the_previous_one(killed_run, reference_run):
    out, proc = killed_run
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [3]
    assert events[-1]["event"] == "dying"
    # It really died mid-write: half a checkpoint sits in the temporary file.
    partial = list(out.glob(".checkpoint.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size == events[-1]["written"]
    # ... and the previous checkpoint is whole and safe to load.
    ck = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ck["state"]["global_step"] == 3 and ck["state"]["stage"] == 1
    assert all_finite(ck["model"])
    assert no_weights(out)


def test_resume_after_sigkill_repeats_the_same_losses(killed_run, reference_run, photos):
    out, proc = killed_run
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    train(config(photos, out, resume=True))
    ref, resumed = history(reference_run), history(out)
    assert sorted(ref) == sorted(resumed) == list(range(1, 16))
    after_kill = [step for step in ref if step > 3]
    for step in after_kill:
        assert resumed[step] == pytest.approx(ref[step], abs=LOSS_TOLERANCE), f"step {step}"
    # The same weights in the end, too.
    ref_model, _ = load_weights(reference_run / FINAL_WEIGHTS)
    res_model, _ = load_weights(out / FINAL_WEIGHTS)
    for (name, a), b in zip(ref_model.state_dict().items(), res_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    # The dead run's half-written temporary file was cleaned up on resume.
    assert list(out.glob(".*.tmp")) == []


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_during_checkpoint_write_leaves_no_temp_file_and_no_workers(tmp_path, photos):
    """SIGTERM is what the desktop application's Stop (and closing it) sends:
    the run unwinds, removes the half-written temporary file, stops its
    data-loading workers and says so in one line."""
    out = tmp_path / "run"
    args = [a for a in TINY_ARGS]
    args[args.index("--workers") + 1] = "1"  # one data-loading worker process
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DURING_SAVE, "train", "--data", str(photos), "--out", str(out),
         "--events", "jsonl", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=cli_env({"KILL_AT_SAVE": "3", "MODE": "wait"}))  # save 3: mid-epoch, workers running
    try:
        for line in proc.stdout:
            if '"dying"' in line:
                break
        workers = child_pids(proc.pid)
        assert list(out.glob(".checkpoint.*.tmp")), "it is in the middle of writing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert_one_line_error_or_interrupted(stderr)
    assert list(out.glob(".*.tmp")) == [], "the half-written checkpoint was removed"
    ck = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ck["state"]["global_step"] == 6  # saves: step 3, step 6, [step 9] (epoch 1's end, step 5, is too soon)
    assert workers, "the run had a data-loading worker"
    assert not [pid for pid in workers if alive(pid)], "no orphaned worker process"


def assert_one_line_error_or_interrupted(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and lines == ["hsvcolorizer: interrupted"], stderr


# ---------------------------------------------------------------------------
# A damaged checkpoint
# ---------------------------------------------------------------------------


def _garbage(ref: Path) -> bytes:
    return b"PK\x03\x04" + os.urandom(200)


def _truncated(ref: Path) -> bytes:
    data = (ref / CHECKPOINT).read_bytes()
    return data[: len(data) // 2]


def _missing_keys(ref: Path) -> bytes:
    path = ref.parent / "other.pt"
    torch.save({"model": {}, "note": "not a checkpoint of ours"}, path)
    return path.read_bytes()


def _wrong_shapes(ref: Path) -> bytes:
    ck = torch.load(ref / CHECKPOINT, map_location="cpu", weights_only=True)
    name = next(iter(ck["model"]))
    ck["model"][name] = torch.zeros(1)
    path = ref.parent / "shapes.pt"
    torch.save(ck, path)
    return path.read_bytes()


def _other_options(ref: Path) -> bytes:
    ck = torch.load(ref / CHECKPOINT, map_location="cpu", weights_only=True)
    ck["config"]["input_channel"] = "v"
    path = ref.parent / "options.pt"
    torch.save(ck, path)
    return path.read_bytes()


DAMAGED = {
    "garbage": (_garbage, "is damaged"),
    "truncated": (_truncated, "is damaged"),
    "missing_keys": (_missing_keys, "is damaged"),
    "wrong_shapes": (_wrong_shapes, "is damaged"),
    "other_model_options": (_other_options, "input_channel 'v' there, 'luma' now"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_checkpoint_is_detected_and_left_alone(kind, tmp_path, reference_run, photos):
    make, needle = DAMAGED[kind]
    out = tmp_path / "run"
    out.mkdir()
    data = make(reference_run)
    (out / CHECKPOINT).write_bytes(data)
    with pytest.raises(ColorizerError) as info:
        train(config(photos, out, resume=True))
    message = str(info.value)
    assert "\n" not in message and needle in message and ("checkpoint" in message)
    assert (out / CHECKPOINT).read_bytes() == data, "the damaged file is kept for the user to look at"
    assert no_weights(out)


def test_resume_with_another_architecture_names_the_options_not_damage(tmp_path, reference_run, photos):
    """A good checkpoint resumed with another recipe is not "damaged": the
    message names each option that differs, with both values."""
    out = tmp_path / "run"
    out.mkdir()
    data = (reference_run / CHECKPOINT).read_bytes()
    (out / CHECKPOINT).write_bytes(data)
    with pytest.raises(ColorizerError) as info:
        train(config(photos, out, resume=True, rcn="plain", width_scale=0.25))
    message = str(info.value)
    assert "damaged" not in message
    assert "rcn 'pyramid' there, 'plain' now" in message and "width_scale 0.125 there, 0.25 now" in message
    assert (out / CHECKPOINT).read_bytes() == data


def test_damaged_checkpoint_on_the_command_line(tmp_path, photos, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 not really a checkpoint")
    code = main(["train", "--data", str(photos), "--out", str(out), "--resume", "--events", "jsonl", *TINY_ARGS])
    captured = capsys.readouterr()
    assert code == 2
    assert_one_line_error(captured.err, "checkpoint", "is damaged", "delete it to start over")
    # The desktop application reads the reason from the JSON events.
    errors = [json.loads(line) for line in captured.out.splitlines() if '"error"' in line]
    assert len(errors) == 1 and "is damaged" in errors[0]["message"]


# ---------------------------------------------------------------------------
# Data folders with nothing to learn from
# ---------------------------------------------------------------------------


def _empty(folder: Path) -> None:
    pass


def _all_gray(folder: Path) -> None:
    for i in range(4):
        gray = colour_image(24, 24, seed=i).mean(2).astype(np.uint8)
        write_image(folder / f"g{i}.png", np.dstack([gray] * 3) if i % 2 else gray)
        write_image(folder / f"g{i}.jpg", gray)  # JPEG noise must not count as colour


def _all_unreadable(folder: Path) -> None:
    make_zero_byte(folder / "empty.jpg")
    make_text_as_jpg(folder / "notes.jpg")
    make_truncated_png(folder / "cut.png")


def _not_images(folder: Path) -> None:
    (folder / "readme.txt").write_text("no photos here")
    (folder / "sub").mkdir()


NOTHING_TO_LEARN = {
    "empty": (_empty, "0 files"),
    "all_grayscale": (_all_gray, "8 grayscale"),
    "all_unreadable": (_all_unreadable, "3 unreadable"),
    "no_image_files": (_not_images, "0 files"),
}


@pytest.mark.parametrize("kind", sorted(NOTHING_TO_LEARN))
def test_nothing_to_learn_is_a_clear_error(kind, tmp_path, capsys):
    make, needle = NOTHING_TO_LEARN[kind]
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    with pytest.raises(ColorizerError) as info:
        train(config(data, tmp_path / "api"))
    message = str(info.value)
    assert "\n" not in message and "no colour photos to train on" in message and needle in message
    assert no_weights(tmp_path / "api")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "cli"), *TINY_ARGS])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "no colour photos to train on", needle)


def test_missing_data_folder(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), *TINY_ARGS])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "nowhere", "does not exist")


def test_photos_above_the_pixel_limit_are_left_out_not_fatal(tmp_path, photos, monkeypatch):
    """The grayscale filter opens photos itself: it must respect the pixel limit
    (a decompression bomb is never decoded) and count them as unreadable."""
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(photos.iterdir())[:6]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "big.png").write_bytes(valid_png_bytes(100, 100))
    monkeypatch.setenv("HSVCOLORIZER_MAX_PIXELS", "5000")  # the photos are at most 48x45
    path = train(config(data, tmp_path / "run", epochs_stage1=1, epochs_stage2=1, val=str(photos)))
    _, meta = load_weights(path)
    assert meta["training"]["unreadable"] == 1 and meta["training"]["images_used"] == 6


# ---------------------------------------------------------------------------
# NaN: stop with a message, never write NaN weights
# ---------------------------------------------------------------------------


def assert_nothing_non_finite_written(run: Path) -> None:
    assert no_weights(run)
    if (run / CHECKPOINT).exists():
        ck = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
        assert all_finite(ck["model"]), "a checkpoint with NaN weights was written"


def test_nan_loss_stops_with_a_message(tmp_path, photos, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(photos), "--out", str(out), "--events", "jsonl", *TINY_ARGS, "--lr", "1e30"])
    captured = capsys.readouterr()
    assert code == 2
    assert_one_line_error(captured.err, "training diverged", "NaN", "--lr")
    assert any(json.loads(line).get("event") == "error" for line in captured.out.splitlines() if line.startswith("{"))
    assert_nothing_non_finite_written(out)


def test_nan_weights_with_a_finite_loss_are_never_saved(tmp_path, photos, monkeypatch):
    """An update can turn the weights NaN after its loss was computed (finite):
    the checkpoint due right after that step must not save them."""
    real_step = torch.optim.Adam.step
    steps = []

    def poisoning_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 3:  # the step right before the checkpoint at global step 3
            with torch.no_grad():
                next(p for group in self.param_groups for p in group["params"]).fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", poisoning_step)
    out = tmp_path / "run"
    with pytest.raises(ColorizerError) as info:
        train(config(photos, out))
    message = str(info.value)
    assert "\n" not in message and "training diverged" in message and "NaN or infinite" in message
    assert len(steps) == 3, "stopped at the checkpoint, not later"
    assert_nothing_non_finite_written(out)


def test_nan_weights_at_the_end_of_a_stage_are_never_saved(tmp_path, photos, monkeypatch):
    """The last update of stage 1 poisons the weights: stage1.safetensors must not be written."""
    real_step = torch.optim.Adam.step
    steps = []

    def poisoning_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 2:  # budget of 2 steps: this is stage 1's last update
            with torch.no_grad():
                next(p for group in self.param_groups for p in group["params"]).fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", poisoning_step)
    out = tmp_path / "run"
    with pytest.raises(ColorizerError, match="NaN or infinite"):
        train(config(photos, out, stage="1", steps_stage1=2, checkpoint_every=100))
    assert_nothing_non_finite_written(out)
    assert not list((out / "previews").glob("*.png")), "no preview rendered from NaN weights"
