"""The v2 training recipe: source-balanced sampling, random-resized crops from
a 4:3 canvas cache, saturation-weighted hue loss, unit-vector hue, dilated
LR-CMGN, weights of either layout, the recorded recipe, the LR schedule and
stage 1's own loss kept in stage 2."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from hsvcolorizer.data import (
    CACHE_ARRAY,
    CACHE_META,
    CACHE_SIZES,
    balanced_indices,
    prepare_cache,
    random_resized_box,
    resized_crop_batch,
    source_of,
)
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import write_image
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.losses import colorization_loss
from hsvcolorizer.networks import (
    DILATED_LRCMGN,
    ModelConfig,
    TwoStageColorizer,
    conv_flops,
    count_parameters,
    vector_to_hs,
)
from hsvcolorizer.training import TrainConfig, train
from hsvcolorizer.weights import METADATA_KEY, load_weights, read_metadata, save_weights
from tests.conftest import TINY, colour_image

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--size", "32", "--batch-size", "2", "--width-scale", "0.125", "--workers", "0", "--device", "cpu",
              "--log-every", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are much faster (and no less deterministic) on one thread
    than on two threads of a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(*args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# 1. Sources -----------------------------------------------------------------


def test_source_of_names_prefixes_synsets_and_folders(tmp_path):
    root = tmp_path
    assert source_of(root / "faces_123.jpg", root) == "faces"
    assert source_of(root / "street_scenes_4.png", root) == "street"  # up to the first "_"
    assert source_of(root / "n01440764_10026.JPEG", root) == "imagenet"
    assert source_of(root / "n09999999_1.JPEG", root) == "imagenet"  # every synset is the one source
    assert source_of(root / "n0144_1.jpg", root) == "n0144"  # not a synset: 8 digits are needed
    assert source_of(root / "flowers" / "daisy_1.jpg", root) == "flowers"
    assert source_of(root / "flowers" / "deep" / "x.jpg", root) == "flowers"  # the top folder
    assert source_of(root / "IMG0001.jpg", root) == ""
    assert source_of(root / "photo.png", root) == ""


# 2. Balanced sampling -------------------------------------------------------


def test_balanced_indices_draw_every_source_equally_often():
    rng = np.random.default_rng(0)
    # Three sources of very different sizes, interleaved (not in blocks).
    sources = list(rng.permutation(["a"] * 900 + ["b"] * 90 + ["c"] * 10))
    n = len(sources)
    draws = 30000
    idx = balanced_indices(sources, draws, torch.Generator().manual_seed(1))
    assert len(idx) == draws
    assert all(isinstance(i, int) and 0 <= i < n for i in idx)
    drawn = [sources[i] for i in idx]
    for s in "abc":
        assert drawn.count(s) / draws == pytest.approx(1 / 3, abs=0.02), s
    # Within a source, every photo is drawn, about equally often.
    c_members = {i for i, s in enumerate(sources) if s == "c"}
    c_counts = np.bincount([i for i in idx if i in c_members], minlength=n)[sorted(c_members)]
    assert c_counts.min() > 0.7 * c_counts.mean() and c_counts.max() < 1.3 * c_counts.mean()
    a_drawn = {i for i in idx if sources[i] == "a"}
    assert len(a_drawn) > 850  # ~11 draws per "a" photo: nearly all of them come up
    # The generator's seed decides the list.
    again = balanced_indices(sources, draws, torch.Generator().manual_seed(1))
    other = balanced_indices(sources, draws, torch.Generator().manual_seed(2))
    assert again == idx and other != idx


def test_balanced_indices_with_one_source_is_uniform():
    idx = balanced_indices([""] * 50, 50000, torch.Generator().manual_seed(0))
    counts = np.bincount(idx, minlength=50)
    assert counts.min() > 800 and counts.max() < 1200


# 3. Random-resized boxes ----------------------------------------------------


@pytest.mark.parametrize("shape", [(192, 256), (256, 192), (200, 200), (37, 45)])
def test_random_resized_box_stays_inside_with_the_documented_area_and_aspect(shape):
    h, w = shape
    rng = np.random.default_rng(0)
    areas, aspects = [], []
    for _ in range(2000):
        top, left, ch, cw = random_resized_box(h, w, rng.random)
        assert all(isinstance(v, int) for v in (top, left, ch, cw))
        assert 0 <= top and 0 <= left and ch >= 1 and cw >= 1
        assert top + ch <= h and left + cw <= w
        area = ch * cw / (h * w)
        # Rounding each side to whole pixels moves area and aspect a little.
        tol = 1.5 / min(ch, cw)
        assert 0.35 * (1 - tol) ** 2 <= area <= 1.0
        assert 3 / 4 * (1 - tol) <= cw / ch <= 4 / 3 * (1 + tol)
        areas.append(area)
        aspects.append(cw / ch)
    # Random, not one fixed box: the area and aspect cover their ranges.
    assert min(areas) < 0.45 and max(areas) > 0.85
    assert min(aspects) < 0.85 and max(aspects) > 1.2


@pytest.mark.parametrize("shape", [(20, 400), (400, 20), (1, 1), (3, 1000)])
def test_random_resized_box_on_extreme_photos_is_still_valid(shape):
    h, w = shape
    rng = np.random.default_rng(1)
    for _ in range(50):
        top, left, ch, cw = random_resized_box(h, w, rng.random)
        assert ch >= 1 and cw >= 1 and top >= 0 and left >= 0
        assert top + ch <= h and left + cw <= w


# 4. Crops of cached canvases ------------------------------------------------

MAGENTA = (255, 0, 255)


def _canvas_batch(photos: list[np.ndarray], side: int) -> tuple[torch.Tensor, torch.Tensor]:
    canvas = np.empty((len(photos), side, side, 3), np.uint8)
    canvas[...] = MAGENTA
    for k, p in enumerate(photos):
        canvas[k, : p.shape[0], : p.shape[1]] = p
    sizes = torch.tensor([p.shape[:2] for p in photos], dtype=torch.int32)
    return torch.from_numpy(canvas), sizes


def _green_blue(h: int, w: int, seed: int) -> np.ndarray:
    """A textured photo without any red, so magenta fill cannot hide in it."""
    rng = np.random.default_rng(seed)
    p = np.zeros((h, w, 3), np.uint8)
    p[..., 1] = rng.integers(40, 216, (h, w))
    p[..., 2] = rng.integers(40, 216, (h, w))
    return p


def test_resized_crops_never_reach_the_canvas_fill():
    # As a real cache holds them: short side at least the crop (prepare
    # --size >= train --size), landscape and portrait photos smaller than
    # their canvas, and one as wide as it. Boxes of 35-60 % of a photo's
    # area are smaller than the output, so those crops are enlarged.
    side, crop = 64, 32
    photos = [_green_blue(40, 56, 0), _green_blue(56, 40, 1), _green_blue(48, 64, 2)]
    images, sizes = _canvas_batch(photos, side)
    gen = torch.Generator().manual_seed(0)
    idx = torch.tensor([2, 0, 1, 0])
    leaks, worst = 0, 0
    for _ in range(200):
        out = resized_crop_batch(images, sizes, idx, crop, gen, True)
        assert out.shape == (4, 3, crop, crop) and out.dtype == torch.uint8
        red = out[:, 0].amax(dim=(1, 2))
        leaks += int((red > 2).sum())
        worst = max(worst, int(red.max()))
    assert leaks == 0, (f"the canvas fill leaked into {leaks} of 800 training crops "
                        f"(red up to {worst} in photos without red)")


def test_resized_crop_of_validation_is_the_centred_square():
    side, crop = 64, 32
    a, b = _green_blue(32, 48, 4), _green_blue(64, 48, 5)
    images, sizes = _canvas_batch([a, b], side)
    out = resized_crop_batch(images, sizes, torch.tensor([0, 1]), crop, torch.Generator(), False)
    assert out.shape == (2, 3, crop, crop) and out.dtype == torch.uint8
    assert int(out[:, 0].max()) == 0
    # Same size: exactly the middle 32x32 of the 32x48 photo.
    assert torch.equal(out[0].permute(1, 2, 0), torch.from_numpy(a[:, 8:40]))
    # Larger: the middle 48x48 of the 64x48 photo, shrunk by 1.5.
    want = cv2.resize(b[8:56], (crop, crop), interpolation=cv2.INTER_LINEAR).astype(int)
    got = out[1].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - want).mean() < 3
    again = resized_crop_batch(images, sizes, torch.tensor([0, 1]), crop, torch.Generator().manual_seed(9), False)
    assert torch.equal(again, out)


def test_resized_crops_are_mirrored_sometimes():
    h, w = 48, 64
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[..., 1] = np.linspace(30, 230, w).astype(np.uint8)[None, :]  # dark left, bright right
    ramp[..., 2] = 120
    images, sizes = _canvas_batch([ramp], 64)
    gen = torch.Generator().manual_seed(3)
    mirrored = 0
    n = 200
    for _ in range(n):
        g = resized_crop_batch(images, sizes, torch.tensor([0]), 32, gen, True)[0, 1].float()
        left, right = g[:, :8].mean(), g[:, -8:].mean()
        assert left != right
        mirrored += bool(left > right)
    assert 0.3 * n < mirrored < 0.7 * n


def test_resized_crops_zoom_randomly():
    """Crops differ in scale, not only in place: the ramp's slope varies."""
    h, w = 48, 64
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[..., 1] = np.linspace(0, 252, w).astype(np.uint8)[None, :]
    images, sizes = _canvas_batch([ramp], 64)
    gen = torch.Generator().manual_seed(4)
    spans = []
    for _ in range(100):
        g = resized_crop_batch(images, sizes, torch.tensor([0]), 32, gen, True)[0, 1].float()
        spans.append(float((g[:, -1] - g[:, 0]).abs().mean()))
    # A crop of width cw covers cw/64 of the ramp: 35-100 % of the area, aspect 3/4-4/3.
    assert min(spans) < 150 and max(spans) > 190


