"""Faults on one photo cost that photo, not the run: a torch RuntimeError (out
of GPU memory) in ``batch``, an unreadable file in ``evaluate``, a stage map
that cannot be written in ``colorize --save-stages``; and ``bench`` runs
where the ``resource`` module does not exist (Windows).

Through ``hsvcolorizer.cli.main`` in-process (so the colorizer and the writer
can be replaced) and through the Python API.  See docs/robustness.md.
"""

from __future__ import annotations

import errno
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hsvcolorizer import batch, evaluation, imageio
from hsvcolorizer.cli import main
from hsvcolorizer.imageio import iter_image_files, read_image, write_image
from hsvcolorizer.inference import Colorizer
from tests.conftest import colour_image

# (height, width) of each photo: distinct, so a replaced colorizer can pick
# out one photo by its size whatever path it was read from.
SIZES = {"a.png": (24, 32), "b.jpg": (28, 36), "c.png": (20, 30)}
BAD = "b.jpg"

CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; 5.12 GiB already "
            "allocated; 1.10 GiB free; 5.50 GiB reserved in total by PyTorch)\nIf reserved memory is >> allocated "
            "memory try setting max_split_size_mb to avoid fragmentation.")
OTHER = ("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED\n"
         "Exception raised from run_conv_plan at ../aten/src/ATen/native/cudnn/Conv_v8.cpp:374\n"
         "frame #0: c10::Error::Error(...) + 0x3d")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (name, size) in enumerate(SIZES.items()):
        write_image(folder / name, colour_image(*size, seed=i))
    return folder


