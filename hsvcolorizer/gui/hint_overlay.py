"""The colour hints' points on the result view: drawn, picked, dragged.

``HintOverlay`` paints each hint as a small circle filled with its colour,
ringed white then black so it reads on light and dark photos alike, at a
constant size on screen whatever the zoom (an ImageView overlay, in
viewport coordinates). While ``editable`` it also takes the mouse on the
points: drag one to move it, double-click it to change its colour,
right-click it (or Delete with the view focused, on the point under the
mouse or the one last touched) to remove it. It only reports what the user
asked for (the *_requested signals); the tab hands that to the controller,
whose hints come back through ``set_hints``. A press off the points is left
to the view (pan, or a click that adds a hint).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPen

from hsvcolorizer.gui.image_view import CLICK_SLOP_PX, ImageView
from hsvcolorizer.hints import Hint

__all__ = ["HintOverlay", "POINT_RADIUS"]

# Radius on screen of a point's colour disc, in device-independent pixels:
# big enough to see its colour and to grab, small enough not to hide the object.
POINT_RADIUS = 6.0
# A press this far outside the rings still grabs the point.
GRAB_MARGIN = 4.0


class HintOverlay(QObject):
    """Points of ``hints`` over an ImageView (its scene is the photo's pixel grid).

    Signals (full-size photo pixels):
      move_requested(index, x, y): a point was dragged and dropped there.
      recolour_requested(index): a point was double-clicked.
      remove_requested(index): right-click or Delete on a point.
    """

    move_requested = Signal(int, int, int)
    recolour_requested = Signal(int)
    remove_requested = Signal(int)

    def __init__(self, view: ImageView) -> None:
        super().__init__(view)
        self.view = view
        self._hints: list[Hint] = []
        self._visible = True
        self._editable = False
        self._selected: int | None = None
        self._hovered: int | None = None
        # (index, press position, current position, moved beyond the slop)
        self._drag: tuple[int, QPointF, QPointF, bool] | None = None
        view.add_overlay(self)
        view.viewport().installEventFilter(self)
        view.installEventFilter(self)  # key presses go to the view, not its viewport

    # ------------------------------------------------------------- state

    def set_hints(self, hints: list[Hint]) -> None:
        self._hints = list(hints)
        if self._selected is not None and self._selected >= len(self._hints):
            self._selected = None
        self._hovered = None
        self._drag = None
        self.view.viewport().update()

    def hints(self) -> list[Hint]:
        return list(self._hints)

    def set_visible(self, visible: bool) -> None:
        self._visible = bool(visible)
        self._drag = None
        self.view.viewport().update()

    def is_visible(self) -> bool:
        return self._visible

    def set_editable(self, editable: bool) -> None:
        """Whether the points take the mouse (the hint tool is on and the model reads hints)."""
        self._editable = bool(editable)
        self._drag = None
        self.view.viewport().update()

    def select(self, index: int | None) -> None:
        """The point Delete removes when the mouse is on none (drawn larger)."""
        self._selected = index
        self.view.viewport().update()

    def selected(self) -> int | None:
        return self._selected

    def _active(self) -> bool:
        return self._editable and self._visible and self.view.has_image()

    def point_at(self, pos: QPointF) -> int | None:
        """Index of the point drawn under a viewport position (the topmost:
        the last added), or None."""
        if not self._visible or not self.view.has_image():
            return None
        reach = POINT_RADIUS + 3 + GRAB_MARGIN
        for i in range(len(self._hints) - 1, -1, -1):
            c = self._centre(i)
            if math.hypot(c.x() - pos.x(), c.y() - pos.y()) <= reach:
                return i
        return None

    def _centre(self, index: int) -> QPointF:
        if self._drag is not None and self._drag[0] == index and self._drag[3]:
            return self._drag[2]
        h = self._hints[index]
        return self.view.viewport_pos_of(h.x, h.y)

    def _pixel_at(self, pos: QPointF) -> tuple[int, int]:
        """The photo pixel under a viewport position, the nearest one on the
        photo when the drop is off it."""
        p = self.view.photo_point(pos)
        w, h = self.view.image_size()
        return min(max(math.floor(p.x()), 0), w - 1), min(max(math.floor(p.y()), 0), h - 1)

    # ------------------------------------------------------------ painting

    def paint(self, painter: QPainter, view: ImageView) -> None:
        if not self._visible or not self._hints or not view.has_image():
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for i, hint in enumerate(self._hints):
            r = POINT_RADIUS + (2 if i == self._selected and self._editable else 0)
            c = self._centre(i)
            painter.setPen(Qt.PenStyle.NoPen)
            # Black outer ring, white inner ring, then the colour: one of the
            # rings always contrasts with the photo around the point.
            painter.setBrush(QColor(0, 0, 0, 220))
            painter.drawEllipse(c, r + 3.0, r + 3.0)
            painter.setBrush(QColor(255, 255, 255))
            painter.drawEllipse(c, r + 1.75, r + 1.75)
            painter.setBrush(QColor(*hint.rgb))
            painter.drawEllipse(c, r, r)
            if i == self._selected and self._editable:
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.setPen(QPen(QColor(255, 255, 255, 200), 1.0, Qt.PenStyle.DotLine))
                painter.drawEllipse(c, r + 6.0, r + 6.0)

    # -------------------------------------------------------------- events

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if obj is self.view:
            if kind == QEvent.Type.KeyPress:
                return self._key(event)
            return False
        if kind == QEvent.Type.MouseButtonPress:
            return self._press(event)
        if kind == QEvent.Type.MouseMove:
            return self._move(event)
        if kind == QEvent.Type.MouseButtonRelease:
            return self._release(event)
        if kind == QEvent.Type.MouseButtonDblClick:
            return self._double_click(event)
        if kind == QEvent.Type.Leave:
            self._hovered = None
        return False

    def _press(self, event: QMouseEvent) -> bool:
        if not self._active():
            return False
        pos = event.position()
        hit = self.point_at(pos)
        if hit is None:
            return False
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = (hit, QPointF(pos), QPointF(pos), False)
            self.select(hit)
            self.view.setFocus(Qt.FocusReason.MouseFocusReason)  # so Delete and Ctrl+Z reach the view
            return True
        if event.button() == Qt.MouseButton.RightButton:
            self.remove_requested.emit(hit)
            return True
        return True

    def _move(self, event: QMouseEvent) -> bool:
        pos = event.position()
        if self._drag is not None:
            index, start, _, moved = self._drag
            moved = moved or (pos - start).manhattanLength() > CLICK_SLOP_PX
            self._drag = (index, start, QPointF(pos), moved)
            self.view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            self.view.viewport().update()
            return True
        if not self._active() or event.buttons() != Qt.MouseButton.NoButton:
            return False
        self._hovered = self.point_at(pos)
        if self._hovered is None:
            return False
        # Over a point: say it can be moved (and keep the view's pan cursor off it).
        self.view.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
        return True

    def _release(self, event: QMouseEvent) -> bool:
        if self._drag is None or event.button() != Qt.MouseButton.LeftButton:
            return self._drag is not None
        index, _, pos, moved = self._drag
        self._drag = None
        self.view.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
        if moved and index < len(self._hints):
            x, y = self._pixel_at(pos)
            self.move_requested.emit(index, x, y)
        self.view.viewport().update()
        return True

    def _double_click(self, event: QMouseEvent) -> bool:
        if not self._active() or event.button() != Qt.MouseButton.LeftButton:
            return False
        hit = self.point_at(event.position())
        if hit is None:
            return False
        self._drag = None
        self.select(hit)
        self.recolour_requested.emit(hit)
        return True

    def _key(self, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Escape and self._drag is not None:
            self._drag = None  # the point goes back where it was
            self.view.viewport().update()
            return True
        if event.key() not in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) or not self._active():
            return False
        target = self._hovered if self._hovered is not None else self._selected
        if target is None or target >= len(self._hints):
            return False
        self.remove_requested.emit(target)
        return True
