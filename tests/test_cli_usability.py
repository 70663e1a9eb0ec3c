"""The command line's usability: batch given a file, photos left in subfolders,
defaults in every option's help, argument errors before torch is imported, and
EXIF / ICC kept in JPEG and TIFF outputs."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from hsvcolorizer.cli import build_parser
from hsvcolorizer.imageio import read_image, write_image
from tests.conftest import colour_image

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def gray_photo(path: Path, h=20, w=24, seed=0) -> Path:
    write_image(path, colour_image(h, w, seed).mean(2).astype(np.uint8))
    return path


# 1. batch FILE OUT ----------------------------------------------------------


def test_batch_given_a_file_says_so_and_suggests_colorize(tmp_path):
    photo = gray_photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    r = cli("batch", photo, out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "is a file, not a folder" in lines[0] and f"hsvcolorizer colorize {photo}" in lines[0]
    assert "does not exist" not in lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


# 2. photos in subfolders without --recursive ---------------------------------


def test_batch_without_recursive_counts_photos_left_in_subfolders(tmp_path, tiny_weights):
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / ".hidden").mkdir()
    gray_photo(src / "top.png")
    gray_photo(src / "sub" / "a.png", seed=1)
    gray_photo(src / "sub" / "deeper" / "b.jpg", seed=2)
    gray_photo(src / ".hidden" / "c.png", seed=3)  # hidden: the batch never looks there
    (src / "sub" / "notes.txt").write_text("not a photo")
    r = cli("batch", src, tmp_path / "out", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if "1 done, 0 skipped, 0 failed" in line)
    assert "2 photos in subfolders were not looked at; --recursive includes them" in lines[summary + 1]

    r = cli("batch", src, tmp_path / "out2", "--weights", tiny_weights, "--recursive")
    assert r.returncode == 0 and "3 done" in r.stdout and "not looked at" not in r.stdout


def test_batch_says_nothing_about_subfolders_without_photos_in_them(tmp_path, tiny_weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    gray_photo(src / "top.png")
    (src / "sub" / "notes.txt").write_text("not a photo")
    r = cli("batch", src, tmp_path / "out", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    assert "not looked at" not in r.stdout and "--recursive" not in r.stdout


# 3. every option's help states its default -----------------------------------


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_is_checked():
    assert set(_subparsers(build_parser())) == {"colorize", "batch", "train", "evaluate", "prepare", "info", "bench"}


@pytest.mark.parametrize("command", ["colorize", "batch", "train", "evaluate", "prepare", "info", "bench"])
def test_every_option_has_help_that_states_its_default(command):
    sub = _subparsers(build_parser())[command]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1]
        assert action.help, f"{command} {name} has no help"
        text = formatter._expand_help(action)
        default = action.default
        if default is None or default is False or isinstance(action, (argparse._StoreTrueAction,
                                                                       argparse._StoreFalseAction)):
            continue
        shown = {str(default)} | ({f"{default:g}"} if isinstance(default, float) else set())
        assert "default" in text and any(s in text for s in shown), f"{command} {name}: {text!r} hides {default!r}"


def test_help_pages_print():
    for command in ("colorize", "batch", "train", "evaluate", "prepare", "info", "bench"):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([command, "--help"])
        assert e.value.code == 0


# 4. argument errors before torch ------------------------------------------------


def _main_in_subprocess(args):
    code = ("import sys, hsvcolorizer.cli as c; rc = c.main(%r); print('torch' in sys.modules); sys.exit(rc)"
            % [str(a) for a in args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["colorize", "{photo}", "--weights", "nothere"], "nothere"),
        (["colorize", "{photo}", "--weights", "{dir}"], "not a weights file"),
        (["colorize", "{photo}", "-o", "{photo}/x.png"], "is a file, not a folder"),
        (["colorize", "{photo}", "-o", "{dir}/out.xyz"], "unsupported file type '.xyz'"),
        (["colorize", "{photo}", "-o", "{photo}/sub"], "is a file, not a folder"),
        (["batch", "{in}", "{dir}/out", "--weights", "nothere"], "nothere"),
        (["batch", "{in}", "{photo}/out"], "is a file, not a folder"),
        (["evaluate", "--data", "{in}", "--weights", "nothere"], "nothere"),
        (["evaluate", "--data", "{in}", "--sheet", "{photo}/sheet.png"], "is a file, not a folder"),
        (["evaluate", "--data", "{in}", "--sheet", "{dir}/sheet.xyz"], "unsupported file type"),
    ],
)
def test_argument_errors_come_before_torch_is_imported(tmp_path, args, needle):
    photo = gray_photo(tmp_path / "photo.png")
    folder = tmp_path / "in"
    folder.mkdir()
    gray_photo(folder / "a.png")
    subs = {"{photo}": photo, "{in}": folder, "{dir}": tmp_path}
    real = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, str(v))
        real.append(a)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = _main_in_subprocess(real)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout.strip() == "False", "torch was imported before the argument error"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# 5. EXIF and ICC profile kept -----------------------------------------------------


def _jpeg_with_metadata(path: Path) -> tuple[bytes, np.ndarray]:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    exif[0x010F] = "TestMake"
    gray = colour_image(24, 36).mean(2).astype(np.uint8)
    Image.fromarray(np.dstack([gray] * 3)).save(path, quality=95, exif=exif.tobytes(), icc_profile=icc)
    return icc, gray


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_colorize_keeps_exif_and_icc_profile(tmp_path, tiny_weights, ext):
    src = tmp_path / "scan.jpg"
    icc, _ = _jpeg_with_metadata(src)
    out = tmp_path / f"result{ext}"
    r = cli("colorize", src, "-o", out, "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "TestMake"
        assert exif.get(0x0112) == 1
        assert im.info.get("icc_profile") == icc
        assert im.size == (24, 36)  # upright: the orientation was applied once
    assert read_image(out).pixels.shape == (36, 24, 3)


def test_batch_keeps_exif_and_icc_profile(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    icc, _ = _jpeg_with_metadata(src / "scan.jpg")
    r = cli("batch", src, tmp_path / "out", "--weights", tiny_weights, "--format", "jpg")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "out" / "scan_color.jpg") as im:
        assert im.getexif().get(0x010F) == "TestMake" and im.getexif().get(0x0112) == 1
        assert im.info.get("icc_profile") == icc


def test_a_gray_profile_is_not_attached_to_a_colour_result(tmp_path):
    gray_icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    gray_icc[16:20] = b"GRAY"
    out = write_image(tmp_path / "x.jpg", colour_image(8, 8), icc_profile=bytes(gray_icc))
    with Image.open(out) as im:
        assert "icc_profile" not in im.info
