"""Hue figures: hue overlap (per photo and per set) and warm share, in metrics and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsvcolorizer import evaluation, metrics
from hsvcolorizer.imageio import write_image
from tests.conftest import colour_image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
ORANGE = (255, 128, 0)  # hue 30.1 degrees
YELLOW = (255, 255, 0)  # hue 60: just outside the warm hues
GRAY = (128, 128, 128)


def _solid(rgb, size=(16, 16)) -> np.ndarray:
    """HxWx3 uint8 RGB image of one colour."""
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (*size, 3)).copy()


def _halves(top, bottom, size=(16, 16)) -> np.ndarray:
    img = _solid(top, size)
    img[size[0] // 2 :] = bottom
    return img


def test_hue_histogram_bins_and_total():
    hist = metrics.hue_histogram(_halves(RED, BLUE))
    assert hist.shape == (metrics.HUE_BINS,)
    # Half the pixels red (bin 0), half blue (240 degrees, bin 8), chroma 1 each.
    assert hist[0] == pytest.approx(0.5) and hist[8] == pytest.approx(0.5)
    assert hist.sum() == pytest.approx(1.0)  # mean chroma
    assert metrics.hue_histogram(_solid(GRAY)).sum() == 0.0


def test_hue_overlap_identical_is_one():
    img = colour_image(24, 32, seed=3)
    assert metrics.hue_overlap(img, img.copy()) == pytest.approx(1.0)
    # 16-bit original of the same picture: same figure.
    assert metrics.hue_overlap(img, img.astype(np.uint16) * 257) == pytest.approx(1.0)


def test_hue_overlap_red_against_blue_is_zero():
    assert metrics.hue_overlap(_solid(RED), _solid(BLUE)) == 0.0


def test_hue_overlap_half_red_half_blue_against_red_is_half():
    assert metrics.hue_overlap(_halves(RED, BLUE), _solid(RED)) == pytest.approx(0.5)
    # Symmetric, and indifferent to how vivid the colours are.
    assert metrics.hue_overlap(_solid(RED), _halves(RED, BLUE)) == pytest.approx(0.5)
    assert metrics.hue_overlap(_solid((140, 100, 100)), _solid(RED)) == pytest.approx(1.0)


def test_hue_overlap_gray_conventions():
    assert metrics.hue_overlap(_solid(GRAY), _solid(RED)) == 0.0
    assert metrics.hue_overlap(_solid(RED), _solid(GRAY)) == 0.0
    assert metrics.hue_overlap(_solid(GRAY), _solid((30, 30, 30))) == 1.0


def test_warm_share():
    assert metrics.warm_share(_solid(ORANGE)) == pytest.approx(1.0)
    assert metrics.warm_share(_solid(BLUE)) == pytest.approx(0.0)
    assert metrics.warm_share(_solid(YELLOW)) == pytest.approx(0.0)
    assert metrics.warm_share(_halves(ORANGE, BLUE)) == pytest.approx(0.5)
    assert metrics.warm_share(_solid(GRAY)) is None


def test_summarize_hue_figures_per_photo_and_per_set():
    # Photo 1: red result for a red original (overlap 1); photo 2: red result
    # for a blue original (overlap 0). Per photo the mean is 0.5; over the set
    # the results are all red and the originals half red, half blue: 0.5 too.
    # Photo 3 is gray against blue: overlap 0 and no chroma in the result.
    pairs = [(_solid(RED), _solid(RED)), (_solid(RED), _solid(BLUE)), (_solid(GRAY), _solid(BLUE))]
    scores = [metrics.score(r, o) for r, o in pairs]
    assert [s.hue_overlap for s in scores] == [pytest.approx(1.0), 0.0, 0.0]
    out = metrics.summarize(
        scores,
        [metrics.colorfulness(o) for _, o in pairs],
        [metrics.mean_saturation(o) for _, o in pairs],
        hue_histograms=[metrics.hue_histogram(r) for r, _ in pairs],
        references_hue_histograms=[metrics.hue_histogram(o) for _, o in pairs],
    )
    assert out["hue_overlap"] == pytest.approx(1 / 3)
    assert out["hue_overlap_set"] == pytest.approx(1 / 3)  # originals 1/3 red
    assert out["warm_share"] == pytest.approx(1.0)  # the gray result adds nothing
    assert out["warm_share_original"] == pytest.approx(1 / 3)


def test_summarize_without_histograms_leaves_set_figures_out():
    s = metrics.ImageScores(psnr=20.0, ssim=0.8, ab_error=1.0, colorfulness=5.0, saturation=0.1)
    out = metrics.summarize([s], [1.0], [0.1])
    assert out["hue_overlap"] is None
    assert out["hue_overlap_set"] is None and out["warm_share"] is None
    assert out["warm_share_original"] is None


@pytest.fixture
def tiny_set(tmp_path):
    """3 small colour photos and a gray one."""
    folder = tmp_path / "val"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"{i}.png", colour_image(24, 32, seed=i))
    write_image(folder / "gray.png", _solid(GRAY, (24, 32)))
    return sorted(folder.glob("*.png"))


def test_evaluate_reports_hue_figures_with_a_tiny_model(tiny_set, tiny_weights):
    from hsvcolorizer.inference import Colorizer

    colorizer = Colorizer.load(tiny_weights, device="cpu")
    report = evaluation.evaluate(colorizer, tiny_set, progress=False)
    report = json.loads(json.dumps(report))  # what --json prints: valid JSON
    keys = ("hue_overlap", "hue_overlap_set", "warm_share", "warm_share_original")
    for method in ("model", "stage1", "gray_baseline"):
        for key in keys:
            assert key in report[method]
    originals_warm = report["gray_baseline"]["warm_share_original"]
    assert 0.0 < originals_warm < 1.0
    for method in ("model", "stage1"):
        assert 0.0 <= report[method]["hue_overlap"] <= 1.0
        assert 0.0 <= report[method]["hue_overlap_set"] <= 1.0
        assert report[method]["warm_share_original"] == pytest.approx(originals_warm)
    # Doing nothing shares no hue with the originals and has no warm share.
    baseline = report["gray_baseline"]
    assert baseline["hue_overlap"] == 0.0 and baseline["hue_overlap_set"] == 0.0
    assert baseline["warm_share"] is None

    table = evaluation.format_table(report)
    for title in ("hue overlap", "hue overlap (set)", "warm share", "warm share (originals)"):
        assert title in table
    assert "n/a" in table.splitlines()[-2]  # the gray baseline's warm share
