"""Image-quality figures for judging a colorization against the colour original.

Every function takes ``HxWx3`` RGB arrays, ``uint8`` (0..255) or ``uint16``
(0..65535), and works internally on float images in [0, 1], so 8-bit and
16-bit photos give comparable figures. Colorization has no single "right"
answer, so several figures are reported side by side:

- PSNR and SSIM measure closeness to the original (they reward cautious,
  grayish results, which is why colourfulness is reported too);
- the a*b* error measures colour distance in a perceptual space, ignoring
  lightness, which the colorizer takes unchanged from the gray input;
- colourfulness and mean saturation measure how vivid the result is, and their
  ratio to the originals' values shows whether a model washes colours out
  (ratio well below 1) or overdoes them (above 1).
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


@dataclass(frozen=True)
class ImageScores:
    """All figures for one colorized image against its colour original.

    ``colorfulness`` and ``saturation`` describe the result alone; the other
    three compare it with the original.
    """

    psnr: float
    ssim: float
    ab_error: float
    colorfulness: float
    saturation: float

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
    )


def _mean(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else None


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
) -> dict:
    """Average per-image scores over a set of photos.

    ``references_colorfulness`` / ``references_saturation`` are the values of
    the colour originals (same photos as ``scores``). Returns a dict with the
    means ``psnr`` (mean of per-image dB values, capped ones included),
    ``ssim``, ``ab_error``, ``colorfulness``, ``saturation``; the ratios
    ``colorfulness_ratio`` and ``saturation_ratio`` (mean of results / mean of
    originals: 1.0 = as vivid as the originals); and ``count``. Means of an
    empty list, and ratios to a zero mean, are ``None``.
    """
    scores = list(scores)
    means = {
        name: _mean([getattr(s, name) for s in scores])
        for name in ("psnr", "ssim", "ab_error", "colorfulness", "saturation")
    }
    return {
        **means,
        "colorfulness_ratio": _ratio(means["colorfulness"], _mean(list(references_colorfulness))),
        "saturation_ratio": _ratio(means["saturation"], _mean(list(references_saturation))),
        "count": len(scores),
    }
