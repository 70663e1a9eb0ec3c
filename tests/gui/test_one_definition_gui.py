"""The window reads the core's definitions: its controls offer the core's
choices and ranges, and the screen shows the 8-bit levels the saved file holds."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from hsvcolorizer.choices import (BATCH_FORMATS, DEVICES, INPUT_CHANNELS, RECOMPOSE_MODES, SATURATION_MAX,
                                  SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN)
from hsvcolorizer.gui import app, colorize_tab, workers
from hsvcolorizer.gui.batch_tab import BatchTab
from hsvcolorizer.gui.colorize_tab import ColorizeTab
from hsvcolorizer.gui.common import qimage_to_numpy
from hsvcolorizer.gui.train_tab import TrainTab
from hsvcolorizer import imageio
from hsvcolorizer.imageio import Photo, read_image, write_image


def combo_data(combo) -> tuple:
    return tuple(combo.itemData(i) for i in range(combo.count()))


@pytest.fixture
def colorize(qtbot, qt_settings):
    tab = ColorizeTab(qt_settings, device="cpu")
    qtbot.addWidget(tab)
    yield tab
    assert tab.shutdown(10000)


@pytest.fixture
def batch(qtbot, qt_settings):
    tab = BatchTab(lambda: None, qt_settings)
    qtbot.addWidget(tab)
    yield tab
    assert tab.shutdown(10000)


@pytest.fixture
def train(qtbot, qt_settings):
    tab = TrainTab(qt_settings)
    qtbot.addWidget(tab)
    yield tab
    assert tab.shutdown(5000)


def test_colorize_tab_uses_the_core_ranges(colorize):
    spin, slider = colorize.working_size_spin, colorize.saturation_slider
    assert (spin.minimum(), spin.maximum()) == (WORKING_SIZE_MIN, WORKING_SIZE_MAX)
    assert (slider.minimum(), slider.maximum()) == (round(SATURATION_MIN * 100), round(SATURATION_MAX * 100))
    slider.setValue(slider.maximum())
    assert colorize.saturation() == SATURATION_MAX
    assert combo_data(colorize.mode_combo) == RECOMPOSE_MODES


def test_batch_tab_uses_the_core_ranges(batch):
    spin = batch.working_spin
    assert spin.maximum() == WORKING_SIZE_MAX
    # One value below the core's range reads "Model default"; every other is in the range.
    assert spin.minimum() == WORKING_SIZE_MIN - 1 and spin.specialValueText() == "Model default"
    spin.setValue(spin.minimum())
    assert batch.options().working_size is None
    spin.setValue(WORKING_SIZE_MIN)
    assert batch.options().working_size == WORKING_SIZE_MIN
    spin.setValue(WORKING_SIZE_MAX + 100)
    assert batch.options().working_size == WORKING_SIZE_MAX
    # The arrows step 64, 128, ... from "Model default", and back to it.
    spin.setValue(spin.minimum())
    spin.stepBy(1)
    assert spin.value() == 64
    spin.stepBy(-1)
    assert spin.value() == spin.minimum()
    sat = batch.saturation_spin
    assert (sat.minimum(), sat.maximum()) == (round(SATURATION_MIN * 100), round(SATURATION_MAX * 100))
    sat.setValue(sat.maximum())
    assert batch.options().saturation == SATURATION_MAX
    assert combo_data(batch.mode_combo) == ("", *RECOMPOSE_MODES)
    assert combo_data(batch.format_combo) == BATCH_FORMATS


def test_batch_tab_takes_the_colorize_tabs_options_within_the_range(batch):
    batch.set_render_options("v", SATURATION_MAX, None)
    assert batch.options().working_size is None and batch.options().saturation == SATURATION_MAX
    batch.set_render_options(None, 1.0, WORKING_SIZE_MAX)
    assert batch.options().working_size == WORKING_SIZE_MAX and batch.options().mode is None


def test_train_tab_and_the_application_offer_the_core_choices(train):
    assert combo_data(train.device_combo) == DEVICES
    assert combo_data(train.channel_combo) == INPUT_CHANNELS
    for name in DEVICES:
        assert app._parse(["--device", name]).device == name
    with pytest.raises(SystemExit):
        app._parse(["--device", "tpu"])


# 257 * 100 + 150 is 100.58 levels: the file holds 101; dropping the low byte gave 100 on screen.
V16 = 257 * 100 + 150


def test_the_screen_shows_the_levels_the_saved_file_holds(tmp_path):
    rgb16 = np.full((4, 6, 3), V16, np.uint16)
    on_screen = qimage_to_numpy(workers.display_image(rgb16))[..., :3]
    thumbnail = colorize_tab._to8(rgb16)
    saved = read_image(write_image(tmp_path / "result.jpg", rgb16[..., 0], quality=100)).pixels
    assert (saved == 101).all()
    assert (on_screen == 101).all() and (thumbnail == 101).all(), (on_screen.max(), thumbnail.max())
    everything = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(workers.display_array(everything), imageio.to_8bit(everything))
    np.testing.assert_array_equal(colorize_tab._to8(everything), imageio.to_8bit(everything))


def test_the_window_calls_a_photo_colour_as_training_does(colorize):
    """A black-and-white print with a small red stamp is gray for training;
    the window must not call it a colour photo."""
    yy, xx = np.mgrid[0:120, 0:160]
    gray = (30 + 180 * (xx + yy) / 280).astype(np.uint8)
    speck = np.dstack([gray] * 3)
    speck[10:16, 10:16] = (255, 0, 0)
    colorize.set_photo(Photo(speck), "speck.png")
    assert "colour" not in colorize.photo_details.text()
    cast = np.dstack([gray, gray, gray + 2])
    colorize.set_photo(Photo(cast), "cast.png")
    assert "colour" in colorize.photo_details.text()
