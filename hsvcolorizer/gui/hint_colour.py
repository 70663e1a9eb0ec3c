"""The colour chooser of a hint: Qt's colour dialog, started on the colour
the model gives at the point now, with the photo's other hint colours
offered as custom colours (one click to reuse the coat's red on its sleeve).

Tests set ``colour_hook`` (as common.error_hook) so no dialog blocks them.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QWidget

__all__ = ["choose_hint_colour", "colour_hook"]

# Tests replace this with a function (parent, initial QColor, custom colours)
# returning the QColor the user would choose, or None for Cancel.
colour_hook: Callable[[QWidget | None, QColor, list[QColor]], QColor | None] | None = None


def choose_hint_colour(parent: QWidget | None, initial: QColor, others: list[QColor],
                       title: str = "Colour of this point") -> QColor | None:
    """Ask for a hint's colour (modal); None when cancelled."""
    if colour_hook is not None:
        return colour_hook(parent, initial, list(others))
    # Custom colours are one list for the whole application: fill it with
    # this photo's hints, newest first, and blank the rest so another photo's
    # colours do not linger.
    slots = QColorDialog.customCount()
    unique: list[QColor] = []
    for c in reversed(others):
        if all(c.rgb() != u.rgb() for u in unique):
            unique.append(c)
    for i in range(slots):
        QColorDialog.setCustomColor(i, unique[i] if i < len(unique) else QColor(255, 255, 255))
    dialog = QColorDialog(initial, parent)
    dialog.setWindowTitle(title)
    # Qt's own dialog shows the custom colours on every platform; a native
    # one (macOS, some Linux desktops) may not.
    dialog.setOption(QColorDialog.ColorDialogOption.DontUseNativeDialog, True)
    if not dialog.exec():
        return None
    colour = dialog.selectedColor()
    return colour if colour.isValid() else None
