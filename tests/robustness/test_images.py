"""Issue part 1: hostile and unusual images, through the Python API, `colorize` and `batch`.

Each case of conftest.IMAGE_CASES either gives a colour result of the right
size (whose luma is the photo's gray, so orientation, frame and colour space
are checked too), or one error line naming the file: never a traceback, a
hang, or an output file of any kind.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hsvcolorizer.batch import BatchOptions, run_batch
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import read_image
from tests.robustness.conftest import (
    ERROR_CASES,
    IMAGE_CASES,
    NON_ASCII_DIR,
    OK_CASES,
    assert_one_line_error,
    case_id,
    leftovers,
    luma8,
    make_huge_png_header,
    run_cli,
    snapshot,
    valid_png_bytes,
)

# One 8-bit level: the default ("luma") recomposition keeps the gray exactly,
# the rest is rounding of the RGB result and its luma.
LUMA_TOLERANCE = 1.0

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="the cases use POSIX symlinks"),
    # In-process, pytest records Pillow's "damaged EXIF" warnings itself; the
    # command-line tests check that a real run prints nothing of the kind.
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def check_result(case, source: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    """A correct colour result for ``case``: size, depth, luma, alpha, and the case's own check."""
    width, height = case.size
    assert rgb.shape == (height, width, 3), f"{case.name}: {rgb.shape}"
    assert rgb.dtype == (np.uint16 if case.bit_depth == 16 else np.uint8)
    photo = read_image(source)
    assert np.abs(luma8(rgb) - luma8(photo.pixels)).max() <= LUMA_TOLERANCE
    if case.alpha:
        assert alpha is not None and alpha.shape == (height, width)
        assert (alpha[:, :10] == 0).all() and (alpha[:, 10:] == 255).all()
    else:
        assert alpha is None
    if case.check is not None:
        case.check(photo.pixels)
        case.check(rgb)


# ---------------------------------------------------------------------------
# (a) Python API: Colorizer.colorize(read_image(path))
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", IMAGE_CASES, ids=case_id)
def test_api(case, tmp_path, module_colorizer, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    path = case.create(tmp_path / "in")
    if not case.ok:
        with pytest.raises(ColorizerError) as info:
            module_colorizer.colorize(read_image(path))
        message = str(info.value)
        assert "\n" not in message and path.name in message and case.needle in message
        return
    result = module_colorizer.colorize(read_image(path))
    check_result(case, path, result.render(), result.alpha)


def test_pixel_limit_is_an_argument_too(tmp_path):
    path = tmp_path / "ordinary.png"
    path.write_bytes(valid_png_bytes(40, 50))
    with pytest.raises(ColorizerError, match="above the limit of 0.001 megapixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=2000).size == (50, 40)


def test_huge_header_is_refused_before_any_allocation(tmp_path):
    path = make_huge_png_header(tmp_path / "bomb.png")
    assert path.stat().st_size < 100
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ColorizerError, match="above the limit"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5_000_000  # decoding would need 7.5 GB


def _limit_address_space() -> None:
    # 2 GB of address space: enough for Python, NumPy, Pillow and OpenCV,
    # far below the 7.5 GB that decoding the 50000x50000 image would take.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS") or sys.platform == "darwin",
                    reason="needs RLIMIT_AS (Linux)")
def test_huge_header_on_the_command_line_within_2_gb(tmp_path, module_weights):
    path = make_huge_png_header(tmp_path / "bomb.png")
    r = run_cli("colorize", path, "-o", tmp_path / "out", "--weights", module_weights,
                preexec_fn=_limit_address_space, timeout=60)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "bomb.png", "50000x50000", "HSVCOLORIZER_MAX_PIXELS")
    assert not (tmp_path / "out").exists()


def test_bad_pixel_limit_setting_is_a_clear_error(tmp_path):
    path = tmp_path / "ordinary.png"
    path.write_bytes(valid_png_bytes(8, 8))
    r = run_cli("colorize", path, env={"HSVCOLORIZER_MAX_PIXELS": "lots"})
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "HSVCOLORIZER_MAX_PIXELS", "'lots'")


