"""Shared fixtures: tiny models and small images made by the tests themselves."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hsvcolorizer.imageio import write_image
from hsvcolorizer.networks import ModelConfig, TwoStageColorizer
from hsvcolorizer.weights import save_weights

TINY = dict(
    lrcmgn_widths=[8] * 11 + [2],
    rcn_branch_widths=[8, 8, 8, 8],
    rcn_fuse_width=8,
    rcn_head_widths=[8, 8],
    plain_width=8,
)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(**TINY)


@pytest.fixture
def tiny_weights(tmp_path, tiny_config):
    """A randomly initialised tiny model saved as safetensors."""
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_weights(TwoStageColorizer(tiny_config), path, {"input_channel": "luma", "recompose": "luma"})
    return path


def colour_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 RGB with smooth colour regions and some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(xx / max(w, 1) * 6.28 + rng.random() * 6)
    g = 127 + 120 * np.sin(yy / max(h, 1) * 6.28 + rng.random() * 6)
    b = 127 + 120 * np.cos((xx + yy) / max(h + w, 1) * 6.28 + rng.random() * 6)
    img = np.dstack([r, g, b]) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def photo_folder(tmp_path):
    """A folder of 12 small colour PNGs and one gray one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        write_image(folder / f"p{i:02d}.png", colour_image(40 + i, 48, seed=i))
    gray = colour_image(40, 48, 99).mean(2).astype(np.uint8)
    write_image(folder / "gray.png", np.dstack([gray] * 3))
    return folder


def pillow_bytes(image: Image.Image, fmt: str, **params) -> bytes:
    """The bytes of `image` encoded by Pillow as `fmt`."""
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def cv2_bytes(array: np.ndarray, ext: str) -> bytes:
    """The bytes of `array` (BGR order, any depth) encoded by OpenCV as `ext`."""
    ok, buf = cv2.imencode(ext, array)
    assert ok, ext
    return buf.tobytes()
