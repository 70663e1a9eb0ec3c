"""File and folder dialogs sized so their columns can be read.

Qt's own dialog (used where the platform has none, as on most Linux
desktops without a portal) opens too small for its name, size and date
columns; a platform dialog keeps its own size. Every tab opens its dialogs
through here.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QFileDialog, QWidget

__all__ = ["FILE_DIALOG_SIZE", "choose_folder", "file_dialog"]

FILE_DIALOG_SIZE = QSize(900, 560)


def file_dialog(parent: QWidget, title: str, start: str, name_filter: str = "",
                mode: QFileDialog.FileMode = QFileDialog.FileMode.ExistingFile,
                save: bool = False) -> list[str]:
    """Run a file dialog; the chosen paths ([] when cancelled) and, for a
    save, the chosen filter as a second item."""
    dialog = QFileDialog(parent, title, start, name_filter)
    dialog.setFileMode(mode)
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    if mode == QFileDialog.FileMode.Directory:
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.setViewMode(QFileDialog.ViewMode.Detail)
    dialog.resize(FILE_DIALOG_SIZE)  # a native dialog keeps its own size
    if not dialog.exec():
        return []
    files = dialog.selectedFiles()
    return [files[0], dialog.selectedNameFilter()] if save and files else files[:1]


def choose_folder(parent: QWidget, title: str, start: str) -> str:
    """A folder from a dialog, or "" when cancelled."""
    chosen = file_dialog(parent, title, start, mode=QFileDialog.FileMode.Directory)
    return chosen[0] if chosen else ""
