"""The colour-hint tool of the Colorize tab, through real widgets: clicks on
the result view at the pixels' positions on screen, drags and key presses,
with a tiny untrained model that reads hints, the real inference thread and
hint files written beside the photo."""

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from hsvcolorizer.gui import hint_colour
from hsvcolorizer.gui.colorize_tab import HINTS_UNREAD_TEXT, ColorizeTab
from hsvcolorizer.gui.common import qimage_to_numpy
from hsvcolorizer.hints import Hint, hints_path_for, read_hints, write_hints
from hsvcolorizer.imageio import Photo, read_image, write_image
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.networks import ModelConfig
from hsvcolorizer.weights import save_weights

TIMEOUT = 30000
RED = (200, 30, 40)
BLUE = (30, 60, 220)
HINT_MODEL = dict(hue_vector=True, hint_input=True, lrcmgn_widths=[8] * 11 + [2], rcn_branch_widths=[8, 8],
                  rcn_fuse_width=8, rcn_head_widths=[8])


def two_regions(height: int = 90, width: int = 120) -> np.ndarray:
    """A dark left half and a light right half with a little texture."""
    rng = np.random.default_rng(1)
    gray = np.where(np.arange(width)[None, :] < width // 2, 70.0, 180.0) + rng.normal(0, 3, (height, width))
    return np.clip(gray, 0, 255).astype(np.uint8)


@pytest.fixture
def hint_weights(tmp_path):
    path = tmp_path / "hint-model.safetensors"
    save_weights(Colorizer.untrained(ModelConfig(**HINT_MODEL)).model, path, {"input_channel": "luma", "recompose": "luma"})
    return path


@pytest.fixture
def photo_path(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    return write_image(folder / "family.png", two_regions())


class ColourChooser:
    """Stands in for the colour dialog: records what it was offered and answers ``answer``."""

    def __init__(self) -> None:
        self.answer: tuple | None = RED
        self.offered: list[tuple[tuple, list[tuple]]] = []

    def __call__(self, _parent, initial: QColor, others: list[QColor]):
        self.offered.append((initial.getRgb()[:3], [c.getRgb()[:3] for c in others]))
        return None if self.answer is None else QColor(*self.answer)


@pytest.fixture
def chooser(monkeypatch) -> ColourChooser:
    c = ColourChooser()
    monkeypatch.setattr(hint_colour, "colour_hook", c)
    return c


def make_tab(qtbot, qt_settings, weights) -> ColorizeTab:
    t = ColorizeTab(qt_settings, device="cpu")
    qtbot.addWidget(t)
    t.resize(1200, 800)
    t.show()
    with qtbot.waitSignal(t.weights_loaded, timeout=TIMEOUT):
        t.start(str(weights))
    return t


@pytest.fixture
def tab(qtbot, qt_settings, hint_weights):
    t = make_tab(qtbot, qt_settings, hint_weights)
    yield t
    assert t.shutdown(10000)


class SentHints:
    """The hints each network run got (wraps the worker's Colorizer.colorize)."""

    def __init__(self, tab: ColorizeTab) -> None:
        self.runs: list[list[Hint] | None] = []
        colorizer = tab.inference.worker.colorizer
        original = colorizer.colorize

        def colorize(image, working_size=None, hints=None):
            self.runs.append(None if hints is None else list(hints))
            return original(image, working_size=working_size, hints=hints)

        colorizer.colorize = colorize


def open_and_wait(qtbot, tab, path) -> None:
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        assert tab.open_path(path)


def screen_pos(view, x: int, y: int) -> QPoint:
    """Where the centre of photo pixel (x, y) is on the view's viewport, by Qt's own mapping."""
    return view.mapFromScene(QPointF(x + 0.5, y + 0.5))


def edit_and_wait(qtbot, tab, action) -> None:
    """Do ``action``, then wait for the re-run's result on screen and the hint file written."""
    with qtbot.waitSignals([tab.result_displayed, tab.controller.hint_saver.written], timeout=TIMEOUT):
        action()


def saved(path) -> list[Hint]:
    return read_hints(hints_path_for(path))


def test_a_click_adds_a_hint_there_runs_the_networks_with_it_and_saves_it(qtbot, tab, photo_path, chooser, dialogs):
    open_and_wait(qtbot, tab, photo_path)
    sent = SentHints(tab)
    view = tab.result_view
    before = qimage_to_numpy(view.pixmap().toImage())[..., :3]
    stage1_hue = qimage_to_numpy(tab.stage_panel.thumbnail("stage1", "hue").pixmap().toImage())
    shown_there = tuple(int(v) for v in before[20, 30])  # the screen picture is the photo's size here

    assert tab.hint_button.isEnabled()
    tab.hint_button.click()
    assert tab.hint_button.isChecked()
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                                                       pos=screen_pos(view, 30, 20)))

    assert tab.controller.hints == [Hint(30, 20, RED)]
    # The chooser started on the colour the model gave there, with no other hints to offer.
    assert chooser.offered == [(shown_there, [])]
    assert sent.runs == [[Hint(30, 20, RED)]]
    assert saved(photo_path) == [Hint(30, 20, RED)]
    assert not np.array_equal(qimage_to_numpy(view.pixmap().toImage())[..., :3], before)
    # The stage panel shows what the hint did to stage 1's map.
    assert not np.array_equal(qimage_to_numpy(tab.stage_panel.thumbnail("stage1", "hue").pixmap().toImage()), stage1_hue)
    assert tab.hint_overlay.hints() == [Hint(30, 20, RED)]
    assert tab.hint_button.text() == "Hints (1)"
    assert "1 hint" in tab.hints_summary() and "family.hints.json" in tab.hints_summary()

    # A second hint is offered the first one's colour; Cancel adds nothing and runs nothing.
    chooser.answer = None
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=screen_pos(view, 90, 70))
    assert chooser.offered[-1][1] == [RED]
    qtbot.wait(200)
    assert tab.controller.hints == [Hint(30, 20, RED)] and len(sent.runs) == 1
    assert dialogs.errors == []


