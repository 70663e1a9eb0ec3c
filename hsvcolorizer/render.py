"""Full-size rendering with torch on the inference device.

The predicted H, S map (the working size's, or stage 1's quarter of it) is
enlarged to the photo's size and recomposed with the photo's full-size gray,
a strip of rows at a time, so that a 24-megapixel photo needs only a few
strip-sized temporaries and, on a CPU, each strip's arithmetic stays in the
cache. On a GPU the strips are computed there and only the gray goes in and
the 8- or 16-bit result comes back.

This computes what `color.render_full(gray, color.enlarge_hs_np(...))` does
(the numpy reference, kept for the training previews and as the tests'
yardstick), within one output level: the same bilinear sampling as OpenCV's
INTER_LINEAR, the same HSV -> RGB and the same recomposition, written as a
few fused steps:

- the colour at V = 1 is u_c = 1 - S f_c(hue), f_c in [0, 1] piecewise
  linear in the hue (OpenCV's HSV -> RGB), and its luma is 1 - S L(hue)
  with L = sum of the BT.601 weights times f_c;
- every recomposed pixel is then A - B f_c for two per-pixel numbers:
  mode "v": A = gray, B = gray S;
  mode "luma" inside the gamut (gray <= luma of u): A = gray / luma(u),
  B = A S; outside, where u is blended toward white until its luma is the
  gray: A = 1, B = (1 - gray) / L. Both cases are A = min(gray / luma(u), 1)
  and B = min(A S, (1 - gray) / L), because the two candidates cross exactly
  at the gamut's edge; so no per-pixel branch is needed.
"""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import cv2
import numpy as np
import torch

from hsvcolorizer import color

# Pixels per strip. On a CPU a quarter of a megapixel keeps a strip's dozen
# float planes in the core's 2 MB L2 and the shared L3 (on the 2-core Xeon of
# issue 11, 1 M-pixel strips took 70 % more CPU time) while the ~35 torch
# calls per strip cost little. On a GPU, big strips: launches are the cost.
CPU_STRIP_PIXELS = 1 << 18
GPU_STRIP_PIXELS = 1 << 23

# OpenCV's HSV -> RGB at V = 1 is 1 - S f_c with, for t = 6 x hue in turns,
# f_red = clamp(2 - |t - 3|, 0, 1), f_green = clamp(|t - 2| - 1, 0, 1) and
# f_blue = clamp(|t - 4| - 1, 0, 1). In x = t - 3 = 3 / pi x the hue angle
# (atan2's, in [-pi, pi]) all three are q_c = clamp(|x - centre_c| - 1, 0, 1),
# with f_red = 1 - q_red: the same three operations for each channel.
_Q_CENTRE = (0.0, -1.0, 1.0)


