"""Entry point of the desktop application (``hsvcolorizer-gui``, ``python -m hsvcolorizer``)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType

from hsvcolorizer.choices import DEVICES

__all__ = ["install_excepthook", "log_file_path", "main"]

log = logging.getLogger("hsvcolorizer.gui")

LOG_NAME = "hsvcolorizer-gui.log"


def log_file_path() -> Path | None:
    """Log file in the per-user app data folder (needs the QApplication's names set)."""
    from PySide6.QtCore import QStandardPaths

    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    if not folder:
        return None
    return Path(folder) / LOG_NAME


def _setup_logging() -> Path | None:
    """Warnings and errors go to stderr and to the log file (if it can be created)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    path = log_file_path()
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the log file %s: %s", path, exc)
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(fmt)
    root.addHandler(handler)
    return path


def install_excepthook(log_path: Path | None = None) -> None:
    """Uncaught exceptions (also in Qt slots) are logged and shown, not fatal.

    PySide6 routes exceptions raised in slots to ``sys.excepthook``; the
    default one would print and, under some Qt builds, abort.  Ours logs the
    traceback and shows it in a non-blocking dialog so the user can report it.
    """
    showing = False

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        nonlocal showing
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Uncaught exception:\n%s", text)
        if showing:
            return  # an error inside the error dialog must not recurse
        showing = True
        try:
            from PySide6.QtWidgets import QApplication

            from hsvcolorizer.gui.common import show_error

            if QApplication.instance() is not None:
                where = f"\n\nDetails were written to {log_path}." if log_path else ""
                show_error(
                    QApplication.activeWindow(),
                    "Unexpected error",
                    f"{exc_type.__name__}: {exc}{where}\n\n{text[-3000:]}",
                )
        except Exception:  # the hook itself must never raise
            sys.__excepthook__(exc_type, exc, tb)
        finally:
            showing = False

    sys.excepthook = hook


def resources_dir() -> Path:
    from hsvcolorizer.gui.common import resources_dir as _resources_dir

    return _resources_dir()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hsvcolorizer-gui", description="HSV Colorizer desktop application")
    parser.add_argument("image", nargs="?", help="a photo to open at start")
    parser.add_argument("--weights", help="weights file to load instead of the default in models/")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the networks run")
    # Qt's own options (-style, -platform...) are passed through to Qt.
    args, _unknown = parser.parse_known_args(argv)
    return args


def QApplication_instance():  # noqa: N802 - reads as the Qt call it wraps
    """The running QApplication, if PySide6 is already imported and has one (tests)."""
    widgets = sys.modules.get("PySide6.QtWidgets")
    return widgets.QApplication.instance() if widgets is not None else None


def main(argv: list[str] | None = None) -> int:
    """Start the application; returns the exit code.

    argv: arguments without the program name (default: sys.argv[1:]).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # `hsvcolorizer-gui train ...` (and the frozen build, which has no
    # `python -m`) runs the command line: that is how the Train tab starts
    # its child process in a PyInstaller build.
    from hsvcolorizer.cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from hsvcolorizer.cli import main as cli_main

        return cli_main(argv)
    args = _parse(argv)

    # Qt aborts with a misleading message when its platform plugin cannot
    # load; say what to install instead, in one line.
    from hsvcolorizer.gui.preflight import platform_problem

    if QApplication_instance() is None:
        problem = platform_problem()
        if problem:
            print(f"hsvcolorizer-gui: {problem}", file=sys.stderr)
            return 2

    from PySide6.QtCore import QCoreApplication, Qt, QTimer
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("HSVColorizer")
    QCoreApplication.setApplicationName("HSV Colorizer")
    app = QApplication.instance()
    if app is None:
        # Fractional scaling (150 %) renders crisply instead of rounding to 2x.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0] if sys.argv else "hsvcolorizer-gui", *argv])
    # Fusion follows the system's light/dark colour scheme on every platform
    # and draws our custom widgets consistently.
    app.setStyle("Fusion")
    app.setApplicationDisplayName("HSV Colorizer")
    from hsvcolorizer import __version__

    app.setApplicationVersion(__version__)
    icon_path = resources_dir() / "icon.png"
    if icon_path.is_file():
        app.setWindowIcon(QIcon(str(icon_path)))

    log_path = _setup_logging()
    install_excepthook(log_path)
    from hsvcolorizer.gui.common import install_gui_thread_gc

    install_gui_thread_gc(app)

    from hsvcolorizer.gui.main_window import MainWindow

    window = MainWindow(weights=args.weights, device=args.device)
    window.show()
    if args.image:
        # After the event loop starts, so the window is on screen first.
        QTimer.singleShot(0, lambda: window.open_paths([args.image]))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