# 5. The canvas cache ---------------------------------------------------------


def test_prepare_cache_keeps_up_to_4_to_3_of_each_photo(tmp_path):
    src = tmp_path / "src"
    (src / "tall").mkdir(parents=True)
    wide = colour_image(60, 120, seed=1)
    tall = colour_image(120, 60, seed=2)
    square = colour_image(50, 50, seed=3)
    write_image(src / "wide_1.png", wide)
    write_image(src / "tall" / "x_1.png", tall)
    write_image(src / "square.png", square)
    meta = prepare_cache(src, tmp_path / "cache", size=36)
    assert meta["count"] == 3
    files = meta["files"]
    assert sorted(files) == sorted(["wide_1.png", str(Path("tall") / "x_1.png"), "square.png"])
    # A source per file, in the files' order.
    assert len(meta["sources"]) == len(files)
    by_file = dict(zip(files, meta["sources"]))
    assert by_file == {"wide_1.png": "wide", str(Path("tall") / "x_1.png"): "tall", "square.png": ""}
    on_disk = json.loads((tmp_path / "cache" / CACHE_META).read_text())
    assert on_disk["sources"] == meta["sources"] and on_disk["files"] == files

    images = np.load(tmp_path / "cache" / CACHE_ARRAY)
    sizes = np.load(tmp_path / "cache" / CACHE_SIZES)
    assert images.shape == (3, 48, 48, 3) and images.dtype == np.uint8
    assert sizes.shape == (3, 2)
    row = {f: tuple(int(v) for v in sizes[i]) for i, f in enumerate(files)}
    assert row["wide_1.png"] == (36, 48)
    assert row[str(Path("tall") / "x_1.png")] == (48, 36)
    assert row["square.png"] == (36, 36)
    # The wide photo's canvas holds the centre of the photo resized to 36x72.
    k = files.index("wide_1.png")
    resized = cv2.resize(wide, (72, 36), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(images[k, :36, :48].astype(int) - resized[:, 12:60]).max() <= 1
    # ...and not its left edge (the photo is not symmetric).
    assert np.abs(images[k, :36, :48].astype(int) - resized[:, :48]).mean() > 10


# 6. Saturation-weighted hue loss ---------------------------------------------


def _hs(h: list[float], s: list[float]) -> torch.Tensor:
    """1x2x1xN (H, S)."""
    return torch.tensor([[h], [s]], dtype=torch.float32).unsqueeze(0)


def test_gray_pixels_teach_no_hue_with_saturation_weighting():
    true = _hs([0.0, 0.5], [-1.0, 1.0])  # a gray pixel (hue 0 by convention) and a saturated one
    pred_a = _hs([0.0, 0.3], [-1.0, 1.0])
    pred_b = _hs([0.7, 0.3], [-1.0, 1.0])  # only the gray pixel's predicted hue differs
    sat = [colorization_loss(p, true, hue_weighting="saturation") for p in (pred_a, pred_b)]
    none = [colorization_loss(p, true, hue_weighting="none") for p in (pred_a, pred_b)]
    assert sat[0][2].item() == pytest.approx(sat[1][2].item(), abs=1e-7)
    assert sat[0][0].item() == pytest.approx(sat[1][0].item(), abs=1e-7)
    assert sat[0][2].item() == pytest.approx(0.2, abs=1e-6)  # all of it from the saturated pixel
    assert none[1][2].item() - none[0][2].item() == pytest.approx(0.35, abs=1e-6)  # (0.7 - 0) / 2 pixels
    # A saturated pixel's hue still counts.
    pred_c = _hs([0.0, 0.5], [-1.0, 1.0])
    assert colorization_loss(pred_c, true, hue_weighting="saturation")[2].item() == pytest.approx(0.0, abs=1e-7)


def test_saturation_weighted_hue_is_circular_and_weighted_by_true_saturation():
    # -0.9 against 0.9 is 0.2 apart across red, with either weighting.
    for weighting in ("saturation", "none"):
        total, ls, lh = colorization_loss(_hs([-0.9], [0.4]), _hs([0.9], [0.4]), hue_weighting=weighting)
        assert lh.item() == pytest.approx(0.2, abs=1e-6) and ls.item() == pytest.approx(0.0)
        assert total.item() == pytest.approx(0.2, abs=1e-6)
    # True S in [-1, 1] weighs as (S + 1) / 2: S = 1 counts 1, S = 0 counts 0.5.
    true = _hs([0.9, 0.0], [1.0, 0.0])
    pred = _hs([-0.9, 0.4], [1.0, 0.0])
    lh = colorization_loss(pred, true, hue_weight=2.0, hue_weighting="saturation")
    assert lh[2].item() == pytest.approx((0.2 * 1 + 0.4 * 0.5) / 1.5, abs=1e-6)
    assert lh[0].item() == pytest.approx(2 * lh[2].item(), abs=1e-6)
    # An all-gray batch has no hue to learn: zero, not NaN.
    gray = colorization_loss(_hs([0.3, -0.6], [-1.0, -1.0]), _hs([0.0, 0.0], [-1.0, -1.0]),
                             hue_weighting="saturation")
    assert gray[2].item() == 0.0 and math.isfinite(gray[0].item())
    with pytest.raises(ValueError):
        colorization_loss(pred, true, hue_weighting="chroma")


# 7. Unit-vector hue and the dilated LR-CMGN ---------------------------------


def test_hue_vector_model_shapes_ranges_and_layout():
    torch.manual_seed(0)
    model = TwoStageColorizer(ModelConfig(**TINY, hue_vector=True)).eval()
    last = model.lrcmgn.body
    seen = {}
    last.register_forward_hook(lambda m, i, o: seen.update(v=o))
    x = torch.rand(2, 1, 36, 52) * 2 - 1
    with torch.no_grad():
        low, full = model(x)
    assert low.shape == (2, 2, 9, 13) and full.shape == (2, 2, 36, 52)
    for t in (low, full):
        assert torch.isfinite(t).all() and t.abs().max() <= 1
    # Stage 1's last layer gives (cos, sin, S); H is the vector's angle.
    v = seen["v"]
    assert v.shape == (2, 3, 9, 13)
    assert torch.allclose(low[:, 1], v[:, 2])
    assert torch.allclose(low[:, 0], torch.atan2(v[:, 1], v[:, 0]) / math.pi, atol=2e-3)
    # The scalar layout (v1) has two output channels.
    v1 = TwoStageColorizer(ModelConfig(**TINY))
    assert v1.lrcmgn.body[-2].out_channels == 2 and model.lrcmgn.body[-2].out_channels == 3


@pytest.mark.parametrize("angle", [math.pi / 2, -math.pi / 2, math.pi / 4, 0.0, 0.999 * math.pi, -0.999 * math.pi])
def test_vector_to_hs_gives_the_vectors_angle(angle):
    for length in (1.0, 0.3):
        v = torch.tensor([math.cos(angle), math.sin(angle), 0.25]).view(1, 3, 1, 1) * torch.tensor(
            [length, length, 1.0]).view(1, 3, 1, 1)
        hs = vector_to_hs(v)
        assert hs.shape == (1, 2, 1, 1)
        assert hs[0, 0, 0, 0].item() == pytest.approx(angle / math.pi, abs=1e-3)
        assert hs[0, 1, 0, 0].item() == pytest.approx(0.25)


def test_vector_to_hs_gradient_is_finite_at_the_zero_vector():
    v = torch.zeros(1, 3, 2, 2, requires_grad=True)
    vector_to_hs(v).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_rcn_of_hue_vector_model_has_no_seam_at_red():
    """H = 1 and H = -1 are the same red; a (cos, sin) RCN input sees them
    so, v1's scalar one sees opposite ends of its range."""
    gray = torch.rand(1, 1, 32, 32) * 2 - 1

    def refined(model, h):
        hs_low = torch.stack([torch.full((1, 8, 8), h), torch.full((1, 8, 8), 0.5)], 1)
        with torch.no_grad():
            return model.rcn(gray, hs_low)

    torch.manual_seed(0)
    vec = TwoStageColorizer(ModelConfig(**TINY, hue_vector=True)).eval()
    torch.manual_seed(0)
    scalar = TwoStageColorizer(ModelConfig(**TINY)).eval()
    d_vec = (refined(vec, 1.0) - refined(vec, -1.0)).abs().max().item()
    d_scalar = (refined(scalar, 1.0) - refined(scalar, -1.0)).abs().max().item()
    assert d_vec < 1e-3 and d_scalar > 0.1


def test_dilated_lrcmgn_same_parameters_and_flops_wider_view():
    plain = TwoStageColorizer(ModelConfig(**TINY))
    dil = TwoStageColorizer(ModelConfig(**TINY, lrcmgn_dilations=list(DILATED_LRCMGN)))
    assert count_parameters(dil) == count_parameters(plain)
    assert count_parameters(dil.lrcmgn) == count_parameters(plain.lrcmgn)
    assert conv_flops(dil, 64, 96) == conv_flops(plain, 64, 96)
    # Same tensors, other outputs: the dilations are really used...
    dil.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(dil.lrcmgn(x), plain.lrcmgn(x))
    # ...and widen the receptive field: an output at pixel ~96 sees pixels
    # 60+ px away in the dilated net (253 px field), none in the plain one (77 px).

    def reach(model):
        x = torch.rand(1, 1, 192, 192, generator=torch.Generator().manual_seed(0)) * 2 - 1
        x.requires_grad_(True)
        model.lrcmgn(x)[0, 1, 24, 24].backward()
        return x.grad[0, 0].abs()

    far = (slice(0, 192), slice(0, 36))  # columns at least 60 px from column 96
    assert reach(plain)[far].sum().item() == 0
    assert reach(dil)[far].sum().item() > 0


# 8. Weights of both layouts --------------------------------------------------


def test_v2_weights_round_trip_with_their_architecture(tmp_path):
    torch.manual_seed(3)
    cfg = ModelConfig(**TINY, hue_vector=True, lrcmgn_dilations=list(DILATED_LRCMGN))
    model = TwoStageColorizer(cfg).eval()
    path = save_weights(model, tmp_path / "v2.safetensors", {"input_channel": "luma", "recompose": "luma"})
    meta = read_metadata(path)
    assert meta["architecture"]["hue_vector"] is True
    assert meta["architecture"]["lrcmgn_dilations"] == DILATED_LRCMGN
    loaded, _ = load_weights(path)
    assert loaded.config == cfg
    x = torch.rand(1, 1, 64, 80) * 2 - 1
    with torch.no_grad():
        a, b = model(x), loaded(x)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        # The metadata's dilations matter: an undilated model with these tensors differs.
        undilated = TwoStageColorizer(ModelConfig(**TINY, hue_vector=True)).eval()
        undilated.load_state_dict(loaded.state_dict())
        assert not torch.allclose(undilated(x)[1], a[1])
    col = Colorizer.load(path, "cpu")
    assert col.model.config.hue_vector and col.model.config.lrcmgn_dilations == DILATED_LRCMGN
    res = col.colorize(colour_image(50, 70))
    out = res.render()
    assert out.shape == (50, 70, 3) and out.dtype == np.uint8
    assert np.isfinite(res.refined_hs).all() and np.abs(res.refined_hs).max() <= 1


def test_v1_weights_still_load_and_colorize(tmp_path):
    torch.manual_seed(4)
    model = TwoStageColorizer(ModelConfig(**TINY)).eval()
    new_style = save_weights(model, tmp_path / "v1.safetensors", {"input_channel": "luma", "recompose": "luma"})
    # A file written before v2 has no hue_vector / lrcmgn_dilations keys at all.
    arch = model.config.to_dict()
    del arch["hue_vector"], arch["lrcmgn_dilations"]
    old_meta = {"format_version": 1, "architecture": arch, "input_channel": "luma", "recompose": "luma"}
    old_style = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(old_style),
              metadata={METADATA_KEY: json.dumps(old_meta)})
    x = torch.rand(1, 1, 48, 64) * 2 - 1
    with torch.no_grad():
        want = model(x)
    gray = (np.random.default_rng(0).random((45, 61)) * 255).astype(np.uint8)
    results = []
    for path in (new_style, old_style):
        loaded, _ = load_weights(path)
        assert loaded.config.hue_vector is False and not loaded.config.lrcmgn_dilations
        with torch.no_grad():
            got = loaded(x)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        col = Colorizer.load(path, "cpu")
        res = col.colorize(gray)
        assert res.render().shape == (45, 61, 3) and np.isfinite(res.refined_hs).all()
        results.append(res.render())
    assert np.array_equal(results[0], results[1])


