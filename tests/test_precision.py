"""The networks' number format (issue 11, point 5): bf16 where the hardware
multiplies bf16 natively, fp32 when asked or elsewhere, the same colours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hsvcolorizer.device import pick_precision
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.weights import default_weights
from tests.test_cli import cli


def scene() -> np.ndarray:
    """160x224 uint8 gray with a sky-like gradient, a bright disc, dark
    blocks and grain: something the shipped model colours in several hues."""
    rng = np.random.default_rng(3)
    y = np.linspace(0, 1, 160, dtype=np.float32)[:, None]
    gray = np.repeat(200 - 90 * y, 224, axis=1)
    cv2.circle(gray, (60, 50), 22, 240, -1)
    gray[110:150, 20:90] = 60
    gray[95:160, 130:210] = 110
    return np.clip(gray + rng.normal(0, 6, gray.shape), 0, 255).astype(np.uint8)


def test_fp32_is_fp32_everywhere_and_auto_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    assert pick_precision(cpu, "fp32") == "fp32" and pick_precision(cpu, "bf16") == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert pick_precision(cpu, "auto") == "bf16" and pick_precision(cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert pick_precision(cpu, "auto") == "fp32"

    def broken():
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken)
    assert pick_precision(cpu, "auto") == "fp32"
    assert pick_precision(torch.device("mps"), "auto") == "fp32"


@pytest.mark.parametrize("device, name, needle", [("cpu", "fp8", "unknown precision 'fp8'"),
                                                  ("mps", "bf16", "not available on MPS")])
def test_a_precision_that_cannot_run_is_a_user_error(device, name, needle):
    with pytest.raises(ColorizerError, match=needle):
        pick_precision(torch.device(device), name)


def test_bf16_networks_give_the_colours_of_fp32():
    path = default_weights()
    fp32, bf16 = Colorizer.load(path, "cpu", "fp32"), Colorizer.load(path, "cpu", "bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    seen = []
    conv = next(m for m in bf16.model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        gray = scene()
        a, b = fp32.colorize(gray), bf16.colorize(gray)
    finally:
        handle.remove()
    assert seen == [torch.bfloat16]  # it really ran in bf16
    assert b.refined_hs.dtype == np.float32  # and hands back float32 maps
    ra, rb = a.render().astype(np.int16), b.render().astype(np.int16)
    assert np.abs(ra - rb).mean() < 0.5 and np.percentile(np.abs(ra - rb), 99) <= 6
    # the gray is kept exactly either way (luma recomposition)
    luma = (ra * [0.299, 0.587, 0.114]).sum(2) - (rb * [0.299, 0.587, 0.114]).sum(2)
    assert np.abs(luma).max() <= 1.5


def test_cuda_counts_as_native_from_ampere_on(monkeypatch):
    # is_bf16_supported() also says yes where bf16 is only emulated (V100, T4).
    gpu = torch.device("cuda:1")
    asked = []

    def capability(device):
        asked.append(device)
        return capability.value

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    for value, native in (((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)):
        capability.value = value
        assert pick_precision(gpu, "auto") == ("bf16" if native else "fp32")
    assert asked and all(d == gpu for d in asked)  # the GPU it runs on, not GPU 0

    def no_gpu(device):
        raise RuntimeError("no CUDA GPUs are available")

    monkeypatch.setattr(torch.cuda, "get_device_capability", no_gpu)
    assert pick_precision(gpu, "auto") == "fp32"


def test_fp32_networks_run_without_any_autocast(monkeypatch, tiny_weights):
    # torch before 2.5 refuses to build even a disabled autocast for MPS.
    c = Colorizer.load(tiny_weights, "cpu", "fp32")

    def refuse(*_args, **_kwargs):
        raise RuntimeError("unsupported autocast device_type")

    monkeypatch.setattr(torch, "autocast", refuse)
    assert c.colorize(scene()).render().shape == (160, 224, 3)


def test_the_command_line_takes_a_precision(tmp_path, tiny_weights):
    src = tmp_path / "gray.png"
    cv2.imwrite(str(src), scene())
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"out_{precision}.png"
        r = cli("colorize", src, "--weights", tiny_weights, "--precision", precision, "-o", out)
        assert r.returncode == 0, r.stderr
        assert out.is_file() and f"on CPU, {precision})" in r.stdout  # what the networks ran in
    r = cli("colorize", src, "--weights", tiny_weights, "--precision", "fp8")
    assert r.returncode == 2 and "--precision" in r.stderr and "fp8" in r.stderr
