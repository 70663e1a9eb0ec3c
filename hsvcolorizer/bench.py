"""`hsvcolorizer bench`: inference and training speed, peak memory, the
GFLOP/s the networks reach beside one large 3x3 convolution on the same
device, and a 24-megapixel colorize and re-render measured against OpenCV's
BGR -> HSV -> BGR round trip of the same photo (issue 11's goals)."""

from __future__ import annotations

import platform
import sys
import time
import tracemalloc

import numpy as np
import torch

from hsvcolorizer.device import pick_device
from hsvcolorizer.inference import DEFAULT_WORKING_SIZE, Colorizer
from hsvcolorizer.losses import colorization_loss
from hsvcolorizer.networks import conv_flops
from hsvcolorizer.training import prepare_batch
from hsvcolorizer.weights import default_weights


def peak_rss_mib() -> float | None:
    """The process's peak resident memory in MiB, or None where it cannot be read.

    It comes from ``resource.getrusage``, which exists on Linux and macOS
    only; on Windows (no ``resource`` module) the bench still runs and says
    the figure is unavailable, rather than failing to start or needing psutil.
    """
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux counts kibibytes, macOS bytes.
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _best_time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up: kernel selection, allocations
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def reference_conv_gflops(device: torch.device, repeats: int, precision: str = "fp32") -> float:
    """GFLOP/s of one large 3x3 convolution (256 -> 256 channels on 64x64,
    batch 8 on CPU / 64 on GPU) in `precision` ("fp32" or "bf16"), in the
    memory layout fastest for it (channels_last on a GPU and for bf16 on a CPU)."""
    batch = 64 if device.type == "cuda" else 8
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(device, dtype)
    x = torch.randn(batch, 256, 64, 64, device=device, dtype=dtype)
    if device.type == "cuda" or precision == "bf16":
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * 256 * 64 * 64 * 256 * 9
    with torch.inference_mode():
        t = _best_time(lambda: conv(x), device, repeats)
    return flops / t / 1e9


