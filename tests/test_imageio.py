"""Tests for hsvcolorizer.imageio.

Every image is made here, in tmp_path, so the tests need no sample photos.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, features

from hsvcolorizer import imageio
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import (
    DEFAULT_MAX_PIXELS,
    READ_EXTENSIONS,
    WRITE_FORMATS,
    Photo,
    decode_image,
    iter_image_files,
    output_path_for,
    read_image,
    write_image,
)
from tests.conftest import cv2_bytes, pillow_bytes

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- helpers


def rgb8(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def rgb16(h: int = 12, w: int = 17) -> np.ndarray:
    # Values that are not multiples of 257, so an 8-bit detour would show.
    return RNG.integers(0, 65536, (h, w, 3), dtype=np.uint16)




def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_chunk_after_ihdr(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """Insert a chunk right after IHDR (signature 8 + IHDR chunk 25 bytes)."""
    return png[:33] + png_chunk(kind, payload) + png[33:]


def exif_orientation_bytes(orientation: int) -> bytes:
    """Payload of a PNG eXIf chunk: the EXIF block without its "Exif" header."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes().removeprefix(b"Exif\x00\x00")


def tiff16_bytes(rgb: np.ndarray, orientation: int | None = None) -> bytes:
    """A minimal uncompressed 16-bit RGB TIFF, image directory first.

    Made by hand because OpenCV writes the directory last (so a cut file
    fails early) and Pillow cannot write 16-bit colour at all.
    """
    h, w, _ = rgb.shape
    pixels = rgb.astype("<u2").tobytes()
    tags = {256: w, 257: h, 258: None, 259: 1, 262: 2, 273: None, 277: 3, 278: h, 279: len(pixels), 284: 1}
    if orientation is not None:
        tags[274] = orientation
    ifd_size = 2 + 12 * len(tags) + 4
    bits_offset = 8 + ifd_size
    data_offset = bits_offset + 6
    ifd = struct.pack("<H", len(tags))
    for tag in sorted(tags):  # TIFF requires ascending tag order
        if tag == 258:  # BitsPerSample: three values, stored after the directory
            ifd += struct.pack("<HHII", tag, 3, 3, bits_offset)
        elif tag in (273, 279):  # StripOffsets, StripByteCounts as LONG
            ifd += struct.pack("<HHII", tag, 4, 1, data_offset if tag == 273 else tags[tag])
        else:
            ifd += struct.pack("<HHIHH", tag, 3, 1, tags[tag], 0)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 16, 16, 16) + pixels


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- round trips


def test_rgb8_png_round_trip_is_exact(tmp_path):
    pixels = rgb8()
    written = write_image(tmp_path / "photo.png", pixels)
    assert written == tmp_path / "photo.png"

    photo = read_image(written)
    assert photo.pixels.dtype == np.uint8
    assert photo.pixels.shape == pixels.shape
    assert photo.pixels.flags.c_contiguous
    np.testing.assert_array_equal(photo.pixels, pixels)
    assert photo.alpha is None
    assert photo.path == written
    assert photo.bit_depth == 8
    assert photo.size == (17, 12)


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_rgb16_round_trip_stays_16_bit(tmp_path, ext):
    pixels = rgb16()
    path = write_image(tmp_path / f"photo{ext}", pixels)

    # The file itself is 16-bit RGB (checked with an independent decoder).
    raw = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[..., ::-1], pixels)

    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(photo.pixels, pixels)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_reads_16_bit_rgb_written_by_another_program(tmp_path, ext):
    pixels = rgb16()
    path = write_file(tmp_path / f"ext{ext}", cv2_bytes(np.ascontiguousarray(pixels[..., ::-1]), ext))
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, pixels)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_rgba16_keeps_16_bit_alpha(tmp_path, ext):
    pixels = rgb16()
    alpha = RNG.integers(0, 65536, pixels.shape[:2], dtype=np.uint16)
    path = write_image(tmp_path / f"photo{ext}", pixels, alpha)
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16 and photo.alpha.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, pixels)
    np.testing.assert_array_equal(photo.alpha, alpha)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_gray16_stays_uint16_2d(tmp_path, ext):
    gray = RNG.integers(0, 65536, (9, 14), dtype=np.uint16)
    path = write_file(tmp_path / f"gray{ext}", cv2_bytes(gray, ext))
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    assert photo.pixels.shape == (9, 14)
    np.testing.assert_array_equal(photo.pixels, gray)
    assert not photo.is_color


