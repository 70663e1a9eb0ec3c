"""Colour hints: the file format, the map the networks read, the simulated
hints of training, and a hint-reading model made from a hint-free one."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.hints import (HINT_SIDE, Hint, check_inside, hint_map, hints_path_for, read_hints, simulate_hints,
                                write_hints)
from hsvcolorizer.networks import ModelConfig, TwoStageColorizer, add_hint_input


def test_hint_file_round_trips_and_is_named_after_the_photo(tmp_path):
    hints = [Hint(120, 45, (200, 30, 40)), Hint(0, 0, (0, 0, 255))]
    path = hints_path_for(tmp_path / "photo.jpg")
    assert path.name == "photo.hints.json"
    write_hints(path, hints)
    assert json.loads(path.read_text())["hints"][0] == {"x": 120, "y": 45, "rgb": [200, 30, 40]}
    assert read_hints(path) == hints
    assert [p.name for p in tmp_path.iterdir()] == ["photo.hints.json"]  # no temporary file left


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"points": []}', 'expected {"hints"'),
    ('{"hints": [{"x": 1, "y": 2}]}', "hint 1"),
    ('{"hints": [{"x": 1, "y": 2, "rgb": [1, 2]}]}', "three numbers"),
    ('{"hints": [{"x": 1, "y": 2, "rgb": [1, 2, 300]}]}', "0-255"),
    ('{"hints": [{"x": 1.5, "y": 2, "rgb": [1, 2, 3]}]}', "x must be a whole number"),
    ('{"hints": [{"x": true, "y": 2, "rgb": [1, 2, 3]}]}', "x must be a whole number"),
    # found by a reviewer: each of these was a traceback, and in `batch` it stopped the whole batch
    ('{"hints": [{"x": ' + "9" * 400 + ', "y": 2, "rgb": [1, 2, 3]}]}', "x is far too large"),
    ('{"hints": [{"x": 1e400, "y": 2, "rgb": [1, 2, 3]}]}', "x must be a whole number"),
    ('{"hints": [{"x": ' + "9" * 5000 + ', "y": 2, "rgb": [1, 2, 3]}]}', "not a hint file"),
    ("[" * 100000 + "]" * 100000, "not a hint file"),
])
def test_a_malformed_hint_file_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "p.hints.json"
    path.write_text(text)
    with pytest.raises(ColorizerError, match=message) as err:
        read_hints(path)
    assert "\n" not in str(err.value) and "p.hints.json" in str(err.value)


def test_a_point_outside_the_photo_is_refused():
    check_inside([Hint(99, 49, (1, 2, 3))], 100, 50)
    with pytest.raises(ColorizerError, match=r"hint 2: \(100, 10\) is outside the photo, which is 100x50"):
        check_inside([Hint(1, 1, (1, 2, 3)), Hint(100, 10, (1, 2, 3))], 100, 50)


def test_hint_map_puts_the_colour_where_the_point_is_and_zeros_elsewhere():
    # A 1000x500 photo seen at 256x128: photo pixel (500, 250) is working (128, 64).
    m = hint_map([Hint(500, 250, (255, 0, 0))], (1000, 500), (128, 256), (128, 256))
    assert m.shape == (4, 128, 256) and m.dtype == np.float32
    mask = m[3] > 0
    rows, cols = np.nonzero(mask)
    assert mask.sum() == HINT_SIDE * HINT_SIDE
    assert rows.min() <= 64 <= rows.max() and cols.min() <= 128 <= cols.max()
    # The angle is H pi with H in [-1, 1] as everywhere (hs_features): pure
    # red (hue 0, H = -1) is (cos, sin) = (-1, 0), S 1.
    np.testing.assert_allclose(m[:, 64, 128], [-1, 0, 1, 1], atol=1e-6)
    assert not m[:, ~mask].any()
    # Blue, hue 240 degrees: H = 2 * 2/3 - 1 = 1/3, angle pi/3.
    blue = hint_map([Hint(0, 0, (0, 0, 255))], (10, 10), (8, 8))
    assert math.isclose(math.atan2(blue[1, 0, 0], blue[0, 0, 0]), math.pi / 3, abs_tol=1e-5)
    assert not hint_map([], (10, 10), (8, 8)).any()


def test_simulated_hints_follow_the_recipe():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(400, 3, 32, 32)
    m = simulate_hints(rgb, g, max_points=10_000)
    assert m.shape == (400, 4, 32, 32)
    hinted = m[:, 3].flatten(1).amax(1) > 0
    assert 0.4 < hinted.float().mean() < 0.6  # about half of the photos have none
    # Where the mask is 0 the map is 0; where it is 1 the hue is a unit vector.
    assert not m[:, :3][m[:, 3:].expand(-1, 3, -1, -1) == 0].any()
    on = m[:, 3] > 0
    radius = m[:, 0][on] ** 2 + m[:, 1][on] ** 2
    torch.testing.assert_close(radius, torch.ones_like(radius), atol=1e-4, rtol=0)
    # Same generator seed, same hints (a resumed run repeats them).
    again = simulate_hints(rgb, torch.Generator().manual_seed(0), max_points=10_000)
    assert torch.equal(m, again)


def test_simulated_hint_colour_is_the_photos_colour_there():
    # Left half red, right half blue: every hint square fully inside a half
    # has that half's colour.
    rgb = torch.zeros(64, 3, 32, 32)
    rgb[:, 0, :, :16] = 1.0
    rgb[:, 2, :, 16:] = 1.0
    m = simulate_hints(rgb, torch.Generator().manual_seed(1), no_hint_share=0.0)
    on = m[:, 3] > 0
    cols = torch.arange(32).view(1, 1, 32).expand(64, 32, 32)
    left = on & (cols < 9)
    right = on & (cols > 22)
    assert left.any() and right.any()
    assert torch.allclose(m[:, 0][left], -torch.ones(int(left.sum())), atol=1e-5)  # red: cos(-pi)
    blue = math.cos(math.pi / 3)
    assert torch.allclose(m[:, 0][right], torch.full((int(right.sum()),), blue), atol=1e-5)


def test_a_hint_model_made_from_a_hint_free_one_starts_with_its_colours():
    torch.manual_seed(0)
    plain = TwoStageColorizer(ModelConfig(hue_vector=True, lrcmgn_widths=[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 2],
                                          rcn_branch_widths=[8, 8], rcn_fuse_width=8, rcn_head_widths=[8]))
    config = ModelConfig(**{**plain.config.to_dict(), "hint_input": True})
    hinted = TwoStageColorizer(config)
    hinted.load_state_dict(add_hint_input(plain.state_dict()))
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    hints = torch.from_numpy(hint_map([Hint(3, 3, (255, 0, 0))], (32, 32), (32, 32))).expand(2, -1, -1, -1)
    with torch.no_grad():
        a = plain(gray)
        b = hinted(gray)
        c = hinted(gray, hints)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    for x, y in zip(a, c):
        torch.testing.assert_close(x, y)


def test_training_with_hints_starts_from_a_hint_free_model_and_learns_to_read_hints(photo_folder, tmp_path):
    from hsvcolorizer.training import TrainConfig, train
    from hsvcolorizer.weights import load_weights

    common = dict(data=str(photo_folder), batch_size=4, size=32, width_scale=0.125, workers=0, device="cpu",
                  log_every=1, lr=1e-3)
    plain = train(TrainConfig(out=str(tmp_path / "plain"), epochs_stage1=1, epochs_stage2=1, **common))
    hinted = train(TrainConfig(out=str(tmp_path / "hinted"), stage="1", epochs_stage1=3, hints=True, init=str(plain),
                               ema=0.0, **common))
    model, meta = load_weights(hinted, "cpu")
    assert model.config.hint_input and meta["training"]["hints"] is True
    # The hint channels' weights moved away from the zeros they started at:
    # the trained model's colours depend on the hints.
    first = model.lrcmgn.body[0][0].weight
    assert first[:, 1:].abs().sum() > 0
    gray = torch.zeros(1, 1, 32, 32)
    red = torch.from_numpy(hint_map([Hint(16, 16, (255, 0, 0))], (32, 32), (32, 32)))[None]
    with torch.no_grad():
        assert not torch.equal(model(gray)[0], model(gray, red)[0])
    # Its RCN is the hint-free model's, as stage 2 was not run.
    base, _ = load_weights(plain, "cpu")
    for a, b in zip(base.rcn.state_dict().values(), model.rcn.state_dict().values()):
        torch.testing.assert_close(a, b)


def _tiny_hint_colorizer(hint_input=True):
    from hsvcolorizer.inference import Colorizer

    config = ModelConfig(hue_vector=True, hint_input=hint_input, lrcmgn_widths=[8] * 11 + [2],
                         rcn_branch_widths=[8, 8], rcn_fuse_width=8, rcn_head_widths=[8])
    return Colorizer.untrained(config)


def test_colorize_with_no_hints_is_exactly_the_automatic_result():
    colorizer = _tiny_hint_colorizer()
    gray = (np.random.default_rng(0).random((60, 90)) * 255).astype(np.uint8)
    auto = colorizer.colorize(gray).render()
    np.testing.assert_array_equal(colorizer.colorize(gray, hints=[]).render(), auto)
    hinted = colorizer.colorize(gray, hints=[Hint(45, 30, (255, 0, 0))]).render()
    assert not np.array_equal(hinted, auto)  # an untrained model still reads the map


def test_hints_are_refused_outside_the_photo_and_by_a_model_without_hint_input():
    gray = np.zeros((60, 90), np.uint8)
    with pytest.raises(ColorizerError, match="outside the photo, which is 90x60"):
        _tiny_hint_colorizer().colorize(gray, hints=[Hint(90, 0, (1, 2, 3))])
    with pytest.raises(ColorizerError, match="does not read colour hints"):
        _tiny_hint_colorizer(hint_input=False).colorize(gray, hints=[Hint(1, 1, (1, 2, 3))])
    _tiny_hint_colorizer(hint_input=False).colorize(gray, hints=[])  # no hints: fine with any model


def test_colorize_many_passes_each_photo_its_own_hints():
    colorizer = _tiny_hint_colorizer()
    rng = np.random.default_rng(1)
    a, b = [(rng.random((40, 40)) * 255).astype(np.uint8) for _ in range(2)]
    red = [Hint(20, 20, (255, 0, 0))]
    together = colorizer.colorize_many([a, b], hints=[red, None])
    np.testing.assert_allclose(together[0].refined_hs, colorizer.colorize(a, hints=red).refined_hs, atol=1e-5)
    np.testing.assert_allclose(together[1].refined_hs, colorizer.colorize(b).refined_hs, atol=1e-5)


def test_sampled_hints_are_fixed_by_the_seed_and_take_the_originals_colour():
    from hsvcolorizer.hints import sample_hints

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (200, 30, 40)
    rgb[:, 40:] = (20, 60, 220)
    a = sample_hints(rgb, 10, seed=(0, 3), working_size=80)
    assert a == sample_hints(rgb, 10, seed=(0, 3), working_size=80) and len(a) == 10
    check_inside(a, 80, 60)
    for h in a:
        if h.x < 37:
            assert h.rgb == (200, 30, 40)
        elif h.x > 42:
            assert h.rgb == (20, 60, 220)
