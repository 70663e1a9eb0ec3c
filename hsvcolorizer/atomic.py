"""Write a file under a temporary name in its folder, then rename it into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], None], mode: int = 0o644) -> Path:
    """Call `write(f)` on a temporary file beside `path`, flush it to disk and
    rename it onto `path`. A kill at any moment leaves either the old file or
    the new one, never half of one; on any error the temporary file is removed.
    The temporary name is `.NAME.<random>.tmp`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.chmod(tmp, mode)  # mkstemp makes owner-only files
        except OSError:
            pass
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
