"""Colour conversions: RGB <-> HSV on the [-1, 1] scale, circular hue resizing,
and recomposition of a colour image from a gray image and predicted H, S.

Conventions used everywhere in the package:
- RGB floats are in [0, 1]; HSV channels are each scaled to [-1, 1] (the paper's
  normalisation): H = 2 * hue_turns - 1, S = 2 * s - 1, V = 2 * v - 1.
- H is an angle: -1 and 1 are the same hue. Every resize of H goes through the
  S-weighted unit vector (S cos, S sin) so that a red region across the wrap
  stays red instead of being averaged to cyan.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma: what a black-and-white film or a gray conversion records.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# Below this vector length the hue is undefined; resizes keep the plainly
# interpolated H there rather than dividing by (almost) zero.
_HUE_EPS = 1e-6


# ---------------------------------------------------------------------------
# torch, batched (training and inference inside the networks)
# ---------------------------------------------------------------------------


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW float RGB in [0, 1] -> Bx3xHxW HSV, each channel in [-1, 1].

    Same definition as OpenCV's float conversion (hue of gray pixels is 0).
    """
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(1)
    minc, _ = rgb.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hr = ((g - b) / safe) % 6.0
    hg = (b - r) / safe + 2.0
    hb = (r - g) / safe + 4.0
    hue = torch.where(maxc == r, hr, torch.where(maxc == g, hg, hb)) / 6.0
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([hue * 2 - 1, sat * 2 - 1, maxc * 2 - 1], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW HSV in [-1, 1] -> Bx3xHxW RGB in [0, 1]."""
    h = (hsv[:, 0] + 1) / 2
    s = ((hsv[:, 1] + 1) / 2).clamp(0, 1)
    v = ((hsv[:, 2] + 1) / 2).clamp(0, 1)
    return v.unsqueeze(1) * _hue_sat_unit(h, s)


def _hue_sat_unit(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """BxHxW hue in turns and saturation in [0, 1] -> Bx3xHxW RGB with V = 1."""
    # Smooth closed form of HSV -> RGB: channel k is 1 - s * clamp(...).
    out = []
    for n in (5.0, 3.0, 1.0):
        k = (n + h * 6.0) % 6.0
        out.append(1.0 - s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, 1)


def rgb_to_luma(rgb: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW RGB in [0, 1] -> Bx1xHxW luma in [0, 1] (BT.601)."""
    w = torch.tensor(LUMA_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def resize_hs(hs: torch.Tensor, size: tuple[int, int], circular: bool = True) -> torch.Tensor:
    """Bilinear resize of Bx2xHxW (H, S) in [-1, 1] to Bx2x(size) in [-1, 1].

    circular=True treats hue as an angle: S is resized plainly and H is taken
    from the resized S-weighted vector (S cos, S sin), so -1 and 1 blend to
    red, not to cyan. circular=False is the paper's plain resize of H.
    Differentiable (gradients are finite even where S is 0).
    """
    if tuple(hs.shape[-2:]) == tuple(size):
        return hs
    antialias = size[0] < hs.shape[-2] or size[1] < hs.shape[-1]

    def rs(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)

    if not circular:
        return rs(hs)
    h, s = hs[:, :1], hs[:, 1:2]
    s01 = (s + 1) / 2
    theta = h * math.pi
    # Weight by S + a small floor so that a fully unsaturated area still has a
    # defined (if meaningless) hue instead of 0/0.
    w = s01 + 1e-3
    x, y, s_r, h_plain = rs(torch.cat([w * torch.cos(theta), w * torch.sin(theta), s, h], 1)).split(1, 1)
    r2 = x * x + y * y
    ok = r2 > _HUE_EPS**2
    # atan2 has an infinite gradient at (0, 0): feed it safe values there.
    x_safe = torch.where(ok, x, torch.ones_like(x))
    y_safe = torch.where(ok, y, torch.zeros_like(y))
    h_r = torch.where(ok, torch.atan2(y_safe, x_safe) / math.pi, h_plain)
    return torch.cat([h_r, s_r], 1)


# ---------------------------------------------------------------------------
# numpy, single images (full-resolution recomposition, any size)
# ---------------------------------------------------------------------------


def rgb_to_luma_np(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float RGB in [0, 1] -> HxW float32 luma in [0, 1]."""
    w = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return (rgb.astype(np.float32, copy=False) @ w).astype(np.float32, copy=False)


def rgb_to_luma_u8(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW uint8 luma (BT.601, rounded)."""
    return np.clip(np.rint(rgb_to_luma_np(rgb.astype(np.float32))), 0, 255).astype(np.uint8)


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float array -> float32 in [0, 1] of the same shape."""
    if pixels.dtype in (np.uint8, np.uint16):
        # In place: one float32 array instead of two (half the time on 24 MP).
        x = pixels.astype(np.float32)
        return np.divide(x, np.float32(255.0 if pixels.dtype == np.uint8 else 65535.0), out=x)
    return np.clip(pixels.astype(np.float32), 0.0, 1.0)


def from_unit_float(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """float in [0, 1] -> uint8 (bit_depth 8) or uint16 (bit_depth 16), rounded."""
    peak, dtype = (65535.0, np.uint16) if bit_depth == 16 else (255.0, np.uint8)
    return np.clip(np.rint(x * peak), 0, peak).astype(dtype)


def gray_of(pixels: np.ndarray) -> np.ndarray:
    """HxW or HxWx3 uint8/uint16 -> HxW float32 gray in [0, 1].

    A colour image becomes its luma, which is what a black-and-white photo of
    the same scene records.
    """
    x = to_unit_float(pixels)
    return rgb_to_luma_np(x) if x.ndim == 3 else x


def rgb_to_hsv_np(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float RGB in [0, 1] -> HxWx3 float32 HSV, each channel in [-1, 1]."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] /= 360.0
    return hsv * 2.0 - 1.0


def hsv_to_rgb_np(hsv: np.ndarray) -> np.ndarray:
    """HxWx3 HSV in [-1, 1] -> HxWx3 float32 RGB in [0, 1]."""
    x = np.clip((np.asarray(hsv, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)
    x[..., 0] = (x[..., 0] % 1.0) * 360.0
    return cv2.cvtColor(x, cv2.COLOR_HSV2RGB)


def hs_to_vector_np(hs: np.ndarray) -> np.ndarray:
    """2xhxw (H, S) in [-1, 1] -> hxwx3 float32 (w cos, w sin, S) for circular resizing."""
    h, s = hs[0].astype(np.float32), hs[1].astype(np.float32)
    w = (s + 1.0) / 2.0 + 1e-3
    theta = h * np.float32(math.pi)
    return np.dstack([w * np.cos(theta), w * np.sin(theta), s])


def enlarge_hs_np(hs: np.ndarray, width: int, height: int, circular: bool = True,
                  extent: tuple[float, float] | None = None) -> np.ndarray:
    """2xhxw (H, S) in [-1, 1] -> heightxwidthx3 float32 resized field.

    Returns the circular representation (w cos, w sin, S) when circular, else
    (H, S, S) resized plainly; `vector_to_hs_np` turns either back into H, S.
    Bilinear (cv2.INTER_LINEAR), centre-aligned like torch's align_corners=False.

    extent: (rows, columns) of map cells, counted from the map's top-left
    corner, that the output spans; it may be fractional and differ from the
    map's shape (a map whose last cells reach beyond the picture, as stage 1's
    does when a working side is not a multiple of 4 pixels). Output pixel x
    (centre x + 0.5) then samples the map at cell coordinate
    (x + 0.5) * columns / width - 0.5 (cell centres at integers), clamped to
    the map. None: the map covers the output exactly (extent = its shape).
    With an extent the result may be a view into a slightly larger array.
    """
    if circular:
        field = hs_to_vector_np(hs)
    else:
        field = np.dstack([hs[0], hs[1], hs[1]]).astype(np.float32)
    if extent is not None:
        eh, ew = float(extent[0]), float(extent[1])
        if not (eh > 0 and ew > 0):
            raise ValueError(f"extent must be positive, got {extent}")
        if abs(eh - field.shape[0]) > 1e-9 or abs(ew - field.shape[1]) > 1e-9:
            if width >= ew and height >= eh:
                return _resample_extent(field, width, height, eh, ew)
            # Shrinking: first a map that covers the output exactly, then the
            # usual (area-averaging) resize below.
            field = _resample_extent(field, max(1, math.ceil(ew)), max(1, math.ceil(eh)), eh, ew)
    interp = cv2.INTER_AREA if width < field.shape[1] and height < field.shape[0] else cv2.INTER_LINEAR
    out = cv2.resize(field, (width, height), interpolation=interp)
    return out.reshape(height, width, 3)


def _resample_extent(field: np.ndarray, width: int, height: int, eh: float, ew: float) -> np.ndarray:
    """hxwx3 float32 map -> heightxwidthx3, bilinear, the output spanning
    eh x ew cells of the map (see enlarge_hs_np).

    cv2.resize given scale factors (and no size) maps output pixel x to
    source (x + 0.5) / fx - 0.5 with exactly that fx, in float; with
    fx = width / ew its output starts where it should and reaches at least
    `width` once the map has at least ew cells, so it is cropped to size.
    Short maps are first extended by their edge cells, which is the clamping
    a resize does anyway.
    """
    short_r, short_c = max(0, math.ceil(eh) - field.shape[0]), max(0, math.ceil(ew) - field.shape[1])
    if short_r or short_c:
        field = cv2.copyMakeBorder(field, 0, short_r, 0, short_c, cv2.BORDER_REPLICATE)
    out = cv2.resize(field, None, fx=width / ew, fy=height / eh, interpolation=cv2.INTER_LINEAR)
    if out.shape[0] < height or out.shape[1] < width:  # rounding of the size; cannot happen, but never crop short
        out = cv2.copyMakeBorder(out, 0, max(0, height - out.shape[0]), 0, max(0, width - out.shape[1]),
                                 cv2.BORDER_REPLICATE)
    return out.reshape(out.shape[0], out.shape[1], 3)[:height, :width]


def vector_to_hs_np(field: np.ndarray, circular: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """hxwx3 field from `enlarge_hs_np` -> (H in [-1, 1], S in [0, 1]) as float32 hxw."""
    if circular:
        h = np.arctan2(field[..., 1], field[..., 0]) / np.float32(math.pi)
    else:
        h = field[..., 0]
    s01 = np.clip((field[..., 2] + 1.0) / 2.0, 0.0, 1.0)
    return h.astype(np.float32), s01.astype(np.float32)


def hue_sat_unit_np(h: np.ndarray, s01: np.ndarray) -> np.ndarray:
    """hxw H in [-1, 1] and S in [0, 1] -> hxwx3 float32 RGB with V = 1."""
    hsv = np.empty(h.shape + (3,), np.float32)
    hsv[..., 0] = ((h + 1.0) / 2.0 % 1.0) * 360.0
    hsv[..., 1] = s01
    hsv[..., 2] = 1.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def recompose(gray: np.ndarray, h: np.ndarray, s01: np.ndarray, mode: str = "luma") -> np.ndarray:
    """Colour image from gray and hue/saturation, all HxW float32.

    gray in [0, 1]; h in [-1, 1]; s01 in [0, 1]. Returns HxWx3 float32 RGB in [0, 1].

    mode "luma": V is chosen per pixel so that the output's BT.601 luma equals
    the gray exactly; where that needs V > 1, V = 1 and the colour is blended
    toward white by just enough to keep the luma. This is what reproduces a
    real black-and-white photo, whose gray is luma rather than max(R, G, B).
    mode "v": the paper's recomposition, gray used as V.
    """
    u = hue_sat_unit_np(h, s01)  # the colour at V = 1
    if mode == "v":
        return u * gray[..., None]
    if mode != "luma":
        raise ValueError(f"unknown recomposition mode {mode!r}")
    lu = rgb_to_luma_np(u)  # >= 0.114 because one channel of u is 1
    v = gray / lu
    inside = v <= 1.0
    # Outside the gamut: blend to white, t chosen so luma(u + t (1 - u)) = gray.
    denom = np.maximum(1.0 - lu, 1e-6)
    t = np.clip((gray - lu) / denom, 0.0, 1.0)
    scaled = u * v[..., None]
    blended = u + t[..., None] * (1.0 - u)
    return np.where(inside[..., None], scaled, blended).astype(np.float32)


def render_full(
    gray: np.ndarray,
    field: np.ndarray,
    mode: str = "luma",
    saturation: float = 1.0,
    circular: bool = True,
    bit_depth: int = 8,
    rows_per_strip: int = 512,
) -> np.ndarray:
    """Full-size colour image from full-size gray and an enlarged H, S field.

    gray: HxW float32 in [0, 1]; field: HxWx3 from `enlarge_hs_np`.
    Returns HxWx3 uint8 (bit_depth 8) or uint16 (16) RGB. Works in strips of
    rows so a 24-megapixel photo needs only a few small temporaries.
    """
    height, width = gray.shape
    out = np.empty((height, width, 3), np.uint16 if bit_depth == 16 else np.uint8)
    for top in range(0, height, rows_per_strip):
        sl = slice(top, min(height, top + rows_per_strip))
        h, s01 = vector_to_hs_np(field[sl], circular)
        if saturation != 1.0:
            s01 = np.clip(s01 * np.float32(saturation), 0.0, 1.0)
        out[sl] = from_unit_float(recompose(gray[sl], h, s01, mode), bit_depth)
    return out


def hue_map(h: np.ndarray) -> np.ndarray:
    """hxw H in [-1, 1] -> hxwx3 uint8 RGB picture of the hue at full saturation."""
    return from_unit_float(hue_sat_unit_np(h.astype(np.float32), np.ones_like(h, np.float32)), 8)


def saturation_map(s: np.ndarray) -> np.ndarray:
    """hxw S in [-1, 1] -> hxwx3 uint8 gray picture (white = fully saturated)."""
    g = from_unit_float(np.clip((s + 1.0) / 2.0, 0.0, 1.0), 8)
    return np.repeat(g[..., None], 3, axis=2)