def test_gray16_big_endian_from_pillow(tmp_path):
    gray = RNG.integers(0, 65536, (6, 5), dtype=np.uint16)
    image = Image.frombytes("I;16B", (5, 6), gray.astype(">u2").tobytes())
    path = write_file(tmp_path / "be.tif", pillow_bytes(image, "TIFF"))
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    assert photo.pixels.dtype.isnative
    np.testing.assert_array_equal(photo.pixels, gray)


def test_gray_alpha16_png_stays_gray_and_16_bit(tmp_path):
    # Pillow would reduce this to 8-bit RGBA; craft it by hand (colour type 4).
    h, w = 3, 4
    gray = RNG.integers(0, 65536, (h, w), dtype=np.uint16)
    alpha = RNG.integers(0, 65536, (h, w), dtype=np.uint16)
    interleaved = np.dstack([gray, alpha]).astype(">u2")
    raw = b"".join(b"\0" + interleaved[y].tobytes() for y in range(h))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )
    photo = read_image(write_file(tmp_path / "la16.png", png))
    assert photo.pixels.shape == (h, w) and photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, gray)
    np.testing.assert_array_equal(photo.alpha, alpha)


def test_rgba_png_keeps_alpha(tmp_path):
    rgba = RNG.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    path = write_file(tmp_path / "rgba.png", pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    photo = read_image(path)
    np.testing.assert_array_equal(photo.pixels, rgba[..., :3])
    np.testing.assert_array_equal(photo.alpha, rgba[..., 3])
    assert photo.alpha.dtype == np.uint8


def test_palette_png_with_transparency_gives_alpha(tmp_path):
    image = Image.new("P", (6, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # 0 = red, 1 = blue
    image.paste(1, (3, 0, 6, 4))  # right half blue
    path = write_file(tmp_path / "pal.png", pillow_bytes(image, "PNG", transparency=1))

    photo = read_image(path)
    assert photo.pixels.shape == (4, 6, 3)
    assert photo.alpha is not None
    assert (photo.alpha[:, :3] == 255).all()  # red part opaque
    assert (photo.alpha[:, 3:] == 0).all()  # blue part transparent
    assert tuple(photo.pixels[0, 0]) == (255, 0, 0)


def test_palette_png_without_transparency_has_no_alpha(tmp_path):
    image = Image.fromarray(rgb8(5, 5)).convert("P")
    photo = read_image(write_file(tmp_path / "pal.png", pillow_bytes(image, "PNG")))
    assert photo.alpha is None
    assert photo.pixels.shape == (5, 5, 3)


def test_la_png_gives_gray_and_alpha(tmp_path):
    la = RNG.integers(0, 256, (7, 9, 2), dtype=np.uint8)
    path = write_file(tmp_path / "la.png", pillow_bytes(Image.fromarray(la, "LA"), "PNG"))
    photo = read_image(path)
    assert photo.pixels.shape == (7, 9)
    np.testing.assert_array_equal(photo.pixels, la[..., 0])
    np.testing.assert_array_equal(photo.alpha, la[..., 1])


def test_one_bit_image_reads_as_8_bit_gray(tmp_path):
    image = Image.new("1", (8, 2), 0)
    image.putpixel((3, 1), 1)
    photo = read_image(write_file(tmp_path / "bw.png", pillow_bytes(image, "PNG")))
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (2, 8)
    assert photo.pixels[1, 3] == 255 and photo.pixels.sum() == 255


def test_float_tiff_is_scaled_to_uint16(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = write_file(tmp_path / "f.tif", pillow_bytes(Image.fromarray(values, "F"), "TIFF"))
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, [[0, 32768, 65535]])


def test_int32_tiff_is_clipped_to_uint16(tmp_path):
    values = np.array([[-5, 1000, 70000]], dtype=np.int32)
    path = write_file(tmp_path / "i.tif", pillow_bytes(Image.fromarray(values, "I"), "TIFF"))
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, [[0, 1000, 65535]])


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    path = write_file(tmp_path / "cmyk.jpg", pillow_bytes(cyan, "JPEG", quality=95))
    photo = read_image(path)
    assert photo.pixels.shape == (16, 16, 3) and photo.pixels.dtype == np.uint8
    r, g, b = photo.pixels.reshape(-1, 3).mean(axis=0)
    assert r < 40 and g > 215 and b > 215
    assert photo.is_color


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = pillow_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    photo = read_image(write_file(tmp_path / "anim.gif", data))
    assert photo.size == (10, 6)
    assert tuple(photo.pixels[3, 5]) == (255, 0, 0)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_animated_webp_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = pillow_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    photo = read_image(write_file(tmp_path / "anim.webp", data))
    assert tuple(photo.pixels[3, 5]) == (255, 0, 0)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    # Sensor image 40 wide x 20 high: left half red, right half blue.
    sensor = np.zeros((20, 40, 3), np.uint8)
    sensor[:, :20] = (255, 0, 0)
    sensor[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = write_file(tmp_path / "rot.jpg", pillow_bytes(Image.fromarray(sensor), "JPEG", exif=exif))

    photo = read_image(path)
    assert photo.size == (20, 40)  # width and height swapped
    # Rotating clockwise brings the sensor's left (red) half to the top.
    assert photo.pixels[5, 10, 0] > 200 and photo.pixels[5, 10, 2] < 60
    assert photo.pixels[35, 10, 2] > 200 and photo.pixels[35, 10, 0] < 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    sensor = rgb8(5, 7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pillow_bytes(Image.fromarray(sensor), "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))

    photo = decode_image(data, "o.png")
    np.testing.assert_array_equal(photo.pixels, expected)
    assert photo.pixels.flags.c_contiguous


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_once_on_16_bit_path(orientation):
    # 16-bit colour goes through OpenCV; the eXIf chunk must still be obeyed,
    # exactly like Pillow does for the same 8-bit picture.
    sensor8 = rgb8(5, 7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data8 = pillow_bytes(Image.fromarray(sensor8), "PNG", exif=exif)
    expected16 = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data8)))).astype(np.uint16) * 257

    sensor16 = sensor8.astype(np.uint16) * 257
    png16 = cv2_bytes(np.ascontiguousarray(sensor16[..., ::-1]), ".png")
    data16 = png_with_chunk_after_ihdr(png16, b"eXIf", exif_orientation_bytes(orientation))
    photo = decode_image(data16, "o16.png")
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, expected16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_applied_once_on_16_bit_path(orientation):
    # OpenCV's TIFF decoder would rotate by itself; the result must still
    # match Pillow's exif_transpose of the same picture, i.e. rotate once.
    sensor8 = rgb8(4, 6)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data8 = pillow_bytes(Image.fromarray(sensor8), "TIFF", exif=exif)
    expected16 = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data8)))).astype(np.uint16) * 257

    photo = decode_image(tiff16_bytes(sensor8.astype(np.uint16) * 257, orientation), "o16.tif")
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, expected16)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the bad EXIF
def test_damaged_exif_does_not_reject_the_photo():
    pixels = rgb8(4, 4)
    data = pillow_bytes(Image.fromarray(pixels), "PNG")
    data = png_with_chunk_after_ihdr(data, b"eXIf", b"MM\x00*garbage")
    np.testing.assert_array_equal(decode_image(data).pixels, pixels)


