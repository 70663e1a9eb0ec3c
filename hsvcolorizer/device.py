"""The one place that turns a device name into a torch device, for
colorizing, training (one process or several under torchrun) and the bench."""

from __future__ import annotations

import torch

from hsvcolorizer.choices import DEVICES, PRECISIONS
from hsvcolorizer.errors import ColorizerError

__all__ = ["pick_device", "pick_precision"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def pick_device(name: str = "auto") -> torch.device:
    """A name of choices.DEVICES ('auto' | 'cpu' | 'cuda' | 'mps') or 'cuda:N'
    -> a torch device that exists here; raises ColorizerError otherwise."""
    name = (name or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        names = ", ".join(DEVICES[:-1]) + f" or {DEVICES[-1]}"
        raise ColorizerError(f"unknown device {name!r}; use {names}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ColorizerError("CUDA was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise ColorizerError("MPS was asked for but is not available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as e:  # "cuda:x" and the like
        raise ColorizerError(f"unknown device {name!r}: {e}") from None


def native_bf16(device: torch.device) -> bool:
    """True where bf16 convolutions run on matrix units of their own: a CPU
    with AMX tiles (Intel Xeon since Sapphire Rapids; on the 2-core Xeon of
    issue 11 the networks take 25-41 % of their fp32 time) or a
    CUDA GPU with bf16 tensor cores (compute capability 8.0, Ampere, and
    later; the GPU training has always used them). Elsewhere bf16 would be
    emulated (torch.cuda.is_bf16_supported says yes to that too), slower
    than fp32."""
    if device.type == "cuda":
        try:
            return torch.cuda.get_device_capability(device) >= (8, 0)
        except Exception:  # noqa: BLE001 - no such GPU: nothing native to rely on
            return False
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own probe, private but long-lived
        try:
            return bool(amx and amx())
        except Exception:  # noqa: BLE001 - a probe that fails means no AMX to rely on
            return False
    return False


def pick_precision(device: torch.device, name: str = "auto") -> str:
    """A name of choices.PRECISIONS -> "fp32" or "bf16", what the networks
    compute in on `device`; raises ColorizerError for an unknown name or bf16
    where it cannot run (MPS).

    bf16 autocast keeps float32 weights and accumulates in float32: on the
    419 validation photos it changes PSNR by 0.0003 dB and the a*b* error by
    0.001 (models/README.md); per pixel 0.14 levels of 255 on average, more
    only where the model is undecided between two hues (the seam moves).
    """
    name = (name or "auto").lower()
    if name not in PRECISIONS:
        raise ColorizerError(f"unknown precision {name!r}; use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type not in ("cpu", "cuda"):
        raise ColorizerError(f"bf16 is not available on {device.type.upper()}; use --precision fp32 or auto")
    return name