# ---------------------------------------------------------------------------
# (b) Command line, one photo at a time: `hsvcolorizer colorize`
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES, ids=case_id)
def test_cli_colorize_refuses_with_one_line(case, tmp_path, module_weights):
    path = case.create(tmp_path / "in")
    before = snapshot(tmp_path / "in")
    out = tmp_path / "out"
    r = run_cli("colorize", path, "-o", out, "--weights", module_weights, env=case.env)
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r.stderr, path.name, case.needle)
    assert r.stdout == ""
    assert not out.exists() or not any(out.iterdir()), "no output, not even a partial one"
    assert snapshot(tmp_path / "in") == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp") or "_color" in p.name]


@pytest.fixture(scope="module")
def colorized_on_cli(tmp_path_factory, module_weights):
    """Every case that must work, colorized by one `colorize ... -o OUT` run."""
    root = tmp_path_factory.mktemp("cli_ok")
    sources = {case.name: case.create(root / "in") for case in OK_CASES}
    before = snapshot(root / "in")
    out = root / "out"
    r = run_cli("colorize", *sources.values(), "-o", out, "--weights", module_weights)
    return sources, out, r, before, root


def test_cli_colorize_ok_cases_exit_0(colorized_on_cli):
    sources, out, r, before, root = colorized_on_cli
    assert r.returncode == 0, r.stderr
    # Nothing on stderr but a note for each colour photo (its colours are replaced).
    assert "Traceback" not in r.stderr
    assert all(line.startswith("note: ") and "is a colour photo" in line for line in r.stderr.splitlines())
    assert len(r.stdout.splitlines()) == len(sources)
    assert snapshot(root / "in") == before, "inputs untouched"
    assert leftovers(out) == []


@pytest.mark.parametrize("case", OK_CASES, ids=case_id)
def test_cli_colorize_result(case, colorized_on_cli):
    sources, out, r, _, _ = colorized_on_cli
    assert r.returncode == 0, r.stderr
    src = sources[case.name]
    written = read_image(out / f"{src.stem}_color.png")
    assert f"{src} -> {out / (src.stem + '_color.png')} ({case.size[0]}x{case.size[1]}," in r.stdout
    check_result(case, src, written.pixels, written.alpha)


def test_cli_colorize_one_pixel_to_a_named_file(tmp_path, module_weights):
    case = next(c for c in OK_CASES if c.name == "one_by_one")
    src = case.create(tmp_path)
    r = run_cli("colorize", src, "-o", tmp_path / "dot out.jpg", "--weights", module_weights)
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "dot out.jpg").pixels.shape == (1, 1, 3)


# ---------------------------------------------------------------------------
# (c) A whole folder: `hsvcolorizer batch` and run_batch, with symlink loops
# ---------------------------------------------------------------------------

# Cases that need their own environment (a pixel limit) are left out: the
# batch sets no environment per file.
BATCH_CASES = [c for c in IMAGE_CASES if not c.env]
BATCH_ERRORS = [c for c in BATCH_CASES if not c.ok and c.name != "symlink_loop_file"]


def make_batch_folder(root: Path) -> tuple[Path, dict]:
    """Every case in one folder, plus directory symlink loops inside and outside it.

    Photos inside the folder are found once under their real path; a link to
    a folder elsewhere is followed (once, even though that folder links to itself).
    """
    src = root / "in"
    sources = {case.name: case.create(src) for case in BATCH_CASES}
    (src / "sub").mkdir()
    shutil.copy(sources["one_by_n"], src / "sub" / "nested.png")
    os.symlink("..", src / "sub" / "loop", target_is_directory=True)  # in/sub/loop -> in
    os.symlink(".", src / "self", target_is_directory=True)  # in/self -> in
    os.symlink(src / "sub", src / NON_ASCII_DIR / "back", target_is_directory=True)
    (root / "elsewhere").mkdir()
    shutil.copy(sources["one_by_n"], root / "elsewhere" / "far.png")
    os.symlink(".", root / "elsewhere" / "again", target_is_directory=True)  # a loop outside
    os.symlink(root / "elsewhere", src / "outside", target_is_directory=True)
    return src, sources