def test_non_ascii_path_with_spaces(tmp_path):
    folder = tmp_path / "фото с пробелом"
    folder.mkdir()
    pixels = rgb16(6, 6)
    path = write_image(folder / "été 1.png", pixels)
    assert path.exists()
    np.testing.assert_array_equal(read_image(path).pixels, pixels)
    assert iter_image_files(folder) == [path]


def test_decode_image_from_bytes_has_no_path():
    pixels = rgb8(3, 3)
    photo = decode_image(pillow_bytes(Image.fromarray(pixels), "BMP"))
    assert photo.path is None
    np.testing.assert_array_equal(photo.pixels, pixels)


# ---------------------------------------------------------------- read errors


def valid_jpeg() -> bytes:
    return pillow_bytes(Image.fromarray(rgb8(64, 64)), "JPEG", quality=90)


def valid_png() -> bytes:
    return pillow_bytes(Image.fromarray(rgb8(64, 64)), "PNG")


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.jpg", lambda: b"", "empty"),
        ("notes.jpg", lambda: b"shopping list: milk, eggs\n" * 10, "not"),
        ("cut.jpg", lambda: valid_jpeg()[: len(valid_jpeg()) // 2], "damaged"),
        ("cut.png", lambda: valid_png()[: len(valid_png()) // 2], "damaged"),
        ("cut16.png", lambda: (lambda d: d[: len(d) // 2])(cv2_bytes(rgb16(64, 64), ".png")), "damaged"),
        ("cut16.tif", lambda: (lambda d: d[: len(d) - 100])(tiff16_bytes(rgb16(64, 64))), "damaged"),
        ("header.png", lambda: valid_png()[:40], "damaged"),
        ("icon.ico", lambda: pillow_bytes(Image.fromarray(rgb8(16, 16)), "ICO"), "not"),
    ],
)
def test_bad_files_raise_colorizer_error_naming_the_file(tmp_path, name, make, reason):
    path = write_file(tmp_path / name, make())
    with pytest.raises(ColorizerError) as info:
        read_image(path)
    message = str(info.value)
    assert name in message and reason in message
    assert "\n" not in message


def test_truncated_jpeg_is_not_padded_silently(tmp_path):
    data = valid_jpeg()
    # Cut near the end: Pillow would happily gray-fill the rest if allowed to.
    path = write_file(tmp_path / "almost.jpg", data[: len(data) - 200])
    with pytest.raises(ColorizerError, match="almost.jpg"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ColorizerError, match=r"ghost\.png.*does not exist"):
        read_image(tmp_path / "ghost.png")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(ColorizerError, match=r"album\.jpg.*folder"):
        read_image(folder)


def giant_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def test_huge_header_is_rejected_fast_without_allocating(tmp_path):
    path = write_file(tmp_path / "bomb.png", giant_png_header(50000, 50000))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ColorizerError) as info:
            read_image(path)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "bomb.png" in message
    assert "50000x50000" in message and "2500 megapixels" in message
    assert "limit of 150 megapixels" in message and "HSVCOLORIZER_MAX_PIXELS" in message
    assert elapsed < 1.0
    assert peak < 5_000_000  # 7.5 GB if it had tried to decode


def test_max_pixels_argument(tmp_path):
    path = write_file(tmp_path / "small.png", pillow_bytes(Image.fromarray(rgb8(10, 10)), "PNG"))
    assert read_image(path, max_pixels=100).size == (10, 10)
    with pytest.raises(ColorizerError, match=r"small\.png is 10x10 pixels.*limit"):
        read_image(path, max_pixels=99)
    with pytest.raises(ColorizerError):
        decode_image(path.read_bytes(), "small.png", max_pixels=99)


def test_max_pixels_environment_variable(tmp_path, monkeypatch):
    path = write_file(tmp_path / "small.png", pillow_bytes(Image.fromarray(rgb8(10, 10)), "PNG"))
    monkeypatch.setenv("HSVCOLORIZER_MAX_PIXELS", "99")
    with pytest.raises(ColorizerError, match="limit"):
        read_image(path)
    # An explicit argument wins over the environment.
    assert read_image(path, max_pixels=100).size == (10, 10)
    monkeypatch.setenv("HSVCOLORIZER_MAX_PIXELS", "100")
    assert read_image(path).size == (10, 10)
    monkeypatch.setenv("HSVCOLORIZER_MAX_PIXELS", "lots")
    with pytest.raises(ColorizerError, match="HSVCOLORIZER_MAX_PIXELS"):
        read_image(path)


def test_default_limit_and_constants():
    assert DEFAULT_MAX_PIXELS == 150_000_000
    assert READ_EXTENSIONS == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
    assert WRITE_FORMATS == {"png": ".png", "jpg": ".jpg", "tiff": ".tif", "webp": ".webp"}


def _fuzz_seeds() -> list[bytes]:
    small = Image.fromarray(rgb8(8, 8))
    return [
        pillow_bytes(small, "PNG"),
        pillow_bytes(small, "JPEG"),
        pillow_bytes(small, "GIF"),
        pillow_bytes(small, "TIFF"),
        pillow_bytes(small, "BMP"),
        cv2_bytes(rgb16(8, 8), ".png"),
        cv2_bytes(rgb16(8, 8), ".tif"),
    ]


FUZZ_SEEDS = _fuzz_seeds()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about some damage
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(FUZZ_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10_000),
)
def test_damaged_bytes_never_escape_as_raw_exceptions(seed, edits, cut):
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut % len(data))])
    try:
        photo = decode_image(data, "fuzz.png")
    except ColorizerError as exc:
        assert "fuzz.png" in str(exc)
    else:
        assert photo.pixels.dtype in (np.uint8, np.uint16)
        assert photo.pixels.ndim in (2, 3)


