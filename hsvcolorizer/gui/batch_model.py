"""The Batch tab's table: one row per photo of the running (or last) batch.

A ``QAbstractTableModel`` over the batch's per-file outcomes. Rows are
filled as "waiting" when a batch starts (from the core's plan) and updated
as the core reports each outcome; the view only draws them. No widgets
here, so the rows can be checked without a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from hsvcolorizer.batch import FileOutcome
from hsvcolorizer.gui import common

__all__ = ["BatchRow", "BatchTableModel", "COLUMNS", "STATUS_STYLE"]

# Status -> (label, icon, colour). Colours are mid-tones that read on light
# and dark palettes; the icon carries the meaning for colour-blind users.
STATUS_STYLE = {
    "waiting": ("Waiting", "fa5s.clock", "#8a8f98"),
    "done": ("Done", "fa5s.check-circle", "#1e9e4a"),
    "skipped": ("Skipped", "fa5s.forward", "#c98a00"),
    "failed": ("Failed", "fa5s.times-circle", "#d0312d"),
    "cancelled": ("Not processed", "fa5s.ban", "#8a8f98"),
}

COLUMNS = ("Photo", "Status", "Output / reason", "Time")
PHOTO, STATUS, DETAIL, TIME = range(len(COLUMNS))

_AnyIndex = QModelIndex | QPersistentModelIndex


@dataclass
class BatchRow:
    """One photo of a batch: where it is, where its result goes, how it went."""

    source: Path
    shown: str  # the photo relative to the input folder (the folder is shown above the table)
    planned: Path | None  # where the core said its output goes
    status: str = "waiting"  # waiting | done | skipped | failed | cancelled
    output: Path | None = None  # the file actually written or kept
    reason: str = ""
    seconds: float | None = None


class BatchTableModel(QAbstractTableModel):
    """Rows of a batch. Extra roles: ``StatusRole`` (the status word),
    ``SourceRole`` and ``OutputRole`` (full paths as str, "" when none)."""

    StatusRole = Qt.ItemDataRole.UserRole + 1
    SourceRole = Qt.ItemDataRole.UserRole + 2
    OutputRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[BatchRow] = []
        self._by_source: dict[str, int] = {}
        self._out_dir: Path | None = None

    # ------------------------------------------------------------- filling
    def reset(self, pairs: list[tuple[Path, Path]], in_dir: Path, out_dir: Path) -> None:
        """A new batch: one "waiting" row per (photo, planned output)."""
        self.beginResetModel()
        self._out_dir = Path(out_dir)
        self._rows = [BatchRow(Path(src), _shown_photo(src, in_dir), Path(dst)) for src, dst in pairs]
        self._by_source = {str(row.source): i for i, row in enumerate(self._rows)}
        self.endResetModel()

    def clear(self) -> None:
        self.reset([], Path(), Path())

    def apply(self, outcome: FileOutcome) -> int:
        """Record one outcome from the core; its row number."""
        key = str(outcome.source)
        row = self._by_source.get(key)
        if row is None:  # a photo that appeared after Start was pressed
            row = len(self._rows)
            self.beginInsertRows(QModelIndex(), row, row)
            self._rows.append(BatchRow(Path(outcome.source), Path(outcome.source).name, None))
            self._by_source[key] = row
            self.endInsertRows()
        entry = self._rows[row]
        entry.status = outcome.status
        entry.output = Path(outcome.output) if outcome.output else None
        entry.reason = outcome.reason
        entry.seconds = outcome.seconds
        self._changed(row)
        return row

    def mark_unprocessed(self, cancelled: bool) -> None:
        """At the end of a batch: rows still waiting were never reached."""
        if not cancelled:
            return
        for i, entry in enumerate(self._rows):
            if entry.status == "waiting":
                entry.status = "cancelled"
                self._changed(i)

    def _changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    # ------------------------------------------------------------- reading
    def entry(self, row: int) -> BatchRow:
        return self._rows[row]

    def entries(self) -> list[BatchRow]:
        return list(self._rows)

    def status(self, row: int) -> str:
        return self._rows[row].status

    def row_of(self, source: str | Path) -> int | None:
        return self._by_source.get(str(source))

    # ------------------------------------------------------ the Qt model API
    def rowCount(self, parent: _AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's names
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return _HEADER_TIPS[section]
        return None

    def flags(self, index: _AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: _AnyIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        entry, column = self._rows[index.row()], index.column()
        if role == self.StatusRole:
            return entry.status
        if role == self.SourceRole:
            return str(entry.source)
        if role == self.OutputRole:
            return str(entry.output) if entry.output else ""
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(entry, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(entry, column)
        if role == Qt.ItemDataRole.DecorationRole and column == STATUS:
            _label, icon_name, colour = STATUS_STYLE[entry.status]
            return common.icon(icon_name, colour)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(entry, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == TIME:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _shown_output(self, path: Path | None) -> str:
        """The output relative to the output folder, which is shown above the table."""
        if path is None:
            return ""
        return _relative(path, self._out_dir)

    def _text(self, entry: BatchRow, column: int) -> str:
        if column == PHOTO:
            return entry.shown
        if column == STATUS:
            return STATUS_STYLE[entry.status][0]
        if column == TIME:
            return f"{entry.seconds:.2f} s" if entry.seconds is not None else ""
        if entry.status == "done":
            return self._shown_output(entry.output)
        if entry.status == "skipped":
            return entry.reason + (f": {self._shown_output(entry.output)}" if entry.output else "")
        if entry.status == "failed":
            # The row already names the photo; its full path only crowds the reason.
            return (entry.reason or "unknown error").replace(str(entry.source), entry.source.name)
        return self._shown_output(entry.planned)  # waiting, not processed: where it would go

    def _tooltip(self, entry: BatchRow, column: int) -> str:
        if column == PHOTO:
            return str(entry.source)
        if column == STATUS:
            return {"waiting": "Not colorized yet", "done": "Colorized", "skipped": "Left as it was",
                    "failed": "Could not be colorized", "cancelled": "Not reached: the batch was cancelled"
                    }[entry.status]
        if column == TIME:
            return "Time taken for this photo" if entry.seconds is not None else ""
        if entry.status == "done":
            return str(entry.output)
        if entry.status == "skipped":
            return entry.reason + (f": {entry.output}" if entry.output else "")
        if entry.status == "failed":
            return entry.reason or "unknown error"
        return f"Will be written as {entry.planned}" if entry.planned else ""

    def _foreground(self, entry: BatchRow, column: int) -> QBrush | None:
        if column == STATUS or (column == DETAIL and entry.status != "done"):
            return QBrush(QColor(STATUS_STYLE[entry.status][2]))
        return None  # the palette's text colour


_HEADER_TIPS = (
    "The photo, relative to the input folder (hover for its full path)",
    "Waiting, done, skipped, failed or not processed",
    "Where the result was written (relative to the output folder), or why the photo was skipped or failed",
    "How long the photo took",
)


def _shown_photo(src: Path | str, in_dir: Path) -> str:
    """A photo as the table shows it: relative to the input folder, else its name."""
    try:
        return str(Path(src).relative_to(in_dir))
    except ValueError:
        return Path(src).name


def _relative(path: Path | str, folder: Path | None) -> str:
    """`path` relative to `folder`, or the full path when it is not inside it."""
    if folder is None:
        return str(path)
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path)
