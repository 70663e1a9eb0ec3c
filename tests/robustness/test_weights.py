"""Issue part 4: hostile weight files — a pickle carrying a payload, truncated
safetensors, the wrong architecture, the wrong dtype, missing metadata.

Each is refused with a one-line ColorizerError (API) / exit code 2 and one
``hsvcolorizer: error:`` line (command line), and a payload never runs: it
would create a marker file, which must not exist afterwards.
"""

from __future__ import annotations

import builtins
import json
import pickle
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hsvcolorizer.cli import main
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import write_image
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.weights import load_weights, read_metadata
from tests.robustness.conftest import CLI_TIMEOUT, ROOT, assert_one_line_error, cli_command, cli_env


class Payload:
    """Unpickling this calls open(marker, "w"): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def pickled_payload(path: Path, marker: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=protocol))
    return path


def torch_saved_payload(path: Path, marker: Path) -> Path:
    torch.save({"model": Payload(marker)}, path)  # a zip archive with a pickle inside
    return path


def tiny_tensors_and_meta(tiny_weights: Path) -> tuple[dict, dict]:
    return load_file(str(tiny_weights)), read_metadata(tiny_weights)


def save_with(path: Path, tensors: dict, meta: dict | None) -> Path:
    save_file(tensors, str(path), metadata=None if meta is None else {"hsvcolorizer": json.dumps(meta)})
    return path


# Each maker writes one hostile file into a folder and returns it; the needle
# is what the one-line message must say.
def make_truncated_in_header(folder, w):
    data = w.read_bytes()
    return _write(folder / "cut-header.safetensors", data[:40])


def make_truncated_in_data(folder, w):
    data = w.read_bytes()
    return _write(folder / "cut-data.safetensors", data[: len(data) - len(data) // 3])


def make_eight_bytes(folder, w):
    return _write(folder / "tiny.safetensors", b"\xff" * 8)


def make_empty(folder, w):
    return _write(folder / "empty.safetensors", b"")


def make_wrong_shapes(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    meta["architecture"]["rcn_fuse_width"] = 16  # declares other shapes than it holds
    return save_with(folder / "shapes.safetensors", tensors, meta)


def make_other_network(folder, w):
    _, meta = tiny_tensors_and_meta(w)
    return save_with(folder / "resnet.safetensors", {"conv1.weight": torch.zeros(4, 3, 3, 3)}, meta)


def make_unbuildable_architecture(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    meta["architecture"]["rcn"] = "transformer"
    return save_with(folder / "unknown-arch.safetensors", tensors, meta)


def make_int_tensor(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    key = sorted(tensors)[0]
    tensors[key] = torch.ones_like(tensors[key], dtype=torch.int32)
    return save_with(folder / "int.safetensors", tensors, meta)


def make_bool_tensor(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    key = sorted(tensors)[-1]
    tensors[key] = torch.ones_like(tensors[key], dtype=torch.bool)
    return save_with(folder / "bool.safetensors", tensors, meta)


def make_no_metadata(folder, w):
    tensors, _ = tiny_tensors_and_meta(w)
    return save_with(folder / "no-meta.safetensors", tensors, None)


def make_damaged_metadata(folder, w):
    tensors, _ = tiny_tensors_and_meta(w)
    save_file(tensors, str(folder / "bad-meta.safetensors"), metadata={"hsvcolorizer": "{not json"})
    return folder / "bad-meta.safetensors"


def make_metadata_without_architecture(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    del meta["architecture"]
    return save_with(folder / "no-arch.safetensors", tensors, meta)


def make_nan_weights(folder, w):
    tensors, meta = tiny_tensors_and_meta(w)
    key = sorted(tensors)[0]
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    return save_with(folder / "nan.safetensors", tensors, meta)


def make_folder(folder, w):
    (folder / "weights.safetensors").mkdir()
    return folder / "weights.safetensors"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_WEIGHTS = {
    # name: (maker, needle)
    "truncated_in_header": (make_truncated_in_header, "not a valid safetensors file (damaged or truncated?)"),
    "truncated_in_data": (make_truncated_in_data, "truncated"),
    "eight_bytes": (make_eight_bytes, "not a valid safetensors file"),
    "empty_file": (make_empty, "not a valid safetensors file"),
    "wrong_architecture_shapes": (make_wrong_shapes, "does not match its declared architecture"),
    "wrong_architecture_other_network": (make_other_network, "tensors missing"),
    "wrong_architecture_unbuildable": (make_unbuildable_architecture, "architecture this version cannot build"),
    "wrong_dtype_int": (make_int_tensor, "dtype torch.int32, expected floating point"),
    "wrong_dtype_bool": (make_bool_tensor, "dtype torch.bool, expected floating point"),
    "missing_metadata": (make_no_metadata, "has no HSV Colorizer metadata"),
    "damaged_metadata": (make_damaged_metadata, "damaged metadata"),
    "metadata_without_architecture": (make_metadata_without_architecture, "damaged metadata"),
    "nan_weights": (make_nan_weights, "NaN or infinite weights"),
    "a_folder": (make_folder, "is not a weights file"),
}


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, np.full((12, 16), 120, np.uint8))
    return path


def one_line(exc: ColorizerError, *needles: str) -> None:
    message = str(exc)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


# ---------------------------------------------------------------------------
# Pickles: refused unread, the payload never runs
# ---------------------------------------------------------------------------

PICKLES = {
    "pt_pickle": lambda folder, marker: pickled_payload(folder / "evil.pt", marker),
    "pickle_named_safetensors": lambda folder, marker: pickled_payload(folder / "evil.safetensors", marker),
    "protocol0_pickle_named_safetensors": lambda folder, marker: pickled_payload(
        folder / "old.safetensors", marker, protocol=0),
    "torch_save_zip_named_safetensors": lambda folder, marker: torch_saved_payload(folder / "zip.safetensors", marker),
}


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """Guard for the tests below: the payload is live (so "no marker" means something)."""
    marker = tmp_path / "marker"
    pickle.loads(pickled_payload(tmp_path / "x.pt", marker).read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("kind", sorted(PICKLES))
def test_pickle_payload_never_runs_api(kind, tmp_path):
    marker = tmp_path / "PWNED"
    path = PICKLES[kind](tmp_path, marker)
    for load in (lambda: Colorizer.load(path, "cpu"), lambda: load_weights(path), lambda: read_metadata(path)):
        with pytest.raises(ColorizerError) as info:
            load()
        one_line(info.value, path.name)
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize("kind", sorted(PICKLES))
def test_pickle_payload_never_runs_cli_main(kind, tmp_path, photo, capsys):
    marker = tmp_path / "PWNED"
    path = PICKLES[kind](tmp_path, marker)
    for argv in (["colorize", photo, "--weights", path], ["info", "--weights", path],
                 ["batch", photo.parent, tmp_path / "out", "--weights", path]):
        assert main([str(a) for a in argv]) == 2
        assert_one_line_error(capsys.readouterr().err, path.name)
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pickled_checkpoint_never_runs_on_resume(tmp_path, photo_folder):
    """--resume reads our own checkpoint.pt with torch.load(weights_only=True)."""
    from hsvcolorizer.training import TrainConfig, train

    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    torch_saved_payload(run / "checkpoint.pt", marker)
    cfg = TrainConfig(data=str(photo_folder), out=str(run), resume=True, size=32, width_scale=0.125,
                      batch_size=2, workers=0, device="cpu")
    with pytest.raises(ColorizerError) as info:
        train(cfg)
    one_line(info.value, "checkpoint", "damaged")
    assert not marker.exists()


def test_pickled_init_weights_never_run(tmp_path, photo_folder):
    from hsvcolorizer.training import TrainConfig, train

    marker = tmp_path / "PWNED"
    init = pickled_payload(tmp_path / "init.pt", marker)
    cfg = TrainConfig(data=str(photo_folder), out=str(tmp_path / "run"), init=str(init), size=32,
                      width_scale=0.125, batch_size=2, workers=0, device="cpu")
    with pytest.raises(ColorizerError, match="pickled"):
        train(cfg)
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Damaged, mismatched and foreign safetensors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_weights_api(case, tmp_path, tiny_weights):
    maker, needle = BAD_WEIGHTS[case]
    path = maker(tmp_path, tiny_weights)
    with pytest.raises(ColorizerError) as info:
        Colorizer.load(path, "cpu")
    one_line(info.value, path.name, needle)


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_weights_cli_main(case, tmp_path, tiny_weights, photo, capsys):
    maker, needle = BAD_WEIGHTS[case]
    path = maker(tmp_path, tiny_weights)
    assert main(["colorize", str(photo), "--weights", str(path)]) == 2
    assert_one_line_error(capsys.readouterr().err, path.name, needle)
    assert not (tmp_path / "photo_color.png").exists()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_load_and_give_the_same_colours(dtype, tmp_path, tiny_weights):
    """Not hostile, but the other side of "wrong dtype": every float width is fine."""
    tensors, meta = tiny_tensors_and_meta(tiny_weights)
    path = save_with(tmp_path / "w.safetensors", {k: v.to(dtype) for k, v in tensors.items()}, meta)
    gray = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    ref = Colorizer.load(tiny_weights, "cpu").colorize(gray).render()
    got = Colorizer.load(path, "cpu").colorize(gray).render()
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= (0 if dtype == torch.float64 else 12)


def test_missing_weights_file(tmp_path, photo, capsys):
    assert main(["colorize", str(photo), "--weights", str(tmp_path / "nope.safetensors")]) == 2
    assert_one_line_error(capsys.readouterr().err, "nope.safetensors", "does not exist")


# ---------------------------------------------------------------------------
# The real command line, in fresh interpreters (run side by side: each one
# spends seconds importing torch)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, module_weights):
    root = tmp_path_factory.mktemp("weights_cli")
    write_image(root / "photo.png", np.full((12, 16), 120, np.uint8))
    marker = root / "PWNED"
    # Three representative files (each run costs seconds of importing torch);
    # test_bad_weights_cli_main runs every case through the same main().
    files = {
        "pickle_payload": pickled_payload(root / "evil.pt", marker),
        "truncated": make_truncated_in_data(root, module_weights),
        "wrong_dtype": make_int_tensor(root, module_weights),
    }

    def run(path):
        return subprocess.run(cli_command("colorize", root / "photo.png", "--weights", path), capture_output=True,
                              text=True, timeout=CLI_TIMEOUT, cwd=ROOT, env=cli_env())

    with ThreadPoolExecutor(len(files)) as pool:
        results = dict(zip(files, pool.map(run, files.values())))
    return root, marker, files, results


@pytest.mark.parametrize("case, needle", [
    ("pickle_payload", "pickled PyTorch file, which can run code when loaded"),
    ("truncated", "truncated"),
    ("wrong_dtype", "expected floating point"),
])
def test_bad_weights_real_command_line(case, needle, cli_runs):
    root, marker, files, results = cli_runs
    r = results[case]
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r.stderr, files[case].name, needle)
    assert r.stdout == ""
    assert not marker.exists()
    assert not (root / "photo_color.png").exists()