# 9. Training with the v2 recipe ---------------------------------------------


def test_v2_defaults_train_and_record_the_recipe(tmp_path, monkeypatch):
    import hsvcolorizer.data as data_mod
    import hsvcolorizer.training.feed as training_mod

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(9):
        write_image(data / f"big_{i}.png", colour_image(40, 52, seed=i))
    for i in range(3):
        write_image(data / f"small_{i}.png", colour_image(52, 40, seed=20 + i))
    # The defaults draw sources evenly and take random-resized crops.
    seen_sources, resized = [], []
    real_balanced, real_crop = training_mod.balanced_indices, data_mod.load_resized_crop
    monkeypatch.setattr(training_mod, "balanced_indices",
                        lambda sources, *a: seen_sources.append(list(sources)) or real_balanced(sources, *a))
    monkeypatch.setattr(data_mod, "load_resized_crop", lambda *a: resized.append(1) or real_crop(*a))

    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), epochs_stage1=1, epochs_stage2=1,
                      batch_size=4, size=32, width_scale=0.125, workers=0, device="cpu")
    path = train(cfg)
    assert path == tmp_path / "run" / "model.safetensors" and path.is_file()
    assert seen_sources and all(sorted(set(s)) == ["big", "small"] for s in seen_sources)
    assert resized
    meta = read_metadata(path)
    t = meta["training"]
    assert t["sampling"] == "source" and t["crop"] == "resized" and t["hue_weighting"] == "saturation"
    assert t["stage1_weight"] == 1.0 and t["schedule"] == "cosine" and t["ema"] == 0.999
    assert meta["architecture"]["hue_vector"] is True
    assert t["steps_stage1"] > 0 and t["steps_stage2"] > 0
    model, _ = load_weights(path)
    assert model.config.hue_vector and model.lrcmgn.body[-2].out_channels == 3
    assert read_metadata(tmp_path / "run" / "stage1.safetensors")["architecture"]["hue_vector"] is True