def run(capsys, *args) -> tuple[int, str, list[str]]:
    """hsvcolorizer ARGS in-process: (exit code, stdout, our lines and any traceback on stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("hsvcolorizer:") or "Traceback" in line]
    return code, captured.out, errors


def fail_on_bad_photo(monkeypatch, error: BaseException) -> None:
    """Colorizer.colorize raises ``error`` for the photo of size SIZES[BAD] only,
    as torch does when one large photo does not fit in GPU memory."""
    real = Colorizer.colorize

    def colorize(self, image, working_size=None):
        # batch hands over the photo as Colorizer.prepare made it ready
        pixels = image.gray if hasattr(image, "gray") else image.pixels if hasattr(image, "pixels") else np.asarray(image)
        if pixels.shape[:2] == SIZES[BAD]:
            raise error
        return real(self, image, working_size=working_size)

    monkeypatch.setattr(Colorizer, "colorize", colorize)


# ---------------------------------------------------------------------------
# 1. batch: a RuntimeError from torch on one photo
# ---------------------------------------------------------------------------


def test_runtime_error_reason_is_one_line():
    assert batch.runtime_error_reason(torch.cuda.OutOfMemoryError(CUDA_OOM)) == \
        "out of memory on the device; try a smaller working size"
    assert batch.runtime_error_reason(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)")).startswith("out of memory")
    assert batch.runtime_error_reason(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:83] . DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"
    )).startswith("out of memory")
    assert batch.runtime_error_reason(RuntimeError(OTHER)) == "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"
    assert batch.runtime_error_reason(RuntimeError("\n  \n")) == "RuntimeError"


@pytest.mark.parametrize("error, reason", [
    (torch.cuda.OutOfMemoryError(CUDA_OOM), "out of memory on the device; try a smaller working size"),
    (RuntimeError(OTHER), "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"),
], ids=["out_of_memory", "other"])
def test_batch_runtime_error_on_one_photo_is_its_failure(error, reason, photos, tmp_path, tiny_weights, capsys,
                                                          monkeypatch):
    fail_on_bad_photo(monkeypatch, error)
    out = tmp_path / "out"
    code, stdout, errors = run(capsys, "batch", photos, out, "--weights", tiny_weights, "--format", "same")
    assert code == 1, "exit status of a batch with failed photos"
    assert errors == [], "no traceback, no whole-batch error"
    assert "2 done, 0 skipped, 1 failed" in stdout
    failed = [line for line in stdout.splitlines() if line.startswith("  failed  ")]
    assert failed == [f"  failed  {photos / BAD}: {BAD}: {reason}"]
    assert sorted(p.name for p in out.iterdir()) == ["a_color.png", "c_color.png"], "the others are done, nothing for b"


def test_batch_runtime_error_through_the_api(photos, tmp_path, tiny_weights, monkeypatch):
    """The model's forward pass itself fails (what the application's batch tab runs)."""
    colorizer = Colorizer.load(tiny_weights, "cpu")
    real_forward = type(colorizer.model).forward
    bad_shape = SIZES[BAD]

    # Photos are padded to a multiple of 4 at least; only b (28x36 -> 28x36)
    # reaches 28 rows and more, a (24) and c (20 -> 20) do not.
    def forward_failing_on_b(self, x):
        if x.shape[-2] >= bad_shape[0]:
            raise torch.cuda.OutOfMemoryError(CUDA_OOM)
        return real_forward(self, x)

    monkeypatch.setattr(type(colorizer.model), "forward", forward_failing_on_b)
    report = batch.run_batch(colorizer, photos, tmp_path / "out")
    status = {o.source.name: (o.status, o.reason) for o in report.outcomes}
    assert status == {"a.png": ("done", ""), "c.png": ("done", ""),
                      BAD: ("failed", f"{BAD}: out of memory on the device; try a smaller working size")}
    assert report.summary() == "2 done, 0 skipped, 1 failed"


# ---------------------------------------------------------------------------
# 2. evaluate: an unreadable photo is skipped and reported
# ---------------------------------------------------------------------------


@pytest.fixture
def val_folder(photos) -> Path:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (photos / "empty.jpg").write_bytes(b"")
    return photos


def test_evaluate_skips_unreadable_photos_and_lists_them(val_folder):
    files = iter_image_files(val_folder, recursive=True)
    report = evaluation.evaluate(None, files, progress=False)
    readable = [f for f in files if f.name in SIZES]
    alone = evaluation.evaluate(None, readable, progress=False)
    assert report["count"] == 3
    assert report["gray_baseline"] == alone["gray_baseline"], "the figures are those of the readable photos"
    skipped = {Path(item["path"]).name: item["reason"] for item in report["skipped_unreadable"]}
    assert set(skipped) == {"broken.png", "empty.jpg"}
    assert skipped["empty.jpg"] == f"cannot read {val_folder / 'empty.jpg'}: the file is empty"
    assert all("\n" not in reason for reason in skipped.values())
    assert alone["skipped_unreadable"] == []


def test_evaluate_on_the_command_line_reports_unreadable_photos(val_folder, tiny_weights, capsys):
    code, stdout, errors = run(capsys, "evaluate", "--data", val_folder, "--weights", tiny_weights)
    assert code == 0 and errors == []
    assert "3 colour photos scored, 0 gray photos skipped, 2 unreadable files skipped" in stdout
    lines = [line for line in stdout.splitlines() if line.startswith("  unreadable ")]
    assert len(lines) == 2
    assert lines[0].startswith(f"  unreadable {val_folder / 'broken.png'}: cannot read {val_folder / 'broken.png'}: ")
    assert lines[1] == f"  unreadable {val_folder / 'empty.jpg'}: cannot read {val_folder / 'empty.jpg'}: the file is empty"

    code, stdout, errors = run(capsys, "evaluate", "--data", val_folder, "--weights", tiny_weights, "--json")
    assert code == 0 and errors == []
    report = json.loads(stdout)
    assert report["count"] == 3
    assert sorted(Path(item["path"]).name for item in report["skipped_unreadable"]) == ["broken.png", "empty.jpg"]


def test_evaluate_with_no_readable_photo_is_one_line(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "empty.jpg").write_bytes(b"")
    code, stdout, errors = run(capsys, "evaluate", "--data", folder, "--weights", tiny_weights)
    assert code == 2 and stdout == ""
    assert len(errors) == 1 and errors[0].startswith("hsvcolorizer: error: none of the 2 files could be read"), errors
    assert "cannot read" in errors[0]


# ---------------------------------------------------------------------------
# 3. colorize --save-stages: a stage map that cannot be written
# ---------------------------------------------------------------------------


def _gray_photos(folder: Path) -> list[Path]:
    paths = []
    for i, (name, size) in enumerate(SIZES.items()):
        path = folder / name.replace(".jpg", ".png")
        write_image(path, colour_image(*size, seed=i).mean(2).astype(np.uint8))
        paths.append(path)
    return paths


STAGE_SUFFIXES = ("_stage1.png", "_stage1_hue.png", "_stage1_saturation.png", "_stage2_hue.png",
                  "_stage2_saturation.png")


def _check_others_done(out: Path, stdout: str) -> None:
    for name in ("a", "c"):
        assert read_image(out / f"{name}_color.png").pixels.ndim == 3
        for suffix in STAGE_SUFFIXES:
            assert (out / f"{name}_color{suffix}").is_file(), f"{name}_color{suffix}"
    assert (out / "b_color.png").is_file(), "b's result itself was written before its stages failed"
    assert "2 colorized, 1 failed" in stdout
    assert not list(out.glob(".*.tmp"))


def test_colorize_save_stages_a_folder_in_the_way_fails_that_photo_only(tmp_path, tiny_weights, capsys):
    (tmp_path / "in").mkdir()
    a, b, c = _gray_photos(tmp_path / "in")
    out = tmp_path / "out"
    (out / "b_color_stage1.png").mkdir(parents=True)  # a folder where b's stage-1 render goes
    code, stdout, errors = run(capsys, "colorize", a, b, c, "-o", out, "--save-stages", "--weights", tiny_weights)
    assert code == 1, "as colorize ends for other per-photo failures (some written: 1)"
    _check_others_done(out, stdout)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"hsvcolorizer: error: {b} was colorized ({out / 'b_color.png'}) but its stages "
                                f"were not saved: cannot write {out / 'b_color_stage1.png'}: ")


def test_colorize_save_stages_oserror_on_write_fails_that_photo_only(tmp_path, tiny_weights, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    a, b, c = _gray_photos(tmp_path / "in")
    out = tmp_path / "out"
    real_write = imageio.write_image

    def write_image_failing_for_b_hue(path, *args, **kwargs):
        if Path(path).name == "b_color_stage2_hue.png":
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "write_image", write_image_failing_for_b_hue)
    code, stdout, errors = run(capsys, "colorize", a, b, c, "-o", out, "--save-stages", "--weights", tiny_weights)
    assert code == 1
    _check_others_done(out, stdout)
    assert errors == [f"hsvcolorizer: error: {b} was colorized ({out / 'b_color.png'}) but its stages were not "
                      f"saved: {out / 'b_color_stage2_hue.png'}: Input/output error"]


# ---------------------------------------------------------------------------
# 4. bench without the `resource` module (Windows)
# ---------------------------------------------------------------------------


def test_bench_measures_memory_without_the_resource_module(tiny_weights, monkeypatch):
    import hsvcolorizer
    import hsvcolorizer.bench

    # Import bench afresh in an interpreter that has no `resource`, as on
    # Windows; the original module is put back afterwards.
    monkeypatch.setattr(hsvcolorizer, "bench", hsvcolorizer.bench)
    monkeypatch.delitem(sys.modules, "hsvcolorizer.bench")
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` raises ImportError
    bench = importlib.import_module("hsvcolorizer.bench")

    assert bench.peak_rss_mib() is None
    lines: list[str] = []
    # The smallest photo the measurement can make (its gray is drawn at 1/8 size).
    report = bench.measure_big_photo(Colorizer.load(tiny_weights, "cpu"), 0.01, log=lines.append)
    assert report["peak_rss_mib"] is None and report["peak_numpy_mib"] >= 0
    assert len(lines) == 1 and "process peak RSS unavailable on this system" in lines[0]


@pytest.mark.skipif(sys.platform == "win32", reason="no `resource` module on Windows")
def test_bench_reports_peak_rss_where_resource_exists(tiny_weights):
    from hsvcolorizer import bench

    assert bench.peak_rss_mib() > 1
    report = bench.measure_big_photo(Colorizer.load(tiny_weights, "cpu"), 0.01, log=None)
    assert report["peak_rss_mib"] > 1


def test_colorize_runtime_error_on_one_of_several_photos_is_its_failure(tmp_path, tiny_weights, monkeypatch, capsys):
    """colorize with several photos: torch's RuntimeError (out of memory on
    the device) on one is that photo's one-line failure; the others are done."""
    from hsvcolorizer import cli
    from hsvcolorizer.imageio import write_image
    from hsvcolorizer.inference import Colorizer
    from tests.conftest import colour_image

    srcs = []
    for name in ("a", "b", "c"):
        p = tmp_path / f"{name}.png"
        write_image(p, colour_image(24, 32, seed=len(srcs)))
        srcs.append(p)
    real = Colorizer.colorize

    def flaky(self, image, *a, **k):
        if getattr(image, "path", None) and Path(image.path).name == "b.png":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, image, *a, **k)

    monkeypatch.setattr(Colorizer, "colorize", flaky)
    out = tmp_path / "out"
    code = cli.main(["colorize", *map(str, srcs), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "b.png: out of memory on the device" in err and "Traceback" not in err
    assert (out / "a_color.png").is_file() and (out / "c_color.png").is_file()
    assert not (out / "b_color.png").exists()


def test_batch_of_a_folder_inside_the_output_folder_takes_its_photos(tmp_path, tiny_weights, capsys):
    # `batch scans/in scans --recursive`: the input is inside the output.
    (tmp_path / "scans" / "in").mkdir(parents=True)
    _gray_photos(tmp_path / "scans" / "in")
    code, stdout, errors = run(capsys, "batch", tmp_path / "scans" / "in", tmp_path / "scans", "--recursive",
                               "--weights", tiny_weights)
    assert code == 0, errors
    assert sorted(p.name for p in (tmp_path / "scans").glob("*_color.png")) == ["a_color.png", "b_color.png",
                                                                                "c_color.png"]