def test_clicks_land_on_the_right_pixel_when_zoomed_and_panned(qtbot, tab, photo_path, chooser):
    open_and_wait(qtbot, tab, photo_path)
    view = tab.result_view
    tab.hint_button.click()
    view.zoom_by(3.0)
    view.centerOn(QPointF(100, 75))  # pan to the bottom right
    qtbot.wait(50)
    assert view.scale_factor() > 6
    centre = view.viewport().rect().center()
    scene = view.mapToScene(centre)
    assert view.photo_pixel_at(QPointF(centre)) == (int(scene.x()), int(scene.y()))
    assert view.photo_pixel_at(QPointF(centre))[0] > 90  # panned right: the left part is off screen
    assert view.photo_pixel_at(QPointF(5, 5)) is not None and view.photo_pixel_at(QPointF(5, 5))[0] > 60
    pos = screen_pos(view, 107, 81)
    assert view.viewport().rect().contains(pos)
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos))
    assert tab.controller.hints == [Hint(107, 81, RED)]


def test_drag_moves_a_hint_undo_and_redo_and_delete_remove_it(qtbot, tab, photo_path, chooser):
    open_and_wait(qtbot, tab, photo_path)
    sent = SentHints(tab)
    view, vp = tab.result_view, tab.result_view.viewport()
    tab.hint_button.click()
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=screen_pos(view, 30, 20)))

    def drag():
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=screen_pos(view, 30, 20))
        for x, y in ((40, 30), (55, 45), (60, 50)):
            qtbot.mouseMove(vp, screen_pos(view, x, y))
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=screen_pos(view, 60, 50))

    edit_and_wait(qtbot, tab, drag)
    assert tab.controller.hints == [Hint(60, 50, RED)]
    assert sent.runs[-1] == [Hint(60, 50, RED)]
    assert saved(photo_path) == [Hint(60, 50, RED)]

    # Ctrl+Z with the view focused puts it back; Ctrl+Shift+Z moves it again.
    view.setFocus()
    edit_and_wait(qtbot, tab, lambda: qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier))
    assert tab.controller.hints == [Hint(30, 20, RED)]
    assert sent.runs[-1] == [Hint(30, 20, RED)] and saved(photo_path) == [Hint(30, 20, RED)]
    edit_and_wait(qtbot, tab, lambda: qtbot.keyClick(
        view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier))
    assert tab.controller.hints == [Hint(60, 50, RED)] and saved(photo_path) == [Hint(60, 50, RED)]

    # Double-click changes its colour, keeping its place.
    chooser.answer = BLUE
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=screen_pos(view, 60, 50)))
    assert tab.controller.hints == [Hint(60, 50, BLUE)]
    assert chooser.offered[-1][0] == RED

    # Delete removes the point last touched; the networks run without it.
    edit_and_wait(qtbot, tab, lambda: qtbot.keyClick(view, Qt.Key.Key_Delete))
    assert tab.controller.hints == []
    assert sent.runs[-1] is None and saved(photo_path) == []

    # Right-click on a point removes it too.
    chooser.answer = RED
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=screen_pos(view, 90, 60)))
    assert tab.controller.hints == [Hint(90, 60, RED)]
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(vp, Qt.MouseButton.RightButton, pos=screen_pos(view, 90, 60)))
    assert tab.controller.hints == []
    # Clear hints is undoable like any edit.
    edit_and_wait(qtbot, tab, lambda: qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier))
    assert tab.controller.hints == [Hint(90, 60, RED)]
    edit_and_wait(qtbot, tab, tab.clear_hints_button.click)
    assert tab.controller.hints == [] and saved(photo_path) == []
    assert tab.undo_hint_action.isEnabled() and not tab.redo_hint_action.isEnabled()


