"""`hsvcolorizer bench` reports the batch rate issue 11 asks for."""

from hsvcolorizer.bench import measure_batch_speed
from hsvcolorizer.inference import Colorizer


def test_bench_reports_batch_photos_per_second_for_jpeg_and_png(tiny_weights):
    lines = []
    report = measure_batch_speed(Colorizer.load(tiny_weights, "cpu"), 1, log=lines.append)
    assert report["photos"] == 1 and report["megapixels"] == 12.0
    for fmt in ("jpg", "png"):
        assert report[fmt]["photos_per_s"] > 0 and report[fmt]["seconds"] > 0
    assert any("written as JPEG" in line for line in lines) and any("written as PNG" in line for line in lines)
