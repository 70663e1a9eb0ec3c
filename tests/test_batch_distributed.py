"""`hsvcolorizer batch` under torchrun (issue 11, point 4): two CPU processes
with gloo split the photos, write each once, and rank 0 prints one report
that includes the other process's failure."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hsvcolorizer.imageio import read_image, write_image
from tests.conftest import colour_image

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


@pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun not installed")
def test_two_process_batch_splits_the_photos_and_reports_once(tmp_path, tiny_weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    # Planned outputs, in order: a_color.png (a.jpg and a.png: kept together,
    # process 0), b_color.png (process 1: b.png is broken), c_color.png (0),
    # d_color.png (1), e_color.png (0).
    for i, name in enumerate(["a.jpg", "a.png", "c.png", "d.png", "e.png"]):
        write_image(src / name, colour_image(24 + 2 * i, 32, seed=i))
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "hsvcolorizer.cli", "batch", str(src), str(out),
         "--weights", str(tiny_weights), "--device", "cpu", "--precision", "fp32"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode != 0, "a failed photo fails the run, as with one process"
    # torchrun itself prints a traceback (ChildFailedError) for any non-zero
    # exit; none may come from our processes.
    assert "hsvcolorizer/" not in r.stderr and "hsvcolorizer\\" not in r.stderr, r.stderr[-3000:]
    summaries = [line for line in r.stdout.splitlines() if "done," in line]
    assert summaries == ["5 done, 0 skipped, 1 failed (2 processes, networks in fp32)"], r.stdout + r.stderr[-2000:]
    failed = [line for line in r.stdout.splitlines() if line.startswith("  failed  ")]
    assert len(failed) == 1 and failed[0].startswith(f"  failed  {src / 'b.png'}: cannot read")
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a_color (1).png", "a_color.png", "c_color.png", "d_color.png", "e_color.png"]
    for name in written:
        assert read_image(out / name).pixels.ndim == 3

    # Again, with every output there: each process skips its own, none is written twice.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "hsvcolorizer.cli", "batch", str(src), str(out),
         "--weights", str(tiny_weights), "--device", "cpu", "--precision", "fp32"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[1])
    assert [line for line in r.stdout.splitlines() if "done," in line] == \
        ["0 done, 5 skipped, 1 failed (2 processes, networks in fp32)"], r.stdout + r.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
