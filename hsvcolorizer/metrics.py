"""Image-quality figures for judging a colorization against the colour original.

Every function of an image takes ``HxWx3`` RGB arrays, ``uint8`` (0..255) or
``uint16`` (0..65535), and works internally on float images in [0, 1], so
8-bit and 16-bit photos give comparable figures. Colorization has no single "right"
answer, so several figures are reported side by side:

- PSNR and SSIM measure closeness to the original (they reward cautious,
  grayish results, which is why colourfulness is reported too);
- the a*b* error measures colour distance in a perceptual space, ignoring
  lightness, which the colorizer takes unchanged from the gray input;
- colourfulness and mean saturation measure how vivid the result is, and their
  ratio to the originals' values shows whether a model washes colours out
  (ratio well below 1) or overdoes them (above 1);
- the hue overlap measures whether the result has the right colours at all
  (the originals' mix of hues, weighted by how colourful each pixel is), and
  the warm share shows a common failure of colorizers: everything drifting
  towards brown, orange and skin tones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

# Identical images have infinite PSNR; a finite cap keeps means, JSON reports
# and tables usable. 100 dB is far above anything a real colorization reaches
# (8-bit quantisation noise alone is about 59 dB).
PSNR_CAP_DB = 100.0

_SSIM_WINDOW = 7  # skimage's default window; shrunk only for tiny images

# Hue histograms: 12 bins of 30 degrees, [0, 30), [30, 60), ..., [330, 360).
HUE_BINS = 12
HUE_BIN_DEGREES = 360.0 / HUE_BINS
# "Warm" hues are [0, 60) degrees: reds, oranges and browns (yellow, at 60,
# is not counted), i.e. the first two bins.
WARM_HUE_DEGREES = 60.0
_WARM_BINS = int(round(WARM_HUE_DEGREES / HUE_BIN_DEGREES))
# A hue histogram whose mean chroma per pixel (its sum, see hue_histogram) is
# at or below this is treated as having no colour at all: a quarter of an
# 8-bit step per pixel on average, so an exactly gray image (0) and rounding
# noise count as gray, while a result with even a few clearly coloured
# regions does not.
GRAY_MEAN_CHROMA = 1e-3


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an ``HxWx3 uint8/uint16 RGB`` image to ``HxWx3 float32 RGB`` in [0, 1].

    The divisor follows the dtype (255 or 65535), so a 16-bit photo is not
    mistaken for a very bright 8-bit one.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        peak = 255.0
    elif image.dtype == np.uint16:
        peak = 65535.0
    else:
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}")
    return image.astype(np.float32) / np.float32(peak)


def _pair(result: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = to_float_rgb(result)
    b = to_float_rgb(reference)
    if a.shape != b.shape:
        raise ValueError(f"result {a.shape} and reference {b.shape} differ in size")
    return a, b


def psnr(result: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of ``result`` against ``reference``.

    Both are ``HxWx3 uint8/uint16 RGB`` of the same size; the error is taken
    over all three RGB channels with the images scaled to [0, 1] (peak 1.0).
    Identical images would give infinity; they return ``PSNR_CAP_DB`` (100.0)
    instead, and no result is reported above that cap.
    """
    a, b = _pair(result, reference)
    # float64 for the sum: float32 loses precision on large photos.
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return float(min(10.0 * np.log10(1.0 / mse), PSNR_CAP_DB))


def ssim(result: np.ndarray, reference: np.ndarray) -> float:
    """Mean structural similarity of ``result`` against ``reference`` (1.0 = identical).

    Both are ``HxWx3 uint8/uint16 RGB`` of the same size, compared as float
    images in [0, 1] by ``skimage.metrics.structural_similarity`` channel by
    channel. Images smaller than the default 7-pixel window use the largest
    odd window that fits; images under 3 pixels on a side raise ``ValueError``.
    """
    from skimage.metrics import structural_similarity  # slow import, only here

    a, b = _pair(result, reference)
    side = min(a.shape[0], a.shape[1])
    win = min(_SSIM_WINDOW, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"image too small for SSIM: {a.shape[1]}x{a.shape[0]}")
    return float(
        structural_similarity(a, b, channel_axis=-1, data_range=1.0, win_size=win)
    )


