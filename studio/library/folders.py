"""Whether a folder can take our files, found out before minutes of work rather than after.

A read-only or foreign folder, a parent that is a file, or a name too long for the file system would
otherwise be found only when the first image is saved, after the model has loaded and generated. The
probe does what saving will do (create the missing folders, create a file) and then undoes it, so a
refused run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["FolderError", "check_writable_folder"]


class FolderError(ValueError):
    """The folder cannot be written; the message names it and why (the user's input: CLI exit 2)."""


def _missing_chain(path: Path) -> tuple[list[Path], Path]:
    """The folders that do not exist yet, outermost last, and the nearest one that does (or a non-folder)."""
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    return missing, probe


def check_writable_folder(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Raise FolderError unless files can be created in `path` (created if missing, as saving would).

    Leaves no trace: folders it had to create are removed again, the probe file too."""
    folder = Path(path).expanduser()
    missing, existing = _missing_chain(folder)
    if os.path.lexists(existing) and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be made: {existing} is a file"
        raise FolderError(f"the {what} {folder} {where}")
    created: list[Path] = []
    try:
        for step in reversed(missing):
            step.mkdir()
            created.append(step)
        handle, name = tempfile.mkstemp(prefix=".studio-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise FolderError(f"cannot write to the {what} {folder}: {reason}") from None
    finally:
        for step in reversed(created):
            with contextlib.suppress(OSError):
                step.rmdir()
    return folder
