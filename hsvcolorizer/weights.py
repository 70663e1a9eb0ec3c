"""Weights as safetensors with JSON metadata; the default weights' lookup.

Nothing here unpickles: a pickled file (.pt/.pth/.ckpt) is refused with a
message, because unpickling can run code carried by the file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from hsvcolorizer.atomic import atomic_write
from hsvcolorizer.choices import INPUT_CHANNELS, RECOMPOSE_MODES  # noqa: F401 - RECOMPOSE_MODES importable from here, as before
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.networks import ModelConfig, TwoStageColorizer

METADATA_KEY = "hsvcolorizer"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS_NAME = "hsvcolorizer-v3.safetensors"


def models_dirs() -> list[Path]:
    """Where default weights are looked for, in order."""
    dirs = []
    env = os.environ.get("HSVCOLORIZER_MODELS")
    if env:
        dirs.append(Path(env))
    bundle = getattr(sys, "_MEIPASS", None)  # inside a PyInstaller build
    if bundle:
        dirs.append(Path(bundle) / "models")
    dirs.append(Path(__file__).resolve().parent.parent / "models")
    return dirs


def default_weights() -> Path | None:
    """The shipped weights file, or None when `models/` holds none."""
    for d in models_dirs():
        preferred = d / DEFAULT_WEIGHTS_NAME
        if preferred.is_file():
            return preferred
        found = sorted(d.glob("*.safetensors")) if d.is_dir() else []
        if found:
            return found[0]
    return None


def save_weights(model: TwoStageColorizer, path: Path, meta: dict, half: bool = False) -> Path:
    """Write the model's tensors and `meta` (JSON-able) to `path` atomically."""
    path = Path(path)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    full_meta = {"format_version": FORMAT_VERSION, "architecture": model.config.to_dict(), **meta}
    data = save(tensors, metadata={METADATA_KEY: json.dumps(full_meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data))
    return path


def _has_safetensors_header(path: Path) -> bool:
    """True when `path` starts with a safetensors header: a length that fits
    the file, then a JSON object of that many bytes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return False
            n = int.from_bytes(head, "little")
            if n < 2 or n > min(size - 8, 100 * 2**20):
                return False
            header = f.read(n)
        return isinstance(json.loads(header.decode("utf-8")), dict)
    except (OSError, ValueError):
        return False


def read_metadata(path: Path) -> dict:
    """The JSON metadata of a weights file, checked; raises ColorizerError."""
    path = Path(path)
    if not path.exists():
        raise ColorizerError(f"weights file {path} does not exist")
    if not path.is_file():
        raise ColorizerError(f"{path} is not a weights file")
    # A safetensors file starts with its header's length (8 bytes, little
    # endian) and then that header as JSON: decide by parsing it, because the
    # length's first byte is 0x80, like a pickle's, for about 1 file in 32.
    # Only a file that is not safetensors and looks like a pickle (0x80) or a
    # torch.save zip archive ("PK") is called one.
    safetensors_like = _has_safetensors_header(path)
    with path.open("rb") as f:
        head = f.read(16)
    pickled = head[:2] == b"PK" or head[:1] == b"\x80" or path.suffix.lower() in {".pt", ".pth", ".ckpt", ".pkl", ".bin"}
    if pickled and not safetensors_like:
        raise ColorizerError(
            f"{path.name} is a pickled PyTorch file, which can run code when loaded; "
            "only .safetensors weights are accepted"
        )
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ColorizerError(f"{path.name} is not a valid safetensors file (damaged or truncated?): {e}") from e
    if raw is None:
        raise ColorizerError(f"{path.name} has no HSV Colorizer metadata; it was not written by hsvcolorizer")
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict) or not isinstance(meta.get("architecture"), dict):
            raise ValueError("no architecture")
    except ValueError as e:
        raise ColorizerError(f"{path.name} has damaged metadata ({e})") from e
    if meta.get("input_channel", "luma") not in INPUT_CHANNELS:
        raise ColorizerError(f"{path.name}: unknown input channel {meta.get('input_channel')!r}")
    return meta


def load_weights(path: Path, device: torch.device | str = "cpu") -> tuple[TwoStageColorizer, dict]:
    """Build the model described by a weights file and load its tensors.

    Raises ColorizerError for a missing, pickled, truncated or mismatched file,
    saying what differs.
    """
    path = Path(path)
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta["architecture"])
        model = TwoStageColorizer(config)
    except (TypeError, ValueError) as e:
        raise ColorizerError(f"{path.name} describes an architecture this version cannot build: {e}") from e
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ColorizerError(f"{path.name} is damaged or truncated: {e}") from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of other shape (e.g. {k}: file {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)})")
        raise ColorizerError(f"{path.name} does not match its declared architecture: " + "; ".join(parts))
    bad_dtype = [k for k, v in tensors.items() if not v.is_floating_point()]
    if bad_dtype:
        raise ColorizerError(f"{path.name}: tensor {bad_dtype[0]} has dtype {tensors[bad_dtype[0]].dtype}, expected floating point")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    if not all(torch.isfinite(v).all() for v in tensors.values()):
        raise ColorizerError(f"{path.name} contains NaN or infinite weights")
    return model.to(device).eval(), meta