def _lab(image: np.ndarray) -> np.ndarray:
    # cv2 on float32 [0,1] RGB gives L in [0,100] and a*, b* in about
    # [-127, 127], the usual CIELAB scale (D65 white point).
    return cv2.cvtColor(image, cv2.COLOR_RGB2Lab)


def ab_error(result: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean distance in the CIELAB a*b* plane between two images.

    Both are ``HxWx3 uint8/uint16 RGB`` of the same size. Lightness is left
    out on purpose: the colorizer keeps the gray input as lightness, so only
    the chroma it invents is judged. Units are CIELAB a*b* units (0 =
    identical colours; a neutral gray against pure red is about 100).
    """
    a, b = _pair(result, reference)
    la = _lab(a).astype(np.float64)
    lb = _lab(b).astype(np.float64)
    diff = la[..., 1:] - lb[..., 1:]
    return float(np.mean(np.sqrt(np.sum(diff * diff, axis=-1))))


def colorfulness(image: np.ndarray) -> float:
    """Colourfulness of an image after Hasler and Suesstrunk (2003).

    ``image`` is ``HxWx3 uint8/uint16 RGB``; the measure is computed on the
    0..255 scale it was defined on (16-bit images are scaled down to it), so
    the values match the paper's: 0 for any gray image, around 30-60 for
    ordinary photos, above 100 for very vivid ones. With the opponent channels
    rg = R - G and yb = (R + G) / 2 - B it is
    ``sqrt(std_rg² + std_yb²) + 0.3 * sqrt(mean_rg² + mean_yb²)``
    (population standard deviations).
    """
    rgb = to_float_rgb(image).astype(np.float64) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2)
    offset = np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2)
    return float(spread + 0.3 * offset)


def mean_saturation(image: np.ndarray) -> float:
    """Mean HSV saturation of an ``HxWx3 uint8/uint16 RGB`` image, in [0, 1].

    0 for a gray image, 1 for an image of fully saturated colours. Black
    pixels count as saturation 0 (their hue and saturation are undefined).
    """
    # cv2 on float32 input gives S in [0, 1] (on uint8 it would be 0..255).
    hsv = cv2.cvtColor(to_float_rgb(image), cv2.COLOR_RGB2HSV)
    return float(np.mean(hsv[..., 1], dtype=np.float64))


def hue_histogram(image: np.ndarray) -> np.ndarray:
    """Chroma-weighted hue histogram of an ``HxWx3 uint8/uint16 RGB`` image.

    Returns a ``float64`` array of ``HUE_BINS`` (12) bins of 30 degrees,
    [0, 30), [30, 60), ..., [330, 360), hue being the HSV hue in degrees
    (0 = red, 120 = green, 240 = blue). Each pixel counts with its chroma
    ``max(R, G, B) - min(R, G, B)`` in [0, 1], so gray pixels, whose hue is
    undefined, count for nothing and vivid ones the most. The sums are divided
    by the number of pixels: the histogram's total is the image's mean chroma,
    in [0, 1] (0 for a gray image, 1 for one of fully saturated colours), and
    does not depend on the image's size, so histograms of photos of different
    sizes can be added with each photo counting by its colour, not its pixels.
    """
    return _hue_histogram_float(to_float_rgb(image))


def _hue_histogram_float(rgb: np.ndarray) -> np.ndarray:
    """``hue_histogram`` of an ``HxWx3 float32 RGB`` image in [0, 1]."""
    # cv2 on float32 [0,1] RGB gives H in degrees, [0, 360).
    hue = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 0].ravel()
    # OpenCV's float32 arithmetic leaves hues a few 1e-6 degrees off, e.g.
    # 59.999992 for pure yellow, which would put it in the bin below; to the
    # nearest 1/1000 degree, bin edges are exact. Hues that round to 360 are red.
    hue = np.round(hue.astype(np.float64), 3)
    hue = np.where(hue >= 360.0, hue - 360.0, hue)
    chroma = np.ptp(rgb, axis=-1).ravel().astype(np.float64)
    hist, _ = np.histogram(hue, bins=HUE_BINS, range=(0.0, 360.0), weights=chroma)
    return hist / max(hue.size, 1)


def _has_colour(hist: np.ndarray) -> bool:
    return float(np.sum(hist)) > GRAY_MEAN_CHROMA


def hue_histogram_overlap(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Histogram intersection of two hue histograms (see ``hue_histogram``), in [0, 1].

    Each histogram is normalised to sum 1 and the overlap is
    ``sum(min(p, q))``: 1.0 when the two hue distributions are the same, 0.0
    when they share no bin. The histograms' totals (how colourful the images
    are) do not matter, only how the colour is spread over the hues. A
    histogram with (almost) no chroma (total at most ``GRAY_MEAN_CHROMA``) has
    no hue distribution; by convention the overlap is then 0.0 if only one of
    the two is gray (a gray result has none of the original's colours) and
    1.0 if both are (nothing to get wrong).
    """
    a = np.asarray(hist_a, dtype=np.float64)
    b = np.asarray(hist_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"hue histograms differ in size: {a.shape} and {b.shape}")
    colour_a, colour_b = _has_colour(a), _has_colour(b)
    if not (colour_a and colour_b):
        return 1.0 if colour_a == colour_b else 0.0
    # min(): rounding must not push identical distributions past 1.
    return min(1.0, float(np.sum(np.minimum(a / a.sum(), b / b.sum()))))


def hue_overlap(result: np.ndarray, reference: np.ndarray) -> float:
    """How much of the original's hue distribution the result shares, in [0, 1].

    Both are ``HxWx3 uint8/uint16 RGB`` of the same size. The figure is the
    intersection of their chroma-weighted hue histograms (12 bins of 30
    degrees, see ``hue_histogram`` and ``hue_histogram_overlap``): 1.0 when
    the result spreads its colour over the hues in the same proportions as
    the original, 0.0 when it uses none of the original's hues (a red photo
    against a blue one). Where a colour is placed in the photo is not judged,
    nor how vivid it is. A gray result against a colour original scores 0.0;
    two gray images score 1.0.
    """
    a, b = _pair(result, reference)
    return hue_histogram_overlap(_hue_histogram_float(a), _hue_histogram_float(b))


def hue_histogram_warm_share(hist: np.ndarray) -> Optional[float]:
    """Part of a hue histogram's chroma in the warm hues [0, 60) degrees, in [0, 1].

    ``hist`` is a ``hue_histogram`` (or a sum or mean of several). Returns
    None when it has (almost) no chroma (total at most ``GRAY_MEAN_CHROMA``):
    a gray image has no hues, warm or not.
    """
    h = np.asarray(hist, dtype=np.float64)
    if not _has_colour(h):
        return None
    return float(np.sum(h[:_WARM_BINS]) / np.sum(h))


def warm_share(image: np.ndarray) -> Optional[float]:
    """Chroma-weighted part of an image's hues in [0, 60) degrees, in [0, 1].

    ``image`` is ``HxWx3 uint8/uint16 RGB``. 1.0 for an all red, orange or
    brown image, 0.0 for one with no such colours (yellow, hue 60, and
    everything beyond it do not count); None for a gray image. Each pixel
    counts with its chroma, as in ``hue_histogram``. ``summarize`` reports
    the share of a whole set, from its added histograms.
    """
    return hue_histogram_warm_share(hue_histogram(image))


@dataclass(frozen=True)
class ImageScores:
    """All figures for one colorized image against its colour original.

    ``colorfulness`` and ``saturation`` describe the result alone; the other
    four compare it with the original. ``hue_overlap`` is None only for scores
    made by hand without it (``score`` always fills it).
    """

    psnr: float
    ssim: float
    ab_error: float
    colorfulness: float
    saturation: float
    hue_overlap: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)


