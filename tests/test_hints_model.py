"""The shipped model reads colour hints (issue 9, point 5): on a photo of two
flat regions split by an edge, a hint in one region gives that region the
hint's colour and leaves the other as the automatic result has it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hsvcolorizer.hints import Hint
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.weights import default_weights

HEIGHT, WIDTH = 128, 192  # the photo is its own working size (never enlarged)
EDGE = WIDTH // 2


@pytest.fixture(scope="module")
def shipped() -> Colorizer:
    path = default_weights()
    assert path is not None, "the shipped weights are part of the repository (models/)"
    return Colorizer.load(path, "cpu")


@pytest.fixture(scope="module")
def two_regions() -> np.ndarray:
    """HxW uint8: light on the left, dark on the right, a little grain."""
    gray = np.full((HEIGHT, WIDTH), 150, np.uint8)
    gray[:, EDGE:] = 95
    return (gray + np.random.default_rng(0).integers(0, 5, gray.shape)).astype(np.uint8)


def share_of_hue(rgb: np.ndarray, hint_rgb: tuple[int, int, int]) -> float:
    """Share of the pixels of `rgb` (HxWx3 uint8) within 30 degrees of the
    hint's hue and at least a quarter saturated."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
    target = cv2.cvtColor(np.uint8([[hint_rgb]]), cv2.COLOR_RGB2HSV_FULL)[0, 0].astype(np.float64)
    degrees = np.abs((hsv[..., 0] - target[0] + 128) % 256 - 128) * 360 / 256
    return float(((degrees < 30) & (hsv[..., 1] > 64)).mean())


def test_the_shipped_model_reads_hints(shipped):
    assert shipped.reads_hints


@pytest.mark.parametrize("hint_rgb", [(210, 30, 30), (230, 200, 40)], ids=["red", "yellow"])
def test_a_hint_colours_its_region_and_leaves_the_other_alone(shipped, two_regions, hint_rgb):
    auto = shipped.colorize(two_regions).render()
    hinted = shipped.colorize(two_regions, hints=[Hint(EDGE // 2, HEIGHT // 2, hint_rgb)]).render()
    left = slice(0, EDGE - 4)
    assert share_of_hue(auto[:, left], hint_rgb) < 0.05, "the automatic result is not already that colour"
    assert share_of_hue(hinted[:, left], hint_rgb) > 0.7
    # The far side of the edge keeps the automatic colours; the hint's colour
    # may reach a few working pixels across the edge (see README, Colour hints).
    right = slice(EDGE + 24, WIDTH)
    diff = np.abs(hinted[:, right].astype(int) - auto[:, right])
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())


def test_the_readme_shows_the_hint_file_its_picture_was_made_with():
    # The README prints the example's hint file and points at it; a user who
    # copies either gets the picture's hints.
    import json
    import re
    from pathlib import Path

    from hsvcolorizer.hints import read_hints

    root = Path(__file__).resolve().parent.parent
    path = root / "resources" / "rooms_kitchen_00004229.hints.json"
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "resources/rooms_kitchen_00004229.hints.json" in readme
    shown = re.search(r'```json\n(\{"hints": \[\{"x": 35.*\})\n```', readme)
    assert shown is not None, "the README shows the example's hint file"
    assert json.loads(shown.group(1)) == json.loads(path.read_text(encoding="utf-8"))
    assert len(read_hints(path)) == 4
