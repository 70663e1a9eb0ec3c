"""Training: the loss goes down, gray photos are excluded, kill -9 and resume, NaN guard."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsvcolorizer.data import filter_grayscale, find_images, prepare_cache, split_train_val
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.training import TrainConfig, train
from hsvcolorizer.weights import read_metadata

TINY_ARGS = ["--size", "32", "--batch-size", "2", "--width-scale", "0.125", "--workers", "0", "--device", "cpu",
             "--log-every", "1"]


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_grayscale_photos_are_found_and_excluded(photo_folder):
    kept = filter_grayscale(find_images(photo_folder))
    assert len(kept.files) == 12 and [p.name for p in kept.excluded_gray] == ["gray.png"]


def test_split_is_deterministic(photo_folder):
    files = find_images(photo_folder)
    a = split_train_val(files, photo_folder, 0.3)
    b = split_train_val(list(reversed(files)), photo_folder, 0.3)
    assert sorted(a[1]) == sorted(b[1]) and set(a[0]).isdisjoint(a[1])


def test_places365_layout_is_read(tmp_path):
    from hsvcolorizer.imageio import write_image
    from tests.conftest import colour_image

    (tmp_path / "data_256/a/abbey").mkdir(parents=True)
    write_image(tmp_path / "data_256/a/abbey/00000001.jpg", colour_image(32, 32))
    (tmp_path / "places365_train_standard.txt").write_text("/a/abbey/00000001.jpg 0\n")
    assert find_images(tmp_path) == [tmp_path / "data_256/a/abbey/00000001.jpg"]


def test_tiny_training_lowers_the_loss(photo_folder, tmp_path):
    cfg = TrainConfig(data=str(photo_folder), out=str(tmp_path / "run"), epochs_stage1=6, epochs_stage2=2,
                      batch_size=4, size=32, width_scale=0.25, workers=0, device="cpu", log_every=1, lr=1e-3,
                      val=str(photo_folder))
    path = train(cfg)
    meta = read_metadata(path)
    assert meta["training"]["images_used"] == 12 and meta["training"]["excluded_gray"] == 1
    import torch

    ck = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    hist = [h for h in ck["state"]["history"] if h["stage"] == 1]
    first, last = np.mean([h["loss"] for h in hist[:3]]), np.mean([h["loss"] for h in hist[-3:]])
    assert last < first * 0.9
    assert (tmp_path / "run/previews/stage2_epoch002.png").is_file()
    assert (tmp_path / "run/stage1.safetensors").is_file()


@pytest.mark.parametrize("native, amp, expected", [(True, None, "bf16"), (False, None, "fp32"), (True, False, "fp32")])
def test_training_runs_in_bf16_where_the_hardware_has_it(photo_folder, tmp_path, monkeypatch, native, amp, expected):
    import torch

    import hsvcolorizer.training.loop as loop

    monkeypatch.setattr(loop, "native_bf16", lambda device: native)
    seen = []
    real = torch.autocast

    def spy(device_type, *args, enabled=True, **kwargs):
        seen.append(enabled)
        return real(device_type, *args, enabled=enabled, **kwargs)

    monkeypatch.setattr(loop.torch, "autocast", spy)
    cfg = TrainConfig(data=str(photo_folder), out=str(tmp_path / "run"), epochs_stage1=1, epochs_stage2=1,
                      batch_size=4, size=32, width_scale=0.125, workers=0, device="cpu", log_every=1, amp=amp)
    meta = read_metadata(train(cfg))
    assert meta["training"]["precision"] == expected
    assert seen and set(seen) == {expected == "bf16"}  # every step and validation ran that way


def test_a_run_resumed_in_another_precision_says_both(photo_folder, tmp_path):
    common = dict(data=str(photo_folder), out=str(tmp_path / "run"), stage="1", batch_size=4, size=32,
                  width_scale=0.125, workers=0, device="cpu", log_every=1)
    first = read_metadata(train(TrainConfig(epochs_stage1=1, amp=False, **common)))
    assert first["training"]["precision"] == "fp32"
    again = read_metadata(train(TrainConfig(epochs_stage1=2, amp=True, resume=True, **common)))
    assert again["training"]["epochs_stage1"] == 2 and again["training"]["precision"] == "fp32+bf16"


def test_events_and_kill_and_resume_repeat_the_same_losses(photo_folder, tmp_path):
    common = ["train", "--data", photo_folder, "--epochs-stage1", "2", "--epochs-stage2", "1",
              "--checkpoint-every", "3", "--events", "jsonl", *TINY_ARGS]
    ref = run_cli(*common, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    ref_ev = events(ref.stdout)
    kinds = {e["event"] for e in ref_ev}
    assert {"start", "step", "epoch", "checkpoint", "done"} <= kinds
    step = next(e for e in ref_ev if e["event"] == "step")
    for key in ("stage", "epoch", "step", "loss_s", "loss_h", "loss", "lr", "images_per_s", "eta_s"):
        assert key in step
    ref_loss = {e["global_step"]: e["loss"] for e in ref_ev if e["event"] == "step"}

    # Kill -9 right after the second checkpoint, then resume.
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "hsvcolorizer.cli", *map(str, common), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = 0
    for line in proc.stdout:
        if '"checkpoint"' in line:
            seen += 1
            if seen == 2:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert not (out / "model.safetensors").exists()
    resumed = run_cli(*common, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    res_ev = events(resumed.stdout)
    assert any("resuming" in e.get("message", "") for e in res_ev)
    res_loss = {e["global_step"]: e["loss"] for e in res_ev if e["event"] == "step"}
    assert res_loss and min(res_loss) > 1, "resume continued instead of starting over"
    for g, loss in res_loss.items():
        assert loss == pytest.approx(ref_loss[g], abs=1e-4), f"step {g}"
    assert (out / "model.safetensors").is_file()


def test_corrupt_checkpoint_is_detected(photo_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    r = run_cli("train", "--data", photo_folder, "--out", out, "--resume", *TINY_ARGS)
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr


def test_all_grayscale_folder_is_a_clear_error(tmp_path):
    from hsvcolorizer.imageio import write_image

    d = tmp_path / "gray"
    d.mkdir()
    for i in range(3):
        write_image(d / f"{i}.png", np.full((20, 20), 100 + i, np.uint8))
    r = run_cli("train", "--data", d, "--out", tmp_path / "run", *TINY_ARGS)
    assert r.returncode == 2 and "no colour photos" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("train", "--data", empty, "--out", tmp_path / "run2", *TINY_ARGS)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_nan_loss_stops_without_writing_weights(photo_folder, tmp_path):
    r = run_cli("train", "--data", photo_folder, "--out", tmp_path / "run", "--lr", "1e30",
                "--epochs-stage1", "3", "--epochs-stage2", "1", *TINY_ARGS)
    assert r.returncode == 2 and "diverged" in r.stderr
    assert not (tmp_path / "run/model.safetensors").exists()


def test_prepare_cache_and_train_from_it(photo_folder, tmp_path):
    meta = prepare_cache(photo_folder, tmp_path / "cache", size=36)
    assert meta["count"] == 12 and meta["excluded_gray"] == 1
    arr = np.load(tmp_path / "cache/images.npy", mmap_mode="r")
    assert arr.shape == (12, 48, 48, 3) and arr.dtype == np.uint8
    cfg = TrainConfig(data=str(tmp_path / "cache"), out=str(tmp_path / "run"), epochs_stage1=1, epochs_stage2=1,
                      batch_size=4, size=32, width_scale=0.125, device="cpu", val=str(photo_folder))
    assert train(cfg).is_file()


def test_stage_two_alone_needs_stage_one_weights(photo_folder, tmp_path):
    cfg = TrainConfig(data=str(photo_folder), out=str(tmp_path / "run"), stage="2", size=32, width_scale=0.125,
                      device="cpu")
    with pytest.raises(ColorizerError, match="stage-1 weights"):
        train(cfg)


def test_sigterm_checkpoints_the_current_step_so_resume_loses_nothing(photo_folder, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--data", photo_folder, "--epochs-stage1", "3", "--epochs-stage2", "1",
              "--checkpoint-every", "1000", "--events", "jsonl", *TINY_ARGS, "--out", out]
    proc = subprocess.Popen([sys.executable, "-m", "hsvcolorizer.cli", *map(str, common)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[1])
    last_step = None
    for line in proc.stdout:
        if '"step"' in line:
            last_step = json.loads(line)["global_step"]
            if last_step >= 3:
                proc.send_signal(signal.SIGTERM)
                break
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130
    stopped = [e for e in events(rest) if e["event"] == "stopped"]
    assert stopped, "a 'stopped' event says where it stopped"
    import torch

    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["state"]["global_step"] == stopped[0]["global_step"] >= last_step
    resumed = run_cli(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    first = next(e for e in events(resumed.stdout) if e["event"] == "step")
    assert first["global_step"] == stopped[0]["global_step"] + 1