def opencv_round_trip_seconds(width: int, height: int, repeats: int) -> float:
    """Best time of OpenCV's BGR -> HSV -> BGR round trip (cv2.cvtColor both
    ways) of a width x height 8-bit colour photo: the yardstick of issue 11's
    goals, the cheapest full-size colour work there is on this machine."""
    import cv2

    rng = np.random.default_rng(1)
    small = (rng.random((max(1, height // 8), max(1, width // 8), 3)) * 255).astype(np.uint8)
    bgr = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return _best_time(lambda: cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV), cv2.COLOR_HSV2BGR),
                      torch.device("cpu"), repeats)


class _NetworkClock:
    """Adds up the time spent in a model's forward passes (hooks around it)."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.seconds, self._start, self._device = 0.0, 0.0, device
        self._handles = [model.register_forward_pre_hook(self._before), model.register_forward_hook(self._after)]

    def _before(self, *_):
        _sync(self._device)
        self._start = time.perf_counter()

    def _after(self, *_):
        _sync(self._device)
        self.seconds += time.perf_counter() - self._start

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def measure_big_photo(colorizer, megapixels: float, log=print, working_size: int = DEFAULT_WORKING_SIZE,
                      repeats: int = 1) -> dict:
    """Colorize and render a synthetic gray photo of ``megapixels`` end to
    end (gray array to colour array: decoding aside, what a user waits for),
    then re-render it with a new saturation, and compare both with OpenCV's
    BGR -> HSV -> BGR round trip of a photo of the same size.

    Times are the best of ``repeats`` runs after one untimed run, which also
    gives the peak memory (``peak_rss_mib`` None where the process's peak
    cannot be read, see ``peak_rss_mib``). Logs one line.
    """
    log = log or (lambda *_: None)
    mp = megapixels * 1e6
    w = int(round((mp * 1.5) ** 0.5))
    h = int(round(mp / w))
    rng = np.random.default_rng(0)
    gray = (rng.random((h // 8, w // 8), np.float32) * 255).astype(np.uint8)
    import cv2

    gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)
    device = colorizer.device
    tracemalloc.start()
    colorizer.colorize(gray, working_size=working_size).render()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = peak_rss_mib()

    best = {"total": float("inf"), "colorize": 0.0, "networks": 0.0, "rerender": float("inf")}
    clock = _NetworkClock(colorizer.model, device)
    try:
        for _ in range(max(1, repeats)):
            clock.seconds = 0.0
            t0 = time.perf_counter()
            result = colorizer.colorize(gray, working_size=working_size)
            t1 = time.perf_counter()
            result.render()
            t2 = time.perf_counter()
            if t2 - t0 < best["total"]:
                best.update(total=t2 - t0, colorize=t1 - t0, networks=clock.seconds)
            t3 = time.perf_counter()
            result.render(saturation=1.3)
            best["rerender"] = min(best["rerender"], time.perf_counter() - t3)
    finally:
        clock.close()
    opencv = opencv_round_trip_seconds(w, h, max(1, repeats))
    report = {
        "width": w, "height": h, "working_size": working_size,
        "seconds_total": round(best["total"], 3), "seconds_colorize": round(best["colorize"], 3),
        "seconds_networks": round(best["networks"], 3),
        "networks_share": round(best["networks"] / best["total"], 3),
        "seconds_rerender": round(best["rerender"], 3),
        "seconds_opencv_round_trip": round(opencv, 4),
        "total_vs_opencv": round(best["total"] / opencv, 1), "rerender_vs_opencv": round(best["rerender"] / opencv, 1),
        "peak_numpy_mib": round(peak / 2**20, 1), "peak_rss_mib": None if rss is None else round(rss, 1),
    }
    log(f"{w}x{h} ({megapixels:g} MP) gray to colour at working size {working_size}: {best['total']:.2f} s "
        f"= {report['total_vs_opencv']:g}x OpenCV's BGR-HSV-BGR round trip of it ({opencv:.3f} s); "
        f"networks {best['networks']:.2f} s ({report['networks_share']:.0%} of it); re-render with a new saturation "
        f"{best['rerender']:.2f} s = {report['rerender_vs_opencv']:g}x; peak array memory {peak / 2**20:.0f} MiB, "
        "process peak RSS " + (f"{rss:.0f} MiB" if rss is not None else "unavailable on this system"))
    return report


def measure_batch_speed(colorizer, photos: int, log=print) -> dict:
    """Photos per second of `batch` on a folder of `photos` 12-megapixel gray
    JPEGs (synthetic, made in a temporary folder), written as JPEG and as
    PNG, with the model already loaded: the rate a long batch runs at."""
    import tempfile

    from hsvcolorizer.batch_speed import make_photo_folder, measure_batch

    out: dict = {"photos": photos, "megapixels": 12.0}
    with tempfile.TemporaryDirectory(prefix="hsvcolorizer-bench-") as folder:
        make_photo_folder(folder, count=photos, megapixels=12.0)
        for fmt in ("jpg", "png"):
            m = measure_batch(colorizer, folder, fmt)
            out[fmt] = {"seconds": round(m["seconds"], 2), "photos_per_s": round(m["photos_per_second"], 3)}
            log(f"batch of {photos} 12-megapixel JPEGs written as {'JPEG' if fmt == 'jpg' else 'PNG'}: {m['seconds']:.1f} s, "
                f"{m['photos_per_second']:.2f} photos/s")
    return out


def run_bench(device_name: str = "auto", weights=None, big_megapixels: float = 24.0, train_batch: int = 4,
              repeats: int = 3, log=print, batch_photos: int = 8, precision: str = "auto") -> dict:
    log = log or (lambda *_: None)
    device = pick_device(device_name)
    # The shipped model by default (its weights do not change the speed, its
    # shape does: hue vector, hint input); a random one of the default shape
    # only where models/ holds none.
    weights = weights or default_weights()
    colorizer = (Colorizer.load(weights, device_name, precision) if weights
                 else Colorizer.untrained(device=str(device), precision=precision))
    model = colorizer.model  # channels_last on CPU and CUDA, as Colorizer runs it
    report: dict = {
        "device": colorizer.device_name,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": colorizer.precision,
    }
    log(f"device: {report['device']} (torch {torch.__version__}, {report['threads']} threads, "
        f"networks in {colorizer.precision})")
    # Training in the networks' number format: bf16 autocast where it is
    # native (precision auto), as `hsvcolorizer train` does by default.
    amp = colorizer.precision == "bf16"

    # Network inference at working sizes (square, the worst case of the long side).
    report["inference"] = {}
    for side in (256, 512):
        x = torch.zeros(1, 1, side, side, device=device)
        flops = conv_flops(model, side, side)

        def fwd():
            with torch.inference_mode(), colorizer.networks_autocast():
                model(x)

        t = _best_time(fwd, device, repeats)
        report["inference"][side] = {"seconds": round(t, 4), "gflop": round(flops / 1e9, 1),
                                     "gflops_per_s": round(flops / t / 1e9, 1)}
        log(f"networks at {side}x{side}: {t * 1000:.1f} ms ({flops / 1e9:.1f} GFLOP, {flops / t / 1e9:.1f} GFLOP/s)")

    ref = reference_conv_gflops(device, repeats, colorizer.precision)
    report["reference_conv_gflops_per_s"] = round(ref, 1)
    for figures in report["inference"].values():
        figures["percent_of_reference"] = round(figures["gflops_per_s"] / ref * 100, 1)
    log(f"one large 3x3 convolution on the same device: {ref:.1f} GFLOP/s "
        f"({colorizer.precision}; the networks reach "
        f"{report['inference'][256]['percent_of_reference']:.0f}% of it at 256 and "
        f"{report['inference'][512]['percent_of_reference']:.0f}% at 512)")

    report["big_photo"] = measure_big_photo(colorizer, big_megapixels, log, repeats=repeats)
    if batch_photos:
        report["batch"] = measure_batch_speed(colorizer, batch_photos, log)

    # Training throughput per stage at 256x256.
    report["training"] = {}
    batch = train_batch
    rgb_u8 = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, device=device)
    model.train()
    for stage in (1, 2):
        params = model.lrcmgn.parameters() if stage == 1 else model.parameters()
        opt = torch.optim.Adam(params, lr=1e-5)

        def step():
            gray, hs, low = prepare_batch(rgb_u8, "luma", True)
            if amp:
                gray = gray.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                pred = model.lrcmgn(gray) if stage == 1 else model(gray)[1]
            loss, _, _ = colorization_loss(pred.float(), low if stage == 1 else hs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = _best_time(step, device, max(1, repeats - 1))
        report["training"][f"stage{stage}"] = {"batch": batch, "images_per_s": round(batch / t, 2)}
        log(f"training stage {stage} at 256x256, batch {batch}: {batch / t:.2f} images/s")
    model.eval()
    return report
