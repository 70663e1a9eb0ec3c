"""The window's start on a system that lacks Qt's X11 libraries: one line
naming the packages to install, exit status 2, instead of Qt's abort."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsvcolorizer.gui import preflight


def fake_qt(tmp_path: Path) -> Path:
    qt = tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "lib").mkdir()
    (qt / "plugins" / "platforms" / "libqxcb.so").write_bytes(b"")
    (qt / "lib" / "libQt6XcbQpa.so.6").write_bytes(b"")
    return qt


LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffc)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
"""


def test_missing_libraries_are_named_with_their_debian_packages(tmp_path):
    qt = fake_qt(tmp_path)
    problem = preflight.platform_problem({"QT_QPA_PLATFORM": "xcb"}, qt_dir=qt, ldd=lambda _p: LDD_OUTPUT,
                                         find_library=lambda name: "libxcb-cursor.so.0")
    assert problem is not None and "\n" not in problem
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in problem


def test_xcb_cursor_is_checked_although_ldd_cannot_see_it(tmp_path):
    qt = fake_qt(tmp_path)
    problem = preflight.platform_problem({"QT_QPA_PLATFORM": "xcb"}, qt_dir=qt, ldd=lambda _p: "",
                                         find_library=lambda name: None)
    assert problem is not None and "libxcb-cursor0" in problem


def test_nothing_missing_or_another_platform_says_nothing(tmp_path):
    qt = fake_qt(tmp_path)
    assert preflight.platform_problem({"QT_QPA_PLATFORM": "xcb"}, qt_dir=qt, ldd=lambda _p: "",
                                      find_library=lambda name: "found") is None
    assert preflight.platform_problem({"QT_QPA_PLATFORM": "offscreen"}, qt_dir=qt, ldd=lambda _p: LDD_OUTPUT) is None
    assert not preflight.uses_xcb({"WAYLAND_DISPLAY": "wayland-0"}) or not sys.platform.startswith("linux")


@pytest.mark.skipif(not preflight.missing_libraries(), reason="this system has every library Qt's xcb plugin needs")
def test_the_window_says_what_to_install_and_exits_2():
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=":99")
    r = subprocess.run([sys.executable, "-c", "import sys; from hsvcolorizer.gui.app import main; sys.exit(main([]))"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hsvcolorizer-gui: the window cannot start")
    assert "sudo apt-get install" in lines[0]
