"""The one place that turns a device name into a torch device, for
colorizing, training (one process or several under torchrun) and the bench."""

from __future__ import annotations

import torch

from hsvcolorizer.choices import DEVICES
from hsvcolorizer.errors import ColorizerError

__all__ = ["pick_device"]


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