def test_points_are_hidden_and_shown_without_losing_them(qtbot, tab, photo_path, chooser):
    write_hints(hints_path_for(photo_path), [Hint(30, 20, RED)])
    open_and_wait(qtbot, tab, photo_path)
    view = tab.result_view
    tab.hint_button.click()

    def red_pixels() -> int:
        shot = qimage_to_numpy(view.viewport().grab().toImage())[..., :3].astype(int)
        return int(((shot[..., 0] == RED[0]) & (shot[..., 1] == RED[1]) & (shot[..., 2] == RED[2])).sum())

    assert red_pixels() > 20  # the point's disc
    tab.show_hints_button.setChecked(False)
    assert red_pixels() == 0
    # Hidden points do not take the mouse: a right-click there removes nothing.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.RightButton, pos=screen_pos(view, 30, 20))
    assert tab.controller.hints == [Hint(30, 20, RED)]
    tab.show_hints_button.setChecked(True)
    assert red_pixels() > 20


def test_hints_come_back_when_the_photo_is_opened_again(qtbot, tab, photo_path, tmp_path, chooser, gradient):
    open_and_wait(qtbot, tab, photo_path)
    tab.hint_button.click()
    view = tab.result_view
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                                                       pos=screen_pos(view, 30, 20)))
    other = write_image(tmp_path / "photos" / "other.png", gradient(50, 60))
    open_and_wait(qtbot, tab, other)
    assert tab.controller.hints == [] and tab.hint_overlay.hints() == []

    sent = SentHints(tab)
    open_and_wait(qtbot, tab, photo_path)
    assert tab.controller.hints == [Hint(30, 20, RED)]
    assert tab.hint_overlay.hints() == [Hint(30, 20, RED)]
    assert sent.runs == [[Hint(30, 20, RED)]]  # the first run already has them
    # Undo does not reach into the earlier session.
    assert not tab.undo_hint_action.isEnabled()


def test_a_malformed_hint_file_is_reported_and_kept_until_the_user_adds_a_hint(qtbot, tab, photo_path, chooser,
                                                                                  dialogs):
    bad = hints_path_for(photo_path)
    bad.write_text('{"hints": [{"x": 1, "y": 2}]}')
    open_and_wait(qtbot, tab, photo_path)
    assert tab.controller.hints == []
    assert len(dialogs.errors) == 1
    title, message = dialogs.errors[0]
    assert "hint" in title.lower() and "family.hints.json, hint 1" in message
    qtbot.wait(100)
    assert bad.read_text() == '{"hints": [{"x": 1, "y": 2}]}'

    tab.hint_button.click()
    view = tab.result_view
    edit_and_wait(qtbot, tab, lambda: qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                                                       pos=screen_pos(view, 30, 20)))
    assert saved(photo_path) == [Hint(30, 20, RED)]


def test_a_hint_outside_the_photo_in_its_file_is_reported(qtbot, tab, photo_path, dialogs):
    write_hints(hints_path_for(photo_path), [Hint(500, 2, RED)])
    open_and_wait(qtbot, tab, photo_path)
    assert tab.controller.hints == []
    assert len(dialogs.errors) == 1 and "outside the photo" in dialogs.errors[0][1]


def test_a_failed_write_is_one_message_and_the_editing_goes_on(qtbot, tab, photo_path, chooser, dialogs):
    hints_path_for(photo_path).mkdir()  # a folder where the file should go: the write fails
    photo_path.with_name("family.hints.json").joinpath("keep").write_text("x")
    open_and_wait(qtbot, tab, photo_path)
    dialogs.errors.clear()  # the unreadable "file" was reported on opening
    tab.hint_button.click()
    view = tab.result_view
    ended = []
    for x in (30, 90):  # (x = 60 is under the before/after divider, which a click there grabs)
        with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
            qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=screen_pos(view, x, 20))
        qtbot.waitUntil(lambda: not tab.controller.hint_saver.is_saving(), timeout=TIMEOUT)
        ended.append(len(dialogs.errors))
    assert ended == [1, 1]
    assert "could not be saved" in dialogs.errors[0][1]
    assert tab.controller.hints == [Hint(30, 20, RED), Hint(90, 20, RED)]


