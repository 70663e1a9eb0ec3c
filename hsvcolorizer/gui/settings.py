"""The window's settings: one typed, versioned table over QSettings.

Every key the window stores is declared once in SCHEMA with its type and
default, so a tab reads ``settings.get("batch/format")`` and gets a str
(never the "true"/"1"/"" strings some QSettings back ends return), and a
value of the wrong type from an older or hand-edited file falls back to the
default instead of breaking a widget. ``SETTINGS_VERSION`` is stored beside
them; ``migrate`` brings an older file up to date once, when it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

__all__ = ["AppSettings", "SCHEMA", "SETTINGS_VERSION", "Setting", "documents_dir"]

# 1: the layout before this module (no version key). 2: this table.
SETTINGS_VERSION = 2
VERSION_KEY = "settings_version"


def documents_dir() -> str:
    """Where file dialogs start before the user has chosen a folder: the
    system's Pictures folder, else the home folder."""
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation) or str(Path.home())


@dataclass(frozen=True)
class Setting:
    """One stored value: its type (str, bool, int, float, list, bytes) and
    default (a value, or a function giving it, for defaults that depend on
    the machine)."""

    kind: type
    default: Any = None

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


def _models_dir() -> str:
    return str(Path.cwd() / "models")


SCHEMA: dict[str, Setting] = {
    # Folders the file dialogs start in.
    "paths/last_open_dir": Setting(str, documents_dir),
    "paths/last_save_dir": Setting(str, ""),  # "": the open folder
    "paths/last_weights_dir": Setting(str, _models_dir),
    "recent_files": Setting(list, list),
    # Window layout.
    "window/geometry": Setting(bytes, None),
    "window/state": Setting(bytes, None),
    "window/tab": Setting(int, 0),
    # Colorize tab.
    "colorize/saturation": Setting(int, 100),  # percent
    "colorize/mode": Setting(str, "luma"),
    "colorize/working_size": Setting(int, 0),  # 0: the model's own
    "colorize/compare": Setting(bool, True),
    "colorize/show_hints": Setting(bool, True),  # the colour hints' points on the result
    "colorize/splitter_main": Setting(bytes, None),
    "colorize/splitter_views": Setting(bytes, None),
    "colorize/splitter_outer": Setting(bytes, None),
    # Batch tab.
    "batch/input": Setting(str, ""),
    "batch/output": Setting(str, ""),
    "batch/recursive": Setting(bool, False),
    "batch/format": Setting(str, "png"),
    "batch/overwrite": Setting(str, "skip"),
    "batch/mode": Setting(str, ""),  # "": the model's default
    "batch/saturation_percent": Setting(int, 100),
    "batch/working_size": Setting(int, 0),  # 0: the model's own
    # Train tab.
    "train/data": Setting(str, ""),
    "train/val": Setting(str, ""),
    "train/run": Setting(str, ""),
    "train/stage": Setting(str, "both"),
    "train/epochs_stage1": Setting(int, 10),
    "train/epochs_stage2": Setting(int, 10),
    "train/batch_size": Setting(int, 16),
    "train/lr": Setting(float, 0.0002),
    "train/size": Setting(int, 256),
    "train/input_channel": Setting(str, "luma"),
    "train/device": Setting(str, "auto"),
    "train/resume": Setting(bool, False),
    "train/width_scale": Setting(float, 1.0),
    "train/steps_stage1": Setting(int, 0),
    "train/steps_stage2": Setting(int, 0),
    "train/workers": Setting(int, -1),
    "train/log_every": Setting(int, 10),
    "train/advanced_open": Setting(bool, False),
}


