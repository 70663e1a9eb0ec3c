"""Before Qt starts: can its platform plugin load here?

When Qt's xcb plugin (X11, and XWayland) misses a system library, Qt prints
a message that names the wrong package ("xcb-cursor0 or libxcb-cursor0 is
needed", seen with that package installed) and aborts. This module looks
first, without importing Qt: it asks the dynamic linker (`ldd`) which
libraries the plugin cannot find, and names the Debian/Ubuntu packages that
provide them, so the program can say so in one line and exit with status 2.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# The shared libraries Qt's xcb platform plugin needs -> the Debian/Ubuntu
# package of each (the same names on current Debian and Ubuntu releases).
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def _qt_dir() -> Path | None:
    """PySide6's Qt folder, found without importing PySide6 (its import is heavy)."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt"


def _ldd(path: Path) -> str:
    """`ldd path`'s output ('' where ldd is missing or fails)."""
    ldd = shutil.which("ldd")
    if ldd is None or not path.is_file():
        return ""
    try:
        return subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def uses_xcb(environ=os.environ) -> bool:
    """Whether Qt will try its xcb plugin: Linux, and no other platform asked for."""
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip().lower()
    if platform:
        return platform == "xcb"
    return not environ.get("WAYLAND_DISPLAY")  # Qt prefers Wayland when there is one


def missing_libraries(qt_dir: Path | None = None, ldd=_ldd, find_library=ctypes.util.find_library) -> list[str]:
    """The sonames the xcb plugin needs and the linker cannot find, sorted."""
    qt_dir = qt_dir or _qt_dir()
    if qt_dir is None:
        return []
    missing = set()
    for binary in (qt_dir / "plugins" / "platforms" / "libqxcb.so", qt_dir / "lib" / "libQt6XcbQpa.so.6"):
        missing.update(_NOT_FOUND.findall(ldd(binary)))
    # Qt 6.5+ loads xcb-cursor at run time (dlopen), so ldd cannot see it.
    if (qt_dir / "plugins" / "platforms" / "libqxcb.so").is_file() and find_library("xcb-cursor") is None:
        missing.add("libxcb-cursor.so.0")
    return sorted(missing)


def platform_problem(environ=os.environ, **kwargs) -> str | None:
    """One line saying what to install for the window to start, or None when
    nothing is missing (or there is nothing to check on this system)."""
    if not uses_xcb(environ):
        return None
    missing = missing_libraries(**kwargs)
    if not missing:
        return None
    packages = sorted({DEBIAN_PACKAGES.get(lib, lib) for lib in missing})
    return (f"the window cannot start: Qt's X11 (xcb) plugin needs {', '.join(missing)}. "
            f"On Debian or Ubuntu: sudo apt-get install {' '.join(packages)} "
            "(README, Install, lists every package the window needs)")
