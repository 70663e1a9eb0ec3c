"""Live loss curves for the Train tab, drawn with pyqtgraph.

One plot per training stage: the S, H and total training losses as lines,
and the validation total as markers joined by a dashed line (one point per
epoch). The x axis is the step within the stage, so a resumed run continues
its curves where they stopped.
"""

from __future__ import annotations

# PySide6 first: pyqtgraph picks the Qt binding that is already imported.
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

import pyqtgraph as pg

__all__ = ["LossPlot", "StageLossPlots", "SERIES", "legend_html"]

# (key, legend label, colour); colour-blind safe (Okabe-Ito) and readable on
# light and dark backgrounds alike.
SERIES = (
    ("loss_s", "S (saturation)", "#E69F00"),
    ("loss_h", "H (hue)", "#56B4E9"),
    ("loss", "total", "#009E73"),
)
VALIDATION_COLOR = "#CC79A7"


def legend_html() -> str:
    """The series' colours and names as one line of rich text."""
    parts = [f'<span style="color:{colour}; font-weight:bold">&#9473;&#9473;</span>&nbsp;{label}'
             for _, label, colour in SERIES]
    parts.append(f'<span style="color:{VALIDATION_COLOR}; font-weight:bold">&#8211;&#9679;&#8211;</span>'
                 "&nbsp;validation total")
    return "&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;".join(parts)


class LossPlot(pg.PlotWidget):
    """Training losses of one stage against its step, plus validation points."""

    def __init__(self, title: str, parent: QWidget | None = None):
        pal = (parent.palette() if parent is not None else QPalette())
        background = pal.color(QPalette.ColorRole.Base)
        foreground = pal.color(QPalette.ColorRole.Text)
        super().__init__(parent, background=background)
        self._fg = foreground
        item = self.getPlotItem()
        item.setTitle(title, color=foreground.name(), size="10pt")
        item.showGrid(x=True, y=True, alpha=0.18)
        for side, label in (("bottom", "step"), ("left", "loss")):
            axis = item.getAxis(side)
            axis.setLabel(label, color=foreground.name())
            axis.setPen(pg.mkPen(foreground))
            axis.setTextPen(pg.mkPen(foreground))
            # Losses below 1 would otherwise be relabelled "loss (x0.001)".
            axis.enableAutoSIPrefix(False)
        # A loss never goes below zero; autorange keeps following new points.
        item.setLimits(yMin=0, xMin=0)
        item.enableAutoRange()
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        for key, label, colour in SERIES:
            self._data[key] = ([], [])
            self._curves[key] = item.plot([], [], pen=pg.mkPen(colour, width=2))
        self._data["val"] = ([], [])
        self._curves["val"] = item.plot(
            [], [],
            pen=pg.mkPen(VALIDATION_COLOR, width=1.5, style=Qt.PenStyle.DashLine),
            symbol="o", symbolSize=8, symbolBrush=VALIDATION_COLOR, symbolPen=pg.mkPen(VALIDATION_COLOR),
        )
        self.setMinimumHeight(180)
        self.setToolTip(f"{title}: training losses averaged over each log interval "
                        "(S, H and their total) and the validation total after each epoch")

    # -- data ----------------------------------------------------------------
    def add_step(self, x: float, values: dict) -> None:
        """Append one logged training point; `values` holds loss_s, loss_h, loss."""
        for key, _, _ in SERIES:
            v = values.get(key)
            if v is None:
                continue
            xs, ys = self._data[key]
            if xs and x <= xs[-1]:
                # A restarted run repeats steps already shown: drop what follows
                # so the curve stays a function of the step.
                cut = next(i for i, old in enumerate(xs) if old >= x)
                del xs[cut:], ys[cut:]
            xs.append(float(x))
            ys.append(float(v))
            self._curves[key].setData(xs, ys)

    def add_validation(self, x: float, loss: float) -> None:
        xs, ys = self._data["val"]
        if xs and x <= xs[-1]:
            cut = next(i for i, old in enumerate(xs) if old >= x)
            del xs[cut:], ys[cut:]
        xs.append(float(x))
        ys.append(float(loss))
        self._curves["val"].setData(xs, ys)

    def last_x(self) -> float | None:
        xs = self._data["loss"][0]
        return xs[-1] if xs else None

    def point_count(self, key: str = "loss") -> int:
        return len(self._data[key][0])

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """Copies of (x, y) of one series: loss_s, loss_h, loss or val."""
        xs, ys = self._data[key]
        return list(xs), list(ys)

    def clear_data(self) -> None:
        for key, (xs, ys) in self._data.items():
            xs.clear()
            ys.clear()
            self._curves[key].setData([], [])
        self.getPlotItem().enableAutoRange()


class StageLossPlots(QWidget):
    """The two stage plots side by side, addressed by stage number."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        # One legend for both plots, outside them: inside, a legend box always
        # ends up hiding some of the curves it explains.
        self.legend = QLabel(legend_html())
        self.legend.setToolTip("S: saturation loss, H: hue loss (circular), total: their sum as trained; "
                               "validation total: the same loss on the validation photos after each epoch")
        outer.addWidget(self.legend)
        lay = QHBoxLayout()
        lay.setSpacing(8)
        outer.addLayout(lay, 1)
        self.plots = {
            1: LossPlot("Stage 1 · LR-CMGN", self),
            2: LossPlot("Stage 2 · RCN", self),
        }
        for plot in self.plots.values():
            lay.addWidget(plot)

    def plot(self, stage: int) -> LossPlot:
        return self.plots[stage]

    def add_step(self, stage: int, x: float, values: dict) -> None:
        if stage in self.plots:
            self.plots[stage].add_step(x, values)

    def add_validation(self, stage: int, loss: float, x: float | None = None) -> None:
        """A validation total at step x (default: the stage's last logged step)."""
        if stage not in self.plots:
            return
        plot = self.plots[stage]
        if x is None:
            x = plot.last_x() or 0.0
        plot.add_validation(x, loss)

    def clear(self) -> None:
        for plot in self.plots.values():
            plot.clear_data()
