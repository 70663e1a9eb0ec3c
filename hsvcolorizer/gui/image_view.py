"""Zoomable, pannable image view with an optional before/after divider.

Scene coordinates are always the photo's pixel grid (0..width, 0..height),
whatever resolution the shown picture has: a screen-sized preview, the full
render or a 1/4-size hue map are all stretched over the same rectangle.  That
is what lets two views share one zoom level and one centre point, and what
makes photo pixel (x, y) the scene square [x, x+1) x [y, y+1) at any zoom.

Overlays (``add_overlay``: an object with ``paint(painter, view)``) are
drawn over the photo in viewport coordinates, so markers keep their size on
screen whatever the zoom (the colour hints' points, hint_overlay.py).
"""

from __future__ import annotations

import math

from typing import Protocol

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

__all__ = ["ImageView", "SplitImageItem"]

MIN_SCALE = 0.02
MAX_SCALE = 32.0
# A press within this many screen pixels of the divider grabs it instead of panning.
DIVIDER_GRAB_PX = 10
# Movement below this is a click, not a pan.
CLICK_SLOP_PX = 4


class Overlay(Protocol):
    def paint(self, painter: QPainter, view: "ImageView") -> None: ...


class SplitImageItem(QGraphicsItem):
    """Paints one picture over the photo rectangle, or two split by a divider.

    ``main`` (the colour result) is drawn right of the divider and ``compare``
    (the gray) left of it.  Both may have any resolution; they are stretched
    over ``rect`` (the photo's full-size pixel rectangle).
    """

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF()
        self._main = QPixmap()
        self._compare = QPixmap()
        self._split: float | None = None
        self._smooth = True

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def set_rect(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(rect)

    def set_main(self, pixmap: QPixmap) -> None:
        self._main = pixmap
        self.update()

    def set_compare(self, pixmap: QPixmap) -> None:
        self._compare = pixmap
        self.update()

    def set_split(self, fraction: float | None) -> None:
        self._split = None if fraction is None else min(1.0, max(0.0, float(fraction)))
        self.update()

    def set_smooth(self, smooth: bool) -> None:
        self._smooth = smooth
        self.update()

    def split(self) -> float | None:
        return self._split

    def split_active(self) -> bool:
        return self._split is not None and not self._compare.isNull() and not self._main.isNull()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._rect.isEmpty():
            return
        # Smooth scaling when zoomed out avoids aliasing; above 2x the user is
        # inspecting pixels, so show them crisp.
        scale = painter.worldTransform().m11()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth and scale < 2.0)
        if not self.split_active():
            pix = self._main if not self._main.isNull() else self._compare
            if not pix.isNull():
                painter.drawPixmap(self._rect, pix, QRectF(pix.rect()))
            return
        x = self._rect.left() + self._split * self._rect.width()
        self._draw_part(painter, self._compare, QRectF(self._rect.left(), self._rect.top(), x - self._rect.left(), self._rect.height()))
        self._draw_part(painter, self._main, QRectF(x, self._rect.top(), self._rect.right() - x, self._rect.height()))

    def _draw_part(self, painter: QPainter, pix: QPixmap, target: QRectF) -> None:
        """Draw the part of ``pix`` that covers ``target`` (scene coordinates)."""
        if target.width() <= 0 or pix.isNull():
            return
        sx = pix.width() / self._rect.width()
        sy = pix.height() / self._rect.height()
        source = QRectF(
            (target.left() - self._rect.left()) * sx,
            (target.top() - self._rect.top()) * sy,
            target.width() * sx,
            target.height() * sy,
        )
        painter.drawPixmap(target, pix, source)