# ---------------------------------------------------------------- writing


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def fail_half_way(fileobj, data):
    """Write half the data, then report a full disk, like a real ENOSPC."""
    fileobj.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_leaves_no_target_and_no_temp_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(imageio, "_write_bytes", fail_half_way)
    with pytest.raises(ColorizerError) as info:
        write_image(out / "photo.png", rgb8())
    assert "photo.png" in str(info.value)
    assert os.strerror(errno.ENOSPC) in str(info.value)
    assert not (out / "photo.png").exists()
    assert list(out.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"previous result")
    monkeypatch.setattr(imageio, "_write_bytes", fail_half_way)
    with pytest.raises(ColorizerError):
        write_image(target, rgb8())
    assert target.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == []


def test_successful_write_replaces_existing_file(tmp_path):
    target = tmp_path / "photo.png"
    target.write_bytes(b"old")
    pixels = rgb8()
    write_image(target, pixels)
    np.testing.assert_array_equal(read_image(target).pixels, pixels)
    assert leftovers(tmp_path) == []


def test_temp_file_is_hidden_and_in_target_folder(tmp_path, monkeypatch):
    seen = []
    real_write = imageio._write_bytes

    # os.fdopen file objects are named by descriptor, so look at the folder
    # while the temporary file is open.
    def spy_listing(fileobj, data):
        seen.extend(p for p in tmp_path.iterdir())
        real_write(fileobj, data)

    monkeypatch.setattr(imageio, "_write_bytes", spy_listing)
    write_image(tmp_path / "photo.png", rgb8())
    assert len(seen) == 1
    temp = seen[0]
    assert temp.parent == tmp_path
    assert temp.name.startswith(".photo.png.") and temp.name.endswith(".tmp")
    assert not temp.exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_file_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_image(tmp_path / "photo.png", rgb8())
    finally:
        os.umask(umask)
    # Not the owner-only 0600 of a typical temporary file.
    assert path.stat().st_mode & 0o777 == 0o644