def _lr_by_stage(stdout: str) -> dict[int, list[float]]:
    steps = [e for e in events(stdout) if e["event"] == "step"]
    out: dict[int, list[float]] = {}
    for e in sorted(steps, key=lambda e: e["global_step"]):
        out.setdefault(e["stage"], []).append(e["lr"])
    return out


def test_cosine_schedule_lowers_the_lr_over_a_stage(photo_folder, tmp_path):
    r = run_cli("train", "--data", photo_folder, "--out", tmp_path / "cos", "--epochs-stage1", "1",
                "--epochs-stage2", "1", "--lr", "1e-3", "--schedule", "cosine", "--events", "jsonl", *TINY_TRAIN)
    assert r.returncode == 0, r.stderr
    lrs = _lr_by_stage(r.stdout)
    assert set(lrs) == {1, 2}
    for stage, seq in lrs.items():
        assert len(seq) >= 4, seq
        assert all(0 < lr <= 1e-3 for lr in seq), (stage, seq)
        # A warm-up may come first; from its peak on the LR only falls, and
        # it ends well below that peak and below where it started.
        peak = seq.index(max(seq))
        assert all(b <= a for a, b in zip(seq[peak:], seq[peak + 1:])), (stage, seq)
        assert seq[-1] < 0.5 * max(seq) and seq[-1] < seq[0], (stage, seq)
    assert read_metadata(tmp_path / "cos" / "model.safetensors")["training"]["schedule"] == "cosine"