def test_a_pasted_image_keeps_its_hints_in_memory_and_says_so_once(qtbot, tab, chooser):
    messages: list[str] = []
    tab.status_message.connect(messages.append)
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
        tab.set_photo(Photo(two_regions(), None, None), "Pasted image")
    tab.hint_button.click()
    view = tab.result_view
    for x in (30, 90):
        with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT):
            qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=screen_pos(view, x, 20))
    assert len(tab.controller.hints) == 2
    assert tab.controller.hint_file() is None
    assert len([m for m in messages if "memory only" in m]) == 1
    assert "kept in memory only" in tab.hints_summary()


def test_a_model_without_hint_input_disables_the_tool_but_keeps_the_hints(qtbot, qt_settings, tiny_weights,
                                                                          photo_path, chooser):
    write_hints(hints_path_for(photo_path), [Hint(30, 20, RED)])
    tab = make_tab(qtbot, qt_settings, tiny_weights)
    try:
        assert tab.model_info["reads_hints"] is False
        sent = SentHints(tab)
        open_and_wait(qtbot, tab, photo_path)
        assert not tab.hint_button.isEnabled()
        assert tab.hint_button.toolTip() == HINTS_UNREAD_TEXT
        assert not tab.clear_hints_action.isEnabled()
        # Loaded, shown and kept, just not sent.
        assert tab.controller.hints == [Hint(30, 20, RED)]
        assert tab.hint_overlay.hints() == [Hint(30, 20, RED)]
        assert sent.runs == [None]
        # A click on the result adds nothing.
        tab.hint_button.setChecked(True)
        qtbot.mouseClick(tab.result_view.viewport(), Qt.MouseButton.LeftButton, pos=screen_pos(tab.result_view, 60, 50))
        qtbot.wait(100)
        assert chooser.offered == [] and tab.controller.hints == [Hint(30, 20, RED)]
        assert json.loads(hints_path_for(photo_path).read_text())["hints"][0]["x"] == 30
    finally:
        assert tab.shutdown(10000)


def test_edits_in_a_burst_end_in_one_result_with_all_of_them_and_save_as_writes_it(qtbot, tab, photo_path,
                                                                                   hint_weights, tmp_path):
    open_and_wait(qtbot, tab, photo_path)
    sent = SentHints(tab)
    c = tab.controller
    with qtbot.waitSignal(tab.result_displayed, timeout=TIMEOUT) as shown:
        for x in (20, 40, 80):
            assert c.add_hint(x, 30, BLUE)
    qtbot.waitUntil(lambda: not c.is_colorizing() and not c.hint_saver.is_saving(), timeout=TIMEOUT)
    hints = [Hint(20, 30, BLUE), Hint(40, 30, BLUE), Hint(80, 30, BLUE)]
    assert shown.args == [c.inference.latest_id]  # the newest request won
    assert sent.runs[-1] == hints and saved(photo_path) == hints
    # Save As writes what the core gives with these hints.
    out = tmp_path / "out" / "family_color.png"
    out.parent.mkdir()
    with qtbot.waitSignal(tab.saved, timeout=TIMEOUT):
        tab.save_to(out)
    expected = Colorizer.load(hint_weights, "cpu").colorize(photo_path, working_size=c.working_size(), hints=hints)
    np.testing.assert_array_equal(read_image(out).pixels, expected.render("refined", c.mode(), c.saturation()))


def test_the_hint_model_reads_its_hint_map(hint_weights):
    """With hints=[] the result is the automatic one; a red hint changes it, around the hint most."""
    colorizer = Colorizer.load(hint_weights, "cpu")
    gray = two_regions()
    auto = colorizer.colorize(gray, working_size=128).render()
    np.testing.assert_array_equal(colorizer.colorize(gray, working_size=128, hints=[]).render(), auto)
    hinted = colorizer.colorize(gray, working_size=128, hints=[Hint(30, 45, RED)]).render()
    diff = np.abs(hinted.astype(int) - auto.astype(int)).sum(2)
    assert diff.max() > 0
    assert diff[35:56, 20:41].mean() > diff[:, 90:].mean()


def test_closing_writes_the_newest_hints_even_when_a_write_is_still_waiting(qtbot, tmp_path):
    from hsvcolorizer.gui.hint_saver import HintSaver
    from hsvcolorizer.hints import Hint, read_hints

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")
    saver = HintSaver()
    saver.set_photo(photo)
    first, second = [Hint(1, 1, (200, 0, 0))], [Hint(1, 1, (200, 0, 0)), Hint(5, 5, (0, 0, 200))]
    saver.save(first)   # written on a pool thread
    saver.save(second)  # waits for that write; the event loop will not run again
    assert saver.wait(5000)
    assert read_hints(tmp_path / "photo.hints.json") == second
