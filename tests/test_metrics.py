"""Tests of the quality figures (hsvcolorizer.metrics) and the evaluate engine."""

from __future__ import annotations

import math
import statistics

import cv2
import numpy as np
import pytest

from hsvcolorizer import evaluation, metrics
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.metrics import PSNR_CAP_DB, ImageScores


def _solid(rgb, size=(16, 16)) -> np.ndarray:
    """HxWx3 uint8 RGB image of one colour."""
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (*size, 3)).copy()


def _random_rgb(seed: int, size=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


# --- psnr -------------------------------------------------------------------


def test_psnr_identical_is_cap():
    img = _random_rgb(0)
    assert metrics.psnr(img, img.copy()) == PSNR_CAP_DB


def test_psnr_known_noise_matches_hand_computation():
    rng = np.random.default_rng(1)
    reference = _solid((100, 120, 140), (32, 32))
    noise = rng.choice(np.array([-10, 10]), size=reference.shape)
    result = (reference.astype(int) + noise).astype(np.uint8)
    mse = np.mean(((result.astype(float) - reference.astype(float)) / 255.0) ** 2)
    assert metrics.psnr(result, reference) == pytest.approx(10 * math.log10(1 / mse), abs=1e-6)
    # Every error is 10/255, so the value is also known in closed form.
    assert metrics.psnr(result, reference) == pytest.approx(20 * math.log10(25.5), abs=1e-6)


def test_uint16_uses_its_own_peak():
    img8 = _random_rgb(2)
    img16 = img8.astype(np.uint16) * 257  # same picture at 16 bits
    assert metrics.psnr(img16, img8) == PSNR_CAP_DB
    assert metrics.colorfulness(img16) == pytest.approx(metrics.colorfulness(img8))


def test_size_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.psnr(_random_rgb(0, (8, 8)), _random_rgb(0, (8, 9)))


# --- ssim -------------------------------------------------------------------


def test_ssim_identical_is_one_and_noise_lowers_it():
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(_random_rgb(3, (48, 48)), (7, 7), 2)
    assert metrics.ssim(img, img.copy()) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + rng.integers(-40, 41, img.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(noisy, img) < 0.9


# --- ab_error ---------------------------------------------------------------


def test_ab_error_identical_is_zero():
    img = _random_rgb(4)
    assert metrics.ab_error(img, img.copy()) == pytest.approx(0.0, abs=1e-6)


def test_ab_error_gray_vs_red_is_large():
    assert metrics.ab_error(_solid((128, 128, 128)), _solid((255, 0, 0))) > 50


# --- colorfulness / saturation ----------------------------------------------


def test_colorfulness_gray_is_zero_and_random_colour_is_high():
    assert metrics.colorfulness(_solid((90, 90, 90))) == pytest.approx(0.0, abs=1e-9)
    gray_noise = np.repeat(_random_rgb(5)[..., :1], 3, axis=2)  # varied but gray
    assert metrics.colorfulness(gray_noise) == pytest.approx(0.0, abs=1e-9)
    assert metrics.colorfulness(_random_rgb(5)) > 80


def test_colorfulness_matches_hand_computation_on_2x2():
    img = np.array(
        [[[255, 0, 0], [255, 0, 0]], [[0, 255, 0], [0, 0, 0]]], dtype=np.uint8
    )
    # rg = R - G and yb = (R + G) / 2 - B for red, red, green, black:
    rg = [255.0, 255.0, -255.0, 0.0]
    yb = [127.5, 127.5, 127.5, 0.0]
    expected = math.sqrt(statistics.pstdev(rg) ** 2 + statistics.pstdev(yb) ** 2) + 0.3 * math.sqrt(
        statistics.mean(rg) ** 2 + statistics.mean(yb) ** 2
    )
    assert metrics.colorfulness(img) == pytest.approx(expected)


def test_mean_saturation_red_is_one_gray_is_zero():
    assert metrics.mean_saturation(_solid((255, 0, 0))) == pytest.approx(1.0, abs=1e-6)
    assert metrics.mean_saturation(_solid((128, 128, 128))) == pytest.approx(0.0, abs=1e-6)
    assert metrics.mean_saturation(_solid((0, 0, 0))) == pytest.approx(0.0, abs=1e-6)


# --- score / summarize / table ----------------------------------------------


def test_score_fills_every_field():
    ref = _random_rgb(6)
    s = metrics.score(ref, ref)
    assert s.psnr == PSNR_CAP_DB and s.ssim == pytest.approx(1.0)
    assert s.colorfulness == pytest.approx(metrics.colorfulness(ref))
    assert s.saturation == pytest.approx(metrics.mean_saturation(ref))


def test_summarize_means_and_ratios():
    scores = [
        ImageScores(psnr=20.0, ssim=0.8, ab_error=10.0, colorfulness=10.0, saturation=0.2),
        ImageScores(psnr=30.0, ssim=0.6, ab_error=20.0, colorfulness=20.0, saturation=0.4),
    ]
    out = metrics.summarize(scores, [30.0, 30.0], [0.5, 0.7])
    assert out["count"] == 2
    assert out["psnr"] == pytest.approx(25.0)
    assert out["ssim"] == pytest.approx(0.7)
    assert out["ab_error"] == pytest.approx(15.0)
    assert out["colorfulness"] == pytest.approx(15.0)
    assert out["colorfulness_ratio"] == pytest.approx(0.5)  # 15 / 30
    assert out["saturation_ratio"] == pytest.approx(0.5)  # 0.3 / 0.6


def test_summarize_ratio_to_gray_references_is_none():
    s = ImageScores(psnr=20.0, ssim=0.8, ab_error=1.0, colorfulness=5.0, saturation=0.1)
    out = metrics.summarize([s], [0.0], [0.0])
    assert out["colorfulness_ratio"] is None and out["saturation_ratio"] is None


def test_format_table_has_the_three_rows():
    summary = metrics.summarize(
        [ImageScores(psnr=25.0, ssim=0.9, ab_error=8.0, colorfulness=30.0, saturation=0.3)],
        [40.0],
        [0.4],
    )
    report = {"count": 1, "skipped_gray": 0, "model": summary, "stage1": summary,
              "gray_baseline": summary}
    table = evaluation.format_table(report)
    for name in ("model", "stage 1", "gray baseline", "PSNR dB", "SSIM", "a*b* error"):
        assert name in table
    assert "25.00" in table and "0.750" in table
    # Without a colorizer the model rows show n/a rather than failing.
    assert "n/a" in evaluation.format_table({**report, "model": None, "stage1": None})


# --- evaluate ---------------------------------------------------------------


def _write_png(path, pixels: np.ndarray) -> None:
    """Write HxWx3 uint8 RGB or HxW uint8 gray as PNG (cv2 wants BGR order)."""
    data = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    assert cv2.imwrite(str(path), data)


@pytest.fixture
def photo_folder(tmp_path):
    """3 small colour PNGs and 1 gray PNG; returns (files, colour originals)."""
    originals = []
    for i in range(3):
        img = cv2.GaussianBlur(_random_rgb(10 + i, (24 + 8 * i, 32)), (5, 5), 1.5)
        _write_png(tmp_path / f"colour{i}.png", img)
        originals.append(img)
    _write_png(tmp_path / "gray.png", _random_rgb(20, (24, 32))[..., 0])
    files = sorted(tmp_path.glob("*.png"))
    return files, originals


class _ResultReturningOriginal:
    def __init__(self, original: np.ndarray):
        self._original = original

    def render(self, stage="refined", mode=None, saturation=1.0):
        assert stage in ("refined", "stage1")
        return self._original.copy()


class OracleColorizerDouble:
    """Test double for the colorizer interface: 'colorizes' a gray photo by
    handing back the colour original it was made from. It does no colorizing;
    it only lets the tests check evaluate's bookkeeping against known answers.
    """

    def __init__(self, originals):
        self.originals = originals
        self.calls = 0

    def colorize(self, image, working_size=None):
        self.calls += 1
        assert image.ndim == 2 and image.dtype == np.uint8
        for original in self.originals:
            if original.shape[:2] == image.shape and np.array_equal(
                evaluation._luma_u8(original), image
            ):
                return _ResultReturningOriginal(original)
        raise AssertionError("gray input is not the luma of any original")


def test_evaluate_without_colorizer_scores_gray_baseline(photo_folder):
    files, _ = photo_folder
    report = evaluation.evaluate(None, files, progress=False)
    assert report["count"] == 3
    assert report["skipped_gray"] == 1
    assert report["model"] is None and report["stage1"] is None
    baseline = report["gray_baseline"]
    assert baseline["count"] == 3
    assert baseline["colorfulness_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert baseline["saturation_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert baseline["psnr"] < PSNR_CAP_DB
    assert "gray baseline" in evaluation.format_table(report)


def test_evaluate_with_oracle_double_and_sheet(photo_folder, tmp_path):
    files, originals = photo_folder
    double = OracleColorizerDouble(originals)
    sheet = tmp_path / "out" / "sheet.png"
    sheet.parent.mkdir()
    report = evaluation.evaluate(double, files, working_size=64, sheet=sheet, progress=False)
    assert double.calls == 3
    assert report["count"] == 3 and report["skipped_gray"] == 1
    assert report["working_size"] == 64
    for key in ("model", "stage1"):
        assert report[key]["psnr"] == PSNR_CAP_DB
        assert report[key]["colorfulness_ratio"] == pytest.approx(1.0)
        assert report[key]["saturation_ratio"] == pytest.approx(1.0)
        assert report[key]["ab_error"] == pytest.approx(0.0, abs=1e-6)
    assert report["model"]["psnr"] > report["gray_baseline"]["psnr"]

    picture = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert picture is not None and picture.ndim == 3
    rows = 3
    expected_height = evaluation.SHEET_HEADER_HEIGHT + rows * (
        evaluation.SHEET_CELL_HEIGHT + evaluation.SHEET_GAP
    )
    assert picture.shape[0] == expected_height


def test_evaluate_sheet_count_limits_rows(photo_folder, tmp_path):
    files, _ = photo_folder
    sheet = tmp_path / "sheet2.png"
    evaluation.evaluate(None, files, sheet=sheet, sheet_count=2, progress=False)
    picture = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert picture.shape[0] == evaluation.SHEET_HEADER_HEIGHT + 2 * (
        evaluation.SHEET_CELL_HEIGHT + evaluation.SHEET_GAP
    )


def test_evaluate_only_gray_photos_is_a_user_error(photo_folder):
    files, _ = photo_folder
    gray_only = [f for f in files if f.name == "gray.png"]
    with pytest.raises(ColorizerError):
        evaluation.evaluate(None, gray_only, progress=False)


def test_sheet_names_each_photo_on_its_gray_cell_only():
    rng = np.random.default_rng(0)
    cells = [rng.integers(0, 256, (evaluation.SHEET_CELL_HEIGHT, 200, 3), dtype=np.uint8) for _ in range(4)]
    rows = [cells, cells[::-1]]
    plain = evaluation.build_sheet(rows)
    named = evaluation.build_sheet(rows, ["bsds500_101027.jpg", "a_very_long_photo_name_" * 6 + ".jpg"])
    assert plain.shape == named.shape
    first_column = evaluation.SHEET_GAP + 200
    for r in range(2):
        top = evaluation.SHEET_HEADER_HEIGHT + r * (evaluation.SHEET_CELL_HEIGHT + evaluation.SHEET_GAP)
        band = slice(top, top + evaluation.SHEET_CELL_HEIGHT)
        assert not np.array_equal(plain[band, :first_column], named[band, :first_column]), "the name is written"
        # the stage 1, result and original cells are not touched, however long the name
        assert np.array_equal(plain[band, first_column:], named[band, first_column:])