def score(result: np.ndarray, reference: np.ndarray) -> ImageScores:
    """Compute every figure for ``result`` against ``reference``.

    Both are ``HxWx3 uint8/uint16 RGB`` of the same size (the dtypes may
    differ, e.g. an 8-bit result against a 16-bit original).
    """
    return ImageScores(
        psnr=psnr(result, reference),
        ssim=ssim(result, reference),
        ab_error=ab_error(result, reference),
        colorfulness=colorfulness(result),
        saturation=mean_saturation(result),
        hue_overlap=hue_overlap(result, reference),
    )


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    # None entries (a figure not computed for that photo) are left out.
    values = [v for v in values if v is not None]
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else None


def _hist_mean(histograms: Optional[Sequence[np.ndarray]]) -> Optional[np.ndarray]:
    # The mean, not the sum: the same shape (overlap and shares do not change),
    # and its total is the set's mean chroma, so the gray test of
    # hue_histogram_overlap means the same for a set as for one photo.
    if histograms is None or len(histograms) == 0:
        return None
    return np.mean(np.asarray(histograms, dtype=np.float64), axis=0)


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    # A ratio to an all-gray reference set is undefined; None (not NaN) keeps
    # the report valid JSON.
    if numerator is None or denominator is None or denominator == 0.0:
        return None
    return numerator / denominator


