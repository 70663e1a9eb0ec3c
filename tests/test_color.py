"""Colour maths: HSV against OpenCV, circular hue resizing, luma-preserving recomposition."""

import cv2
import numpy as np
import pytest
import torch

from hsvcolorizer import color


def test_hsv_round_trip_matches_opencv():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8).astype(np.float32) / 255.0
    ours = color.rgb_to_hsv(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    cv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    ref = np.dstack([cv[..., 0] / 360.0, cv[..., 1], cv[..., 2]]) * 2 - 1
    # Hue is circular: compare on the circle; S and V directly.
    dh = np.abs(ours[..., 0] - ref[..., 0])
    dh = np.minimum(dh, 2 - dh)
    assert dh.max() <= 0.5 / 255 * 2
    assert np.abs(ours[..., 1:] - ref[..., 1:]).max() <= 0.5 / 255 * 2
    back = color.hsv_to_rgb(torch.from_numpy(ours).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(back - rgb).max() <= 0.5 / 255
    # numpy path agrees with the torch path
    assert np.abs(color.hsv_to_rgb_np(color.rgb_to_hsv_np(rgb)) - rgb).max() <= 0.5 / 255


def test_hsv_scaled_to_minus_one_one():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    h, s, v = color.rgb_to_hsv(red).flatten().tolist()
    assert (h, s, v) == pytest.approx((-1.0, 1.0, 1.0))
    gray = torch.full((1, 3, 1, 1), 0.5)
    assert color.rgb_to_hsv(gray)[0, 1].item() == pytest.approx(-1.0)  # S = 0


def test_circular_resize_keeps_red_across_the_wrap():
    # Alternating columns of hue just below 1 and just above -1: both red.
    hs = torch.ones(1, 2, 8, 8)
    hs[:, 0, :, 0::2] = 0.95
    hs[:, 0, :, 1::2] = -0.95
    small = color.resize_hs(hs, (4, 4), circular=True)
    hue = small[0, 0].abs()
    assert (hue > 0.9).all(), "red stayed red"
    plain = color.resize_hs(hs, (4, 4), circular=False)
    assert (plain[0, 0].abs() < 0.5).all(), "a plain resize turns red into cyan-green (H near 0)"
    # the numpy enlargement used at full resolution agrees
    field = color.enlarge_hs_np(hs[0].numpy()[:, :, :2], 16, 8, circular=True)
    h, _ = color.vector_to_hs_np(field)
    assert (np.abs(h) > 0.9).all()


def test_circular_resize_has_finite_gradients_at_zero_saturation():
    hs = torch.zeros(1, 2, 8, 8)
    hs[:, 1] = -1.0  # S = 0 everywhere: hue undefined
    hs.requires_grad_(True)
    color.resize_hs(hs, (16, 16)).sum().backward()
    assert torch.isfinite(hs.grad).all()


def test_luma_recomposition_preserves_the_gray():
    rng = np.random.default_rng(2)
    gray = rng.random((50, 70)).astype(np.float32)
    h = rng.uniform(-1, 1, (50, 70)).astype(np.float32)
    s = rng.random((50, 70)).astype(np.float32)
    rgb = color.recompose(gray, h, s, "luma")
    assert rgb.min() >= 0 and rgb.max() <= 1 + 1e-6
    assert np.abs(color.rgb_to_luma_np(rgb) - gray).max() < 1e-5
    # after 8-bit quantisation, within 1/255 everywhere
    hs = np.stack([h, s * 2 - 1])
    field = color.enlarge_hs_np(hs, 70, 50)
    out = color.render_full(gray, field, "luma", 1.0)
    assert np.abs(color.rgb_to_luma_np(out / 255.0) - gray).max() <= 1 / 255


def test_v_recomposition_uses_gray_as_value():
    gray = np.full((4, 4), 0.6, np.float32)
    rgb = color.recompose(gray, np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32), "v")
    assert rgb.max(2) == pytest.approx(np.full((4, 4), 0.6))


def test_real_photo_luma_reconstruction_beats_v():
    # With the ground truth's own H and S, luma recomposition reproduces a
    # colour photo almost exactly; using the gray as V does not.
    from tests.conftest import colour_image

    rgb = colour_image(64, 64).astype(np.float32) / 255
    hsv = color.rgb_to_hsv_np(rgb)
    gray = color.rgb_to_luma_np(rgb)
    s01 = (hsv[..., 1] + 1) / 2
    psnr = lambda a: 10 * np.log10(1 / np.mean((a - rgb) ** 2))  # noqa: E731
    assert psnr(color.recompose(gray, hsv[..., 0], s01, "luma")) > 60
    assert psnr(color.recompose(gray, hsv[..., 0], s01, "v")) < 35


def test_saturation_gain_clips():
    gray = np.full((8, 8), 0.5, np.float32)
    hs = np.stack([np.zeros((8, 8)), np.zeros((8, 8))]).astype(np.float32)  # S = 0.5
    field = color.enlarge_hs_np(hs, 8, 8)
    dull = color.render_full(gray, field, "luma", 0.0)
    assert (dull.max(2) - dull.min(2)).max() <= 1
    vivid = color.render_full(gray, field, "luma", 4.0)
    assert (vivid.astype(int).max(2) - vivid.astype(int).min(2)).min() > 100
