"""Draw the application icon: resources/icon.svg and resources/icon.png (256 px).

The icon is the app in one picture: a disc whose left half is a gray ramp
(the black-and-white photo) and whose right half is a hue wheel fading to
white at the centre (the predicted hue and saturation), split by the same
before/after divider the Colorize tab uses.

Both files come from the same geometry below: the SVG is written as text,
the PNG is painted with QPainter, so neither needs the other to render.

    python resources/make_icon.py
"""

from __future__ import annotations

import colorsys
import math
import os
import sys
from pathlib import Path

SIZE = 256
CORNER = 56
CX = CY = SIZE / 2
R = 88
WEDGES = 48  # hue wedges over the right half-disc, top to bottom
HERE = Path(__file__).resolve().parent


def _hue_hex(i: int) -> str:
    # Hues 0..330 degrees across the half wheel: red at the top through
    # yellow, green, cyan and blue to magenta at the bottom.
    hue = (i + 0.5) / WEDGES * (330 / 360)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _wedge_points(i: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end points on the circle of wedge i (angles from the top, clockwise)."""
    a0 = -math.pi / 2 + i * math.pi / WEDGES
    a1 = -math.pi / 2 + (i + 1) * math.pi / WEDGES
    return (CX + R * math.cos(a0), CY + R * math.sin(a0)), (CX + R * math.cos(a1), CY + R * math.sin(a1))


def svg_text() -> str:
    wedges = []
    for i in range(WEDGES):
        (x0, y0), (x1, y1) = _wedge_points(i)
        # The small overlap (stroke of the same colour) hides hairline gaps.
        wedges.append(
            f'<path d="M{CX:.2f},{CY:.2f} L{x0:.2f},{y0:.2f} A{R},{R} 0 0,1 {x1:.2f},{y1:.2f} Z" '
            f'fill="{_hue_hex(i)}" stroke="{_hue_hex(i)}" stroke-width="0.8"/>'
        )
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#343b4d"/>
      <stop offset="1" stop-color="#1b1f29"/>
    </linearGradient>
    <linearGradient id="gray" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#f2f2f2"/>
      <stop offset="1" stop-color="#262626"/>
    </linearGradient>
    <radialGradient id="white" cx="{CX}" cy="{CY}" r="{R}" gradientUnits="userSpaceOnUse">
      <stop offset="0" stop-color="#ffffff" stop-opacity="0.95"/>
      <stop offset="1" stop-color="#ffffff" stop-opacity="0"/>
    </radialGradient>
    <clipPath id="right"><rect x="{CX}" y="0" width="{SIZE / 2}" height="{SIZE}"/></clipPath>
  </defs>
  <rect x="8" y="8" width="{SIZE - 16}" height="{SIZE - 16}" rx="{CORNER}" fill="url(#bg)"/>
  <path d="M{CX},{CY - R} A{R},{R} 0 0,0 {CX},{CY + R} Z" fill="url(#gray)"/>
  <g>
    {chr(10).join('    ' + w for w in wedges).strip()}
  </g>
  <circle cx="{CX}" cy="{CY}" r="{R}" fill="url(#white)" clip-path="url(#right)"/>
  <circle cx="{CX}" cy="{CY}" r="{R}" fill="none" stroke="#ffffff" stroke-opacity="0.25" stroke-width="3"/>
  <line x1="{CX}" y1="{CY - R - 14}" x2="{CX}" y2="{CY + R + 14}" stroke="#ffffff" stroke-width="6" stroke-linecap="round"/>
  <circle cx="{CX}" cy="{CY}" r="17" fill="#ffffff"/>
  <path d="M{CX - 4},{CY - 7} L{CX - 11},{CY} L{CX - 4},{CY + 7} Z M{CX + 4},{CY - 7} L{CX + 11},{CY} L{CX + 4},{CY + 7} Z" fill="#2b3140"/>
</svg>
"""


def paint_png(path: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import (
        QBrush,
        QColor,
        QGuiApplication,
        QImage,
        QLinearGradient,
        QPainter,
        QPainterPath,
        QPen,
        QRadialGradient,
    )

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    img = QImage(SIZE, SIZE, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)

    bg = QLinearGradient(0, 0, 0, SIZE)
    bg.setColorAt(0, QColor("#343b4d"))
    bg.setColorAt(1, QColor("#1b1f29"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(bg))
    p.drawRoundedRect(QRectF(8, 8, SIZE - 16, SIZE - 16), CORNER, CORNER)

    disc = QRectF(CX - R, CY - R, 2 * R, 2 * R)
    gray = QLinearGradient(0, CY - R, 0, CY + R)
    gray.setColorAt(0, QColor("#f2f2f2"))
    gray.setColorAt(1, QColor("#262626"))
    left = QPainterPath()
    left.moveTo(CX, CY)
    left.arcTo(disc, 90, 180)  # Qt angles: counter-clockwise from 3 o'clock
    left.closeSubpath()
    p.fillPath(left, QBrush(gray))

    for i in range(WEDGES):
        wedge = QPainterPath()
        wedge.moveTo(CX, CY)
        start = 90 - i * 180 / WEDGES
        wedge.arcTo(disc, start, -180 / WEDGES)
        wedge.closeSubpath()
        c = QColor(_hue_hex(i))
        p.setPen(QPen(c, 0.8))
        p.setBrush(c)
        p.drawPath(wedge)

    white = QRadialGradient(QPointF(CX, CY), R)
    white.setColorAt(0, QColor(255, 255, 255, 242))
    white.setColorAt(1, QColor(255, 255, 255, 0))
    right = QPainterPath()
    right.moveTo(CX, CY)
    right.arcTo(disc, 90, -180)
    right.closeSubpath()
    p.fillPath(right, QBrush(white))

    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(QPen(QColor(255, 255, 255, 64), 3))
    p.drawEllipse(disc)
    pen = QPen(QColor("#ffffff"), 6)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.drawLine(QPointF(CX, CY - R - 14), QPointF(CX, CY + R + 14))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#ffffff"))
    p.drawEllipse(QPointF(CX, CY), 17, 17)
    arrows = QPainterPath()
    for d in (-1, 1):
        arrows.moveTo(CX + d * 4, CY - 7)
        arrows.lineTo(CX + d * 11, CY)
        arrows.lineTo(CX + d * 4, CY + 7)
        arrows.closeSubpath()
    p.fillPath(arrows, QColor("#2b3140"))
    p.end()
    if not img.save(str(path)):
        raise SystemExit(f"could not write {path}")


def main() -> None:
    (HERE / "icon.svg").write_text(svg_text(), encoding="utf-8")
    paint_png(HERE / "icon.png")
    print(f"wrote {HERE / 'icon.svg'} and {HERE / 'icon.png'}")


if __name__ == "__main__":
    main()
