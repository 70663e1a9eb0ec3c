"""The one way this program writes a file: under a temporary name in its
folder, flushed to disk, then renamed into place.

Photos (imageio.write_image), weights, checkpoints and the prepared cache all
go through here, so they share one policy:

- the data is fsync'ed before the rename (without it a crash soon after the
  rename can leave an empty file under the final name on some file systems),
  and the folder is fsync'ed after it (best effort) so the rename itself lasts;
- on any failure, an interruption included, the temporary file is removed and
  the previous file, if any, is left as it was;
- a failure of the file system (full disk, permission denied, missing folder)
  is a ColorizerError "cannot write PATH: reason", one line for a person;
  anything else the writing callback raises is passed on unchanged.

Temporary files are named `.NAME.<random>.tmp`, hidden, beside the target.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

from hsvcolorizer.errors import ColorizerError

__all__ = ["atomic_write", "fsync_file", "fsync_folder", "os_reason"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], mode: int | None = None,
                 sync_folder: bool = True) -> Path:
    """Call `write(f)` on a temporary file beside `path`, flush it to disk and
    rename it onto `path`; return `path`. A kill at any moment leaves either
    the old file or the new one, never half of one.

    mode: None gives the permissions of any new file (0o666 less the umask);
    a number sets exactly those bits (checkpoints: 0o600, owner-only).
    sync_folder: False leaves the folder's fsync to the caller, who writes
    many files and syncs each folder once (batch): the file is whole either
    way, only the rename may not outlast a crash until then.
    """
    path = Path(path)
    tmp, fd = _create_temp_file(path, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            try:
                os.chmod(tmp, mode)  # exactly `mode`, whatever the umask
            except OSError:
                pass
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise ColorizerError(f"cannot write {path}: {os_reason(exc)}") from None
        raise
    if sync_folder:
        fsync_folder(path.parent)
    return path


def _create_temp_file(path: Path, mode: int) -> tuple[Path, int]:
    """Create a hidden temporary file next to `path`; return (its path, fd).

    Same folder, so os.replace is a rename within one file system. Not
    tempfile.mkstemp: it makes owner-only files, and that mode would survive
    the rename onto the final file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, mode)
        except FileExistsError:
            continue  # name collision: try another random name
        except OSError as exc:
            raise ColorizerError(f"cannot write {path}: {os_reason(exc)}") from None
    raise ColorizerError(f"cannot write {path}: could not create a temporary file in {path.parent}")


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file written some other way (a memory map, np.save) to disk,
    as atomic_write does before its rename. Raises OSError."""
    with open(path, "r+b") as f:  # writable: Windows cannot flush a read-only handle
        os.fsync(f.fileno())


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Persist the renames in `folder` (POSIX); best effort, the data is already safe."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # already gone, or nothing more to do; the real error matters more


def os_reason(exc: OSError) -> str:
    """The human part of an OSError ("No space left on device")."""
    if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or (" ".join(str(exc).split()) or type(exc).__name__)
