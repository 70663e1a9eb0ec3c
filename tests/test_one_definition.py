"""One definition for each shared choice and range, one atomic writer, one
device picker, one 16-to-8-bit conversion and one answer to "is this photo
gray?", read by the CLI, the core and training alike. (The window's side:
tests/gui/test_one_definition_gui.py.)"""

import argparse
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hsvcolorizer import atomic, batch, bench, data, device, evaluation, imageio, inference, weights
from hsvcolorizer.choices import (BATCH_FORMATS, DEVICES, INPUT_CHANNELS, OUTPUT_FORMATS, RECOMPOSE_MODES,
                                  SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN)
from hsvcolorizer.cli import build_parser
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.networks import TwoStageColorizer
from hsvcolorizer.training import distributed
from hsvcolorizer.training.checkpoint import write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


# ---------------------------------------------------------------------------
# 1. Choices and ranges
# ---------------------------------------------------------------------------


def test_the_cli_offers_the_core_choices():
    for command in ("colorize", "batch", "evaluate"):
        assert option(subparser(command), "--recompose").choices is RECOMPOSE_MODES
    assert option(subparser("train"), "--input-channel").choices is INPUT_CHANNELS
    assert option(subparser("colorize"), "--format").choices is OUTPUT_FORMATS
    assert option(subparser("batch"), "--format").choices is BATCH_FORMATS
    for command in ("colorize", "batch", "train", "evaluate", "bench"):
        help_text = option(subparser(command), "--device").help
        assert all(name in help_text for name in DEVICES), (command, help_text)


def test_the_core_reads_the_same_choices():
    assert weights.INPUT_CHANNELS is INPUT_CHANNELS and weights.RECOMPOSE_MODES is RECOMPOSE_MODES
    assert inference.RECOMPOSE_MODES is RECOMPOSE_MODES
    assert batch.FORMATS is BATCH_FORMATS and BATCH_FORMATS == (*OUTPUT_FORMATS, "same")
    assert tuple(imageio.WRITE_FORMATS) == OUTPUT_FORMATS
    assert imageio.format_extensions("jpg") == (".jpg", ".jpeg")
    assert (WORKING_SIZE_MIN, WORKING_SIZE_MAX) == (16, 4096)
    assert (SATURATION_MIN, SATURATION_MAX) == (0.0, 4.0)


@pytest.mark.parametrize("flag, good, bad", [
    ("--working-size", (WORKING_SIZE_MIN, WORKING_SIZE_MAX), (WORKING_SIZE_MIN - 1, WORKING_SIZE_MAX + 1)),
    ("--saturation", (SATURATION_MIN, SATURATION_MAX), (SATURATION_MIN - 0.01, SATURATION_MAX + 0.01)),
])
def test_the_cli_ranges_are_the_core_ranges(flag, good, bad, capsys):
    parser = build_parser()
    for value in good:
        args = parser.parse_args(["colorize", "x.png", flag, str(value)])
        assert getattr(args, flag[2:].replace("-", "_")) == value
    for value in bad:
        with pytest.raises(SystemExit):
            parser.parse_args(["colorize", "x.png", flag, str(value)])
        err = capsys.readouterr().err
        assert "out of range" in err or "between" in err


@pytest.fixture(scope="module")
def colorizer():
    from tests.conftest import TINY
    from hsvcolorizer.networks import ModelConfig

    return Colorizer.untrained(ModelConfig(**TINY), device="cpu")


def test_the_core_refuses_a_working_size_outside_the_range(colorizer):
    gray = np.full((20, 24), 100, np.uint8)
    for ws in (WORKING_SIZE_MIN - 1, WORKING_SIZE_MAX + 1, 100_000):
        with pytest.raises(ColorizerError, match=f"working size {ws} is out of range; use 16 to 4096"):
            colorizer.colorize(gray, working_size=ws)
    for ws in (WORKING_SIZE_MIN, WORKING_SIZE_MAX):  # the photo is never enlarged: both are cheap
        assert colorizer.colorize(gray, working_size=ws).size == (24, 20)


