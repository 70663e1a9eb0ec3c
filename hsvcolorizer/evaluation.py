"""Engine of ``hsvcolorizer evaluate``: colorize colour photos and score the results.

Evaluation needs colour originals: each one is turned into the gray photo a
user would give the colorizer (its luma), colorized, and the result compared
with the original. The same figures are computed for the gray photo itself
(the "gray baseline", what doing nothing scores) and for the stage-1 render
(to see what the refinement stage adds). No Qt here; the CLI and the GUI both
call ``evaluate`` and ``format_table``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from hsvcolorizer import metrics
from hsvcolorizer.errors import ColorizerError

# Contact sheet layout, in pixels. Public so the tests (and callers wanting to
# know the output size) need not repeat the numbers.
SHEET_CELL_HEIGHT = 160
SHEET_MAX_CELL_WIDTH = 3 * SHEET_CELL_HEIGHT  # panoramas are shrunk to fit this
SHEET_HEADER_HEIGHT = 28
SHEET_GAP = 4  # white space after each row and around each column
SHEET_COLUMNS = ("gray", "stage 1", "result", "original")
_WHITE = 255
_EMPTY_CELL = 230  # light gray where there is no image (no colorizer given)

_TABLE_ROWS = (("model", "model"), ("stage 1", "stage1"), ("gray baseline", "gray_baseline"))
# (header, summary key, decimals)
_TABLE_COLUMNS = (
    ("PSNR dB", "psnr", 2),
    ("SSIM", "ssim", 3),
    ("a*b* error", "ab_error", 2),
    ("colorfulness", "colorfulness", 2),
    ("colorfulness ratio", "colorfulness_ratio", 3),
    ("saturation ratio", "saturation_ratio", 3),
    ("hue overlap", "hue_overlap", 3),
    ("hue overlap (set)", "hue_overlap_set", 3),
    ("warm share", "warm_share", 3),
    ("warm share (originals)", "warm_share_original", 3),
)


def _to_u8(pixels: np.ndarray) -> np.ndarray:
    """``HxW[x3] uint8/uint16`` -> the same layout in ``uint8`` (0..255), rounded."""
    if pixels.dtype in (np.uint8, np.uint16):
        from hsvcolorizer.imageio import to_8bit

        return to_8bit(pixels)  # the program's one 16-to-8-bit conversion
    raise ColorizerError(f"Unsupported pixel type {pixels.dtype}.")


def _luma_u8(rgb: np.ndarray) -> np.ndarray:
    """``HxWx3 uint8 RGB`` -> ``HxW uint8`` luma, round(0.299 R + 0.587 G + 0.114 B)."""
    try:
        from hsvcolorizer.color import rgb_to_luma_u8
    except ImportError:
        # Same BT.601 formula as the colour module, so the gray input matches
        # what the colorizer itself would derive from an RGB photo.
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        luma = rgb.astype(np.float32) @ weights
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return rgb_to_luma_u8(rgb)


def _gray_rgb(gray: np.ndarray) -> np.ndarray:
    """``HxW uint8`` gray -> ``HxWx3 uint8 RGB`` with three equal channels."""
    return np.repeat(gray[:, :, None], 3, axis=2)


class _Collector:
    """Per-image scores and hue histograms of one method, ready for ``metrics.summarize``."""

    def __init__(self) -> None:
        self.scores: list[metrics.ImageScores] = []
        self.hue_histograms: list[np.ndarray] = []

    def add(self, result: np.ndarray, reference: np.ndarray) -> None:
        self.scores.append(metrics.score(result, reference))
        self.hue_histograms.append(metrics.hue_histogram(result))


def evaluate(
    colorizer,
    files: Sequence[Path],
    working_size: Optional[int] = None,
    mode: Optional[str] = None,
    saturation: float = 1.0,
    sheet: Optional[Path] = None,
    sheet_count: int = 12,
    progress: bool = True,
    hints: int = 0,
    hint_seed: int = 0,
) -> dict:
    """Colorize the luma of each colour photo in ``files`` and score it against the photo.

    Photos that are not colour (``Photo.is_color`` false) are skipped and
    counted in ``skipped_gray``. Files that cannot be read (damaged, not an
    image, above the pixel limit) are skipped too and listed in
    ``skipped_unreadable`` as ``{"path", "reason"}``, one line each, as
    ``batch`` reports them: one bad file in a folder of hundreds should cost
    that file, not the evaluation, and the figures are those of the rest.
    Originals are compared at 8 bits per channel, the depth of the
    colorizer's output and of the gray input made from them, so a perfect
    result reaches the PSNR cap even for 16-bit photos. Alpha is ignored.
    ``working_size``, ``mode`` and ``saturation`` are passed to the colorizer
    (``mode`` and ``saturation`` to both renders). With ``colorizer=None``
    only the gray baseline is computed and ``model`` / ``stage1`` are None.

    ``hints`` > 0 gives the colorizer that many colour hints per photo,
    drawn from the original (``hints.sample_hints``, seeded by ``hint_seed``
    and the photo's place in ``files``, so every count and every model sees
    the same points for the same photo); the model must read hints.

    When ``sheet`` is given, a PNG contact sheet of the first ``sheet_count``
    colour photos is written there (see ``build_sheet``).

    Returns ``{"count", "skipped_gray", "skipped_unreadable", "working_size",
    "mode", "saturation", "model", "stage1", "gray_baseline"}``, the last
    three being ``metrics.summarize`` dicts (with the hue figures:
    ``hue_overlap``, the mean of per-photo overlaps, ``hue_overlap_set``,
    ``warm_share`` and ``warm_share_original``, the set-level ones; the
    originals' warm share is the same in all three). Raises ``ColorizerError``
    when none of the files is a readable colour photo, since every figure
    would be meaningless.
    """
    from tqdm import tqdm

    from hsvcolorizer.imageio import read_image, write_image

    files = [Path(f) for f in files]
    model, stage1, baseline = _Collector(), _Collector(), _Collector()
    ref_colorfulness: list[float] = []
    ref_saturation: list[float] = []
    ref_hue_histograms: list[np.ndarray] = []
    sheet_rows: list[list[Optional[np.ndarray]]] = []
    sheet_names: list[str] = []
    skipped = 0
    unreadable: list[dict] = []

    if hints and colorizer is not None and not getattr(colorizer.model.config, "hint_input", False):
        raise ColorizerError("this model does not read colour hints; evaluate hints with a model trained with --hints")
    for index, path in enumerate(tqdm(files, desc="Evaluating", unit="photo", file=sys.stderr, disable=not progress)):
        try:
            photo = read_image(path)
        except ColorizerError as e:  # read_image turns every decoding failure into this
            unreadable.append({"path": str(path), "reason": str(e)})
            continue
        if not photo.is_color:
            skipped += 1
            continue
        original = _to_u8(photo.pixels)
        gray = _luma_u8(original)
        gray_rgb = _gray_rgb(gray)

        ref_colorfulness.append(metrics.colorfulness(original))
        ref_saturation.append(metrics.mean_saturation(original))
        ref_hue_histograms.append(metrics.hue_histogram(original))
        baseline.add(gray_rgb, original)

        refined = first_stage = None
        if colorizer is not None:
            if hints:
                from hsvcolorizer.hints import sample_hints

                given = sample_hints(original, hints, (hint_seed, index), working_size or colorizer.working_size)
                result = colorizer.colorize(gray, working_size=working_size, hints=given)
            else:
                result = colorizer.colorize(gray, working_size=working_size)
            refined = result.render(stage="refined", mode=mode, saturation=saturation)
            first_stage = result.render(stage="stage1", mode=mode, saturation=saturation)
            model.add(refined, original)
            stage1.add(first_stage, original)

        if sheet is not None and len(sheet_rows) < sheet_count:
            # Thumbnails only: keeping full-size renders of a dozen photos
            # would cost gigabytes on large scans.
            sheet_rows.append([_thumbnail(im) for im in (gray_rgb, first_stage, refined, original)])
            sheet_names.append(Path(path).name)

    count = len(baseline.scores)
    if files and len(unreadable) == len(files):
        raise ColorizerError(
            f"none of the {len(files)} files could be read (the first: {unreadable[0]['reason']})"
        )
    if count == 0:
        left_out = f" ({skipped} gray, {len(unreadable)} unreadable)" if unreadable else ""
        raise ColorizerError(
            f"None of the {len(files)} files is a colour photo{left_out}; evaluation needs colour originals."
        )

    if sheet is not None:
        write_image(Path(sheet), build_sheet(sheet_rows, sheet_names))

    def summary(collector: _Collector) -> dict:
        return metrics.summarize(
            collector.scores,
            ref_colorfulness,
            ref_saturation,
            hue_histograms=collector.hue_histograms,
            references_hue_histograms=ref_hue_histograms,
        )

    return {
        "count": count,
        "skipped_gray": skipped,
        "skipped_unreadable": unreadable,
        "working_size": working_size,
        "mode": mode,
        "saturation": saturation,
        "hints": hints,
        # What the networks ran on and in: the figures move a little with it.
        "device": getattr(colorizer, "device_name", None),
        "precision": getattr(colorizer, "precision", None),
        "model": summary(model) if colorizer is not None else None,
        "stage1": summary(stage1) if colorizer is not None else None,
        "gray_baseline": summary(baseline),
    }


def _thumbnail(image: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``HxWx3 uint8/uint16 RGB`` -> ``SHEET_CELL_HEIGHT`` px high ``uint8 RGB``, aspect kept.

    Very wide images are shrunk further to ``SHEET_MAX_CELL_WIDTH`` so one
    panorama does not widen every column of the sheet. None stays None.
    """
    if image is None:
        return None
    image = _to_u8(image)  # a render of a 16-bit photo would be uint16
    h, w = image.shape[:2]
    scale = min(SHEET_CELL_HEIGHT / h, SHEET_MAX_CELL_WIDTH / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # INTER_AREA avoids aliasing when shrinking; it is blocky when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def build_sheet(rows: Sequence[Sequence[Optional[np.ndarray]]], names: Sequence[str] | None = None) -> np.ndarray:
    """Lay out thumbnail rows as a contact sheet, ``HxWx3 uint8 RGB``.

    ``names`` (one per row, the photos' file names) are written small on
    each row's gray cell, so that a photo seen on the sheet can be found;
    the result and original cells are left untouched.

    ``rows`` holds one entry per photo with one ``uint8 RGB`` thumbnail (at
    most ``SHEET_CELL_HEIGHT`` high) or None per column of ``SHEET_COLUMNS``.
    Every cell is padded with white to a common width; None cells are filled
    light gray. Under a ``SHEET_HEADER_HEIGHT`` header of column titles, each
    row takes ``SHEET_CELL_HEIGHT + SHEET_GAP`` px, so the sheet is
    ``SHEET_HEADER_HEIGHT + len(rows) * (SHEET_CELL_HEIGHT + SHEET_GAP)`` px
    high and ``len(SHEET_COLUMNS) * (cell width + SHEET_GAP) + SHEET_GAP`` wide.
    """
    widths = [cell.shape[1] for row in rows for cell in row if cell is not None]
    cell_w = max(widths, default=SHEET_CELL_HEIGHT)
    # The header text needs room too, or titles would overlap on narrow cells.
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    title_sizes = [cv2.getTextSize(t, font, font_scale, thickness)[0] for t in SHEET_COLUMNS]
    cell_w = max(cell_w, max(tw for tw, _ in title_sizes) + 2 * SHEET_GAP)

    ncols = len(SHEET_COLUMNS)
    pitch_x = cell_w + SHEET_GAP
    pitch_y = SHEET_CELL_HEIGHT + SHEET_GAP
    height = SHEET_HEADER_HEIGHT + len(rows) * pitch_y
    width = ncols * pitch_x + SHEET_GAP
    canvas = np.full((height, width, 3), _WHITE, dtype=np.uint8)

    for col, (title, (tw, th)) in enumerate(zip(SHEET_COLUMNS, title_sizes)):
        x = SHEET_GAP + col * pitch_x + (cell_w - tw) // 2
        y = (SHEET_HEADER_HEIGHT + th) // 2
        cv2.putText(canvas, title, (x, y), font, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)

    for r, row in enumerate(rows):
        top = SHEET_HEADER_HEIGHT + r * pitch_y
        for col, cell in enumerate(row):
            left = SHEET_GAP + col * pitch_x
            if cell is None:
                canvas[top : top + SHEET_CELL_HEIGHT, left : left + cell_w] = _EMPTY_CELL
                continue
            h, w = cell.shape[:2]
            # Centre the image in its cell so rows of mixed aspect line up.
            y0 = top + (SHEET_CELL_HEIGHT - h) // 2
            x0 = left + (cell_w - w) // 2
            canvas[y0 : y0 + h, x0 : x0 + w] = cell
        if names is not None and r < len(names):
            _label(canvas, names[r], SHEET_GAP, top + SHEET_CELL_HEIGHT - 6, cell_w)
    return canvas


def _label(canvas: np.ndarray, text: str, x: int, baseline: int, max_width: int) -> None:
    """Small white text with a dark outline (readable on any photo), cut in
    the middle with "..." to fit max_width pixels."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.38
    fits = lambda t: cv2.getTextSize(t, font, scale, 1)[0][0] + 8 <= max_width  # noqa: E731
    if not fits(text):
        keep = len(text)
        while keep > 2 and not fits(text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]):
            keep -= 1
        text = text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]
    cv2.putText(canvas, text, (x + 4, baseline), font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (x + 4, baseline), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _fmt(value: Optional[float], decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def format_table(report: dict) -> str:
    """Render an ``evaluate`` report as an aligned plain-text table.

    One row per method (model, stage 1, gray baseline), one column per
    figure; methods not computed and undefined ratios show ``n/a``. Then a
    line gives the number of photos scored and skipped, and each unreadable
    file follows on its own line with the reason, as ``batch`` lists failures.
    """
    headers = ["method"] + [title for title, _, _ in _TABLE_COLUMNS]
    lines = []
    for label, key in _TABLE_ROWS:
        summary = report.get(key)
        cells = [label]
        for _, field, decimals in _TABLE_COLUMNS:
            cells.append(_fmt(summary.get(field) if summary else None, decimals))
        lines.append(cells)

    widths = [max(len(row[i]) for row in [headers] + lines) for i in range(len(headers))]

    def join(cells: list[str]) -> str:
        # Names left-aligned, numbers right-aligned so decimal points line up.
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest).rstrip()

    out = [join(headers), "  ".join("-" * w for w in widths)]
    out += [join(cells) for cells in lines]
    unreadable = report.get("skipped_unreadable") or []
    out.append(
        f"{report.get('count', 0)} colour photos scored, "
        f"{report.get('skipped_gray', 0)} gray photos skipped"
        + (f", {len(unreadable)} unreadable files skipped" if unreadable else "")
        + (f"; networks on {report['device']} in {report['precision']}" if report.get("precision") else "")
    )
    out += [f"  unreadable {item['path']}: {item['reason']}" for item in unreadable]
    return "\n".join(out)
