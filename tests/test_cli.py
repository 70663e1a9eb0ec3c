"""The command line: colorize, batch, info, evaluate; one-line errors and exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsvcolorizer.imageio import read_image, write_image
from tests.conftest import colour_image

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=240):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "hsvcolorizer.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=e)


def test_colorize_writes_full_size_and_stages(tmp_path, tiny_weights):
    src = tmp_path / "old photo.png"
    write_image(src, colour_image(45, 61).mean(2).astype(np.uint8))
    r = cli("colorize", src, "--weights", tiny_weights, "--save-stages", "--saturation", "1.2")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "old photo_color.png"
    assert read_image(out).pixels.shape == (45, 61, 3)
    for suffix in ("_stage1.png", "_stage1_hue.png", "_stage2_saturation.png"):
        assert (tmp_path / f"old photo_color{suffix}").is_file()
    r = cli("colorize", src, "-o", tmp_path / "x.jpg", "--weights", tiny_weights, "--recompose", "v")
    assert r.returncode == 0 and read_image(tmp_path / "x.jpg").pixels.shape == (45, 61, 3)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["colorize", "missing.png"], "missing.png"),
        (["colorize", "{bad}"], "bad.jpg"),
        (["colorize", "{good}", "--weights", "{evil}"], "pickled"),
        (["batch", "{dir}", "{dir}", "--weights", "{w}"], "input folder"),
        (["train", "--data", "nowhere", "--out", "{dir}/run"], "does not exist"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, tiny_weights, args, needle):
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a picture")
    good = tmp_path / "good.png"
    write_image(good, np.zeros((8, 8), np.uint8))
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x04K\x01.")
    subs = {"{bad}": bad, "{good}": good, "{evil}": evil, "{dir}": tmp_path, "{w}": tiny_weights}
    real = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, str(v))
        real.append(a)
    r = cli(*real)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_option_is_rejected_by_the_parser():
    r = cli("colorize", "x.png", "--saturation", "9")
    assert r.returncode == 2 and "saturation" in r.stderr


def test_batch_goes_on_past_a_corrupt_file_and_reports_it(tmp_path, tiny_weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", colour_image(20, 30))
    write_image(src / "sub" / "b.jpg", colour_image(25, 20, 1))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    r = cli("batch", src, out, "--recursive", "--weights", tiny_weights, "--format", "same")
    assert r.returncode == 1
    assert "2 done, 0 skipped, 1 failed" in r.stdout and "broken.png" in r.stdout
    assert "(networks on CPU in " in r.stdout  # what the networks ran in
    assert (out / "a_color.png").is_file() and (out / "sub" / "b_color.jpg").is_file()
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before, "inputs untouched"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # Second run: skip policy leaves outputs, rename writes new names.
    r = cli("batch", src, out, "--recursive", "--weights", tiny_weights, "--format", "same")
    assert "0 done, 2 skipped, 1 failed" in r.stdout
    r = cli("batch", src, out, "--weights", tiny_weights, "--format", "same", "--overwrite", "rename")
    assert (out / "a_color (1).png").is_file()


def test_info_prints_exact_parameter_counts(tmp_path):
    # The shipped v3 layout (hue as a unit vector: one more output channel
    # per network; a 4-channel hint map beside the gray: 2,304 weights more
    # than v2's 10,568,550) and v1's (one tanh hue value), each counted exactly.
    r = cli("info")
    assert r.returncode == 0
    assert "10,570,854" in r.stdout and "1,492,963" in r.stdout and "2,179,599" in r.stdout
    assert "hue output: unit vector" in r.stdout
    assert "colour hints: read" in r.stdout and "starting from hsvcolorizer-v2.safetensors" in r.stdout
    from hsvcolorizer.networks import ModelConfig, TwoStageColorizer
    from hsvcolorizer.weights import save_weights

    v1 = save_weights(TwoStageColorizer(ModelConfig()), tmp_path / "v1.safetensors", {"input_channel": "luma"}, half=True)
    r = cli("info", "--weights", v1)
    assert "10,565,668" in r.stdout and "1,491,234" in r.stdout and "2,176,934" in r.stdout
    assert "hue output: one tanh value" in r.stdout
    assert "colour hints: not read" in r.stdout


def test_evaluate_prints_model_and_gray_baseline(tmp_path, tiny_weights):
    d = tmp_path / "val"
    d.mkdir()
    for i in range(3):
        write_image(d / f"{i}.png", colour_image(24, 32, i))
    r = cli("evaluate", "--data", d, "--weights", tiny_weights, "--sheet", tmp_path / "sheet.png")
    assert r.returncode == 0, r.stderr
    assert "gray baseline" in r.stdout and "model" in r.stdout
    assert "networks on CPU in " in r.stdout  # which precision the figures came from
    assert (tmp_path / "sheet.png").is_file()
    r = cli("evaluate", "--data", d, "--weights", tiny_weights, "--json", "--precision", "fp32")
    import json

    rep = json.loads(r.stdout)
    assert rep["count"] == 3 and rep["gray_baseline"]["colorfulness_ratio"] == 0
    assert rep["precision"] == "fp32" and rep["device"] == "CPU"


def test_colorize_several_photos_goes_on_past_a_bad_one(tmp_path, tiny_weights):
    good = [tmp_path / "a.png", tmp_path / "c.png"]
    for p in good:
        write_image(p, colour_image(16, 20).mean(2).astype(np.uint8))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not a photo")
    r = cli("colorize", good[0], bad, good[1], "--weights", tiny_weights)
    assert r.returncode == 1  # some written, some failed: as batch (2: nothing written)
    assert r.stderr.count("hsvcolorizer: error:") == 1 and "b.jpg" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "a_color.png").is_file() and (tmp_path / "c_color.png").is_file()
    assert "2 colorized, 1 failed" in r.stdout


def test_output_extension_and_format_must_agree(tmp_path, tiny_weights):
    src = tmp_path / "a.png"
    write_image(src, np.zeros((8, 8), np.uint8))
    r = cli("colorize", src, "-o", tmp_path / "x.png", "--format", "jpg", "--weights", tiny_weights)
    assert r.returncode == 2 and "disagree" in r.stderr and not (tmp_path / "x.png").exists()


def test_an_existing_folder_with_a_dot_in_its_name_is_a_folder_for_o(tmp_path, tiny_weights):
    src = tmp_path / "a.png"
    write_image(src, colour_image(16, 20).mean(2).astype(np.uint8))
    folder = tmp_path / "scans.2024"
    folder.mkdir()
    r = cli("colorize", src, "-o", folder, "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    assert (folder / "a_color.png").is_file()


def test_a_colour_photo_given_to_colorize_is_noted(tmp_path, tiny_weights):
    src = tmp_path / "colour.png"
    write_image(src, colour_image(16, 20))
    r = cli("colorize", src, "--weights", tiny_weights)
    assert r.returncode == 0 and "colour.png is a colour photo; its colours are replaced" in r.stderr


def test_info_gives_the_working_size_in_pixels(tiny_weights):
    r = cli("info", "--weights", tiny_weights)
    assert r.returncode == 0 and "working size: 256 px (long side)" in r.stdout
