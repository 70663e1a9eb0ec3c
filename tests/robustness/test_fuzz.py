"""Issue part 2: property tests of the colour maths, and a fuzzer for the image reader.

Colour conversions: whatever the input, outputs stay in their ranges, are
finite, and round trips and the luma recomposition hold.  Image reader: any
bytes at all, random or mutated from valid PNG, JPEG, TIFF and GIF files
(8- and 16-bit, so both Pillow and OpenCV are exercised), give a Photo or a
ColorizerError naming the input, and print nothing on stderr.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hsvcolorizer import color
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import decode_image
from tests.robustness.conftest import (
    _rgb16,
    valid_gif_bytes,
    valid_jpeg_bytes,
    valid_png_bytes,
    valid_tiff_bytes,
)
from tests.conftest import cv2_bytes

# Pillow warns about some of the damage made here; in a real run imageio
# silences those warnings (test_images checks the CLI's stderr stays clean).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

LUMA = np.array(color.LUMA_WEIGHTS, np.float64)

unit = st.floats(0.0, 1.0, allow_nan=False, width=32)
signed = st.floats(-1.0, 1.0, allow_nan=False, width=32)
# Any hue angle, several turns either way, and the wrap points exactly.
any_hue = st.one_of(st.sampled_from([-1.0, 1.0, 0.0, -3.0, 3.0]), st.floats(-4.0, 4.0, allow_nan=False, width=32))
# Gray with its extremes drawn often: 0 and 1 are where clipping bugs live.
gray_level = st.one_of(st.sampled_from([0.0, 1.0, 1e-7, 1.0 - 1e-7]), unit)
sides = st.integers(1, 9)


def image_of(channels: int, elements, min_side: int = 1):
    return st.tuples(st.integers(min_side, 9), st.integers(min_side, 9)).flatmap(
        lambda hw: arrays(np.float32, (*hw, channels), elements=elements))


# ---------------------------------------------------------------------------
# torch conversions (training and the networks)
# ---------------------------------------------------------------------------


@FUZZ
@given(rgb=image_of(3, unit))
def test_torch_rgb_to_hsv_in_range_and_round_trips(rgb):
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    hsv = color.rgb_to_hsv(x)
    assert torch.isfinite(hsv).all()
    assert hsv.min() >= -1.0 and hsv.max() <= 1.0
    back = color.hsv_to_rgb(hsv)
    assert torch.allclose(back, x, atol=2e-6)


@FUZZ
@given(h=image_of(1, st.floats(-4.0, 4.0, allow_nan=False, width=32)), s=image_of(1, signed), v=image_of(1, signed))
def test_torch_hsv_to_rgb_in_range_for_any_input(h, s, v):
    hh, ww = min(h.shape[0], s.shape[0], v.shape[0]), min(h.shape[1], s.shape[1], v.shape[1])
    hsv = torch.from_numpy(np.dstack([h[:hh, :ww], s[:hh, :ww], v[:hh, :ww]])).permute(2, 0, 1)[None]
    rgb = color.hsv_to_rgb(hsv)
    assert torch.isfinite(rgb).all()
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0 + 1e-6


@FUZZ
@given(rgb=image_of(3, unit))
def test_torch_luma_in_range(rgb):
    luma = color.rgb_to_luma(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    assert luma.min() >= 0.0 and luma.max() <= 1.0 + 1e-6


# ---------------------------------------------------------------------------
# numpy conversions (full-resolution rendering)
# ---------------------------------------------------------------------------


@FUZZ
@given(rgb=image_of(3, unit))
def test_numpy_rgb_to_hsv_in_range_and_round_trips(rgb):
    hsv = color.rgb_to_hsv_np(rgb)
    assert np.isfinite(hsv).all()
    assert hsv.min() >= -1.0 and hsv.max() <= 1.0
    assert np.abs(color.hsv_to_rgb_np(hsv) - rgb).max() <= 1e-5


@FUZZ
@given(hsv=image_of(3, st.floats(-3.0, 3.0, allow_nan=False, width=32)))
def test_numpy_hsv_to_rgb_in_range_for_any_input(hsv):
    rgb = color.hsv_to_rgb_np(hsv)
    assert np.isfinite(rgb).all() and rgb.min() >= 0.0 and rgb.max() <= 1.0 + 1e-6


# ---------------------------------------------------------------------------
# Recomposition: the output's luma is the photo's gray, for any H and S
# ---------------------------------------------------------------------------


@FUZZ
@given(
    n=st.integers(1, 64),
    data=st.data(),
)
def test_recompose_keeps_luma_for_any_hue_saturation_and_gray(n, data):
    h = np.array(data.draw(st.lists(any_hue, min_size=n, max_size=n)), np.float32)[None]
    s = np.array(data.draw(st.lists(unit, min_size=n, max_size=n)), np.float32)[None]
    g = np.array(data.draw(st.lists(gray_level, min_size=n, max_size=n)), np.float32)[None]
    out = color.recompose(g, h, s, "luma")
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert np.abs(out.astype(np.float64) @ LUMA - g).max() <= 2e-6
    # The paper's recomposition: gray is V, the largest channel.
    v = color.recompose(g, h, s, "v")
    assert np.abs(v.max(axis=2) - g).max() <= 1e-6


@FUZZ
@given(gray=image_of(1, gray_level), hs=st.data())
def test_render_full_keeps_luma_at_8_and_16_bits(gray, hs):
    g = gray[..., 0]
    small = hs.draw(arrays(np.float32, (2, hs.draw(sides), hs.draw(sides)), elements=signed))
    field = color.enlarge_hs_np(small, g.shape[1], g.shape[0])
    for bits, peak in ((8, 255.0), (16, 65535.0)):
        out = color.render_full(g, field, "luma", 1.0, True, bits, rows_per_strip=3)
        assert out.shape == (*g.shape, 3)
        # One rounding of each channel moves the luma by at most half a level.
        assert np.abs(out.astype(np.float64) @ LUMA / peak - g).max() <= 0.5 / peak + 1e-6


# ---------------------------------------------------------------------------
# Circular resizing of H, S
# ---------------------------------------------------------------------------


@FUZZ
@given(
    hs=st.tuples(sides, sides).flatmap(lambda hw: arrays(np.float32, (1, 2, *hw), elements=signed)),
    size=st.tuples(sides, sides),
    circular=st.booleans(),
)
def test_torch_resize_hs_in_range_finite_with_finite_gradients(hs, size, circular):
    x = torch.from_numpy(hs).requires_grad_(True)
    out = color.resize_hs(x, size, circular=circular)
    assert out.shape == (1, 2, *size)
    assert torch.isfinite(out).all()
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6
    if out is not x:
        out.sum().backward()
        assert torch.isfinite(x.grad).all()


@FUZZ
@given(
    hs=st.tuples(sides, sides).flatmap(lambda hw: arrays(np.float32, (2, *hw), elements=signed)),
    size=st.tuples(sides, sides),
    circular=st.booleans(),
)
def test_numpy_enlarge_hs_in_range_and_finite(hs, size, circular):
    width, height = size
    field = color.enlarge_hs_np(hs, width, height, circular)
    assert field.shape == (height, width, 3) and np.isfinite(field).all()
    h, s01 = color.vector_to_hs_np(field, circular)
    assert h.min() >= -1.0 - 1e-6 and h.max() <= 1.0 + 1e-6
    assert s01.min() >= 0.0 and s01.max() <= 1.0


@FUZZ
@given(
    offsets=st.tuples(sides, sides).flatmap(
        lambda hw: arrays(np.float32, hw, elements=st.floats(-0.125, 0.125, allow_nan=False, width=32))),
    size=st.tuples(sides, sides),
)
def test_circular_resize_keeps_red_red_across_the_wrap(offsets, size):
    """Hues within 0.125 of the wrap point (red) stay red, never averaged to cyan."""
    h = np.where(offsets >= 0, -1.0 + offsets, 1.0 + offsets).astype(np.float32)
    hs = np.stack([h, np.ones_like(h)])
    out = color.resize_hs(torch.from_numpy(hs)[None], size)[0, 0]
    assert (out.abs() >= 0.875 - 1e-5).all()
    width, height = size
    h_np, _ = color.vector_to_hs_np(color.enlarge_hs_np(hs, width, height))
    assert (np.abs(h_np) >= 0.875 - 1e-5).all()


# ---------------------------------------------------------------------------
# The image reader against arbitrary bytes
# ---------------------------------------------------------------------------

SEEDS = {
    "png": valid_png_bytes(12, 10),
    "jpeg": valid_jpeg_bytes(12, 10),
    "tiff": valid_tiff_bytes(8, 10),
    "gif": valid_gif_bytes(8, 10),
    "png16": cv2_bytes(_rgb16(6, 7), ".png"),  # decoded by OpenCV
    "tiff16": cv2_bytes(_rgb16(6, 7), ".tif"),  # decoded by OpenCV
}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"II*\x00", b"MM\x00*", b"BM",
         b"RIFF\x00\x00\x00\x00WEBP", b"\x00\x00\x01\x00", b"%PDF-"]


def assert_decodes_or_refuses(data: bytes) -> None:
    try:
        photo = decode_image(data, "fuzzed input")
    except ColorizerError as exc:
        message = str(exc)
        assert "fuzzed input" in message and "\n" not in message
    else:  # a valid image after all: then a usable one
        px = photo.pixels
        assert px.dtype in (np.uint8, np.uint16) and px.ndim in (2, 3) and px.size > 0
        assert photo.alpha is None or photo.alpha.shape == px.shape[:2]


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_are_valid_images(kind):
    decode_image(SEEDS[kind])


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes(data, capfd):
    assert_decodes_or_refuses(data)
    assert capfd.readouterr().err == ""


@FUZZ
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=1024))
def test_random_bytes_behind_a_format_signature(magic, tail, capfd):
    assert_decodes_or_refuses(magic + tail)
    assert capfd.readouterr().err == ""


@FUZZ
@given(
    kind=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 1 << 16),
                             st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(1, 1 << 16)),
)
def test_mutated_valid_images(kind, edits, cut, capfd):
    """Flip, insert and delete bytes of a valid file, and maybe cut it short."""
    data = bytearray(SEEDS[kind])
    for op, position, value in edits:
        position %= max(1, len(data))
        if op == "set" and data:
            data[position] = value
        elif op == "insert":
            data.insert(position, value)
        elif data:
            del data[position]
    if cut is not None and data:
        data = data[: cut % len(data) + 1]
    assert_decodes_or_refuses(bytes(data))
    # Decoders' own complaints (libpng, OpenCV's log, Pillow's warnings) would
    # be extra lines around the CLI's one-line error.
    assert capfd.readouterr().err == ""


def test_every_prefix_of_a_16_bit_png_is_refused_quietly(capfd):
    """Systematic, not random: every cut of a 16-bit PNG (OpenCV's path, where
    libpng would print its own complaint if the file reached it)."""
    data = SEEDS["png16"]
    for end in range(0, len(data)):
        with pytest.raises(ColorizerError):
            decode_image(data[:end], "cut")
    assert capfd.readouterr().err == ""
