"""Take a screenshot of the Colorize tab on a real photo (the README's
resources/screenshots/colorize_1400x900.png, colorize_1280x720.png with
--size 1280x720, and colorize-dark.png with --dark).

The photo is turned into its gray first (as a black-and-white photo would
be), written to a temporary folder, and opened with the default weights.

    python resources/screenshot_colorize.py PHOTO [OUT.png] [--dark] [--size 1400x900]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent


def wait_for(app, condition, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise SystemExit("timed out waiting for the window")
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("photo")
    parser.add_argument("out", nargs="?", default=str(HERE / "screenshots" / "colorize.png"))
    parser.add_argument("--dark", action="store_true", help="use a dark palette")
    parser.add_argument("--split", type=float, default=0.42)
    parser.add_argument("--size", default="1400x900")
    args = parser.parse_args()

    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QColor, QIcon, QPalette
    from PySide6.QtWidgets import QApplication

    from hsvcolorizer.gui.common import install_gui_thread_gc, resources_dir

    QCoreApplication.setOrganizationName("HSVColorizer")
    QCoreApplication.setApplicationName("HSV Colorizer")
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    if args.dark:
        pal = QPalette()
        for role, c in {
            QPalette.ColorRole.Window: "#2b2d31", QPalette.ColorRole.WindowText: "#e6e6e6",
            QPalette.ColorRole.Base: "#1f2023", QPalette.ColorRole.AlternateBase: "#2b2d31",
            QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#36383d",
            QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d8ee6",
            QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.PlaceholderText: "#9a9a9a",
            QPalette.ColorRole.ToolTipBase: "#36383d", QPalette.ColorRole.ToolTipText: "#e6e6e6",
            QPalette.ColorRole.Light: "#4a4c52", QPalette.ColorRole.Midlight: "#3e4045",
            QPalette.ColorRole.Mid: "#303236", QPalette.ColorRole.Dark: "#1a1b1e", QPalette.ColorRole.Shadow: "#000000",
        }.items():
            pal.setColor(role, QColor(c))
        # A system dark scheme greys out disabled controls; without these the
        # disabled hint buttons would look enabled in the screenshot.
        for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
            pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7177"))
        app.setPalette(pal)
    app.setWindowIcon(QIcon(str(resources_dir() / "icon.png")))
    install_gui_thread_gc(app)

    with tempfile.TemporaryDirectory() as tmp:
        window, _ = open_gray_in_window(app, args.photo, Path(tmp), args.size)
        window.colorize_tab.set_split(args.split)
        save_grab(app, window, Path(args.out))
        window.close()


def open_gray_in_window(app, photo_path: str, tmp: Path, size: str):
    """The main window at `size` ("WxH") with the shipped model, showing the
    gray (luma) of `photo_path` colorized, as a user who opened it sees it;
    the gray is written into `tmp`. Returns (window, the photo as read)."""
    from PySide6.QtCore import QSettings

    from hsvcolorizer.color import rgb_to_luma_u8
    from hsvcolorizer.gui.main_window import MainWindow
    from hsvcolorizer.imageio import read_image, write_image

    photo = read_image(photo_path)
    gray = rgb_to_luma_u8(photo.pixels) if photo.pixels.ndim == 3 else photo.pixels
    gray_path = tmp / (Path(photo_path).stem + ".png")
    write_image(gray_path, gray)
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, device="cpu")
    w, h = (int(v) for v in size.split("x"))
    window.resize(w, h)
    window.show()
    tab = window.colorize_tab
    wait_for(app, lambda: tab.model_info is not None)
    shown: list[int] = []
    tab.result_displayed.connect(shown.append)
    window.open_paths([str(gray_path)])
    wait_for(app, lambda: bool(shown))
    return window, photo


def save_grab(app, window, out: Path, note: str = "") -> None:
    """Let the window settle, then write what it shows to ``out``."""
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(out)):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out} ({window.width()}x{window.height()}){note}")


if __name__ == "__main__":
    main()
