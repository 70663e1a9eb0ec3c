"""Issue part 3: where results go — missing, read-only or input folders, outputs
already there (each overwrite policy), and a disk that fills up mid-write.

Through the command line's own entry point, ``hsvcolorizer.cli.main(argv)``
(what ``python -m hsvcolorizer.cli`` runs; in-process so the writer can be
replaced), and through ``run_batch``.  Everywhere: the originals keep their
bytes and mtime, no ``.tmp`` file remains, and a failure is one line.
"""

from __future__ import annotations

import errno
import os
import pathlib
import sys
from pathlib import Path

import numpy as np
import pytest

from hsvcolorizer import imageio
from hsvcolorizer.batch import BatchOptions, run_batch
from hsvcolorizer.cli import main
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import read_image, write_image
from tests.conftest import colour_image
from tests.robustness.conftest import leftovers, snapshot

NAMES = ("a.png", "b.jpg", "c.png")
SIZE = (24, 32)  # (height, width) of every input


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        write_image(folder / name, colour_image(*SIZE, seed=i))
    return folder


def run(capsys, *args) -> tuple[int, str, str]:
    """hsvcolorizer ARGS in-process: (exit code, stdout, the error lines of stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    # Batch draws a progress bar on stderr; everything else there must be our one line.
    errors = [line for line in captured.err.splitlines() if line.startswith("hsvcolorizer:") or "Traceback" in line]
    return code, captured.out, "\n".join(errors)


def assert_one_error(errors: str, *needles: str) -> None:
    assert "Traceback" not in errors
    assert len(errors.splitlines()) == 1 and errors.startswith("hsvcolorizer: error: "), errors
    for needle in needles:
        assert needle in errors, f"{needle!r} not in {errors!r}"


def is_result(path: Path) -> bool:
    return read_image(path).pixels.shape == (*SIZE, 3)


# ---------------------------------------------------------------------------
# Writers that fail the way disks and permissions do
# ---------------------------------------------------------------------------


def disk_full_after_half(fileobj, data) -> None:
    """Write half of the file, then fail like a full disk."""
    fileobj.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def permission_denied(fileobj, data) -> None:
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def deny_creating_files_in(monkeypatch, folder: Path) -> None:
    """os.open(..., O_CREAT) in ``folder`` fails with EACCES, as in a read-only folder."""
    real_open = os.open
    folder = Path(folder).resolve()

    def guarded_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).resolve().parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(imageio.os, "open", guarded_open)


def _permissions_are_enforced() -> bool:
    """False for root (or anyone with CAP_DAC_OVERRIDE): they write into read-only folders."""
    if os.name != "posix":
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        locked = Path(tmp) / "locked"
        locked.mkdir(mode=0o555)
        try:
            (locked / "probe").touch()
        except PermissionError:
            return True
        finally:
            locked.chmod(0o755)
        return False


needs_real_permissions = pytest.mark.skipif(
    not _permissions_are_enforced(),
    reason="permission bits are not enforced for this user (root); the simulated read-only tests cover this case",
)


# ---------------------------------------------------------------------------
# Output folder missing
# ---------------------------------------------------------------------------


def test_batch_creates_a_missing_output_folder(inputs, tmp_path, tiny_weights, capsys):
    out = tmp_path / "new" / "deeper"
    code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights)
    assert code == 0 and errors == ""
    assert "3 done, 0 skipped, 0 failed" in stdout
    assert all(is_result(out / f"{Path(n).stem}_color.png") for n in NAMES)


def test_colorize_into_a_missing_folder_is_a_clear_error(inputs, tmp_path, tiny_weights, capsys):
    target = tmp_path / "missing" / "x.png"
    code, stdout, errors = run(capsys, "colorize", inputs / "a.png", "-o", target, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "output folder", "missing", "does not exist")
    assert not (tmp_path / "missing").exists()


def test_colorize_to_a_new_folder_creates_it(inputs, tmp_path, tiny_weights, capsys):
    code, _, errors = run(capsys, "colorize", inputs / "a.png", inputs / "b.jpg", "-o", tmp_path / "made",
                          "--weights", tiny_weights)
    assert code == 0 and errors == ""
    assert is_result(tmp_path / "made" / "a_color.png") and is_result(tmp_path / "made" / "b_color.png")


def test_output_that_is_a_file_is_a_clear_error(inputs, tmp_path, tiny_weights, capsys):
    blocker = tmp_path / "results"
    blocker.write_bytes(b"not a folder")
    code, _, errors = run(capsys, "colorize", inputs / "a.png", "-o", blocker, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "results", "is a file, not a folder")
    code, _, errors = run(capsys, "batch", inputs, blocker, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "results", "is a file, not a folder")
    assert blocker.read_bytes() == b"not a folder"


# ---------------------------------------------------------------------------
# Output folder read-only: really (non-root) and simulated (always)
# ---------------------------------------------------------------------------


@needs_real_permissions
def test_read_only_output_folder_for_real(inputs, tmp_path, tiny_weights, capsys):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights)
        assert code == 1 and "0 done, 0 skipped, 3 failed" in stdout and "permission denied" in stdout
        code, _, errors = run(capsys, "colorize", inputs / "a.png", "-o", out / "a.png", "--weights", tiny_weights)
        assert code == 2
        assert_one_error(errors, "permission denied")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


@needs_real_permissions
def test_output_folder_that_cannot_be_created_for_real(inputs, tmp_path, tiny_weights, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, errors = run(capsys, "batch", inputs, parent / "out", "--weights", tiny_weights)
        assert code == 2
        assert_one_error(errors, "cannot create the output folder")
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize("how", ["creating the file", "writing the file"])
def test_read_only_output_folder_simulated_batch(how, inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    if how == "creating the file":
        deny_creating_files_in(monkeypatch, out)
    else:
        monkeypatch.setattr(imageio, "_write_bytes", permission_denied)
    before = snapshot(inputs)
    code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights)
    assert code == 1 and errors == ""
    assert "0 done, 0 skipped, 3 failed" in stdout
    failed = [line for line in stdout.splitlines() if line.startswith("  failed  ")]
    assert len(failed) == 3 and all("permission denied" in line for line in failed)
    assert list(out.iterdir()) == [], "no output and no temporary file"
    assert snapshot(inputs) == before


def test_read_only_output_folder_simulated_colorize(inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    deny_creating_files_in(monkeypatch, out)
    code, stdout, errors = run(capsys, "colorize", inputs / "a.png", "-o", out / "a.png", "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, f"cannot write {out / 'a.png'}: permission denied")
    assert list(out.iterdir()) == []


def test_output_folder_that_cannot_be_created_simulated(inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    target = tmp_path / "locked" / "out"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    code, _, errors = run(capsys, "batch", inputs, target, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "cannot create the output folder", "Permission denied")
    code, _, errors = run(capsys, "colorize", inputs / "a.png", "-o", target, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "cannot create the output folder", "Permission denied")


# ---------------------------------------------------------------------------
# Output folder = input folder, and outputs that would hit inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
def test_batch_into_its_own_input_folder_is_refused(spelling, inputs, tmp_path, tiny_weights, capsys):
    out = {"same": inputs, "dot": inputs / ".", "symlink": tmp_path / "link"}[spelling]
    if spelling == "symlink":
        if sys.platform == "win32":
            pytest.skip("symlinks need privileges on Windows")
        os.symlink(inputs, out, target_is_directory=True)
    before = snapshot(inputs)
    code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights, "--format", "same",
                               "--overwrite", "replace")
    assert code == 2
    assert_one_error(errors, "the output folder is the input folder")
    assert snapshot(inputs) == before and stdout == ""


def test_colorize_onto_its_own_input_is_refused(inputs, tiny_weights, capsys):
    before = snapshot(inputs)
    code, _, errors = run(capsys, "colorize", inputs / "a.png", "-o", inputs / "a.png", "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "is an input photo")
    assert snapshot(inputs) == before


def test_colorize_never_writes_over_another_input(inputs, tiny_weights, capsys):
    """a.png's default output is a_color.png: here that is another photo being colorized."""
    write_image(inputs / "a_color.png", colour_image(*SIZE, seed=9))
    before = snapshot(inputs)
    code, _, errors = run(capsys, "colorize", inputs / "a.png", inputs / "a_color.png", "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "a_color.png is an input photo")
    assert snapshot(inputs) == before, "nothing written, not even the photos before the clash"


def test_colorize_two_photos_onto_one_output_is_refused(inputs, tmp_path, tiny_weights, capsys):
    write_image(inputs / "a.jpg", colour_image(*SIZE, seed=5))
    code, _, errors = run(capsys, "colorize", inputs / "a.png", inputs / "a.jpg", "-o", tmp_path / "out",
                          "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, "would both be written to")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("policy", ["skip", "replace", "rename"])
def test_batch_keeps_both_results_when_two_photos_share_a_name(policy, inputs, tmp_path, module_colorizer):
    """a.png and a.jpg both become a_color.png: the second gets a free name, whatever the policy."""
    write_image(inputs / "a.jpg", colour_image(*SIZE, seed=5))
    out = tmp_path / "out"
    report = run_batch(module_colorizer, inputs, out, BatchOptions(overwrite=policy))
    assert report.count("done") == 4 and report.count("failed") == 0
    outputs = sorted(p.name for p in out.iterdir())
    assert outputs == ["a_color (1).png", "a_color.png", "b_color.png", "c_color.png"]
    by_source = {o.source.name: o.output.name for o in report.outcomes}
    assert by_source["a.jpg"] == "a_color.png" and by_source["a.png"] == "a_color (1).png"


def test_batch_output_inside_the_input_folder_does_not_feed_back(inputs, module_colorizer):
    out = inputs / "colour"
    for _ in range(2):  # the second run must not colorize the first run's outputs
        report = run_batch(module_colorizer, inputs, out, BatchOptions(recursive=True, overwrite="rename"))
        assert sorted(o.source.name for o in report.outcomes) == sorted(NAMES)
    assert sorted(p.name for p in out.iterdir()) == ["a_color (1).png", "a_color.png", "b_color (1).png", "b_color.png",
                                                   "c_color (1).png", "c_color.png"]


# ---------------------------------------------------------------------------
# Output already there: each overwrite policy
# ---------------------------------------------------------------------------

OLD = b"previous result, not an image"


@pytest.mark.parametrize("policy", ["skip", "replace", "rename"])
def test_existing_output_and_each_policy(policy, inputs, tmp_path, tiny_weights, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_color.png").write_bytes(OLD)
    (out / "b_color (1).png").write_bytes(OLD)  # "rename" must step over this one too
    os.utime(out / "a_color.png", ns=(1_000_000_000, 1_000_000_000))
    old_stat = (out / "a_color.png").stat()
    before = snapshot(inputs)
    (out / "b_color.png").write_bytes(OLD)
    code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights, "--overwrite", policy)
    assert code == 0 and errors == ""
    assert snapshot(inputs) == before
    assert leftovers(out) == []
    names = sorted(p.name for p in out.iterdir())
    if policy == "skip":
        assert "1 done, 2 skipped, 0 failed" in stdout and "output already exists" in stdout
        assert (out / "a_color.png").read_bytes() == OLD
        assert (out / "a_color.png").stat().st_mtime_ns == old_stat.st_mtime_ns
        assert names == ["a_color.png", "b_color (1).png", "b_color.png", "c_color.png"]
    elif policy == "replace":
        assert "3 done, 0 skipped, 0 failed" in stdout
        assert is_result(out / "a_color.png") and is_result(out / "b_color.png")
        assert (out / "b_color (1).png").read_bytes() == OLD
        assert names == ["a_color.png", "b_color (1).png", "b_color.png", "c_color.png"]
    else:
        assert "3 done, 0 skipped, 0 failed" in stdout
        assert (out / "a_color.png").read_bytes() == OLD and (out / "b_color.png").read_bytes() == OLD
        assert is_result(out / "a_color (1).png") and is_result(out / "b_color (2).png")
        assert is_result(out / "c_color.png")
        assert names == ["a_color (1).png", "a_color.png", "b_color (1).png", "b_color (2).png", "b_color.png",
                         "c_color.png"]


def test_colorize_replaces_its_own_earlier_output_atomically(inputs, tmp_path, tiny_weights, capsys):
    target = tmp_path / "a_out.png"
    target.write_bytes(OLD)
    code, _, errors = run(capsys, "colorize", inputs / "a.png", "-o", target, "--weights", tiny_weights)
    assert code == 0 and errors == ""
    assert is_result(target) and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------
# Disk full in the middle of a write
# ---------------------------------------------------------------------------


def test_disk_full_batch_reports_each_file_and_goes_on(inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(imageio, "_write_bytes", disk_full_after_half)
    before = snapshot(inputs)
    code, stdout, errors = run(capsys, "batch", inputs, out, "--weights", tiny_weights, "--format", "same")
    assert code == 1 and errors == ""
    assert "0 done, 0 skipped, 3 failed" in stdout, "every file was tried"
    failed = [line for line in stdout.splitlines() if line.startswith("  failed  ")]
    assert len(failed) == 3
    assert all(os.strerror(errno.ENOSPC) in line for line in failed)
    assert list(out.iterdir()) == [], "no half-written result, no temporary file"
    assert snapshot(inputs) == before, "originals: same bytes, same mtime"


def test_disk_full_on_one_file_spares_the_others(inputs, tmp_path, module_colorizer, monkeypatch):
    real_write = imageio._write_bytes
    calls = []

    def fail_the_second_write(fileobj, data):  # files go in sorted order: a.png, b.jpg, c.png
        calls.append(len(data))
        if len(calls) == 2:
            disk_full_after_half(fileobj, data)
        real_write(fileobj, data)

    monkeypatch.setattr(imageio, "_write_bytes", fail_the_second_write)
    out = tmp_path / "out"
    before = snapshot(inputs)
    report = run_batch(module_colorizer, inputs, out)
    status = {o.source.name: (o.status, o.reason) for o in report.outcomes}
    assert status["a.png"][0] == "done" and status["c.png"][0] == "done"
    assert status["b.jpg"][0] == "failed" and os.strerror(errno.ENOSPC) in status["b.jpg"][1]
    assert sorted(p.name for p in out.iterdir()) == ["a_color.png", "c_color.png"]
    assert snapshot(inputs) == before


def test_disk_full_while_replacing_keeps_the_previous_output(inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_color.png").write_bytes(OLD)
    monkeypatch.setattr(imageio, "_write_bytes", disk_full_after_half)
    code, stdout, _ = run(capsys, "batch", inputs, out, "--weights", tiny_weights, "--overwrite", "replace")
    assert code == 1
    assert (out / "a_color.png").read_bytes() == OLD
    assert sorted(p.name for p in out.iterdir()) == ["a_color.png"]


def test_disk_full_colorize_is_one_line_and_leaves_nothing(inputs, tmp_path, tiny_weights, capsys, monkeypatch):
    monkeypatch.setattr(imageio, "_write_bytes", disk_full_after_half)
    before = snapshot(inputs)
    target = tmp_path / "out" / "a.png"
    target.parent.mkdir()
    code, stdout, errors = run(capsys, "colorize", inputs / "a.png", "-o", target, "--weights", tiny_weights)
    assert code == 2
    assert_one_error(errors, f"cannot write {target}: {os.strerror(errno.ENOSPC)}")
    assert list(target.parent.iterdir()) == []
    assert snapshot(inputs) == before


def test_disk_full_through_the_api(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(imageio, "_write_bytes", disk_full_after_half)
    with pytest.raises(ColorizerError, match="No space left on device"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.glob("*x.png*")) == []
