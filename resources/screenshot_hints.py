"""Take resources/screenshots/hints_1400x900.png: the Colorize tab with the
colour-hint tool on and the shipped model following a few hints on a real
photo.

The photo is turned into its gray first; the hints are a hint file's
(--hints), or take their colours from the original at the --points given
(the mean of a 5 x 5 patch there), or at points drawn as the evaluation
draws them (hints.sample_hints).

    python resources/screenshot_hints.py PHOTO [OUT.png] [--size 1400x900]
        [--hints FILE | --points "x,y;x,y;x,y"]

The picture in resources/screenshots was taken with the README's example:
    python resources/screenshot_hints.py ../shared/data/colour/val/rooms_kitchen_00004229.jpg \
        --hints resources/rooms_kitchen_00004229.hints.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from screenshot_colorize import open_gray_in_window, save_grab, wait_for  # noqa: E402 - the sibling script's helpers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("photo")
    parser.add_argument("out", nargs="?", default=str(HERE / "screenshots" / "hints_1400x900.png"))
    parser.add_argument("--size", default="1400x900")
    parser.add_argument("--seed", type=int, default=3, help="for the points drawn at random")
    parser.add_argument("--points", default="", help='"x,y;x,y;..." in photo pixels (default: 3 drawn at random)')
    parser.add_argument("--hints", default="", help="a hint file (NAME.hints.json) to take the hints from")
    args = parser.parse_args()

    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from hsvcolorizer.gui.common import install_gui_thread_gc, resources_dir
    from hsvcolorizer.hints import Hint, read_hints, sample_hints

    QCoreApplication.setOrganizationName("HSVColorizer")
    QCoreApplication.setApplicationName("HSV Colorizer")
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    app.setWindowIcon(QIcon(str(resources_dir() / "icon.png")))
    install_gui_thread_gc(app)

    with tempfile.TemporaryDirectory() as tmp:
        window, photo = open_gray_in_window(app, args.photo, Path(tmp), args.size)  # the shipped model
        tab = window.colorize_tab
        assert tab.controller.reads_hints()
        shown: list[int] = []
        tab.result_displayed.connect(shown.append)

        tab.hint_button.setChecked(True)
        if args.hints:
            hints = read_hints(args.hints)
        elif args.points:
            hints = []
            for item in args.points.split(";"):
                x, y = (int(v) for v in item.split(","))
                patch = photo.pixels[max(0, y - 2): y + 3, max(0, x - 2): x + 3].reshape(-1, 3).mean(0)
                hints.append(Hint(x, y, tuple(int(round(c)) for c in patch)))
        else:
            hints = sample_hints(photo.pixels, 3, seed=args.seed)
        for hint in hints:
            shown.clear()
            tab.controller.add_hint(hint.x, hint.y, hint.rgb)
            wait_for(app, lambda: bool(shown) and not tab.controller.is_colorizing())
        tab.hint_overlay.select(len(tab.controller.hints) - 1)
        tab.set_split(0.0)  # all colour: the hints sit on the left of this photo
        wait_for(app, lambda: not tab.controller.hint_saver.is_saving())
        save_grab(app, window, Path(args.out), f", hints {tab.controller.hints}")
        window.close()


if __name__ == "__main__":
    main()