def sampling(n_out: int, n_map: int, extent: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling of one axis exactly as cv2.resize's INTER_LINEAR
    computes it: output pixel i reads map cells (i0, i1) with weight frac on
    i1, at cell coordinate (i + 0.5) * extent / n_out - 0.5 clamped to the map.

    extent: how many map cells the output spans (see color.enlarge_hs_np);
    None: all n_map of them. Returns int64 i0, int64 i1 and float32 frac.
    """
    scale = (extent if extent is not None else n_map) / n_out
    # As OpenCV (5.0) does: coordinate and fraction in double, weights in float.
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    i0 = np.floor(src)
    frac = (src - i0).astype(np.float32)
    i0 = i0.astype(np.int64)
    low = i0 < 0
    i0[low], frac[low] = 0, 0.0
    high = i0 >= n_map - 1
    i0[high], frac[high] = n_map - 1, 0.0
    return i0, np.minimum(i0 + 1, n_map - 1), frac


def _is_plain_enlargement(map_shape: tuple[int, int], width: int, height: int,
                          extent: tuple[float, float] | None) -> bool:
    """True where color.enlarge_hs_np samples the map with one bilinear
    resize (every case of a full-size photo); False where it area-averages or
    resizes twice (an output smaller than the map: previews), which
    Enlarger then leaves to it."""
    mh, mw = map_shape
    if extent is not None and (abs(extent[0] - mh) > 1e-9 or abs(extent[1] - mw) > 1e-9):
        return width >= extent[1] and height >= extent[0]
    return not (width < mw and height < mh)


def _map_channels(hs: np.ndarray, circular: bool) -> np.ndarray:
    """2xhxw (H, S) in [-1, 1] -> Cxhxw float32 what is resized: (w cos, w sin, S)
    when circular (as color.hs_to_vector_np), else (H, S)."""
    if circular:
        return np.ascontiguousarray(color.hs_to_vector_np(hs).transpose(2, 0, 1))
    return np.ascontiguousarray(hs[:2], dtype=np.float32)


def _runs(y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Starts of the runs of rows that blend the same two map rows (an
    enlarged photo has runs of about its enlargement factor), and the end:
    run k is rows [runs[k], runs[k + 1])."""
    change = np.flatnonzero((np.diff(y0) != 0) | (np.diff(y1) != 0)) + 1
    return np.concatenate([[0], change, [len(y0)]]).astype(np.int64)


def _strips(height: int, width: int, pixels: int) -> list[tuple[int, int]]:
    """Rows -> (top, bottom) strips of about `pixels` pixels."""
    rows = max(1, pixels // max(1, width))
    return [(t, min(height, t + rows)) for t in range(0, height, rows)]


class Enlarger:
    """The H, S map of one photo ready to be enlarged strip by strip on `device`.

    It keeps the map enlarged along the rows only (C x map rows x photo
    width, a few MB for any photo), so a strip is a blend of two of its rows.
    """

    def __init__(self, hs: np.ndarray, width: int, height: int, circular: bool = True,
                 extent: tuple[float, float] | None = None, device: torch.device | str = "cpu"):
        self.width, self.height, self.circular = width, height, circular
        self.device = torch.device(device)
        if _is_plain_enlargement(hs.shape[1:], width, height, extent):
            chans = _map_channels(hs, circular)
            ey, ex = extent if extent is not None else (None, None)
            ys, xs = sampling(height, chans.shape[1], ey), sampling(width, chans.shape[2], ex)
        else:
            # Output smaller than the map (a preview): the reference's own
            # field, used as a map that covers the output cell for cell.
            full = color.enlarge_hs_np(hs, width, height, circular, extent)
            chans = np.ascontiguousarray(full.transpose(2, 0, 1)[: 3 if circular else 2])
            ys, xs = sampling(height, height), sampling(width, width)
        self._y = ys
        self._runs = _runs(ys[0], ys[1])
        self._strips: dict[int, list[tuple[int, int]]] = {}
        # As OpenCV: S0 (1 - f) + S1 f, along the rows first. In numpy: it is
        # small, and torch's threads would cost more than they save here.
        x0, x1, fx = xs
        rows = chans[:, :, x0] * (1.0 - fx)
        rows += chans[:, :, x1] * fx
        # Indexing the last axis leaves the columns strided in memory (numpy
        # puts the indexed axis outermost); every strip reads these rows, so
        # make them contiguous once: the enlargement of a 12-megapixel photo
        # took 95-266 ms of one core before and 14-15 ms after.
        rows = np.ascontiguousarray(rows)
        with torch.inference_mode(), own_stream(self.device):
            self.rows = torch.from_numpy(rows).to(self.device)  # C x map rows x width
            self.fy = torch.from_numpy(ys[2]).to(self.device)
            # Short runs (a photo less than about 8 times its map's size: run by
            # run, the calls cost more than they save; measured on the 2-core
            # Xeon) or a GPU (one kernel launch per run): gather the rows instead.
            self._gather = self.device.type != "cpu" or len(self._runs) - 1 > height // 8
            if self._gather:
                self.y0, self.y1 = (torch.from_numpy(a).to(self.device) for a in ys[:2])
            if self.device.type == "cuda":
                # Ready before any thread's stream reads it (the window
                # re-renders on another thread than the one that made it).
                torch.cuda.current_stream(self.device).synchronize()

    def strips(self, pixels: int) -> list[tuple[int, int]]:
        """The (top, bottom) strips of about `pixels` pixels that cover the photo."""
        if pixels not in self._strips:
            self._strips[pixels] = _strips(self.height, self.width, pixels)
        return self._strips[pixels]

    def strip(self, top: int, bottom: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows [top, bottom) of the enlarged map: C x rows x width float32
        (into `out` when given).

        On a CPU with long runs, one blend per run of rows that share their
        two map rows, each of two single map rows broadcast down the run: no
        gathered copies, and the whole render 10-20 % faster than gathering
        the rows (index_select) for 12- and 24-megapixel photos on the 2-core
        Xeon. Short runs and GPUs gather (see __init__).
        """
        if self._gather:
            r0 = self.rows.index_select(1, self.y0[top:bottom])
            r1 = self.rows.index_select(1, self.y1[top:bottom])
            fy = self.fy[top:bottom].view(1, -1, 1)
            return torch.lerp(r0, r1, fy, out=out) if out is not None else torch.lerp(r0, r1, fy)
        field = out if out is not None else torch.empty(self.rows.shape[0], bottom - top, self.width,
                                                        device=self.device)
        runs, y0, y1 = self._runs, self._y[0], self._y[1]
        k = int(np.searchsorted(runs, top, side="right")) - 1  # the run that holds row `top`
        row = top
        while row < bottom:
            end = min(bottom, int(runs[k + 1]))
            i0, i1, n = int(y0[row]), int(y1[row]), end - row
            torch.lerp(self.rows[:, i0:i0 + 1].expand(-1, n, -1), self.rows[:, i1:i1 + 1].expand(-1, n, -1),
                       self.fy[row:end].view(1, -1, 1), out=field[:, row - top:end - top])
            row, k = end, k + 1
        return field


class _Workspace:
    """Preallocated planes for strips of up to `rows` rows, so that the dozens of
    operations of each strip write into memory that is already mapped and
    cached instead of allocating (and page-faulting) fresh planes."""

    def __init__(self, channels: int, rows: int, width: int, device: torch.device, dtype: torch.dtype):
        n = rows * width
        self.width = width
        self._field = torch.empty(channels, n, device=device)
        self._f = torch.empty(3, n, device=device)
        self._planes = torch.empty(5, n, device=device)
        self._out = torch.empty(3, n, device=device, dtype=dtype)

    def take(self, rows: int) -> tuple[torch.Tensor, ...]:
        """Views for a strip of `rows` rows: field (C x rows x width), f (3 x ...),
        five rows x width planes and the 3 x rows x width output."""
        n, shape = rows * self.width, (rows, self.width)
        planes = tuple(p[:n].view(shape) for p in self._planes)
        return (self._field[:, :n].view(-1, *shape), self._f[:, :n].view(3, *shape), *planes,
                self._out[:, :n].view(3, *shape))


def _recompose_strip(gray: torch.Tensor, field: torch.Tensor, work: tuple[torch.Tensor, ...], circular: bool,
                     mode: str, saturation: float, peak: float, centre: torch.Tensor) -> torch.Tensor:
    """One strip: rows x width gray in [0, 1] and its C x rows x width enlarged
    map (field) -> 3 x rows x width float RGB in [0.5, peak + 0.5] (truncating
    it rounds to [0, peak]), in f. Every step writes into `work` (see _Workspace).
    Broadcasting only one operand per operation keeps torch's CPU loops vectorised."""
    _, f, x, s, g, t1, t2, _ = work
    # x = 6 x hue in turns - 3, in [-3, 3]
    if circular:
        torch.atan2(field[1], field[0], out=x).mul_(3.0 / math.pi)
        torch.add(field[2], 1.0, out=s)
    else:
        torch.add(field[0], 1.0, out=x).mul_(0.5).remainder_(1.0).mul_(6.0).sub_(3.0)
        torch.add(field[1], 1.0, out=s)
    # S in [0, 1] times the gain, clipped: clipping once is the reference's
    # clip-gain-clip for S <= 1 and a gain >= 0.
    s.mul_(0.5 * saturation).clamp_(0.0, 1.0)
    torch.sub(x, centre, out=f).abs_().sub_(1.0).clamp_(0.0, 1.0)  # q
    f[0].neg_().add_(1.0)  # f_red = 1 - q_red
    torch.mul(gray, peak, out=g).clamp_(0.0, peak)
    if mode == "v":
        a, b = torch.add(g, 0.5, out=t1), torch.mul(g, s, out=t2)
    else:
        wr, wg, wb = color.LUMA_WEIGHTS
        lum = torch.mul(f[0], wr, out=x)  # the hue is in f now
        lum.add_(f[1], alpha=wg).add_(f[2], alpha=wb)  # L in [0.114, 0.886]
        luma_u = torch.mul(s, lum, out=t1).neg_().add_(1.0)  # luma of the colour at V = 1
        a = torch.div(g, luma_u, out=t1).clamp_max_(peak)
        b = torch.mul(a, s, out=t2)
        out_gamut = torch.sub(g, peak, out=s).div_(lum).neg_()  # (peak - g) / L
        torch.minimum(b, out_gamut, out=b)
        a.add_(0.5)
    return torch.addcmul(a, f, b, value=-1.0, out=f)


def render(gray: np.ndarray, enlarger: Enlarger, mode: str = "luma", saturation: float = 1.0,
           bit_depth: int = 8, strip_pixels: int | None = None) -> np.ndarray:
    """Full-size colour image from a full-size gray and an enlarged H, S map.

    gray: HxW float32 in [0, 1] (H, W: the enlarger's height and width).
    Returns HxWx3 uint8 (bit_depth 8) or uint16 (16) RGB, equal to
    color.render_full's within one level. On a CPU the strips are shared
    among torch.get_num_threads() threads.
    """
    if mode not in ("luma", "v"):
        raise ValueError(f"unknown recomposition mode {mode!r}")
    height, width = gray.shape
    if (height, width) != (enlarger.height, enlarger.width):
        raise ValueError(f"gray is {width}x{height}, the map was prepared for {enlarger.width}x{enlarger.height}")
    dev = enlarger.device
    out = np.empty((height, width, 3), np.uint16 if bit_depth == 16 else np.uint8)
    threads = torch.get_num_threads() if dev.type == "cpu" else 1
    if not strip_pixels:
        # Every thread gets a strip of a small photo too.
        strip_pixels = GPU_STRIP_PIXELS if dev.type != "cpu" else min(CPU_STRIP_PIXELS, -(-height * width // threads))
    strips = enlarger.strips(strip_pixels)
    job = partial(_render_strips, np.ascontiguousarray(gray, dtype=np.float32), enlarger, out, mode, saturation)
    if threads <= 1:
        job(strips)
    else:
        pool, share = _strip_pool(threads), min(threads, len(strips))
        for done in [pool.submit(job, strips[k::share]) for k in range(share)]:
            done.result()
    return out


def _render_strips(gray: np.ndarray, enlarger: Enlarger, out: np.ndarray, mode: str, saturation: float,
                   strips: list[tuple[int, int]]) -> None:
    """Render the rows of `strips` (see Enlarger.strips) into `out` (HxWx3 uint8 or
    uint16), from `gray` (HxW float32 in [0, 1]); one thread's share."""
    dev, width = enlarger.device, enlarger.width
    peak = 65535.0 if out.dtype == np.uint16 else 255.0
    # uint16 has only bare-bones support on accelerators: they hand back int32.
    t_dtype = torch.uint8 if peak == 255.0 else torch.uint16 if dev.type == "cpu" else torch.int32
    with torch.inference_mode(), own_stream(dev):  # per thread, as torch's grad mode is
        centre = torch.tensor(_Q_CENTRE, dtype=torch.float32, device=dev).view(3, 1, 1)
        space = _Workspace(enlarger.rows.shape[0], max(b - t for t, b in strips), width, dev, t_dtype)
        for top, bottom in strips:
            work = space.take(bottom - top)
            g = torch.from_numpy(gray[top:bottom]).to(dev, non_blocking=True)
            field = enlarger.strip(top, bottom, out=work[0])
            rgb = _recompose_strip(g, field, work, enlarger.circular, mode, saturation, peak, centre)
            # The conversion truncates: + 0.5 made it round.
            if dev.type == "cpu":
                # numpy's cast and OpenCV's interleave are 2-4x faster than torch's strided copy.
                planes = work[-1].numpy()
                np.copyto(planes, rgb.numpy(), casting="unsafe")
                cv2.merge(list(planes), out[top:bottom])
            else:
                _planes_to_host(work[-1].copy_(rgb), out[top:bottom])


def _planes_to_host(planes: torch.Tensor, out: np.ndarray) -> None:
    """3 x rows x width integer planes on an accelerator -> `out`, rows x
    width x 3 uint8 or uint16 on the host.

    The interleave happens on the device and one contiguous block crosses to
    the host. (`.permute(1, 2, 0).cpu()` kept the planar strides on the host
    side: torch copied into a contiguous buffer and then strided it back,
    and numpy's assignment interleaved it again - two strided passes over
    every pixel on one host core.)
    """
    pixels = planes.permute(1, 2, 0).contiguous()
    if pixels.dtype == torch.uint8 and out.dtype == np.uint8:
        torch.from_numpy(out).copy_(pixels)  # straight into the result
    else:  # int32 on the device (its uint16 support is bare-bones): numpy casts
        out[...] = pixels.cpu().numpy()


_THREAD_STREAM = threading.local()


def own_stream(device: torch.device) -> contextlib.AbstractContextManager:
    """On a CUDA device, a context in which this thread's work runs on a CUDA
    stream of its own; elsewhere, nothing.

    batch renders on its writing threads while another thread runs the
    networks. On CUDA's one default stream every copy back to the host
    waited for all the work the other threads had queued: on the H200
    machine the feeding thread spent 1.4-1.8 s of a 1.9-3.4 s batch of 48
    photos in the networks, which take 0.7 ms per photo alone.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    streams = _THREAD_STREAM.__dict__.setdefault("by_device", {})
    if device not in streams:
        streams[device] = torch.cuda.Stream(device)
    return torch.cuda.stream(streams[device])


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _strip_pool(threads: int) -> ThreadPoolExecutor:
    """`threads` threads, each running torch operations on one core, that render
    strips side by side.

    Why not torch's own intra-op threads: a strip is some 35 small operations,
    each an OpenMP fork and join. When anything else keeps a core busy (another
    program, or this one's networks in another thread), every join waits for a
    descheduled thread: on the 2-core machine of issue 11, under load, a
    24-megapixel render took 1.5-3 s that way and 0.35 s on one thread. Strips
    in threads of their own never wait for each other.
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            default = torch.get_num_threads()
            ready = threading.Barrier(threads + 1, timeout=60)

            def one_core() -> None:
                torch.get_num_threads()  # ATen sets a thread's count on first use: let it, then override it
                torch.set_num_threads(1)
                ready.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix="hsvcolorizer-render")
            for _ in range(threads):  # each waits at the barrier, so each gets a thread of its own
                pool.submit(one_core)
            ready.wait()
            # set_num_threads also set the count that threads started from now
            # on get: give it back (this thread's own count is unchanged).
            torch.set_num_threads(default)
            _POOLS[threads] = pool
    return pool
