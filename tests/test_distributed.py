"""Training under torchrun: two processes with gloo on the CPU."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_gloo_training(photo_folder, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hsvcolorizer.cli", "train", "--data",
         str(photo_folder), "--out", str(out), "--epochs-stage1", "1", "--epochs-stage2", "1", "--size", "32",
         "--batch-size", "2", "--width-scale", "0.125", "--workers", "0", "--device", "cpu", "--events", "jsonl",
         "--log-every", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    ev = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    start = next(e for e in ev if e["event"] == "start")
    assert start["world_size"] == 2
    # 11 training photos after the split, 2 ranks x batch 2 -> 2 steps per epoch
    assert start["steps_per_epoch"] == start["images_used"] // 2 // 2
    assert (out / "model.safetensors").is_file()
    assert len([e for e in ev if e["event"] == "done"]) == 1, "only rank 0 reports"
