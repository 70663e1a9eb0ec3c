"""Thumbnails of what each stage predicted: its colour image, hue map and saturation map.

Stage 1 (LR-CMGN) works at 1/4 of the working size; stage 2 (RCN) refines
that at the working size.  Seeing both side by side shows what the refinement
adds, and clicking a thumbnail shows it large in the result view.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from hsvcolorizer.gui.elided import ElidedLabel

__all__ = ["KINDS", "STAGE_TITLES", "StagePanel", "Thumbnail"]

STAGE_TITLES = {
    "stage1": "Stage 1 · LR-CMGN (1/4 size)",
    "refined": "Stage 2 · RCN (refined)",
}
KINDS = ("image", "hue", "saturation")
KIND_CAPTIONS = {"image": "Colour", "hue": "Hue (H)", "saturation": "Saturation (S)"}

THUMB_SIZE = QSize(150, 100)


class Thumbnail(QAbstractButton):
    """A checkable picture with a caption; draws the picture letterboxed."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap = QPixmap()
        self.setText(caption)
        self.setCheckable(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(72)

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap() if image is None or image.isNull() else QPixmap.fromImage(image)
        self.setEnabled(not self._pixmap.isNull())
        self.update()

    def pixmap(self) -> QPixmap:
        return self._pixmap

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(THUMB_SIZE.width() + 8, THUMB_SIZE.height() + self.fontMetrics().height() + 14)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(72, self.sizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        pal = self.palette()
        caption_h = self.fontMetrics().height() + 4
        frame = QRectF(self.rect()).adjusted(2, 2, -2, -2 - caption_h)

        # Selection and hover are drawn as a highlight-coloured frame so the
        # picture itself is never tinted.
        if self.isChecked():
            p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2.5))
        elif self.underMouse() and self.isEnabled():
            p.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1.5))
        else:
            p.setPen(QPen(pal.color(QPalette.ColorRole.Midlight).darker(115), 1))
        base = pal.color(QPalette.ColorRole.Window)
        p.setBrush(base.darker(112) if base.lightness() > 128 else base.darker(135))
        p.drawRoundedRect(frame, 5, 5)

        inner = frame.adjusted(4, 4, -4, -4)
        if not self._pixmap.isNull():
            size = QSize(self._pixmap.size())
            size.scale(inner.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRectF(0, 0, size.width(), size.height())
            target.moveCenter(inner.center())
            p.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        else:
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(inner, Qt.AlignmentFlag.AlignCenter, "—")

        caption = QRectF(0, self.height() - caption_h, self.width(), caption_h)
        font = p.font()
        font.setBold(self.isChecked())
        p.setFont(font)
        color = pal.color(QPalette.ColorRole.WindowText)
        if not self.isEnabled():
            color = pal.color(QPalette.ColorRole.PlaceholderText)
        p.setPen(color)
        p.drawText(caption, Qt.AlignmentFlag.AlignCenter, self.text())
        p.end()


class StagePanel(QWidget):
    """Two cards, "Stage 1" and "Stage 2", each with three thumbnails.

    Signal ``selected(stage, kind)``: stage is "stage1" or "refined", kind is
    "image", "hue" or "saturation".  ("refined", "image") is the main result.
    """

    selected = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbs: dict[tuple[str, str], Thumbnail] = {}
        self._details: dict[str, QLabel] = {}
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        for stage in ("stage1", "refined"):
            card = QFrame(self)
            card.setObjectName("stageCard")
            card.setFrameShape(QFrame.Shape.StyledPanel)
            col = QVBoxLayout(card)
            col.setContentsMargins(10, 8, 10, 8)
            col.setSpacing(4)
            head = QHBoxLayout()
            # Elided at 1280 x 720, where a card is about 300 pixels wide.
            title = ElidedLabel(STAGE_TITLES[stage], card, mode=Qt.TextElideMode.ElideRight)
            title.set_tooltip(STAGE_TITLES[stage])
            font = title.font()
            font.setBold(True)
            title.setFont(font)
            detail = QLabel("", card)
            detail.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            head.addWidget(title, 1)
            head.addWidget(detail)
            col.addLayout(head)
            thumbs = QHBoxLayout()
            thumbs.setSpacing(6)
            for kind in KINDS:
                thumb = Thumbnail(KIND_CAPTIONS[kind], card)
                thumb.setToolTip(self._tooltip(stage, kind))
                thumb.setEnabled(False)
                thumb.clicked.connect(lambda _=False, s=stage, k=kind: self._on_clicked(s, k))
                self._group.addButton(thumb)
                self._thumbs[(stage, kind)] = thumb
                thumbs.addWidget(thumb)
            col.addLayout(thumbs)
            self._details[stage] = detail
            row.addWidget(card, 1)

    @staticmethod
    def _tooltip(stage: str, kind: str) -> str:
        what = {
            "image": "the colour image recomposed from this stage's hue and saturation",
            "hue": "the predicted hue at full saturation",
            "saturation": "the predicted saturation (white = fully saturated)",
        }[kind]
        return f"{STAGE_TITLES[stage]}: {what}. Click to show it large."

    def thumbnail(self, stage: str, kind: str) -> Thumbnail:
        return self._thumbs[(stage, kind)]

    def set_images(self, images: dict[tuple[str, str], QImage]) -> None:
        """Fill thumbnails; keys are (stage, kind), missing keys are left as they are."""
        for key, image in images.items():
            if key in self._thumbs:
                self._thumbs[key].set_image(image)

    def set_details(self, stage: str, text: str) -> None:
        """Small gray text next to a card's title, e.g. the map resolution."""
        self._details[stage].setText(text)

    def clear(self) -> None:
        for thumb in self._thumbs.values():
            thumb.set_image(None)
        for label in self._details.values():
            label.setText("")
        self.set_selected("refined", "image")

    def set_selected(self, stage: str, kind: str) -> None:
        """Highlight a thumbnail without emitting ``selected``."""
        self._thumbs[(stage, kind)].setChecked(True)

    def current(self) -> tuple[str, str]:
        for key, thumb in self._thumbs.items():
            if thumb.isChecked():
                return key
        return ("refined", "image")

    def _on_clicked(self, stage: str, kind: str) -> None:
        self.selected.emit(stage, kind)