EXTRA_OUTPUTS = [Path("sub/nested.png"), Path("outside/far.png")]


def expected_output(src_root: Path, out: Path, source: Path) -> Path:
    rel = source.relative_to(src_root)
    return out / rel.parent / f"{rel.stem}_color.png"


@pytest.fixture(scope="module")
def batch_on_cli(tmp_path_factory, module_weights):
    root = tmp_path_factory.mktemp("cli_batch")
    src, sources = make_batch_folder(root)
    before = snapshot(src)
    out = root / "out"
    started = time.monotonic()
    # The timeout is the hang check: a loop followed forever never returns.
    r = run_cli("batch", src, out, "--recursive", "--weights", module_weights, timeout=120)
    return src, sources, out, r, before, time.monotonic() - started


def test_cli_batch_reports_every_file_once_and_goes_on(batch_on_cli):
    src, sources, out, r, before, _ = batch_on_cli
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, "some files failed"
    done = len([c for c in BATCH_CASES if c.ok]) + len(EXTRA_OUTPUTS)
    assert f"{done} done, 0 skipped, {len(BATCH_ERRORS)} failed" in r.stdout
    failed_lines = [line for line in r.stdout.splitlines() if line.startswith("  failed  ")]
    assert len(failed_lines) == len(BATCH_ERRORS)
    for case in BATCH_ERRORS:
        mine = [line for line in failed_lines if line.startswith(f"  failed  {sources[case.name]}: ")]
        assert len(mine) == 1 and case.needle in mine[0], case.name
        assert not expected_output(src, out, sources[case.name]).exists()
    assert snapshot(src) == before, "inputs untouched"
    assert leftovers(out) == []


@pytest.mark.parametrize("case", [c for c in BATCH_CASES if c.ok], ids=case_id)
def test_cli_batch_result(case, batch_on_cli):
    src, sources, out, r, _, _ = batch_on_cli
    written = read_image(expected_output(src, out, sources[case.name]))
    check_result(case, sources[case.name], written.pixels, written.alpha)


def test_cli_batch_through_symlink_loops_lists_each_file_once(batch_on_cli):
    src, sources, out, r, _, _ = batch_on_cli
    outputs = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    # No output went through a link back inside: loop/, self/, back/, again/ would be copies.
    assert not [p for p in outputs if {"loop", "self", "back", "again"} & set(p.parts)]
    assert {p.with_name(f"{p.stem}_color.png") for p in EXTRA_OUTPUTS} <= set(outputs)
    assert len(outputs) == len([c for c in BATCH_CASES if c.ok]) + len(EXTRA_OUTPUTS)


def test_api_batch_same_cases(tmp_path, module_colorizer):
    src, sources = make_batch_folder(tmp_path)
    before = snapshot(src)
    report = run_batch(module_colorizer, src, tmp_path / "out", BatchOptions(recursive=True))
    by_source = {o.source: o for o in report.outcomes}
    assert len(by_source) == len(report.outcomes), "each file once"
    assert len(report.outcomes) == len([c for c in BATCH_CASES if c.name != "symlink_loop_file"]) + len(EXTRA_OUTPUTS)
    assert {src / p.with_suffix(".png") for p in EXTRA_OUTPUTS} <= set(by_source)
    for case in BATCH_CASES:
        if case.name == "symlink_loop_file":
            # A link that leads nowhere is not a photo: it is not listed at all.
            assert sources[case.name] not in by_source
            continue
        outcome = by_source[sources[case.name]]
        if case.ok:
            assert outcome.status == "done", outcome.reason
            written = read_image(outcome.output)
            check_result(case, sources[case.name], written.pixels, written.alpha)
        else:
            assert outcome.status == "failed" and outcome.output is None
            assert case.needle in outcome.reason and "\n" not in outcome.reason
    assert snapshot(src) == before
    assert leftovers(tmp_path / "out") == []
