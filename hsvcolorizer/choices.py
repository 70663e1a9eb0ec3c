"""The choices and ranges shared by the CLI, the core's checks and the window.

Each is defined here once; the command line (argparse choices and ranges),
the core (which refuses anything outside them with a ColorizerError) and the
desktop application (combo boxes, spin boxes, sliders) all read them from
here. No torch and no Qt: every part of the program can import it cheaply.
"""

from __future__ import annotations

# How the predicted hue and saturation are put back together with the gray:
# "luma" keeps the photo's BT.601 luma exactly, "v" is the paper's gray-as-V.
RECOMPOSE_MODES = ("luma", "v")

# What the networks are shown: the photo's luma, or HSV's V (the paper's).
INPUT_CHANNELS = ("luma", "v")

# Where the networks run ("auto": a CUDA or Apple GPU when there is one).
# hsvcolorizer.device.pick_device also accepts "cuda:N" for one GPU of several.
DEVICES = ("auto", "cpu", "cuda", "mps")

# The number format the networks compute in ("auto": bf16 where the hardware
# multiplies bf16 matrices natively - a CPU with AMX, a CUDA GPU - else fp32).
# The full-size rendering is always float32.
PRECISIONS = ("auto", "fp32", "bf16")

# Output formats of `colorize` and `batch` (and the Batch tab), each with the
# extension it writes. `batch` also takes SAME_FORMAT: each photo's own format
# where it can be written.
OUTPUT_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "tiff": ".tif", "webp": ".webp"}
OUTPUT_FORMATS = tuple(OUTPUT_EXTENSIONS)
SAME_FORMAT = "same"
BATCH_FORMATS = (*OUTPUT_FORMATS, SAME_FORMAT)

# The long side, in pixels, of the image the networks see. Below 16 px the
# stage-1 map has almost no cells; above 4096 px one photo needs more memory
# than most GPUs have, and colour detail does not improve.
WORKING_SIZE_MIN = 16
WORKING_SIZE_MAX = 4096

# The gain on the predicted saturation (1 = as predicted). The window shows
# it as a percentage: SATURATION_MIN * 100 to SATURATION_MAX * 100 %.
SATURATION_MIN = 0.0
SATURATION_MAX = 4.0


def working_size_error(value: int) -> str | None:
    """Why `value` is not a usable working size, or None when it is."""
    if not WORKING_SIZE_MIN <= value <= WORKING_SIZE_MAX:
        return f"working size {value} is out of range; use {WORKING_SIZE_MIN} to {WORKING_SIZE_MAX}"
    return None


def saturation_error(gain: float) -> str | None:
    """Why `gain` is not a usable saturation gain, or None when it is."""
    if not SATURATION_MIN <= gain <= SATURATION_MAX:
        return f"saturation gain {gain} is out of range; use {SATURATION_MIN:g} to {SATURATION_MAX:g}"
    return None