def test_missing_output_folder(tmp_path):
    with pytest.raises(ColorizerError, match=r"photo\.png.*folder.*does not exist"):
        write_image(tmp_path / "nope" / "photo.png", rgb8())
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user"
)
def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ColorizerError, match=r"photo\.png.*permission denied"):
            write_image(folder / "photo.png", rgb8())
    finally:
        folder.chmod(0o755)


def test_unsupported_output_extension(tmp_path):
    with pytest.raises(ColorizerError, match=r"photo\.gif"):
        write_image(tmp_path / "photo.gif", rgb8())


def test_bad_quality_is_refused(tmp_path):
    with pytest.raises(ColorizerError, match="quality"):
        write_image(tmp_path / "photo.jpg", rgb8(), quality=0)


def test_16_bit_written_as_jpeg_becomes_8_bit(tmp_path):
    # A smooth image so JPEG error stays small.
    ramp = np.linspace(0, 65535, 32, dtype=np.float64)
    pixels = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((32, 32), 30000.0)), axis=2)
    pixels = pixels.astype(np.uint16)
    photo = read_image(write_image(tmp_path / "photo.jpg", pixels, quality=100))
    assert photo.pixels.dtype == np.uint8
    expected = np.rint(pixels / 257.0)
    assert np.abs(photo.pixels.astype(float) - expected).max() <= 4


