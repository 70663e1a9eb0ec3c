"""Batch tab: real widgets, a real worker thread and a tiny random model."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, Qt

from hsvcolorizer.gui.batch_tab import BatchTab, format_duration
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.networks import ModelConfig, TwoStageColorizer
from hsvcolorizer.weights import save_weights

TINY = ModelConfig(lrcmgn_widths=[8] * 11 + [2], rcn_branch_widths=[8, 8, 8, 8], rcn_fuse_width=8,
                   rcn_head_widths=[8, 8])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_weights(TwoStageColorizer(TINY), path, {"input_channel": "luma", "recompose": "luma"})
    return path


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)



@pytest.fixture
def make_tab(qtbot, settings, weights):
    tabs = []

    def make(provider=None) -> BatchTab:
        tab = BatchTab(provider or (lambda: str(weights)), settings)
        qtbot.addWidget(tab)
        tab.resize(1000, 600)
        tab.show()
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        assert tab.shutdown(10000)


def photo(seed: int, h: int = 40, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.dstack([127 + 120 * np.sin(xx / w * 6.3 + rng.random() * 6),
                     127 + 120 * np.sin(yy / h * 6.3 + rng.random() * 6),
                     127 + 120 * np.cos((xx + yy) / (h + w) * 6.3)])
    return np.clip(img, 0, 255).astype(np.uint8)


def cell(tab: BatchTab, row: int, column: int, role=Qt.ItemDataRole.DisplayRole):
    """What the table shows in a cell (its text, or its tooltip with role=ToolTipRole)."""
    return tab.table.model().index(row, column).data(role)


def rows(tab: BatchTab) -> dict[str, tuple[str, str]]:
    """file name -> (status, output-or-reason text)."""
    return {cell(tab, r, 0): (tab.row_status(r), cell(tab, r, 2)) for r in range(tab.table.model().rowCount())}


def select_row(qtbot, tab: BatchTab, row: int) -> None:
    """Select a row as a click would, and wait for its preview to be read."""
    tab.table.setCurrentIndex(tab.table.model().index(row, 0))
    qtbot.waitUntil(tab.preview_is_current, timeout=10000)


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def start_and_wait(qtbot, tab: BatchTab, timeout: int = 60000):
    with qtbot.waitSignal(tab.batch_finished, timeout=timeout) as blocker:
        qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=10000)
    return blocker.args[0]


def test_batch_colorizes_good_files_and_reports_the_bad_one(qtbot, tmp_path, make_tab, errors):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_image(src / "a.png", photo(1))
    write_image(src / "b.png", photo(2, 36, 52))
    (src / "bad.png").write_bytes(b"this is not a PNG at all" * 10)
    tab = make_tab()
    tab.set_input_folder(str(src))
    tab.output_edit.setText(str(out))
    messages = []
    tab.status_message.connect(messages.append)

    report = start_and_wait(qtbot, tab)

    assert not errors
    assert (report.count("done"), report.count("failed"), report.cancelled) == (2, 1, False)
    table = rows(tab)
    assert [table[n][0] for n in ("a.png", "b.png", "bad.png")] == ["done", "done", "failed"]
    assert "cannot read bad.png" in table["bad.png"][1]  # the reason is shown, the path shortened
    assert str(src / "bad.png") in cell(tab, 2, 2, Qt.ItemDataRole.ToolTipRole)
    select_row(qtbot, tab, 0)  # the before/after preview follows the selection
    assert not tab.before_label.source().isNull() and not tab.after_label.source().isNull()
    select_row(qtbot, tab, 2)
    assert tab.after_label.source().isNull() and "reason" in tab.after_label.text()
    assert cell(tab, 2, 1) == "Failed"
    assert "2 done, 0 skipped, 1 failed" in tab.summary_label.text()
    assert tab.progress_bar.value() == tab.progress_bar.maximum() == 3
    for name in ("a.png", "b.png"):
        out_name = name.replace(".png", "_color.png")
        result = read_image(out / out_name)
        assert result.size == read_image(src / name).size
        assert table[name][1] == out_name  # shown relative to the output folder
        assert cell(tab, sorted(table).index(name), 2, Qt.ItemDataRole.ToolTipRole) == str(out / out_name)
    assert sorted(p.name for p in out.iterdir()) == ["a_color.png", "b_color.png"]
    assert not hidden_files(out)
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "b.png", "bad.png"]  # inputs untouched
    assert tab.start_button.isEnabled() and not tab.cancel_button.isEnabled()
    assert any("finished" in m for m in messages)

    # Run again with the default "skip" policy: nothing is rewritten.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    report = start_and_wait(qtbot, tab)
    assert report.count("skipped") == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert rows(tab)["a.png"][0] == "skipped"


def test_cancel_stops_after_the_current_photo(qtbot, tmp_path, make_tab, errors, monkeypatch):
    from hsvcolorizer.inference import Colorizer

    real = Colorizer.colorize

    def slow(self, *args, **kwargs):
        # A slow photo, so Cancel lands while the batch is still running.
        time.sleep(0.15)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "colorize", slow)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    total = 25
    for i in range(total):
        write_image(src / f"p{i:02d}.png", photo(i, 24, 24))
    tab = make_tab()
    tab.set_input_folder(str(src))
    tab.output_edit.setText(str(out))

    with qtbot.waitSignal(tab.batch_finished, timeout=60000) as blocker:
        qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
        assert tab.is_busy() and tab.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: tab.progress_bar.value() >= 1, timeout=30000)
        qtbot.mouseClick(tab.cancel_button, Qt.MouseButton.LeftButton)
        assert not tab.cancel_button.isEnabled()
    report = blocker.args[0]
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=10000)

    assert report.cancelled and report is tab.last_report
    done = report.count("done")
    assert 1 <= done < total
    written = sorted(out.iterdir())
    assert [p.name for p in written] == sorted(o.output.name for o in report.outcomes if o.status == "done")
    for p in written:  # complete files only
        assert read_image(p).size == (24, 24)
    assert not hidden_files(out)
    statuses = [tab.row_status(r) for r in range(tab.table.model().rowCount())]
    assert statuses.count("done") == done and statuses.count("cancelled") == total - done
    assert "(cancelled)" in tab.summary_label.text()
    assert tab.start_button.isEnabled()


def test_output_equal_to_input_is_refused(qtbot, tmp_path, make_tab, errors):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", photo(1))
    tab = make_tab()
    tab.set_input_folder(str(src))
    tab.output_edit.setText(str(src))
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert not tab.is_busy()
    assert len(errors) == 1 and "input folder" in errors[0][1]
    assert [p.name for p in src.iterdir()] == ["a.png"]
    assert tab.table.model().rowCount() == 0


def test_missing_folder_empty_folder_and_missing_weights(qtbot, tmp_path, make_tab, errors):
    tab = make_tab(lambda: str(tmp_path / "nowhere.safetensors"))
    tab.set_input_folder(str(tmp_path / "missing"))
    tab.output_edit.setText(str(tmp_path / "out"))
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert "does not exist" in errors[-1][1]

    empty = tmp_path / "empty"
    empty.mkdir()
    tab.input_edit.setText(str(empty))
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    assert errors[-1][0] == "No photos found" and "sub-folders" in errors[-1][1]

    write_image(empty / "a.png", photo(3))
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=30000)
    assert errors[-1][0] == "Batch failed" and "nowhere.safetensors" in errors[-1][1]
    assert "could not run" in tab.summary_label.text()
    assert not (tmp_path / "out" / "a_color.png").exists()


def test_options_drop_and_settings_round_trip(qtbot, tmp_path, settings, make_tab):
    (tmp_path / "shots").mkdir()
    write_image(tmp_path / "shots" / "x.png", photo(1))
    tab = make_tab()
    tab.add_paths([str(tmp_path / "shots" / "x.png")])
    assert tab.input_edit.text() == str(tmp_path / "shots")
    assert tab.output_edit.text() == str(tmp_path / "shots_colorized")
    tab.add_paths([str(tmp_path)])
    assert tab.input_edit.text() == str(tmp_path)
    tab.set_render_options("v", 1.35, 384)
    tab.recursive_check.setChecked(True)
    tab.format_combo.setCurrentIndex(tab.format_combo.findData("jpg"))
    tab.overwrite_combo.setCurrentIndex(tab.overwrite_combo.findData("rename"))
    opts = tab.options()
    assert (opts.mode, opts.saturation, opts.working_size, opts.recursive, opts.format, opts.overwrite) == (
        "v", 1.35, 384, True, "jpg", "rename")
    tab.set_render_options(None, 1.0, 0)
    assert tab.options().mode is None and tab.options().working_size is None
    tab.set_render_options("luma", 0.5, 200)
    settings.sync()

    again = make_tab()
    opts = again.options()
    assert again.input_edit.text() == str(tmp_path)
    assert (opts.mode, opts.saturation, opts.working_size, opts.recursive, opts.format, opts.overwrite) == (
        "luma", 0.5, 200, True, "jpg", "rename")
    for w in (again.input_edit, again.output_edit, again.recursive_check, again.format_combo,
              again.overwrite_combo, again.mode_combo, again.saturation_spin, again.working_spin,
              again.start_button, again.cancel_button, again.open_button, again.table):
        assert w.toolTip(), w
    assert format_duration(5) == "5 s" and format_duration(185) == "3 min 05 s"
    assert format_duration(7300) == "2 h 01 min" and format_duration(None) == "—"