def test_constant_schedule_keeps_the_lr(photo_folder, tmp_path):
    # Long enough (132 steps of one 16 px photo) to get past any warm-up.
    prepare_cache(photo_folder, tmp_path / "cache", size=16)
    r = run_cli("train", "--data", tmp_path / "cache", "--out", tmp_path / "const", "--stage", "1",
                "--epochs-stage1", "11", "--lr", "1e-3", "--schedule", "constant", "--events", "jsonl",
                "--size", "16", "--batch-size", "1", "--width-scale", "0.125", "--workers", "0", "--device", "cpu",
                "--log-every", "1")
    assert r.returncode == 0, r.stderr
    seq = _lr_by_stage(r.stdout)[1]
    assert len(seq) == 132
    assert all(0 < lr <= 1e-3 for lr in seq)
    assert all(b >= a for a, b in zip(seq, seq[1:])), "a constant schedule never lowers the LR"
    assert all(lr == pytest.approx(1e-3) for lr in seq[-30:]), seq[-30:]
    meta = read_metadata(tmp_path / "const" / "stage1.safetensors")
    assert meta["training"]["schedule"] == "constant"


def test_invalid_recipe_options_are_refused(photo_folder, tmp_path):
    r = run_cli("train", "--data", photo_folder, "--out", tmp_path / "run", "--sampling", "files", *TINY_TRAIN)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--sampling" in r.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
    for bad in (dict(sampling="files"), dict(crop="square"), dict(hue_weighting="value"), dict(schedule="step"),
                dict(ema=1.0), dict(stage1_weight=-1.0)):
        cfg = TrainConfig(data=str(photo_folder), out=str(tmp_path / "cfg"), size=32, width_scale=0.125,
                          device="cpu", **bad)
        with pytest.raises(ColorizerError):
            train(cfg)


