"""Full-size rendering with torch (hsvcolorizer.render) against the numpy
reference (color.enlarge_hs_np + color.render_full): what users got before
the torch path, within one output level, in every case a photo can meet."""

import numpy as np
import pytest
import torch

from hsvcolorizer import color, render
from hsvcolorizer.inference import Colorizer
from tests.conftest import colour_image


def reference(gray, hs, mode, saturation, circular, bit_depth, extent=None):
    h, w = gray.shape
    field = color.enlarge_hs_np(hs, w, h, circular, extent)
    return color.render_full(gray, field, mode, saturation, circular, bit_depth)


def torch_render(gray, hs, mode, saturation, circular, bit_depth, extent=None, strip_pixels=None, device="cpu"):
    h, w = gray.shape
    enlarger = render.Enlarger(hs, w, h, circular, extent, device)
    return render.render(gray, enlarger, mode, saturation, bit_depth, strip_pixels)


def random_case(seed, map_shape, photo_shape):
    rng = np.random.default_rng(seed)
    hs = rng.uniform(-1, 1, (2,) + map_shape).astype(np.float32)
    gray = rng.random(photo_shape).astype(np.float32)
    return gray, hs


def well_defined_hue(hs, shape, circular=True, extent=None):
    """HxW bool: where the enlarged hue is decided by the map, not by float rounding.

    Where two nearly opposite hues blend, the S-weighted vector (w cos, w sin)
    almost cancels and its angle comes from the last bits of the
    interpolation, which OpenCV (IPP) computes in an order of its own. At 16
    bits one level is 1.5e-5, so those few pixels are left out there.
    """
    if not circular:
        return np.ones(shape, bool)
    field = color.enlarge_hs_np(hs, shape[1], shape[0], circular, extent)
    weight = (field[..., 2] + 1) / 2 + 1e-3
    return np.hypot(field[..., 0], field[..., 1]) >= 0.01 * weight


def assert_within_one_level(ours, ref, where=None):
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64)).max(axis=2)
    if where is not None:
        assert where.mean() > 0.99, "the test's random fields should have few undefined hues"
        diff = diff[where]
    assert diff.max() <= 1, f"{(diff > 1).sum()} pixels differ by more than one level (max {diff.max()})"


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("mode", ["luma", "v"])
@pytest.mark.parametrize("circular", [True, False])
def test_matches_the_numpy_reference_on_random_fields(bit_depth, mode, circular):
    # Random hues next to each other (the worst case for the circular
    # resize), a photo many strips tall, and saturation gains that clip.
    for seed, saturation in enumerate([1.0, 0.0, 0.6, 1.8, 4.0]):
        gray, hs = random_case(seed, (13, 17), (211, 150))
        ref = reference(gray, hs, mode, saturation, circular, bit_depth)
        ours = torch_render(gray, hs, mode, saturation, circular, bit_depth, strip_pixels=1500)
        assert_within_one_level(ours, ref, None if bit_depth == 8 else well_defined_hue(hs, gray.shape, circular))


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_matches_the_reference_for_a_stage1_map_reaching_past_the_photo(bit_depth):
    # Stage 1's last cells reach into the padding: the photo spans a
    # fractional extent of the map, which may also be shorter than the extent.
    for seed, extent in enumerate([(10.25, 12.5), (9.5, 11.75), (10.0, 12.0)]):
        gray, hs = random_case(seed, (10, 12), (157, 203))
        for mode in ("luma", "v"):
            ref = reference(gray, hs, mode, 1.3, True, bit_depth, extent)
            ours = torch_render(gray, hs, mode, 1.3, True, bit_depth, extent, strip_pixels=2000)
            assert_within_one_level(ours, ref, None if bit_depth == 8 else well_defined_hue(hs, gray.shape, True, extent))


def test_matches_the_reference_when_the_output_is_smaller_than_the_map():
    # A preview: the map is area-averaged down (and, with an extent, resized twice).
    gray, hs = random_case(3, (64, 80), (40, 50))
    assert_within_one_level(torch_render(gray, hs, "luma", 1.0, True, 8), reference(gray, hs, "luma", 1.0, True, 8))
    gray, hs = random_case(4, (16, 20), (12, 90))  # one axis shrinks, the other grows
    ref = reference(gray, hs, "luma", 1.0, True, 8, (15.5, 19.25))
    assert_within_one_level(torch_render(gray, hs, "luma", 1.0, True, 8, (15.5, 19.25)), ref)