def test_the_core_refuses_a_saturation_outside_the_range(colorizer):
    result = colorizer.colorize(np.full((20, 24), 100, np.uint8))
    for gain in (SATURATION_MIN, SATURATION_MAX):
        assert result.render(saturation=gain).shape == (20, 24, 3)
    for gain in (SATURATION_MIN - 0.5, SATURATION_MAX + 0.5, float("nan")):
        with pytest.raises(ColorizerError, match="out of range; use 0 to 4"):
            result.render(saturation=gain)
    with pytest.raises(ColorizerError, match="use luma or v"):
        result.render(mode="hsv")


# ---------------------------------------------------------------------------
# 2. One atomic writer
# ---------------------------------------------------------------------------


def _write_photo(path: Path) -> None:
    write_image(path, np.zeros((4, 4, 3), np.uint8))


def _write_weights(path: Path) -> None:
    from tests.conftest import TINY
    from hsvcolorizer.networks import ModelConfig

    weights.save_weights(TwoStageColorizer(ModelConfig(**TINY)), path, {"input_channel": "luma"})


def _write_checkpoint(path: Path) -> None:
    write_checkpoint(path, {"state": {"global_step": 1}, "model": {"w": torch.zeros(2)}})


WRITERS = {"photo.png": _write_photo, "model.safetensors": _write_weights, "checkpoint.pt": _write_checkpoint}


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_writer_flushes_and_syncs_the_folder_after_the_rename(name, tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(atomic, "fsync_folder", lambda folder: events.append(("folder", Path(folder))))
    WRITERS[name](tmp_path / name)
    assert events == ["fsync", "replace", ("folder", tmp_path)], events
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_writer_reports_a_full_disk_in_one_line_and_keeps_the_old_file(name, tmp_path, monkeypatch):
    target = tmp_path / name
    target.write_bytes(b"the previous file")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(ColorizerError) as info:
        WRITERS[name](target)
    assert str(info.value) == f"cannot write {target}: {os.strerror(errno.ENOSPC)}"
    assert target.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "no temporary file left"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_the_writer_keeps_each_files_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        for name, write in WRITERS.items():
            write(tmp_path / name)
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"photo.png": 0o644, "model.safetensors": 0o644, "checkpoint.pt": 0o600}


def test_imageio_has_no_writer_of_its_own():
    for name in ("_atomic_write", "_create_temp_file", "_fsync_folder"):
        assert not hasattr(imageio, name), name


def test_prepare_flushes_every_cache_file_before_its_commit(photo_folder, tmp_path, monkeypatch):
    events = []
    real_replace = data.os.replace
    monkeypatch.setattr(data, "fsync_file", lambda p: events.append(("fsync", Path(p).name)))
    monkeypatch.setattr(data, "fsync_folder", lambda p: events.append(("folder", Path(p).name)))
    monkeypatch.setattr(data.os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b))[1])
    data.prepare_cache(photo_folder, tmp_path / "cache", size=36)
    partial = {"images.npy.partial", "sizes.npy.partial", "hsvcolorizer-cache.json.partial"}
    assert {e[1] for e in events[:3] if e[0] == "fsync"} == partial, events
    assert [e[0] for e in events] == ["fsync"] * 3 + ["replace"] * 3 + ["folder"], events
    assert events[-1] == ("folder", "cache")


# ---------------------------------------------------------------------------
# 3. One module picks the device
# ---------------------------------------------------------------------------


def test_one_module_picks_the_device():
    assert inference.pick_device is device.pick_device  # still importable from inference
    assert distributed.pick_device is device.pick_device
    assert bench.pick_device is device.pick_device
    assert device.pick_device("auto").type in ("cpu", "cuda", "mps")
    assert device.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ColorizerError, match="unknown device 'tpu'; use auto, cpu, cuda or mps"):
        device.pick_device("tpu")


