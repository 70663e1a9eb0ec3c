"""Colour hints from the command line: `colorize --hints FILE` and the
NAME.hints.json that `batch` reads beside a photo."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.networks import TwoStageColorizer
from hsvcolorizer.weights import save_weights
from tests.conftest import colour_image
from tests.test_cli import cli


@pytest.fixture
def hint_weights(tmp_path, tiny_config):
    import torch

    torch.manual_seed(0)
    model = TwoStageColorizer(dataclasses.replace(tiny_config, hint_input=True, hue_vector=True))
    return save_weights(model, tmp_path / "hints.safetensors", {"input_channel": "luma"})


@pytest.fixture
def gray_photo(tmp_path):
    path = tmp_path / "photo.png"
    write_image(path, colour_image(40, 56).mean(2).astype(np.uint8))
    return path


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_colorize_uses_the_hint_file(tmp_path, gray_photo, hint_weights):
    hints = write_json(tmp_path / "h.json", {"hints": [{"x": 10, "y": 12, "rgb": [220, 20, 30]}]})
    r = cli("colorize", gray_photo, "--weights", hint_weights, "-o", tmp_path / "auto.png")
    assert r.returncode == 0, r.stderr
    r = cli("colorize", gray_photo, "--weights", hint_weights, "--hints", hints, "-o", tmp_path / "hinted.png")
    assert r.returncode == 0, r.stderr
    auto, hinted = (read_image(tmp_path / n).pixels for n in ("auto.png", "hinted.png"))
    assert auto.shape == hinted.shape == (40, 56, 3) and not np.array_equal(auto, hinted)
    # An empty list is exactly the automatic result.
    empty = write_json(tmp_path / "empty.json", {"hints": []})
    r = cli("colorize", gray_photo, "--weights", hint_weights, "--hints", empty, "-o", tmp_path / "empty.png")
    assert r.returncode == 0 and np.array_equal(read_image(tmp_path / "empty.png").pixels, auto)


@pytest.mark.parametrize("content, needle", [
    ('{"hints": [{"x": 1, "y": 2, "rgb": [1, 2]}]}', "three numbers"),
    ('{"hints": [{"x": 56, "y": 2, "rgb": [1, 2, 3]}]}', "outside the photo, which is 56x40"),
    ("not json", "not valid JSON"),
])
def test_a_bad_hint_file_is_one_line_and_nothing_is_written(tmp_path, gray_photo, hint_weights, content, needle):
    (tmp_path / "bad.json").write_text(content)
    r = cli("colorize", gray_photo, "--weights", hint_weights, "--hints", tmp_path / "bad.json")
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "photo_color.png").exists()


def test_a_model_without_hint_input_refuses_hints(tmp_path, gray_photo, tiny_weights):
    hints = write_json(tmp_path / "h.json", {"hints": [{"x": 1, "y": 2, "rgb": [1, 2, 3]}]})
    r = cli("colorize", gray_photo, "--weights", tiny_weights, "--hints", hints)
    assert r.returncode == 2 and "does not read colour hints" in r.stderr
    assert not (tmp_path / "photo_color.png").exists()


def test_batch_reads_the_hint_file_beside_each_photo(tmp_path, hint_weights, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    gray = colour_image(40, 56).mean(2).astype(np.uint8)
    for name in ("a", "b", "c"):
        write_image(src / f"{name}.png", gray)
    write_json(src / "a.hints.json", {"hints": [{"x": 10, "y": 12, "rgb": [220, 20, 30]}]})
    (src / "c.hints.json").write_text("{broken")
    r = cli("batch", src, tmp_path / "out", "--weights", hint_weights)
    assert r.returncode == 1, r.stderr  # c failed: its hint file is malformed
    assert "c.hints.json: not valid JSON" in r.stdout + r.stderr
    a, b = (read_image(tmp_path / "out" / f"{n}_color.png").pixels for n in ("a", "b"))
    assert not np.array_equal(a, b)  # a used its hint, b (same gray, no file) did not
    assert not (tmp_path / "out" / "c_color.png").exists()
    # A model that does not read hints colorizes all three and says why the files are not used.
    r = cli("batch", src, tmp_path / "plain", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    assert "2 photos have hint files (NAME.hints.json) beside them; this model does not read colour hints" in r.stderr


def test_evaluate_with_drawn_hints_needs_a_hint_model(tmp_path, hint_weights, tiny_weights):
    data = tmp_path / "val"
    data.mkdir()
    for i in range(2):
        write_image(data / f"p{i}.png", colour_image(40, 56, seed=i))
    r = cli("evaluate", "--data", data, "--weights", hint_weights, "--hints", "5", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["hints"] == 5 and report["count"] == 2
    r = cli("evaluate", "--data", data, "--weights", tiny_weights, "--hints", "5")
    assert r.returncode == 2 and "does not read colour hints" in r.stderr


def test_batch_reports_each_bad_hint_file_as_its_photos_failure(tmp_path, hint_weights):
    # A reviewer's finds: a number of hundreds of digits stopped the whole
    # batch with a traceback, and a point outside the photo did not name the file.
    src = tmp_path / "in"
    src.mkdir()
    gray = colour_image(40, 56).mean(2).astype(np.uint8)
    for name in ("a", "d", "e"):
        write_image(src / f"{name}.png", gray)
    (src / "d.hints.json").write_text('{"hints": [{"x": ' + "9" * 400 + ', "y": 2, "rgb": [1, 2, 3]}]}')
    write_json(src / "e.hints.json", {"hints": [{"x": 56, "y": 2, "rgb": [1, 2, 3]}]})
    r = cli("batch", src, tmp_path / "out", "--weights", hint_weights)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "1 done, 0 skipped, 2 failed" in r.stdout
    assert "d.hints.json, hint 1: x is far too large" in r.stdout
    assert "e.hints.json, hint 1: (56, 2) is outside the photo, which is 56x40" in r.stdout
    assert (tmp_path / "out" / "a_color.png").is_file()


def test_colorize_names_a_hint_file_beside_the_photo_that_it_does_not_use(tmp_path, gray_photo, hint_weights):
    # The window saves NAME.hints.json beside a photo; `colorize` without
    # --hints gives the automatic result and says the file is there.
    write_json(tmp_path / "photo.hints.json", {"hints": [{"x": 10, "y": 12, "rgb": [220, 20, 30]}]})
    r = cli("colorize", gray_photo, "--weights", hint_weights, "-o", tmp_path / "auto.png")
    assert r.returncode == 0 and "photo.hints.json beside photo.png is not used; pass --hints" in r.stderr
    r = cli("colorize", gray_photo, "--weights", hint_weights, "--hints", tmp_path / "photo.hints.json",
            "-o", tmp_path / "hinted.png")
    assert r.returncode == 0 and "not used" not in r.stderr
