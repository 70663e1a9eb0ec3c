"""Run control with realistic settings: periodic checkpoints on their own
cadence, time budgets that survive a resume, validation that is there or
says why not, and two torchrun processes that agree when a budget ends."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hsvcolorizer.data import prepare_cache, split_train_val
from hsvcolorizer.imageio import write_image
from hsvcolorizer.training import CHECKPOINT

from tests.conftest import colour_image

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "32", "--width-scale", "0.125", "--workers", "0", "--device", "cpu", "--events", "jsonl"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_train(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", "train", *map(str, args), *TINY],
                       capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    return r, [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def folder_of(tmp_path, n, name="photos"):
    folder = tmp_path / name
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"p{i:02d}.png", colour_image(40, 48, seed=i))
    return folder


def test_step_checkpoints_follow_their_own_cadence_not_the_log_lines(tmp_path):
    # 26 photos, batch 2: 13 steps an epoch. Logging every 7 steps used to
    # hide the checkpoints due at steps 5, 10 and 15.
    cache = tmp_path / "cache"
    prepare_cache(folder_of(tmp_path, 26), cache, size=36)
    r, ev = run_train("--data", cache, "--out", tmp_path / "run", "--stage", "1", "--batch-size", "2",
                      "--steps-stage1", "20", "--epochs-stage1", "5", "--log-every", "7", "--checkpoint-every", "5")
    assert r.returncode == 0, r.stderr[-2000:]
    steps = {e["step"] for e in ev if e["event"] == "checkpoint"}
    # The end of epoch 1 (step 13) is 3 steps past the last checkpoint: no
    # checkpoint of its own there (EPOCH_CHECKPOINT_SECONDS); the stage's end does.
    assert steps == {5, 10, 15, 20}, steps


def test_time_budget_counts_the_time_spent_before_a_resume(tmp_path):
    folder = folder_of(tmp_path, 12)
    out = tmp_path / "run"
    common = ["train", "--data", folder, "--out", out, "--batch-size", "2", "--epochs-stage1", "50",
              "--epochs-stage2", "1", "--minutes-stage1", "10", "--log-every", "1", *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "hsvcolorizer.cli", *map(str, common)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT)
    for line in proc.stdout:
        if '"event": "step"' in line and json.loads(line)["global_step"] >= 3:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=120)
    ck = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    spent = ck["state"]["stage_seconds"]
    assert spent > 0, "the checkpoint records the stage's time so far"
    stopped_at = ck["state"]["stage_step"]
    # As if the first process had used up the whole 10 minutes: a resume
    # must end stage 1 after one step, not start another 10 minutes.
    ck["state"]["stage_seconds"] = 10 * 60 + 1
    torch.save(ck, out / CHECKPOINT)
    r = subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", *map(str, common), "--resume"],
                       capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    ev = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    stage1 = [e for e in ev if e["event"] == "step" and e["stage"] == 1]
    assert len(stage1) == 1 and stage1[0]["global_step"] == stopped_at + 1


def test_a_small_folder_still_holds_one_photo_out(tmp_path):
    for n, held in ((3, 0), (4, 1), (6, 1)):
        files = [tmp_path / f"x{i}.png" for i in range(n)]
        train, val = split_train_val(files, tmp_path)
        assert len(val) == held and sorted(train + val) == sorted(files)
    # The choice is stable: the same file whatever the order given.
    files = [tmp_path / f"x{i}.png" for i in range(6)]
    assert split_train_val(files, tmp_path)[1] == split_train_val(files[::-1], tmp_path)[1]


def test_six_photos_train_with_validation_and_three_say_why_not(tmp_path):
    r, ev = run_train("--data", folder_of(tmp_path, 6, "six"), "--out", tmp_path / "run6", "--batch-size", "2",
                      "--epochs-stage1", "1", "--epochs-stage2", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert epochs and all("val_psnr" in e and e["preview"] for e in epochs)
    r, ev = run_train("--data", folder_of(tmp_path, 3, "three"), "--out", tmp_path / "run3", "--batch-size", "2",
                      "--epochs-stage1", "1", "--epochs-stage2", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    logs = " ".join(e["message"] for e in ev if e["event"] == "log")
    assert "no validation" in logs and "--val" in logs


def test_a_prepared_cache_validates_a_folder_run(tmp_path):
    val = tmp_path / "valcache"
    prepare_cache(folder_of(tmp_path, 4, "valphotos"), val, size=36)
    r, ev = run_train("--data", folder_of(tmp_path, 8), "--val", val, "--out", tmp_path / "run", "--batch-size", "2",
                      "--epochs-stage1", "1", "--epochs-stage2", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert epochs and all("val_psnr" in e for e in epochs)


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_processes_end_a_time_budget_at_the_same_step(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hsvcolorizer.cli", "train", "--data",
         str(folder_of(tmp_path, 16)), "--out", str(out), "--epochs-stage1", "1000", "--epochs-stage2", "1",
         "--minutes-stage1", "0.05", "--batch-size", "2", "--log-every", "3", *TINY],
        capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    ev = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert (out / "model.safetensors").is_file()
    done = [e for e in ev if e["event"] == "log" and "stage 1 finished" in e["message"]]
    assert len(done) == 1


def test_the_run_counts_in_words_a_person_reads(tmp_path):
    # One photo, one step: "1 colour photo", "1 step", not "1 colour photos", "1 steps".
    folder = folder_of(tmp_path, 1)
    r, ev = run_train("--data", folder, "--out", tmp_path / "run", "--batch-size", "1", "--epochs-stage1", "1",
                      "--epochs-stage2", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    logs = [e["message"] for e in ev if e["event"] == "log"]
    assert any("training on 1 colour photo;" in m for m in logs), logs
    assert any("1 epoch of 1 step " in m and "1 step in all" in m for m in logs), logs
    assert any(m.startswith("stage 1 finished after 1 step") and not m.endswith("steps") for m in logs), logs