@pytest.mark.parametrize("map_shape, photo_shape, gathered", [
    ((12, 30), (150, 113), False),   # runs of 12-13 rows, crossing strips of 5: blended run by run
    ((9, 40), (100, 300), False),    # runs of 11-12 rows, not aligned to strips of 5 or of the default
    ((40, 30), (150, 113), True),    # runs of ~4 rows: gathered
    ((100, 70), (150, 105), True),   # runs of 1-2 rows: gathered
])
def test_every_enlargement_factor_matches_the_reference(map_shape, photo_shape, gathered):
    gray, hs = random_case(7, map_shape, photo_shape)
    enlarger = render.Enlarger(hs, photo_shape[1], photo_shape[0], True)
    assert enlarger._gather == gathered  # both ways of blending the rows are covered
    for strip in (photo_shape[1] * 5, None):
        ours = render.render(gray, enlarger, "luma", 1.1, 8, strip)
        assert_within_one_level(ours, reference(gray, hs, "luma", 1.1, True, 8))


def test_same_output_for_any_strip_size_and_thread_count():
    gray, hs = random_case(5, (20, 30), (300, 420))
    one = torch_render(gray, hs, "luma", 1.2, True, 8)
    assert np.array_equal(one, torch_render(gray, hs, "luma", 1.2, True, 8, strip_pixels=420 * 7))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = torch_render(gray, hs, "luma", 1.2, True, 8, strip_pixels=420 * 7)
        torch.set_num_threads(3)
        shared = torch_render(gray, hs, "luma", 1.2, True, 8, strip_pixels=420 * 7)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one, alone) and np.array_equal(one, shared)
    assert torch.get_num_threads() == threads, "rendering leaves torch's thread count as it was"


@pytest.mark.parametrize("dtype, out_dtype", [(torch.uint8, np.uint8), (torch.int32, np.uint16)])
def test_accelerator_planes_reach_the_host_interleaved(dtype, out_dtype):
    # The GPU branch's hand-over (run here on CPU tensors): planes in, HxWx3 out,
    # written into a slice of the whole photo's array as render does.
    rng = np.random.default_rng(8)
    peak = 255 if out_dtype == np.uint8 else 65535
    planes = torch.from_numpy(rng.integers(0, peak + 1, (3, 5, 7)).astype(np.int64)).to(dtype)
    photo = np.zeros((9, 7, 3), out_dtype)
    render._planes_to_host(planes, photo[2:7])
    assert np.array_equal(photo[2:7], planes.numpy().transpose(1, 2, 0).astype(out_dtype))
    assert not photo[:2].any() and not photo[7:].any()


def test_luma_mode_keeps_the_photos_gray_at_16_bits():
    gray, hs = random_case(6, (9, 9), (120, 80))
    out = torch_render(gray, hs, "luma", 2.5, True, 16).astype(np.float32) / 65535
    assert np.abs(color.rgb_to_luma_np(out) - gray).max() <= 1.5 / 65535


def test_result_renders_what_the_reference_renders(tiny_weights):
    colorizer = Colorizer.load(tiny_weights, "cpu")
    for photo in (colour_image(203, 157), (colour_image(130, 301).astype(np.uint16) * 257)):
        res = colorizer.colorize(photo, working_size=64)
        for stage in ("stage1", "refined"):
            for mode in ("luma", "v"):
                ref = reference(res.gray, res.hs(stage), mode, 1.4, res.circular, res.bit_depth, res._extent(stage))
                assert_within_one_level(res.render(stage, mode, 1.4), ref)
        small = res.preview(50)
        ref = reference(small.gray, small.hs("refined"), "luma", 1.0, small.circular, small.bit_depth)
        assert_within_one_level(small.render(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_render_matches_the_reference():
    gray, hs = random_case(7, (43, 64), (1000, 1500))
    for bit_depth in (8, 16):
        ref = reference(gray, hs, "luma", 1.3, True, bit_depth)
        ours = torch_render(gray, hs, "luma", 1.3, True, bit_depth, device="cuda")
        assert_within_one_level(ours, ref, None if bit_depth == 8 else well_defined_hue(hs, gray.shape))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_renders_on_several_threads_at_once_match_the_reference():
    # batch renders on its writing threads, each on a CUDA stream of its own,
    # while the networks run; the window re-renders, on its worker thread, a
    # map made on another thread. Each must still give its own photo's colours.
    from concurrent.futures import ThreadPoolExecutor

    cases = [random_case(seed, (43, 64), (900 + 37 * seed, 1300)) for seed in range(8)]
    enlargers = [render.Enlarger(hs, gray.shape[1], gray.shape[0], True, None, "cuda") for gray, hs in cases]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda k: render.render(cases[k][0], enlargers[k], "luma", 1.3, 8), range(len(cases))))
    for (gray, hs), ours in zip(cases, outs):
        assert_within_one_level(ours, reference(gray, hs, "luma", 1.3, True, 8))
