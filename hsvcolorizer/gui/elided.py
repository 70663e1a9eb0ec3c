"""Names that fit: a label that elides its text with an ellipsis, the whole
text in its tooltip, so a long photo name never widens a panel or wraps
into three lines at 1280 x 720."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["ElidedLabel", "elide_middle"]


def elide_middle(text: str, max_chars: int) -> str:
    """``text`` shortened to ``max_chars`` with "…" in the middle, which
    keeps both the start of a name and its number or extension."""
    if len(text) <= max_chars:
        return text
    keep = max(2, max_chars - 1)
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


class ElidedLabel(QLabel):
    """One line of plain text, elided to the label's width (middle by
    default); the full text is its tooltip when it does not fit."""

    def __init__(self, text: str = "", parent: QWidget | None = None,
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle, min_chars: int = 8) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self._min_chars = min_chars
        self._own_tooltip = ""
        # Any width is fine: the text adapts instead of pushing the layout.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text or ""
        self._refit()

    def text(self) -> str:
        """The full text (what is shown may be elided)."""
        return self._full

    def shown_text(self) -> str:
        return super().text()

    def is_elided(self) -> bool:
        return self.shown_text() != self._full

    def set_tooltip(self, text: str) -> None:
        """A tooltip kept even when the text fits (e.g. the photo's full path)."""
        self._own_tooltip = text
        self._refit()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self.fontMetrics().averageCharWidth() * self._min_chars, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._refit()

    def _refit(self) -> None:
        width = max(0, self.contentsRect().width())
        shown = self.fontMetrics().elidedText(self._full, self._mode, width) if width else self._full
        QLabel.setText(self, shown)
        tip = self._own_tooltip or (self._full if shown != self._full else "")
        self.setToolTip(tip)