def _convert(value: Any, kind: type) -> Any:
    """A stored value as `kind`; raises ValueError/TypeError when it is not one.

    INI files give every scalar back as a string ("true", "42", "0.5"), a
    one-item list as a str and an empty one as None; the native back ends
    give real types. Both end up the same here.
    """
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"not a yes/no value: {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise TypeError("a yes/no value is not a number")
        return int(float(value))
    if kind is float:
        if isinstance(value, bool):
            raise TypeError("a yes/no value is not a number")
        return float(value)
    if kind is str:
        if isinstance(value, (list, tuple, dict, QByteArray, bytes)):
            raise TypeError("not text")
        return str(value)
    if kind is list:
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value else []
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        raise TypeError("not a list")
    if kind is bytes:
        if isinstance(value, QByteArray):
            return value
        if isinstance(value, (bytes, bytearray)):
            return QByteArray(bytes(value))
        raise TypeError("not binary data")
    raise TypeError(f"unsupported setting type {kind!r}")


class AppSettings:
    """Typed access to the window's QSettings (see SCHEMA).

    ``get(key)`` always returns the declared type; ``set(key, value)`` checks
    it. Tabs are given an AppSettings; tests may give a plain QSettings to
    anything that takes one, it is wrapped with ``AppSettings.wrap``.
    """

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self.migrate()

    @classmethod
    def wrap(cls, settings: "AppSettings | QSettings | None") -> "AppSettings":
        return settings if isinstance(settings, AppSettings) else cls(settings)

    # --------------------------------------------------------------- access
    def contains(self, key: str) -> bool:
        """True when the user (or an earlier run) stored `key`."""
        return self.qsettings.contains(key)

    def get(self, key: str) -> Any:
        """The stored value of `key` as its declared type, or its default
        when it is missing or unreadable as that type."""
        spec = SCHEMA[key]
        if not self.qsettings.contains(key):
            return spec.default_value()
        raw = self.qsettings.value(key)
        if raw is None and spec.kind is not list:
            return spec.default_value()
        try:
            return _convert(raw, spec.kind)
        except (TypeError, ValueError):
            return spec.default_value()

    def set(self, key: str, value: Any) -> None:
        """Store `value` under `key`; a value of another type is a bug in the
        caller, so it raises TypeError rather than storing something that
        would read back as the default."""
        spec = SCHEMA[key]
        try:
            checked = _convert(value, spec.kind)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"setting {key} takes {spec.kind.__name__}, not {value!r}") from exc
        if spec.kind in (int, float) and isinstance(value, str):
            raise TypeError(f"setting {key} takes {spec.kind.__name__}, not text")
        self.qsettings.setValue(key, checked)

    def remove(self, key: str) -> None:
        self.qsettings.remove(key)

    def sync(self) -> None:
        self.qsettings.sync()

    def file_name(self) -> str:
        return self.qsettings.fileName()

    # ------------------------------------------------------------ versions
    def version(self) -> int:
        try:
            return int(float(self.qsettings.value(VERSION_KEY, 1)))
        except (TypeError, ValueError):
            return 1

    def migrate(self) -> None:
        """Bring settings written by an older version up to SETTINGS_VERSION.

        A file from a newer version is left as it is (a downgrade must not
        destroy what the newer version stored); its known keys are still
        read through their types, so nothing it stored can break a widget.
        """
        version = self.version()
        if version > SETTINGS_VERSION:
            return
        for step in _MIGRATIONS[version - 1:]:
            step(self.qsettings)
        if version != SETTINGS_VERSION or not self.qsettings.contains(VERSION_KEY):
            self.qsettings.setValue(VERSION_KEY, SETTINGS_VERSION)


def _v1_to_v2(q: QSettings) -> None:
    # Version 1 stored batch/working_size as 0 or a size and every value as
    # the widget gave it; the types are what SCHEMA says, so the only change
    # is dropping values that never meant anything (a stored None).
    for key in list(SCHEMA):
        if q.contains(key) and q.value(key) is None and SCHEMA[key].kind is not list:
            q.remove(key)


_MIGRATIONS: list[Callable[[QSettings], None]] = [_v1_to_v2]