def summarize(
    scores: Sequence[ImageScores],
    references_colorfulness: Sequence[float],
    references_saturation: Sequence[float],
    hue_histograms: Optional[Sequence[np.ndarray]] = None,
    references_hue_histograms: Optional[Sequence[np.ndarray]] = None,
) -> dict:
    """Average per-image scores over a set of photos.

    ``references_colorfulness`` / ``references_saturation`` are the values of
    the colour originals (same photos as ``scores``). ``hue_histograms`` /
    ``references_hue_histograms`` are the ``hue_histogram`` of each result /
    original (same photos again); they feed the set-level hue figures.

    Returns a dict with the means ``psnr`` (mean of per-image dB values,
    capped ones included), ``ssim``, ``ab_error``, ``colorfulness``,
    ``saturation``; the ratios ``colorfulness_ratio`` and ``saturation_ratio``
    (mean of results / mean of originals: 1.0 = as vivid as the originals);
    ``hue_overlap``, the mean over the photos of each one's ``hue_overlap``
    (in [0, 1]); and ``count``. From the histograms, which are added over all
    photos before normalising (each photo weighs by its mean chroma, not its
    pixel count), come set-level figures, in [0, 1]: ``hue_overlap_set``, the
    ``hue_histogram_overlap`` of the added histograms of results and
    originals (do the results use the originals' hues overall, whichever
    photo they are in); ``warm_share`` and ``warm_share_original``, the part
    of all the results' / originals' chroma in hues [0, 60) degrees (a set
    level share, not a mean of per-photo shares, so gray photos need no
    special case). Means of an empty list, ratios to a zero mean, figures
    whose histograms are not given, and warm shares of an all-gray set are
    ``None``.
    """
    scores = list(scores)
    means = {
        name: _mean([getattr(s, name) for s in scores])
        for name in ("psnr", "ssim", "ab_error", "colorfulness", "saturation")
    }
    results_hist = _hist_mean(hue_histograms)
    originals_hist = _hist_mean(references_hue_histograms)
    both = results_hist is not None and originals_hist is not None
    return {
        **means,
        "colorfulness_ratio": _ratio(means["colorfulness"], _mean(list(references_colorfulness))),
        "saturation_ratio": _ratio(means["saturation"], _mean(list(references_saturation))),
        "hue_overlap": _mean([s.hue_overlap for s in scores]),
        "hue_overlap_set": hue_histogram_overlap(results_hist, originals_hist) if both else None,
        "warm_share": None if results_hist is None else hue_histogram_warm_share(results_hist),
        "warm_share_original": (
            None if originals_hist is None else hue_histogram_warm_share(originals_hist)
        ),
        "count": len(scores),
    }