def test_training_does_not_import_inference_for_its_device():
    code = ("import sys; import hsvcolorizer.training.loop, hsvcolorizer.training.distributed; "
            "print('hsvcolorizer.inference' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_choices_import_neither_torch_nor_qt():
    code = "import sys, hsvcolorizer.choices; print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# 4. One 16-to-8-bit conversion (the screen's side: tests/gui)
# ---------------------------------------------------------------------------

# 257 * 100 + 150: 100.58 in 8-bit units. Rounding gives 101; dropping the
# low byte (v >> 8) gives 100, one level darker.
V16 = 257 * 100 + 150


def test_every_core_path_turns_16_bits_into_the_same_8_bits(tmp_path):
    gray16 = np.full((8, 8), V16, np.uint16)
    rgb16 = np.dstack([gray16] * 3)
    # the 8-bit file written from a 16-bit result
    assert (read_image(write_image(tmp_path / "x.jpg", gray16, quality=100)).pixels == 101).all()
    # training crops and evaluation originals
    assert (data._rgb8(rgb16) == 101).all() and (data._rgb8(gray16) == 101).all()
    assert (evaluation._to_u8(rgb16) == 101).all()
    # ... and all of them are the one function
    assert imageio.to_8bit(np.array([V16], np.uint16))[0] == 101
    everything = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(data._rgb8(everything[None])[0, :, 0], imageio.to_8bit(everything))
    np.testing.assert_array_equal(evaluation._to_u8(everything), imageio.to_8bit(everything))


# ---------------------------------------------------------------------------
# 5. One answer to "is this photo gray?"
# ---------------------------------------------------------------------------


def _gradient(h: int = 120, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (30 + 180 * (xx + yy) / (h + w)).astype(np.uint8)


def _speck() -> np.ndarray:
    """A black-and-white print with a small red stamp: mean chroma ~0.5 level."""
    rgb = np.dstack([_gradient()] * 3)
    rgb[10:16, 10:16] = (255, 0, 0)
    return rgb


def _faint_cast() -> np.ndarray:
    """A faint blue cast over the whole photo: 2 levels everywhere."""
    g = _gradient().astype(np.int16)
    return np.dstack([g, g, np.minimum(g + 2, 255)]).astype(np.uint8)


def _faint_cast16() -> np.ndarray:
    """The same at 16 bits, 1.6 levels of blue: colour once rounded to 8 bits."""
    g = _gradient().astype(np.uint32) * 257
    return np.dstack([g, g, g + 411]).astype(np.uint16)


def _gray_as_rgb() -> np.ndarray:
    return np.dstack([_gradient()] * 3)


def _colour() -> np.ndarray:
    from tests.conftest import colour_image

    return colour_image(60, 80)


BORDERLINE = {"speck": (_speck, True), "faint_cast": (_faint_cast, False), "faint_cast16": (_faint_cast16, False),
              "gray_as_rgb": (_gray_as_rgb, True), "colour": (_colour, False)}


def test_training_and_inference_give_one_answer_to_is_this_photo_gray(tmp_path):
    files = {}
    for name, (make, _) in BORDERLINE.items():
        files[name] = write_image(tmp_path / f"{name}.png", make())
    kept = data.filter_grayscale(list(files.values()))
    assert not kept.unreadable
    training_gray = {p.stem for p in kept.excluded_gray}
    inference_gray = {name for name, path in files.items() if not read_image(path).is_color}
    expected = {name for name, (_, gray) in BORDERLINE.items() if gray}
    assert training_gray == inference_gray == expected
    # evaluate skips exactly those photos as gray
    report = evaluation.evaluate(None, list(files.values()), progress=False)
    assert report["skipped_gray"] == len(expected) and report["count"] == len(files) - len(expected)


def test_one_function_and_one_threshold():
    assert data.is_grayscale is imageio.is_grayscale and data.mean_chroma is imageio.mean_chroma
    assert data.GRAY_CHROMA_THRESHOLD == imageio.GRAY_CHROMA_THRESHOLD == 1.0
    for name, (make, gray) in BORDERLINE.items():
        assert imageio.is_grayscale(make()) is gray, name
        assert imageio.Photo(make()).is_color is (not gray), name