class ImageView(QGraphicsView):
    """QGraphicsView showing one image, with wheel zoom, drag pan and fit.

    Signals:
      view_changed: zoom or pan changed by the user or by fit/zoom calls; the
        other view copies ``view_state()`` to stay in step.
      split_changed(float): the before/after divider was dragged (0..1).
      clicked: a press and release without dragging.
      clicked_at(QPointF): the same click, at its viewport position (not
        sent for a click that grabbed the divider).
    """

    view_changed = Signal()
    split_changed = Signal(float)
    clicked = Signal()
    clicked_at = Signal(QPointF)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._item = SplitImageItem()
        self._scene.addItem(self._item)
        self._placeholder = placeholder
        self._fit_mode = True
        self._image_size: tuple[int, int] | None = None
        self._dragging_split = False
        self._press_pos: QPointF | None = None
        self._moved = False
        self._labels: tuple[str, str] = ("Gray", "Colour")
        self._quiet = 0  # >0 while applying a synced state: do not echo it back
        self._overlays: list[Overlay] = []
        self._hover_cursor = Qt.CursorShape.OpenHandCursor

        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Two views side by side with four scroll bars look cluttered; panning
        # by dragging (and the synced partner) makes them unnecessary.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.viewport().setMouseTracking(True)
        # Drops are handled by the main window; the view must not swallow them.
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self.setMinimumSize(120, 120)
        self.horizontalScrollBar().valueChanged.connect(self._emit_changed)
        self.verticalScrollBar().valueChanged.connect(self._emit_changed)

    # ------------------------------------------------------------------ images

    def set_image(self, image: QImage | QPixmap | None, photo_size: tuple[int, int] | None = None) -> None:
        """Show ``image`` stretched over the photo rectangle.

        photo_size: (width, height) of the full-size photo the image stands
        for; defaults to the image's own size.  A new photo size refits.
        """
        if image is None or image.isNull():
            self.clear()
            return
        pix = QPixmap.fromImage(image) if isinstance(image, QImage) else image
        size = photo_size or (pix.width(), pix.height())
        changed = size != self._image_size
        self._image_size = (int(size[0]), int(size[1]))
        self._item.set_main(pix)
        if changed:
            rect = QRectF(0, 0, size[0], size[1])
            self._item.set_rect(rect)
            self._scene.setSceneRect(rect)
            self._fit_mode = True
            self._apply_fit()
        self.viewport().update()

    def set_compare_image(self, image: QImage | QPixmap | None) -> None:
        """The picture shown left of the divider (the gray), any resolution."""
        if image is None or image.isNull():
            self._item.set_compare(QPixmap())
        else:
            self._item.set_compare(QPixmap.fromImage(image) if isinstance(image, QImage) else image)
        self.viewport().update()

    def set_split(self, fraction: float | None) -> None:
        """Divider position as a fraction of the photo's width; None hides it."""
        self._item.set_split(fraction)
        self.viewport().update()

    def split(self) -> float | None:
        return self._item.split()

    def set_split_labels(self, left: str, right: str) -> None:
        self._labels = (left, right)
        self.viewport().update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.viewport().update()

    def set_smooth(self, smooth: bool) -> None:
        self._item.set_smooth(smooth)

    def clear(self) -> None:
        self._item.set_main(QPixmap())
        self._item.set_compare(QPixmap())
        self._item.set_rect(QRectF())
        self._scene.setSceneRect(QRectF())
        self._image_size = None
        self.resetTransform()
        self.viewport().update()

    def has_image(self) -> bool:
        return self._image_size is not None

    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the photo rectangle, or None when empty."""
        return self._image_size

    def pixmap(self) -> QPixmap:
        """The picture currently drawn as the main image (null when empty)."""
        return self._item._main

    def compare_pixmap(self) -> QPixmap:
        return self._item._compare

    # ------------------------------------------------ photo pixels, overlays

    def photo_point(self, viewport_pos: QPointF) -> QPointF:
        """The scene point (photo pixel units) under a viewport position, exact
        to the sub-pixel (mapToScene would round the position to an integer)."""
        inverse, _ok = self.viewportTransform().inverted()
        return inverse.map(QPointF(viewport_pos))

    def photo_pixel_at(self, viewport_pos: QPointF) -> tuple[int, int] | None:
        """(column, row) of the full-size photo pixel under a viewport
        position, or None when it is off the photo."""
        if not self.has_image():
            return None
        p = self.photo_point(viewport_pos)
        x, y = math.floor(p.x()), math.floor(p.y())
        w, h = self._image_size
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def viewport_pos_of(self, x: float, y: float) -> QPointF:
        """Viewport position of the centre of photo pixel (x, y)."""
        return self.viewportTransform().map(QPointF(x + 0.5, y + 0.5))

    def add_overlay(self, overlay: Overlay) -> None:
        """Draw ``overlay`` over the photo on every repaint (see the module doc)."""
        self._overlays.append(overlay)
        self.viewport().update()

    def set_hover_cursor(self, shape: Qt.CursorShape) -> None:
        """The cursor over the photo while no button is pressed (a tool that
        clicks on the photo shows a cross; panning shows an open hand)."""
        self._hover_cursor = shape
        if self.has_image():
            self.viewport().setCursor(shape)

    # ------------------------------------------------------------ zoom / pan

    def scale_factor(self) -> float:
        return self.transform().m11()

    def is_fit(self) -> bool:
        return self._fit_mode

    def fit(self) -> None:
        """Show the whole photo, and keep it fitted when the view resizes."""
        self._fit_mode = True
        self._apply_fit()
        self._emit_changed()

    def fit_quietly(self) -> None:
        """Fit without emitting ``view_changed`` (used when following another view)."""
        self._fit_mode = True
        self._apply_fit()

    def actual_size(self) -> None:
        """One photo pixel per screen pixel, centred on what was in the middle."""
        center = self.mapToScene(self.viewport().rect().center())
        self._fit_mode = False
        self.setTransform(self.transform().fromScale(1.0, 1.0))
        self.centerOn(center)
        self._emit_changed()

    def zoom_by(self, factor: float, anchor_viewport_pos: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` (clamped), keeping the anchor point still.

        The anchor is a viewport position; None zooms about the view's centre.
        """
        current = self.scale_factor()
        target = min(MAX_SCALE, max(MIN_SCALE, current * factor))
        if not self.has_image() or math.isclose(target, current):
            return
        self._fit_mode = False
        if anchor_viewport_pos is None:
            anchor_viewport_pos = QPointF(self.viewport().rect().center())
        scene_before = self.mapToScene(anchor_viewport_pos.toPoint())
        self._quiet += 1
        try:
            old_anchor = self.transformationAnchor()
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.scale(target / current, target / current)
            self.setTransformationAnchor(old_anchor)
            # Scroll so the scene point that was under the anchor stays there.
            scene_after = self.mapToScene(anchor_viewport_pos.toPoint())
            delta = scene_after - scene_before
            self.centerOn(self.mapToScene(self.viewport().rect().center()) - delta)
        finally:
            self._quiet -= 1
        self._emit_changed()

    def view_state(self) -> tuple[float, QPointF, bool]:
        """(scale, scene point at the viewport centre, fit mode)."""
        return self.scale_factor(), QPointF(self.mapToScene(self.viewport().rect().center())), self._fit_mode

    def apply_view_state(self, scale: float, center: QPointF, fit_mode: bool) -> None:
        """Take over another view's zoom and centre without echoing a signal."""
        if not self.has_image():
            return
        self._quiet += 1
        try:
            self._fit_mode = fit_mode
            if not math.isclose(scale, self.scale_factor()):
                self.setTransform(self.transform().fromScale(scale, scale))
            self.centerOn(center)
        finally:
            self._quiet -= 1

    def fit_scale(self) -> float | None:
        """The zoom at which the whole photo fits the view (None: no photo or no room)."""
        if not self.has_image():
            return None
        rect = self._scene.sceneRect()
        # A small margin so the photo does not touch the view's edges.
        vp = self.viewport().rect().adjusted(6, 6, -6, -6)
        if vp.width() <= 0 or vp.height() <= 0:
            return None
        s = min(vp.width() / rect.width(), vp.height() / rect.height())
        return min(MAX_SCALE, max(MIN_SCALE, s))

    def display_side(self) -> int:
        """Long side, in device pixels, of a picture as sharp as this view can
        show the photo at its zoom: the drawn size, at least the fitted size
        (zooming out then in needs no new picture), at most the photo's size.
        0 when there is no photo."""
        if not self.has_image():
            return 0
        scale = max(self.scale_factor(), self.fit_scale() or 0.0)
        long_side = max(self._image_size)
        return min(long_side, math.ceil(long_side * scale * self.devicePixelRatioF()))

    def _apply_fit(self) -> None:
        s = self.fit_scale()
        if s is None:
            return
        self._quiet += 1
        try:
            rect = self._scene.sceneRect()
            self.setTransform(self.transform().fromScale(s, s))
            self.centerOn(rect.center())
        finally:
            self._quiet -= 1

    def _emit_changed(self, *_: object) -> None:
        if not self._quiet:
            self.view_changed.emit()

    # ----------------------------------------------------------------- events

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._fit_mode:
            self._apply_fit()
            self._emit_changed()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        if not self.has_image():
            return
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        self.zoom_by(1.25**steps, event.position())
        event.accept()

    def _divider_x(self) -> float | None:
        """The divider's x in viewport coordinates, or None when not shown."""
        if not self._item.split_active() or not self.has_image():
            return None
        rect = self._scene.sceneRect()
        scene_x = rect.left() + self._item.split() * rect.width()
        return self.mapFromScene(QPointF(scene_x, rect.center().y())).x()

    def _near_divider(self, pos: QPointF) -> bool:
        x = self._divider_x()
        return x is not None and abs(pos.x() - x) <= DIVIDER_GRAB_PX

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._press_pos = event.position()
        self._moved = False
        if event.button() == Qt.MouseButton.LeftButton and self._near_divider(event.position()):
            self._dragging_split = True
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press_pos is not None and (event.position() - self._press_pos).manhattanLength() > CLICK_SLOP_PX:
            self._moved = True
        if self._dragging_split:
            self._drag_split_to(event.position())
            event.accept()
            return
        if self._press_pos is None:
            # Hover: show that the divider can be grabbed.
            shape = Qt.CursorShape.SplitHCursor if self._near_divider(event.position()) else self._hover_cursor
            if self.has_image():
                self.viewport().setCursor(shape)
            else:
                self.viewport().unsetCursor()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        was_click = self._press_pos is not None and not self._moved
        on_divider = self._dragging_split
        if self._dragging_split:
            self._dragging_split = False
            event.accept()
        else:
            super().mouseReleaseEvent(event)
        self._press_pos = None
        if was_click and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
            if not on_divider:
                self.clicked_at.emit(QPointF(event.position()))

    def _drag_split_to(self, pos: QPointF) -> None:
        rect = self._scene.sceneRect()
        scene_x = self.mapToScene(pos.toPoint()).x()
        fraction = min(1.0, max(0.0, (scene_x - rect.left()) / rect.width()))
        self._item.set_split(fraction)
        self.viewport().update()
        self.split_changed.emit(fraction)

    # ---------------------------------------------------------------- drawing

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        # A neutral backdrop a little off the window colour frames the photo
        # in both light and dark palettes without tinting its colours.
        base = self.palette().color(QPalette.ColorRole.Window)
        backdrop = base.darker(112) if base.lightness() > 128 else base.darker(135)
        painter.fillRect(rect, backdrop)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        painter.save()
        painter.resetTransform()
        vp = self.viewport().rect()
        if not self.has_image():
            if self._placeholder:
                color = self.palette().color(QPalette.ColorRole.PlaceholderText)
                painter.setPen(color)
                font = QFont(self.font())
                font.setPointSizeF(font.pointSizeF() * 1.1)
                painter.setFont(font)
                painter.drawText(vp.adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            painter.restore()
            return
        x = self._divider_x()
        if x is not None:
            self._draw_divider(painter, x)
        for overlay in self._overlays:
            painter.save()
            overlay.paint(painter, self)
            painter.restore()
        painter.restore()

    def _draw_divider(self, painter: QPainter, x: float) -> None:
        """A white line with a dark outline (visible on any photo) and a round grip."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        img = self.mapFromScene(self._scene.sceneRect()).boundingRect()
        top = max(0, img.top())
        bottom = min(self.viewport().height(), img.bottom())
        painter.setPen(QPen(QColor(0, 0, 0, 110), 4))
        painter.drawLine(QPointF(x, top), QPointF(x, bottom))
        painter.setPen(QPen(QColor(255, 255, 255, 235), 2))
        painter.drawLine(QPointF(x, top), QPointF(x, bottom))

        cy = (top + bottom) / 2
        r = 15.0
        painter.setPen(QPen(QColor(0, 0, 0, 90), 1))
        painter.setBrush(QBrush(QColor(255, 255, 255, 240)))
        painter.drawEllipse(QPointF(x, cy), r, r)
        # Two small arrows say "drag me sideways".
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(60, 60, 60))
        for direction in (-1, 1):
            path = QPainterPath()
            tip = QPointF(x + direction * 10, cy)
            path.moveTo(tip)
            path.lineTo(x + direction * 4, cy - 5)
            path.lineTo(x + direction * 4, cy + 5)
            path.closeSubpath()
            painter.drawPath(path)

        # Small captions at the top say which side is which.
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, font.pointSizeF() * 0.9))
        font.setBold(True)
        painter.setFont(font)
        fm = painter.fontMetrics()
        for text, side in ((self._labels[0], -1), (self._labels[1], 1)):
            w = fm.horizontalAdvance(text) + 14
            h = fm.height() + 6
            left = x - 8 - w if side < 0 else x + 8
            box = QRectF(left, top + 8, w, h)
            if box.left() < img.left() or box.right() > img.right():
                continue
            painter.setBrush(QColor(0, 0, 0, 140))
            painter.drawRoundedRect(box, h / 2, h / 2)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
            painter.setPen(Qt.PenStyle.NoPen)
