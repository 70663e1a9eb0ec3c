"""Where the stage maps land on the photo, and the prepared cache's failure path.

The documented geometry (inference.Result): the working image (h, w) is the
whole photo resized, so photo column X (centre X + 0.5 of W) is at working
position u = (X + 0.5) * w / W. Refined pixel j is working pixel j (centre
j + 0.5); stage-1 cell j was computed from working pixels [4j, 4j + 4)
(centre 4j + 2). Enlarged bilinearly, a map therefore shows at X the value of
its cells interpolated at u, clamped between its first and last centres.
These tests use stub models, so they check the geometry and nothing learned.
"""

import errno
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsvcolorizer import color, data
from hsvcolorizer.data import CACHE_ARRAY, CACHE_META, CACHE_SIZES, CacheArray, is_cache, prepare_cache
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.networks import ModelConfig

# Working positions are encoded as H (x) and S (y) linearly over this many
# working pixels, which is more than any working side used here.
SPAN = 400.0


def encode(pos: torch.Tensor) -> torch.Tensor:
    return -0.9 + 1.8 * pos / SPAN


def decode(v: np.ndarray) -> np.ndarray:
    return (v.astype(np.float64) + 0.9) / 1.8 * SPAN


class PositionModel(nn.Module):
    """Stage 1: each cell's H is its centre's working x, S its working y.
    Refined: the same for each working pixel. The input is only measured."""

    def __init__(self, circular: bool):
        super().__init__()
        self.config = ModelConfig(circular_resize=circular)

    @staticmethod
    def _maps(rows: int, cols: int, step: int) -> torch.Tensor:
        cx = encode((torch.arange(cols, dtype=torch.float32) + 0.5) * step)
        cy = encode((torch.arange(rows, dtype=torch.float32) + 0.5) * step)
        return torch.stack([cx[None, :].expand(rows, cols), cy[:, None].expand(rows, cols)])[None]

    def forward(self, x):
        ph, pw = x.shape[-2:]
        return self._maps(ph // 4, pw // 4, 4), self._maps(ph, pw, 1)


class PoolModel(nn.Module):
    """Stage 1: S is the mean input gray of each 4x4 cell, H constant;
    refined: S is the input gray itself. A map cell shows what it saw."""

    def __init__(self):
        super().__init__()
        self.config = ModelConfig()

    def forward(self, x):
        s1 = 0.9 * F.avg_pool2d(x, 4)
        s2 = 0.9 * x
        return torch.cat([torch.full_like(s1, 0.3), s1], 1), torch.cat([torch.full_like(s2, 0.3), s2], 1)


def stub(model: nn.Module) -> Colorizer:
    return Colorizer(model, {"input_channel": "luma"}, "cpu")


def working_positions(n_full: int, n_work: int) -> np.ndarray:
    return (np.arange(n_full) + 0.5) * n_work / n_full


SHAPES = [(757, 1001), (1001, 757), (30, 45), (5, 7), (1, 1)]


@pytest.mark.parametrize("circular", [True, False])
@pytest.mark.parametrize("working_size", [250, 257])
@pytest.mark.parametrize("shape", SHAPES)
def test_stage1_cells_land_where_they_were_computed(shape, working_size, circular):
    res = stub(PositionModel(circular)).colorize(np.zeros(shape, np.uint8), working_size=working_size)
    h, w = res.working_size
    rows, cols = res.stage1_hs.shape[1:]
    # every working pixel belongs to a cell that is kept
    assert 4 * rows >= h and 4 * cols >= w
    hue, s01 = res.full_hs("stage1")
    assert hue.shape == shape
    seen_x, seen_y = decode(hue), decode(2 * s01 - 1)
    want_x = np.clip(working_positions(shape[1], w), 2, 4 * cols - 2)
    want_y = np.clip(working_positions(shape[0], h), 2, 4 * rows - 2)
    # to within 1/80 of a cell, across the whole photo: left, right, top, bottom
    assert np.abs(seen_x - want_x[None, :]).max() < 0.05
    assert np.abs(seen_y - want_y[:, None]).max() < 0.05


@pytest.mark.parametrize("working_size", [250, 257])
@pytest.mark.parametrize("shape", SHAPES)
def test_refined_map_uses_the_same_convention(shape, working_size):
    res = stub(PositionModel(True)).colorize(np.zeros(shape, np.uint8), working_size=working_size)
    h, w = res.working_size
    hue, s01 = res.full_hs("refined")
    want_x = np.clip(working_positions(shape[1], w), 0.5, w - 0.5)
    want_y = np.clip(working_positions(shape[0], h), 0.5, h - 0.5)
    assert np.abs(decode(hue) - want_x[None, :]).max() < 0.05
    assert np.abs(decode(2 * s01 - 1) - want_y[:, None]).max() < 0.05


@pytest.mark.parametrize("max_side, tol", [(120, 0.05), (40, 0.4)])
def test_a_preview_shows_the_same_geometry(max_side, tol):
    # 40 is smaller than the stage-1 map (63 x 48 cells): the shrinking path,
    # whose cv2.INTER_AREA is itself off by up to ~0.08 cell at such scales
    res = stub(PositionModel(True)).colorize(np.zeros((757, 1001), np.uint8), working_size=250)
    small = res.preview(max_side)
    gh, gw = small.gray.shape
    rows, cols = res.stage1_hs.shape[1:]
    hue, s01 = small.full_hs("stage1")
    want_x = np.clip(working_positions(gw, 250), 2, 4 * cols - 2)
    want_y = np.clip(working_positions(gh, res.working_size[0]), 2, 4 * rows - 2)
    assert np.abs(decode(hue) - want_x[None, :]).max() < tol
    assert np.abs(decode(2 * s01 - 1) - want_y[:, None]).max() < tol


@pytest.mark.parametrize("circular", [True, False])
@pytest.mark.parametrize(
    "cells, extent, size",
    [((48, 63), (47.25, 62.5), (757, 1001)),  # last cells reach past the picture
     ((47, 62), (47.25, 62.5), (757, 1001)),  # a map short of its extent: clamped
     ((2, 2), (1.25, 1.75), (5, 7)),
     ((48, 63), (47.25, 62.5), (30, 40))],  # shrinking
)
def test_enlarge_with_an_extent_samples_at_the_documented_positions(cells, extent, size, circular):
    (rows, cols), (eh, ew), (height, width) = cells, extent, size
    # H: the cell's column, S: its row (each encoded linearly)
    hs = np.stack([np.broadcast_to(encode(torch.arange(cols) * 4.0).numpy()[None, :], (rows, cols)),
                   np.broadcast_to(encode(torch.arange(rows) * 4.0).numpy()[:, None], (rows, cols))])
    hue, s01 = color.vector_to_hs_np(color.enlarge_hs_np(hs, width, height, circular, extent), circular)
    assert hue.shape == (height, width)
    want_c = np.clip((np.arange(width) + 0.5) * ew / width - 0.5, 0, cols - 1)
    want_r = np.clip((np.arange(height) + 0.5) * eh / height - 0.5, 0, rows - 1)
    tol = 0.1 if width < ew else 0.01  # cv2.INTER_AREA is off by ~0.08 cell at such scales
    assert np.abs(decode(hue) / 4 - want_c[None, :]).max() < tol
    assert np.abs(decode(2 * s01 - 1) / 4 - want_r[:, None]).max() < tol


def crossing(profile: np.ndarray) -> float:
    """Sub-pixel position (in pixel-centre coordinates, pixel i at i + 0.5)
    where a monotonic step profile passes half-way between its ends."""
    mid = (profile[0] + profile[-1]) / 2
    up = profile[-1] > profile[0]
    i = int(np.argmax(profile >= mid) if up else np.argmax(profile <= mid))
    a, b = profile[i - 1], profile[i]
    return i - 1 + 0.5 + (mid - a) / (b - a)


@pytest.mark.parametrize("working_size", [250, 257])
@pytest.mark.parametrize("shape", [(757, 1001), (1001, 757)])
def test_an_edge_in_the_photo_is_an_edge_in_the_enlarged_stage1_map(shape, working_size):
    """A photo of four flat regions, split at a column and a row near each
    end: the enlarged stage-1 S steps at that column and row (to about 1/8 of
    a cell; a cell is ~16 photo px here), like the refined map does."""
    height, width = shape
    for x0, y0 in ((37, 29), (width - 41, height - 35)):
        yy, xx = np.mgrid[0:height, 0:width]
        gray = (20 + 100 * (xx >= x0) + 100 * (yy >= y0)).astype(np.uint8)
        res = stub(PoolModel()).colorize(gray, working_size=working_size)
        cell = 4 * width / res.working_size[1]
        for stage, tol in (("stage1", cell / 8), ("refined", 1.0)):
            _, s01 = res.full_hs(stage)
            # the middle row and column, far from the other edge
            row, col = s01[height // 2], s01[:, width // 2]
            assert abs(crossing(row) - x0) < tol, (stage, "column", crossing(row), x0)
            assert abs(crossing(col) - y0) < tol, (stage, "row", crossing(col), y0)


# ---------------------------------------------------------------------------
# prepare: a failure leaves no .partial file and no half cache
# ---------------------------------------------------------------------------


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fail_decoding(monkeypatch, exc):
    real, calls = data.load_canvas_photo, []

    def flaky(path, size):
        calls.append(path)
        if len(calls) == 5:
            raise exc
        return real(path, size)

    monkeypatch.setattr(data, "load_canvas_photo", flaky)


def _fail_writing_sizes(monkeypatch, exc):
    def full(f, *a, **k):
        f.write(b"\x93NUMPY half")
        raise exc

    monkeypatch.setattr(data.np, "save", full)


def _fail_writing_meta(monkeypatch, exc):
    real = data.json.dumps

    def dumps(obj, *a, **k):
        if isinstance(obj, dict) and "files" in obj:
            raise exc
        return real(obj, *a, **k)

    monkeypatch.setattr(data.json, "dumps", dumps)


FAILURES = {
    "decode error": (_fail_decoding, ValueError("corrupt JPEG")),
    "interrupted": (_fail_decoding, KeyboardInterrupt()),
    "disk full": (_fail_writing_sizes, OSError(errno.ENOSPC, "No space left on device")),
    "meta fails": (_fail_writing_meta, MemoryError()),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_prepare_failure_leaves_no_partial_and_no_cache(photo_folder, tmp_path, monkeypatch, failure):
    inject, exc = FAILURES[failure]
    inject(monkeypatch, exc)
    out = tmp_path / "cache"
    with pytest.raises(type(exc)):
        prepare_cache(photo_folder, out, size=36)
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], left
    assert not is_cache(out)


@pytest.mark.parametrize("failure", list(FAILURES))
def test_prepare_failure_keeps_an_earlier_cache_usable(photo_folder, tmp_path, monkeypatch, failure):
    out = tmp_path / "cache"
    meta = prepare_cache(photo_folder, out, size=36)
    before = _snapshot(out)
    inject, exc = FAILURES[failure]
    inject(monkeypatch, exc)
    with pytest.raises(type(exc)):
        prepare_cache(photo_folder, out, size=40)
    assert _snapshot(out) == before  # no .partial file, the old files untouched
    monkeypatch.undo()
    cache = CacheArray(out)
    assert len(cache) == meta["count"] and cache.images.shape[1] == data.canvas_side(36)


def test_prepare_replaces_a_cache_only_on_success(photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    prepare_cache(photo_folder, out, size=36)
    # a rename of the commit fails: the old cache is no longer offered as a
    # cache, and nothing half-written is left behind
    real, seen = os.replace, []

    def replace(a, b):
        seen.append(str(b))
        if str(b).endswith(CACHE_META):
            raise OSError(errno.EIO, "I/O error")
        return real(a, b)

    monkeypatch.setattr(data.os, "replace", replace)
    with pytest.raises(OSError):
        prepare_cache(photo_folder, out, size=40)
    monkeypatch.undo()
    assert seen, "the commit renames went through os.replace"
    assert not is_cache(out) and not [p for p in out.iterdir() if p.name.endswith(".partial")]
    # and a successful run replaces everything together
    meta = prepare_cache(photo_folder, out, size=40)
    assert sorted(p.name for p in out.iterdir()) == sorted([CACHE_ARRAY, CACHE_SIZES, CACHE_META])
    assert CacheArray(out).images.shape[1] == data.canvas_side(40) and meta["size"] == 40
