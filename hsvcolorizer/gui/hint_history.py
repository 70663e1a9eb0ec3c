"""The colour hints of the open photo, with undo and redo.

Every edit replaces the whole list, and the list before it goes on the undo
stack: a photo has a handful of hints, so snapshots cost nothing and make
undo exact (an undone move puts the point back where it was, with its
colour and its place in the list). Qt-free; the ColorizeController turns
each change into a re-run of the networks and a save.
"""

from __future__ import annotations

from hsvcolorizer.hints import Hint

__all__ = ["HintHistory"]

# Enough for a long session of clicking; the oldest steps go first.
UNDO_LIMIT = 200


class HintHistory:
    """A list of hints.Hint (full-size photo pixels, 8-bit sRGB) and its history.

    The editing methods return True when the list changed (an edit that
    changes nothing, such as moving a point onto itself, leaves no undo step).
    """

    def __init__(self, hints: list[Hint] | None = None) -> None:
        self._hints: list[Hint] = list(hints or [])
        self._undo: list[list[Hint]] = []
        self._redo: list[list[Hint]] = []

    @property
    def hints(self) -> list[Hint]:
        """A copy of the current hints, in the order they were added."""
        return list(self._hints)

    def __len__(self) -> int:
        return len(self._hints)

    def reset(self, hints: list[Hint] | None = None) -> None:
        """Start over with ``hints`` (another photo): no undo history."""
        self._hints = list(hints or [])
        self._undo.clear()
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def _replace(self, hints: list[Hint]) -> bool:
        if hints == self._hints:
            return False
        self._undo.append(self._hints)
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()
        self._hints = hints
        return True

    def add(self, hint: Hint) -> bool:
        return self._replace(self._hints + [hint])

    def move(self, index: int, x: int, y: int) -> bool:
        old = self._hints[index]
        return self._replace(self._with(index, Hint(int(x), int(y), old.rgb)))

    def recolour(self, index: int, rgb: tuple[int, int, int]) -> bool:
        old = self._hints[index]
        return self._replace(self._with(index, Hint(old.x, old.y, tuple(int(c) for c in rgb))))  # type: ignore[arg-type]

    def remove(self, index: int) -> bool:
        hints = list(self._hints)
        del hints[index]
        return self._replace(hints)

    def clear(self) -> bool:
        return self._replace([])

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._hints)
        self._hints = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._hints)
        self._hints = self._redo.pop()
        return True

    def _with(self, index: int, hint: Hint) -> list[Hint]:
        hints = list(self._hints)
        hints[index] = hint
        return hints
