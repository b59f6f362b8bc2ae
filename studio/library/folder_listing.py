"""What a library folder holds right now, listed cheaply (names, sizes, modification times; no file is
opened): the gallery's watcher compares a fresh listing with the one it kept to index only what
appeared, changed or went away. Qt-free, so it is tested without an event loop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.library.gallery import IMAGE_SUFFIXES

__all__ = ["DirListing", "Listing", "is_under", "list_dir"]

Listing = dict[str, tuple[int, int]]
"""File name -> (size, mtime in ns) for the image files directly in one directory."""


@dataclass
class DirListing:
    """One directory's image files and sub-directories."""

    files: Listing = field(default_factory=dict)
    subdirs: set[Path] = field(default_factory=set)


def is_under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def list_dir(directory: Path, skip: set[Path]) -> DirListing | None:
    """The image files and sub-directories of `directory`: hidden ones left out (our saves' temporary
    files are hidden), sub-directories in `skip` too (the thumbnail cache); None when unreadable."""
    state = DirListing()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        sub = directory / entry.name
                        if sub not in skip:
                            state.subdirs.add(sub)
                    elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                        st = entry.stat()
                        state.files[entry.name] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    continue
    except OSError:
        return None
    return state