@pytest.mark.parametrize("quality, sampling", [(95, 0), (90, 0), (89, 2), (75, 2)])
def test_jpeg_keeps_full_colour_resolution_at_high_quality(tmp_path, quality, sampling):
    # 4:4:4 (0) from quality 90 up: colour is the whole output; 4:2:0 (2) below.
    from PIL import JpegImagePlugin

    with Image.open(write_image(tmp_path / "photo.jpg", rgb8(32, 48), quality=quality)) as im:
        assert JpegImagePlugin.get_sampling(im) == sampling


def test_jpeg_matches_pillow_at_the_same_quality(tmp_path):
    # The same libjpeg settings whichever library encodes: a photo saved
    # as JPEG looks as it did when Pillow wrote it.
    rng = np.random.default_rng(3)
    pixels = cv2.resize((rng.random((12, 16, 3)) * 255).astype(np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
    ours = read_image(write_image(tmp_path / "ours.jpg", pixels, quality=92)).pixels
    pillow = read_image(write_file(tmp_path / "pillow.jpg", pillow_bytes(Image.fromarray(pixels), "JPEG", quality=92,
                                                                          subsampling=0))).pixels
    assert np.abs(ours.astype(int) - pillow.astype(int)).max() <= 1


@pytest.mark.parametrize("size", [3000, 65519, 65520, 200_000])
def test_jpeg_keeps_an_icc_profile_of_any_size(tmp_path, size):
    # A profile over one JPEG segment (65519 bytes of it) is split over
    # several, as the ICC specification says; smaller ones take one.
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    profile = srgb[:128] + bytes(np.random.default_rng(size).integers(0, 256, size - 128, dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "TestMake"
    out = write_image(tmp_path / "photo.jpg", rgb8(), quality=95, exif=exif.tobytes(), icc_profile=profile)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == profile
        assert im.getexif().get(0x010F) == "TestMake"


def test_to_8bit_rounds_like_division_by_257():
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(imageio.to_8bit(values), np.rint(values / 257.0).astype(np.uint8))


def test_jpeg_drops_alpha(tmp_path):
    alpha = np.zeros((12, 17), np.uint8)
    photo = read_image(write_image(tmp_path / "photo.jpeg", rgb8(), alpha))
    assert photo.alpha is None and photo.pixels.shape == (12, 17, 3)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_keeps_alpha_and_becomes_8_bit(tmp_path):
    pixels = np.full((8, 8, 3), 40000, np.uint16)
    alpha = np.full((8, 8), 65535, np.uint16)
    alpha[:, :4] = 0
    photo = read_image(write_image(tmp_path / "photo.webp", pixels, alpha, quality=100))
    assert photo.pixels.dtype == np.uint8
    assert photo.alpha is not None
    assert (photo.alpha[:, :4] == 0).all() and (photo.alpha[:, 4:] == 255).all()


def test_gray_with_alpha_png_round_trip(tmp_path):
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    photo = read_image(write_image(tmp_path / "ga.png", gray, alpha))
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal(photo.pixels[..., 0] if photo.pixels.ndim == 3 else photo.pixels, gray)
    assert not photo.is_color


def test_gray_png_round_trip_is_2d(tmp_path):
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    photo = read_image(write_image(tmp_path / "g.png", gray))
    assert photo.pixels.shape == (5, 6)
    np.testing.assert_array_equal(photo.pixels, gray)


def test_wrong_array_shape_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8), np.zeros((3, 4), np.uint8))


# ---------------------------------------------------------------- output paths


@pytest.mark.parametrize(
    ("src", "fmt", "expected"),
    [
        ("in/a.jpg", "png", "a_color.png"),
        ("in/a.png", "jpg", "a_color.jpg"),
        ("in/a.png", "tiff", "a_color.tif"),
        ("in/a.png", "WEBP", "a_color.webp"),
        ("in/a.jpeg", "same", "a_color.jpeg"),
        ("in/a.JPG", "same", "a_color.JPG"),
        ("in/a.tiff", "same", "a_color.tiff"),
        ("in/a.webp", "same", "a_color.webp"),
        ("in/a.gif", "same", "a_color.png"),
        ("in/a.bmp", "same", "a_color.png"),
        ("in/my.holiday.photo.jpg", "png", "my.holiday.photo_color.png"),
    ],
)
def test_output_path_for(src, fmt, expected):
    assert output_path_for(Path(src), Path("out"), fmt) == Path("out") / expected


def test_output_path_for_unknown_format():
    with pytest.raises(ColorizerError, match="bmp"):
        output_path_for(Path("a.png"), Path("out"), "bmp")


# ---------------------------------------------------------------- folders


def make_tree(root: Path) -> None:
    png = pillow_bytes(Image.fromarray(rgb8(2, 2)), "PNG")
    for relative in ["b.png", "A.JPG", "c.TiFf", "sub/d.webp", "sub/deeper/e.gif", "sub/.hidden.png"]:
        write_file(root / relative, png)
    for relative in ["notes.txt", "raw.cr2", ".thumb.jpg", "sub/readme.md", ".cache/f.png"]:
        write_file(root / relative, b"x")


def test_iter_image_files_non_recursive(tmp_path):
    make_tree(tmp_path)
    assert iter_image_files(tmp_path) == [tmp_path / "A.JPG", tmp_path / "b.png", tmp_path / "c.TiFf"]


def test_iter_image_files_recursive(tmp_path):
    make_tree(tmp_path)
    assert iter_image_files(str(tmp_path), recursive=True) == sorted(
        [
            tmp_path / "A.JPG",
            tmp_path / "b.png",
            tmp_path / "c.TiFf",
            tmp_path / "sub" / "d.webp",
            tmp_path / "sub" / "deeper" / "e.gif",
        ]
    )


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_iter_image_files_survives_symlink_loop(tmp_path):
    make_tree(tmp_path)
    os.symlink(tmp_path, tmp_path / "sub" / "loop", target_is_directory=True)
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "deeper" / "up", target_is_directory=True)
    files = iter_image_files(tmp_path, recursive=True)
    assert len(files) == 5
    assert len({f.resolve() for f in files}) == 5


def test_iter_image_files_bad_folder(tmp_path):
    with pytest.raises(ColorizerError, match="does not exist"):
        iter_image_files(tmp_path / "missing")
    file = write_file(tmp_path / "a.png", b"x")
    with pytest.raises(ColorizerError, match="not a folder"):
        iter_image_files(file)


# ---------------------------------------------------------------- Photo


def test_gray_saved_as_rgb_is_not_color(tmp_path):
    gray = RNG.integers(0, 256, (10, 10), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    photo = read_image(write_image(tmp_path / "gray_rgb.png", rgb))
    assert photo.pixels.shape == (10, 10, 3)
    assert not photo.is_color


def test_color_image_is_color(tmp_path):
    photo = read_image(write_image(tmp_path / "color.png", rgb8()))
    assert photo.is_color


def test_is_color_tolerance():
    # Gray unless the mean chroma, max - min over R, G, B, reaches
    # imageio.GRAY_CHROMA_THRESHOLD (1 level): the rule training uses too.
    base = np.full((4, 4, 3), 100, np.uint8)
    base[0, 0] = (100, 110, 90)  # one coloured speck: mean chroma 20 / 16 levels
    assert Photo(base).is_color
    base[0, 0] = (100, 104, 98)  # a smaller one: 6 / 16, noise
    assert not Photo(base).is_color
    base[:, :, 2] = 99  # a faint cast over the whole photo: chroma 1 everywhere
    assert Photo(base).is_color
    assert not Photo(base[..., 0]).is_color  # 2-D gray

    base16 = np.full((4, 4, 3), 116 * 257, np.uint16)
    base16[..., 2] += 128  # still 8-bit level 116 (to_8bit rounds)
    assert not Photo(base16).is_color
    base16[..., 2] += 1  # level 117 now
    assert Photo(base16).is_color


def test_jpeg_takes_exif_as_pillow_did(tmp_path):
    # bytes, or Pillow's own Exif object, as write_image took before it used OpenCV
    exif = Image.Exif()
    exif[0x010F] = "TestMake"
    for given in (exif, exif.tobytes(), bytearray(exif.tobytes())):
        with Image.open(write_image(tmp_path / "photo.jpg", rgb8(), exif=given)) as im:
            assert im.getexif().get(0x010F) == "TestMake"
