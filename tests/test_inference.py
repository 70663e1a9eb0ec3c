"""Colorizer API: any size, stage outputs, full-resolution recomposition."""

import numpy as np
import pytest
import torch

from hsvcolorizer import color
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer, working_shape
from tests.conftest import colour_image


@pytest.fixture
def colorizer(tiny_weights):
    return Colorizer.load(tiny_weights, "cpu")


@pytest.mark.parametrize("shape", [(333, 517), (517, 333), (1, 1), (1, 37), (5, 3)])
def test_any_size_gives_full_size_output(colorizer, shape):
    gray = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    res = colorizer.colorize(gray, working_size=128)
    out = res.render()
    assert out.shape == shape + (3,) and out.dtype == np.uint8
    h, w = res.working_size
    assert res.refined_hs.shape == (2, h, w)
    assert res.stage1_hs.shape[0] == 2 and res.stage1_hs.shape[1] <= max(1, h // 4 + 1)
    assert res.render("stage1").shape == shape + (3,)
    assert res.hue_image("stage1").shape[2] == 3 and res.saturation_image("refined").shape[:2] == (h, w)


def test_working_size_caps_the_long_side_and_never_enlarges():
    assert working_shape(4000, 6000, 256) == (171, 256)
    assert working_shape(100, 80, 256) == (100, 80)


def test_output_luma_equals_input_gray(colorizer):
    gray = (np.random.default_rng(1).random((90, 120)) * 255).astype(np.uint8)
    out = colorizer.colorize(gray).render(mode="luma", saturation=2.0)
    luma = color.rgb_to_luma_np(out.astype(np.float32))
    assert np.abs(luma - gray).max() <= 1.0 + 1e-3


def test_colour_input_is_turned_into_luma_first(colorizer):
    rgb = colour_image(40, 50)
    a = colorizer.colorize(rgb).render()
    b = colorizer.colorize(color.rgb_to_luma_u8(rgb)).render()
    # Only the rounding of the gray to 8 bits differs (amplified where luma is low).
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 5


def test_rerender_needs_no_network_run(colorizer, monkeypatch):
    res = colorizer.colorize(colour_image(30, 30))
    calls = []
    monkeypatch.setattr(colorizer.model, "forward", lambda *a: calls.append(1))
    one = res.render(saturation=0.5)
    two = res.render(saturation=1.5)
    assert not calls and not np.array_equal(one, two)


def test_alpha_and_16_bit_pass_through(colorizer, tmp_path):
    px = (np.random.default_rng(2).random((20, 30)) * 65535).astype(np.uint16)
    alpha = np.full((20, 30), 40000, np.uint16)
    write_image(tmp_path / "a.png", np.dstack([px] * 3), alpha=alpha)
    photo = read_image(tmp_path / "a.png")
    res = colorizer.colorize(photo)
    out = res.render()
    assert out.dtype == np.uint16 and res.alpha is not None
    write_image(tmp_path / "out.png", out, alpha=res.alpha)
    back = read_image(tmp_path / "out.png")
    assert back.pixels.dtype == np.uint16 and np.array_equal(back.alpha, alpha)


def test_bad_options_are_user_errors(colorizer):
    res = colorizer.colorize(np.zeros((8, 8), np.uint8))
    with pytest.raises(ColorizerError):
        res.render(mode="lab")
    with pytest.raises(ColorizerError):
        colorizer.colorize(np.zeros((8, 8, 2), np.uint8))


def test_untrained_colorizer_runs_on_cpu():
    c = Colorizer.untrained(device="cpu")
    assert c.device == torch.device("cpu") and c.device_name == "CPU"


def test_v_trained_model_sees_v_of_a_colour_photo(tmp_path, tiny_config):
    from hsvcolorizer.networks import TwoStageColorizer
    from hsvcolorizer.weights import save_weights

    p = save_weights(TwoStageColorizer(tiny_config), tmp_path / "v.safetensors", {"input_channel": "v"})
    c = Colorizer.load(p, "cpu")
    rgb = colour_image(24, 24)
    seen = []
    orig = c._predict
    c._predict = lambda photo, *rest: (seen.append(photo.small.copy()), orig(photo, *rest))[1]
    res = c.colorize(rgb)
    assert np.allclose(seen[0], rgb.max(axis=2) / 255.0, atol=1e-6)
    # `v` recomposition keeps that V; `luma` keeps the luma
    out_v = res.render(mode="v").astype(np.float32)
    assert np.abs(out_v.max(axis=2) - rgb.max(axis=2)).max() <= 1
    out_l = res.render(mode="luma").astype(np.float32)
    assert np.abs(color.rgb_to_luma_np(out_l) - color.rgb_to_luma_np(rgb.astype(np.float32))).max() <= 1.5
