"""Hostile inputs for the robustness suite, made by the tests themselves.

Every ``make_*`` function writes one hostile (or merely unusual) file and
returns its path.  ``IMAGE_CASES`` lists the image cases of docs/robustness.md
with what the program must do with each: colorize it at the right size, or
refuse it with one line that names the file.

The fixtures of tests/conftest.py (tiny_config, tiny_weights, photo_folder)
are available here too; the module-scoped ones below exist because a
command-line run costs seconds (importing torch), so several tests share one.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from hsvcolorizer.networks import ModelConfig, TwoStageColorizer
from hsvcolorizer.weights import save_weights
from tests.conftest import TINY, colour_image
from tests.conftest import cv2_bytes, pillow_bytes

ROOT = Path(__file__).resolve().parents[2]

# A command that hangs is a failure too: nothing here should take this long.
CLI_TIMEOUT = 120


# ---------------------------------------------------------------------------
# Running the command line
# ---------------------------------------------------------------------------


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "hsvcolorizer.cli", *map(str, args)]


def cli_env(env: dict | None = None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if k != "HSVCOLORIZER_MAX_PIXELS"}
    full_env["PYTHONIOENCODING"] = "utf-8"
    # One math thread: with tiny models a thread pool only adds waiting (a
    # 16x20 convolution takes 30 ms on two threads of a busy 2-core machine,
    # 0.2 ms on one), and the suite's processes already fill the cores.
    full_env["OMP_NUM_THREADS"] = "1"
    full_env.update(env or {})
    return full_env


def run_cli(*args, env: dict | None = None, timeout: float = CLI_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """Run ``hsvcolorizer ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=cli_env(env), encoding="utf-8", errors="replace", **kwargs)


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """stderr is exactly one ``hsvcolorizer: error: ...`` line containing every needle."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("hsvcolorizer: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files (ours end in .tmp) anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".partial"))


def snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file under ``folder``: proof nothing was touched."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and not p.is_symlink()}


def luma8(pixels: np.ndarray) -> np.ndarray:
    """HxW float luma (BT.601) in 8-bit levels of uint8/uint16 gray or RGB pixels."""
    x = pixels.astype(np.float64) / (257.0 if pixels.dtype == np.uint16 else 1.0)
    return x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------------------
# Hostile and unusual image files
# ---------------------------------------------------------------------------




def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC over type + data."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def giant_png_header(width: int, height: int) -> bytes:
    """A 60-byte PNG whose (valid, CRC-correct) header claims width x height RGB pixels."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def valid_png_bytes(h: int = 24, w: int = 32, seed: int = 0) -> bytes:
    return pillow_bytes(Image.fromarray(colour_image(h, w, seed)), "PNG")


def valid_jpeg_bytes(h: int = 24, w: int = 32, seed: int = 0) -> bytes:
    return pillow_bytes(Image.fromarray(colour_image(h, w, seed)), "JPEG", quality=90)


def valid_tiff_bytes(h: int = 16, w: int = 20, seed: int = 0) -> bytes:
    return pillow_bytes(Image.fromarray(colour_image(h, w, seed)), "TIFF")


def valid_gif_bytes(h: int = 16, w: int = 20, seed: int = 0) -> bytes:
    return pillow_bytes(Image.fromarray(colour_image(h, w, seed)), "GIF")


def make_zero_byte(path: Path) -> Path:
    return _write(path, b"")


def make_text_as_jpg(path: Path) -> Path:
    return _write(path, b"Dear diary,\nthis is a shopping list, not a photo.\n")


