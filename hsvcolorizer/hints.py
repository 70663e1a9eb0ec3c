"""Colour hints: points where the user knows the colour, and the map that
carries them into LR-CMGN.

A hint is a pixel of the full-size photo (x the column, y the row) and an
8-bit sRGB colour. The networks see hints as a 4-channel map at the working
size: (cos H, sin H, S, mask), the hue as a unit vector so that the map has
no seam at red, S in [0, 1], the mask 1 on hinted pixels; zeros everywhere
else. Each hint covers a small square, as in training.

Training simulates hints from the ground truth as Zhang et al. (2017) did
for their user-guided network: no hints in about half of the photos, in
the others a geometrically distributed number of points (mean about 8),
each a small square whose colour is the photo's mean colour there, placed
uniformly or where the photo is colourful.

Files: ``NAME.hints.json`` beside the photo, ``{"hints": [{"x": 120,
"y": 45, "rgb": [200, 30, 40]}, ...]}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hsvcolorizer.atomic import atomic_write
from hsvcolorizer.errors import ColorizerError

__all__ = [
    "HINT_CHANNELS",
    "HINT_SIDE",
    "HINTS_SUFFIX",
    "Hint",
    "check_inside",
    "hint_map",
    "hints_from_json",
    "hints_path_for",
    "hints_to_json",
    "read_hints",
    "sample_hints",
    "simulate_hints",
    "write_hints",
]

HINT_CHANNELS = 4  # cos H, sin H, S, mask
# Side in working pixels of the square one hint covers at inference: the
# middle of the sides drawn in training (TRAIN_SIDES), a little more than
# one stage-1 cell (4 working pixels), so a hint always reaches a cell.
HINT_SIDE = 5
TRAIN_SIDES = (1, 3, 5, 7)
HINTS_SUFFIX = ".hints.json"


@dataclass(frozen=True)
class Hint:
    """The colour of the photo at column x, row y (full-size pixels),
    as 8-bit sRGB (r, g, b)."""

    x: int
    y: int
    rgb: tuple[int, int, int]


def hints_path_for(photo: str | Path) -> Path:
    """Where the hints of ``photo`` are kept: NAME.hints.json beside it."""
    photo = Path(photo)
    return photo.with_name(photo.stem + HINTS_SUFFIX)


# No photo is this large; a larger number in a hint file is a mistake, and
# one of thousands of digits would only make the error line unreadable.
_LARGEST = 10**9


def _int(value: object, what: str, where: str) -> int:
    # bool is an int in Python; true/false in a hint file is a mistake.
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())):
        raise ColorizerError(f"{where}: {what} must be a whole number, not {json.dumps(value)}")
    if abs(value) > _LARGEST:
        raise ColorizerError(f"{where}: {what} is far too large to be a pixel or a colour value")
    return int(value)


def hints_from_json(data: object, where: str = "hints") -> list[Hint]:
    """The hints of a parsed hint file; ColorizerError naming the first
    problem (``where`` is put in front: the file's name)."""
    if not isinstance(data, dict) or not isinstance(data.get("hints"), list):
        raise ColorizerError(f'{where}: expected {{"hints": [{{"x": .., "y": .., "rgb": [r, g, b]}}, ...]}}')
    hints = []
    for i, item in enumerate(data["hints"], start=1):
        at = f"{where}, hint {i}"
        if not isinstance(item, dict) or not {"x", "y", "rgb"} <= set(item):
            raise ColorizerError(f'{at}: expected {{"x": .., "y": .., "rgb": [r, g, b]}}')
        rgb = item["rgb"]
        if not isinstance(rgb, list) or len(rgb) != 3:
            raise ColorizerError(f"{at}: rgb must be three numbers 0-255, not {json.dumps(rgb)}")
        channels = tuple(_int(c, "each rgb value", at) for c in rgb)
        if any(c < 0 or c > 255 for c in channels):
            raise ColorizerError(f"{at}: rgb values must be 0-255, not {list(channels)}")
        hints.append(Hint(_int(item["x"], "x", at), _int(item["y"], "y", at), channels))  # type: ignore[arg-type]
    return hints


def hints_to_json(hints: list[Hint]) -> dict:
    return {"hints": [{"x": h.x, "y": h.y, "rgb": list(h.rgb)} for h in hints]}


def read_hints(path: str | Path) -> list[Hint]:
    """Read a hint file; ColorizerError (one line) if it is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ColorizerError(f"hint file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ColorizerError(f"cannot read the hint file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ColorizerError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting thousands deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ColorizerError(f"{path.name}: not a hint file ({reason})") from None
    return hints_from_json(data, path.name)


def write_hints(path: str | Path, hints: list[Hint]) -> Path:
    """Write a hint file atomically (temporary name, then rename)."""
    text = json.dumps(hints_to_json(hints), indent=1).encode("utf-8") + b"\n"
    return atomic_write(path, lambda f: f.write(text))


def check_inside(hints: list[Hint], width: int, height: int, where: str = "hints") -> None:
    """ColorizerError when a hint lies outside a width x height photo."""
    for i, h in enumerate(hints, start=1):
        if not (0 <= h.x < width and 0 <= h.y < height):
            raise ColorizerError(
                f"{where}, hint {i}: ({h.x}, {h.y}) is outside the photo, which is {width}x{height} "
                f"(x 0-{width - 1}, y 0-{height - 1})"
            )


def _rgb_to_hs_unit(rgb01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nx3 RGB in [0, 1] -> hue angle in radians and S in [0, 1] (HSV, as
    color.rgb_to_hsv; the hue of a gray colour is 0)."""
    t = torch.from_numpy(np.asarray(rgb01, np.float32).reshape(-1, 3, 1, 1))
    from hsvcolorizer.color import rgb_to_hsv

    hsv = rgb_to_hsv(t)[:, :, 0, 0].numpy()
    return hsv[:, 0] * math.pi, (hsv[:, 1] + 1) / 2


def hint_map(hints: list[Hint], photo_size: tuple[int, int], working_shape: tuple[int, int],
             padded_shape: tuple[int, int] | None = None) -> np.ndarray:
    """The networks' view of ``hints``: 4xHxW float32 (cos H, sin H, S in
    [0, 1], mask in {0, 1}) at the working size.

    photo_size: (width, height) of the full-size photo the hints are in.
    working_shape: (h, w) of the working image (the whole photo resized).
    padded_shape: (H, W) of the network input, the working image padded at
    the bottom and right (default: working_shape).
    A hint at photo pixel (x, y) lands on working pixel (x w / W, y h / H)
    and covers a HINT_SIDE square around it; where two overlap, the later wins.
    """
    width, height = photo_size
    h, w = working_shape
    ph, pw = padded_shape or working_shape
    out = np.zeros((HINT_CHANNELS, ph, pw), np.float32)
    if not hints:
        return out
    angle, sat = _rgb_to_hs_unit(np.array([hint.rgb for hint in hints], np.float32) / 255.0)
    half = HINT_SIDE // 2
    for hint, a, s in zip(hints, angle, sat):
        # Pixel centres: photo pixel x spans [x, x+1), working pixel j spans
        # [j W/w, (j+1) W/w); the centre x + 0.5 falls in column floor(...).
        col = min(w - 1, int((hint.x + 0.5) * w / width))
        row = min(h - 1, int((hint.y + 0.5) * h / height))
        r0, r1 = max(0, row - half), min(h, row + half + 1)
        c0, c1 = max(0, col - half), min(w, col + half + 1)
        out[:, r0:r1, c0:c1] = np.array([math.cos(a), math.sin(a), s, 1.0], np.float32)[:, None, None]
    return out


def simulate_hints(rgb: torch.Tensor, generator: torch.Generator, no_hint_share: float = 0.5,
                   mean_points: float = 8.0, max_points: int = 40, colourful_share: float = 0.5) -> torch.Tensor:
    """Simulated user hints for a training batch (Zhang et al. 2017).

    rgb: Bx3xHxW float RGB in [0, 1] (the ground truth), on any device.
    Returns Bx4xHxW float32 (cos H, sin H, S, mask) on rgb's device.

    Per photo: none with probability ``no_hint_share``; otherwise
    1 + Geometric points (mean ``mean_points``, at most ``max_points``),
    each a square of a side drawn from TRAIN_SIDES whose colour is the
    photo's mean RGB over that square; the points are placed uniformly,
    or (in ``colourful_share`` of the photos) with probability proportional
    to saturation, where a hint tells the network the most.
    ``generator`` lives on the CPU so a resumed run draws the same hints.
    """
    b, _, height, width = rgb.shape
    device = rgb.device
    out = torch.zeros(b, HINT_CHANNELS, height, width, device=device)
    with_hints = torch.rand(b, generator=generator) >= no_hint_share
    p = 1.0 / mean_points
    counts = (torch.log(torch.rand(b, generator=generator).clamp_min(1e-12)) / math.log1p(-p)).floor().long() + 1
    counts = torch.where(with_hints, counts.clamp(max=max_points), torch.zeros_like(counts))
    total = int(counts.sum())
    if total == 0:
        return out
    owner = torch.repeat_interleave(torch.arange(b), counts)  # photo of each point
    sides = torch.tensor(TRAIN_SIDES)[torch.randint(len(TRAIN_SIDES), (total,), generator=generator)]

    # Positions: uniform, or drawn from each photo's saturation.
    from hsvcolorizer.color import rgb_to_hsv

    hsv = rgb_to_hsv(rgb.float())
    sat = ((hsv[:, 1] + 1) / 2).flatten(1).cpu()  # B x HW
    colourful = torch.rand(b, generator=generator) < colourful_share
    flat = torch.randint(height * width, (total,), generator=generator)
    weights = sat + 1e-4  # a photo with no saturation falls back to uniform
    for i in torch.nonzero(colourful & with_hints).flatten().tolist():
        mine = torch.nonzero(owner == i).flatten()
        flat[mine] = torch.multinomial(weights[i], len(mine), replacement=True, generator=generator)
    ys, xs = flat // width, flat % width

    # Mean RGB over each square from an integral image (any side at one cost).
    half = sides // 2
    y0, y1 = (ys - half).clamp(0, height), (ys + half + 1).clamp(0, height)
    x0, x1 = (xs - half).clamp(0, width), (xs + half + 1).clamp(0, width)
    integral = F.pad(rgb.float().cumsum(2).cumsum(3), (1, 0, 1, 0))  # B x 3 x (H+1) x (W+1)
    o, dev = owner.to(device), lambda t: t.to(device)
    y0d, y1d, x0d, x1d = dev(y0), dev(y1), dev(x0), dev(x1)
    sums = (integral[o, :, y1d, x1d] - integral[o, :, y0d, x1d] - integral[o, :, y1d, x0d] + integral[o, :, y0d, x0d])
    area = ((y1d - y0d) * (x1d - x0d)).clamp_min(1).unsqueeze(1).float()
    mean = (sums / area).view(total, 3, 1, 1)
    hs = rgb_to_hsv(mean)[:, :, 0, 0]
    angle, s01 = hs[:, 0] * math.pi, (hs[:, 1] + 1) / 2
    values = torch.stack([torch.cos(angle), torch.sin(angle), s01, torch.ones_like(s01)], 1)  # total x 4

    # Paint the squares: every (point, offset inside the largest square)
    # pair at once, each point keeping the offsets its own side covers; one
    # data-dependent step, so a GPU waits once per batch, not once per
    # offset. Where squares overlap, one of them wins (which one is not
    # defined on a GPU; it does not matter).
    biggest = max(TRAIN_SIDES) // 2
    offsets = torch.arange(-biggest, biggest + 1, device=device)
    dy = offsets.repeat_interleave(len(offsets))  # (2b+1)^2 offsets
    dx = offsets.repeat(len(offsets))
    hd = dev(half).unsqueeze(1)
    yy, xx = dev(ys).unsqueeze(1) + dy, dev(xs).unsqueeze(1) + dx  # total x offsets
    keep = (hd >= dy.abs()) & (hd >= dx.abs()) & (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
    point, offset = torch.nonzero(keep, as_tuple=True)
    out[o[point], :, yy[point, offset], xx[point, offset]] = values[point]
    return out


def sample_hints(rgb: np.ndarray, count: int, seed: int | tuple = 0, working_size: int = 256) -> list[Hint]:
    """``count`` hints drawn from a colour original, as a user who knows the
    true colours would give them (evaluation, and the README's example).

    rgb: HxWx3 uint8 RGB, the original. Points are uniform over the photo
    (a fixed ``seed`` gives the same points); each hint's colour is the
    original's mean over the square one hint covers at ``working_size``
    (HINT_SIDE working pixels), as training's simulated hints are.
    """
    height, width = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, height, count)
    xs = rng.integers(0, width, count)
    scale = max(height, width) / min(working_size, max(height, width))
    half = max(0, int(round(HINT_SIDE * scale)) // 2)
    hints = []
    for y, x in zip(ys.tolist(), xs.tolist()):
        patch = rgb[max(0, y - half): y + half + 1, max(0, x - half): x + half + 1].reshape(-1, 3)
        mean = np.rint(patch.astype(np.float64).mean(0)).astype(int)
        hints.append(Hint(int(x), int(y), (int(mean[0]), int(mean[1]), int(mean[2]))))
    return hints