# 10. Stage 1's own loss during stage 2 ---------------------------------------


def test_stage1_weight_adds_stage1s_own_loss_to_stage_2(photo_folder, tmp_path):
    """Same seed, same data, same stage-1 result: the first stage-2 step sees
    the same model and batch, so its S and H terms (stage 2's output) agree
    and its total differs by stage1_weight x stage 1's own loss. That term
    reaches the gradient: LR-CMGN ends stage 2 elsewhere than without it."""
    prepare_cache(photo_folder, tmp_path / "cache", size=36)
    hist, lrcmgn = {}, {}
    for w in (0.0, 1.0, 2.0):
        out = tmp_path / f"w{w}"
        cfg = TrainConfig(data=str(tmp_path / "cache"), out=str(out), epochs_stage1=1, epochs_stage2=1,
                          steps_stage1=2, steps_stage2=2, batch_size=4, size=32, width_scale=0.125, device="cpu",
                          log_every=1, lr=1e-3, stage1_weight=w)
        path = train(cfg)
        assert read_metadata(path)["training"]["stage1_weight"] == w
        ck = torch.load(out / "checkpoint.pt", weights_only=True)
        hist[w] = [h for h in ck["state"]["history"] if h["stage"] == 2]
        model, _ = load_weights(path)
        lrcmgn[w] = model.lrcmgn.state_dict()
    first = {w: h[0] for w, h in hist.items()}
    for w in (1.0, 2.0):
        assert first[w]["loss_s"] == first[0.0]["loss_s"] and first[w]["loss_h"] == first[0.0]["loss_h"]
    stage1_loss = first[1.0]["loss"] - first[0.0]["loss"]
    assert stage1_loss > 0.01
    assert first[2.0]["loss"] - first[0.0]["loss"] == pytest.approx(2 * stage1_loss, abs=5e-5)
    # Without the term, stage 2's total is just its S and H terms.
    assert first[0.0]["loss"] == pytest.approx(first[0.0]["loss_s"] + first[0.0]["loss_h"], abs=5e-5)
    assert any(not torch.equal(lrcmgn[0.0][k], lrcmgn[1.0][k]) for k in lrcmgn[0.0])