def make_truncated_jpeg(path: Path) -> Path:
    data = valid_jpeg_bytes(48, 64)
    return _write(path, data[: len(data) * 3 // 5])


def make_truncated_png(path: Path) -> Path:
    data = valid_png_bytes(48, 64)
    return _write(path, data[: len(data) * 3 // 5])


def make_truncated_png16(path: Path) -> Path:
    """16-bit colour PNG (decoded by OpenCV, not Pillow), cut short."""
    data = cv2_bytes((colour_image(48, 64).astype(np.uint16) * 257)[..., ::-1], ".png")
    return _write(path, data[: len(data) * 3 // 5])


def make_huge_png_header(path: Path) -> Path:
    return _write(path, giant_png_header(50000, 50000))


def make_1x1(path: Path) -> Path:
    return _write(path, pillow_bytes(Image.fromarray(np.array([[137]], np.uint8)), "PNG"))


def make_1xn(path: Path) -> Path:
    """1 pixel high, 37 wide, colour."""
    return _write(path, pillow_bytes(Image.fromarray(colour_image(1, 37, 3)), "PNG"))


def make_nx1(path: Path) -> Path:
    """29 pixels high, 1 wide, JPEG."""
    return _write(path, pillow_bytes(Image.fromarray(colour_image(29, 1, 4)), "JPEG", quality=95))


def _rgb16(h: int, w: int) -> np.ndarray:
    # Not multiples of 257, so any detour through 8 bits would show.
    return (colour_image(h, w, 5).astype(np.uint16) * 257 + np.arange(w, dtype=np.uint16)[None, :, None] * 3)


def make_png16(path: Path) -> Path:
    return _write(path, cv2_bytes(_rgb16(18, 26)[..., ::-1], ".png"))


def make_tiff16(path: Path) -> Path:
    return _write(path, cv2_bytes(_rgb16(14, 22)[..., ::-1], ".tif"))


def make_cmyk_jpeg(path: Path) -> Path:
    """Cyan and black halves, stored as CMYK (as print workflows do)."""
    im = Image.new("CMYK", (24, 16), (255, 0, 0, 0))
    im.paste((0, 0, 0, 255), (0, 8, 24, 16))
    return _write(path, pillow_bytes(im, "JPEG", quality=95))


def make_palette_png_with_transparency(path: Path) -> Path:
    """Palette image whose index 0 is fully transparent (left third)."""
    idx = np.zeros((12, 30), np.uint8)
    idx[:, 10:20], idx[:, 20:] = 1, 2
    im = Image.fromarray(idx, "L").convert("P")
    im.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30] + [0] * (256 - 3) * 3)
    return _write(path, pillow_bytes(im, "PNG", transparency=0))


GIF_FRAME_COLOURS = ((220, 20, 20), (20, 220, 20), (20, 20, 220))  # luma 80, 142, 46


def make_animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (20, 12), c) for c in GIF_FRAME_COLOURS]
    return _write(path, pillow_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0))


def make_exif_rotated_jpeg(path: Path) -> Path:
    """Sensor image 40 wide x 20 high, left half white, right half black,
    EXIF orientation 6: upright it is 20 wide x 40 high, white on top."""
    sensor = np.zeros((20, 40, 3), np.uint8)
    sensor[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(path, pillow_bytes(Image.fromarray(sensor), "JPEG", quality=95, exif=exif.tobytes()))


def make_damaged_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF says "orientation 6" but has an entry pointing past its
    end (Pillow warns "Tag data larger than file"): shown upright, no noise."""
    ifd = (b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2)
           + struct.pack(">HHII", 0x0112, 3, 1, 6 << 16)  # Orientation = 6
           + struct.pack(">HHII", 0x010F, 2, 400, 4000)  # Make: 400 bytes at offset 4000
           + struct.pack(">I", 0))
    sensor = np.zeros((16, 20, 3), np.uint8)
    sensor[:, :10] = 255
    return _write(path, pillow_bytes(Image.fromarray(sensor), "JPEG", quality=95, exif=b"Exif\x00\x00" + ifd))


NON_ASCII_DIR = "Fotos älter 1950 – Ω"


def make_non_ascii_path(path: Path) -> Path:
    """A photo whose folder and name hold spaces and non-ASCII letters."""
    target = path.parent / NON_ASCII_DIR / "Été à Łódź 日本 (scan).png"
    return _write(target, pillow_bytes(Image.fromarray(colour_image(21, 27, 6).mean(2).astype(np.uint8)), "PNG"))


def make_symlink_loop_file(path: Path) -> Path:
    """A symlink that points to itself (reading it fails with ELOOP)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(path.name, path)
    return path


def check_exif_upright(pixels: np.ndarray) -> None:
    luma = luma8(pixels)
    assert luma[:15].mean() > 200 and luma[-15:].mean() < 50, "EXIF orientation not applied (or applied twice)"


def check_damaged_exif_upright(pixels: np.ndarray) -> None:
    luma = luma8(pixels)
    assert luma[:8].mean() > 200 and luma[-8:].mean() < 50, "EXIF orientation not applied"


def check_gif_first_frame(pixels: np.ndarray) -> None:
    assert abs(luma8(pixels).mean() - 80) < 6, "not the GIF's first frame"


def check_cmyk(pixels: np.ndarray) -> None:
    luma = luma8(pixels)
    assert luma[:6].mean() > 150 and luma[-6:].mean() < 40, "CMYK not converted to RGB"


@dataclass(frozen=True)
class ImageCase:
    """One image case: how to make it and what the program must do with it.

    ok cases must give a colour result of ``size`` (width, height) whose luma
    equals the source's (the default recomposition keeps the gray exactly);
    error cases must give one line naming the file and containing ``needle``.
    """

    name: str
    filename: str
    make: Callable[[Path], Path]
    size: tuple[int, int] | None = None  # (width, height) of the result; None = an error case
    needle: str = ""
    bit_depth: int = 8
    alpha: bool = False
    check: Callable[[np.ndarray], None] | None = None
    env: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.size is not None

    def create(self, folder: Path) -> Path:
        return self.make(Path(folder) / self.filename)


IMAGE_CASES: list[ImageCase] = [
    ImageCase("zero_byte", "empty.jpg", make_zero_byte, needle="the file is empty"),
    ImageCase("text_named_jpg", "shopping list.jpg", make_text_as_jpg, needle="not a JPEG, PNG"),
    ImageCase("truncated_jpeg", "cut.jpg", make_truncated_jpeg, needle="damaged"),
    ImageCase("truncated_png", "cut.png", make_truncated_png, needle="damaged"),
    ImageCase("truncated_png16", "cut16.png", make_truncated_png16, needle="damaged"),
    ImageCase("huge_png_header", "bomb.png", make_huge_png_header,
              needle="is 50000x50000 pixels (2500 megapixels), above the limit of 150 megapixels; "
                     "set HSVCOLORIZER_MAX_PIXELS to allow more"),
    ImageCase("over_configured_limit", "ordinary.png", lambda p: _write(p, valid_png_bytes(40, 50)),
              needle="is 50x40 pixels (0.002 megapixels), above the limit of 0.001 megapixels",
              env={"HSVCOLORIZER_MAX_PIXELS": "1000"}),
    ImageCase("symlink_loop_file", "loop.jpg", make_symlink_loop_file, needle="symbolic links"),
    ImageCase("one_by_one", "dot.png", make_1x1, size=(1, 1)),
    ImageCase("one_by_n", "row.png", make_1xn, size=(37, 1)),
    ImageCase("n_by_one", "column.jpg", make_nx1, size=(1, 29)),
    ImageCase("png_16bit", "deep.png", make_png16, size=(26, 18), bit_depth=16),
    ImageCase("tiff_16bit", "deep16.tif", make_tiff16, size=(22, 14), bit_depth=16),
    ImageCase("cmyk_jpeg", "print.jpg", make_cmyk_jpeg, size=(24, 16), check=check_cmyk),
    ImageCase("palette_png_transparency", "logo.png", make_palette_png_with_transparency, size=(30, 12), alpha=True),
    ImageCase("animated_gif", "anim.gif", make_animated_gif, size=(20, 12), check=check_gif_first_frame),
    ImageCase("exif_rotated_jpeg", "rotated.jpg", make_exif_rotated_jpeg, size=(20, 40), check=check_exif_upright),
    ImageCase("jpeg_damaged_exif", "bad exif.jpg", make_damaged_exif_jpeg, size=(16, 20),
              check=check_damaged_exif_upright),
    ImageCase("non_ascii_path_with_spaces", "placeholder", make_non_ascii_path, size=(27, 21)),
]

OK_CASES = [c for c in IMAGE_CASES if c.ok]
ERROR_CASES = [c for c in IMAGE_CASES if not c.ok]


def case_id(case: ImageCase) -> str:
    return case.name


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _default_pixel_limit(monkeypatch):
    """Every test starts from the default pixel limit, whatever the shell says."""
    monkeypatch.delenv("HSVCOLORIZER_MAX_PIXELS", raising=False)


@pytest.fixture(autouse=True, scope="module")
def _one_math_thread():
    """In-process torch on one thread too (see cli_env); restored for other test folders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save_tiny(path: Path) -> Path:
    torch.manual_seed(0)
    return save_weights(TwoStageColorizer(ModelConfig(**TINY)), path, {"input_channel": "luma", "recompose": "luma"})


@pytest.fixture(scope="module")
def module_weights(tmp_path_factory) -> Path:
    """Tiny weights shared by a module's command-line runs (same as tiny_weights)."""
    return _save_tiny(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def module_colorizer(module_weights):
    from hsvcolorizer.inference import Colorizer

    return Colorizer.load(module_weights, "cpu")
