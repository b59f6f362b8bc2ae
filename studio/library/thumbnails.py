"""Gallery thumbnails, made once and kept on disk.

Why a disk cache: decoding a 512-768 px PNG costs milliseconds, a phone JPEG tens of them, and a
gallery grid shows hundreds at a time; a small JPEG thumbnail decodes in well under a millisecond.

Keys: a hash of (resolved path, file size, file mtime, thumbnail size).  An edited or replaced file
gets a new key, so a stale thumbnail is never shown and nothing needs invalidating; old entries
simply age out through :meth:`ThumbnailCache.prune`.

Sizes: a cache has one base size (256 px by default) and can keep larger copies of the same file
next to it, keyed by their own size.  A grid whose cells grew (a size slider, a HiDPI screen) asks
:meth:`ThumbnailCache.size_for` which stored size serves its cells without enlarging a thumbnail:
the base size doubled as often as needed (256, 512, 1024, ...).  Few sizes means few files per image,
and each is scaled down by at most half for display.  :meth:`ThumbnailCache.cached` answers from one
``stat`` of the source and one of the thumbnail, so a GUI thread can call it freely; making
thumbnails (:meth:`ThumbnailCache.get_or_make`) belongs in a worker thread.

Format: JPEG (quality 85).  WebP is a little smaller but was ~15x slower to encode here (7 ms vs
0.4 ms for 256 px) and thumbnails are RGB anyway (transparency is composited on white, as
:func:`~studio.library.images.to_rgb` does everywhere else); Qt reads JPEG without plugins.

Writes are atomic (temporary file in the same folder, then ``os.replace``) so readers never see half
a thumbnail, but not fsynced: this is a cache, a crash can only lose entries, and an empty file left
by one is treated as missing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from studio.library.images import MAX_PIXELS, ImageLoadError, open_checked, to_rgb

__all__ = ["ThumbnailCache"]

THUMBNAIL_FORMAT = "JPEG"
THUMBNAIL_SUFFIX = ".jpg"
JPEG_QUALITY = 85
TOUCH_AFTER_S = 24 * 3600
"""A cache hit refreshes the thumbnail's mtime (the age :meth:`ThumbnailCache.prune` evicts by) at
most once a day: nearly least-recently-used order for one metadata write per file per day."""
STALE_TEMP_S = 3600
MIN_SIZE = 16
MAX_SIZE = 4096

# EXIF orientation -> the transpose that displays the image upright (as ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Pillow can resize directly; others ("P", "1", "I;16", ...) are converted to RGB first
# (resizing a palette image would pick nearest colours).
_RESIZABLE = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "YCbCr", "RGBX"})


def _decode_thumbnail(path: Path, size: int) -> Image.Image:
    """Decode ``path`` into an upright RGB image whose longest side is at most ``size``.

    Fast paths: JPEG ``draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale; other formats are shrunk
    with ``reduce`` (box filter by an integer factor) before the final resample (``thumbnail`` with
    ``reducing_gap``).  The pixel count is checked from the header before anything is decoded.
    Raises :class:`ImageLoadError` for anything that is not a readable image.
    """
    name = str(path)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise ImageLoadError(f"{name}: no such file") from None
    except OSError as exc:
        raise ImageLoadError(f"{name}: cannot open ({exc.strerror or exc})") from None
    with stream, open_checked(stream, name, MAX_PIXELS) as image:
        width, height = image.size
        try:
            orientation = int(image.getexif().get(0x0112, 1))
        except Exception:  # corrupt EXIF: show the image as stored
            orientation = 1
        try:
            if image.format == "JPEG":
                image.draft(image.mode if image.mode in ("RGB", "L") else None, (size, size))
            image.load()
            small: Image.Image = image
            if small.mode in _RESIZABLE:
                small.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            rgb = to_rgb(small)
            if max(rgb.size) > size:
                rgb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            if rgb is image:
                rgb = image.copy()  # detach from the file we are about to close
        except MemoryError:
            raise ImageLoadError(
                f"{name}: not enough memory to decode a {width}x{height} image"
            ) from None
        except Exception as exc:
            raise ImageLoadError(f"{name}: truncated or corrupt image data ({exc})") from None
    transpose = _ORIENTATION.get(orientation)
    return rgb.transpose(transpose) if transpose is not None else rgb


def _checked_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"thumbnail size must be an integer from {MIN_SIZE} to {MAX_SIZE}, not {size!r}")
    return size


@functools.lru_cache(maxsize=1024)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _resolved(path: str | os.PathLike[str]) -> str:
    """Absolute path with its folder resolved (symlinks, ``..``).  The folder's resolution is
    memoised: realpath costs a syscall per component, and a grid asks for hundreds of files in a few
    folders.  The file name itself is kept, so a symlinked file has its own thumbnail (harmless)."""
    head, tail = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(_real_folder(head), tail)


@dataclass
class _Entry:
    path: Path
    size: int
    mtime: float


class ThumbnailCache:
    """Thumbnails of ``size`` px (longest side; smaller images are kept at their size, never enlarged)
    stored under ``directory`` as ``ab/abcdef....jpg``; larger sizes on request (see the module
    docstring).  Safe to share between threads and processes:
    every write is a new file renamed into place."""

    def __init__(self, directory: str | Path, size: int = 256) -> None:
        self.directory = Path(directory).expanduser()
        self.size = _checked_size(size)

    @classmethod
    def default(cls) -> ThumbnailCache:
        """The app's cache: ``paths.cache_dir()/thumbnails``."""
        from studio.library import paths

        return cls(paths.cache_dir() / "thumbnails")

    def size_for(self, pixels: int) -> int:
        """The stored size to use for a display of ``pixels`` (device pixels, longest side): the base
        size doubled until it is at least ``pixels``, at most :data:`MAX_SIZE`.  Never below the base
        size, so small cells share the base thumbnails."""
        size = self.size
        while size < pixels and size * 2 <= MAX_SIZE:
            size *= 2
        return size

    # ---- keys --------------------------------------------------------------------------------

    def key(self, path: str | os.PathLike[str], size: int, mtime: float, thumb_size: int | None = None) -> str:
        """Stable hash of (resolved path, file ``size`` in bytes, file ``mtime``, thumbnail size:
        ``thumb_size``, default the cache's base size)."""
        resolved = _resolved(path)
        thumb = self.size if thumb_size is None else _checked_size(thumb_size)
        text = f"{resolved}\0{int(size)}\0{float(mtime)!r}\0{thumb}"
        return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()

    def _location(self, key: str) -> Path:
        return self.directory / key[:2] / (key + THUMBNAIL_SUFFIX)

    def _source_key(self, path: str | os.PathLike[str], thumb_size: int | None) -> str | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return self.key(path, info.st_size, info.st_mtime, thumb_size)

    @staticmethod
    def _usable(location: Path) -> bool:
        """An existing, non-empty thumbnail; refresh its age for pruning now and then."""
        try:
            info = location.stat()
        except OSError:
            return False
        if info.st_size == 0:
            return False
        now = time.time()
        if now - info.st_mtime > TOUCH_AFTER_S:
            with contextlib.suppress(OSError):
                os.utime(location, (now, now))
        return True

    # ---- lookups -----------------------------------------------------------------------------

    def cached(self, path: str | os.PathLike[str], size: int | None = None) -> Path | None:
        """The thumbnail (of ``size`` px, default the base size) for the file as it is now (size +
        mtime), if made; never decodes anything."""
        key = self._source_key(path, size)
        if key is None:
            return None
        location = self._location(key)
        return location if self._usable(location) else None

    def get_or_make(self, path: str | os.PathLike[str], size: int | None = None) -> Path:
        """The thumbnail's path (``size`` px on its longest side, default the base size), making it
        first if needed.  Raises :class:`ImageLoadError` when the file is missing or not a readable
        image (nothing is cached for it)."""
        thumb_size = self.size if size is None else _checked_size(size)
        source = Path(path)
        try:
            info = os.stat(source)
        except FileNotFoundError:
            raise ImageLoadError(f"{source}: no such file") from None
        except OSError as exc:
            raise ImageLoadError(f"{source}: cannot access ({exc.strerror or exc})") from None
        if not stat.S_ISREG(info.st_mode):
            raise ImageLoadError(f"{source}: not a regular file")
        location = self._location(self.key(source, info.st_size, info.st_mtime, thumb_size))
        if self._usable(location):
            return location
        image = _decode_thumbnail(source, thumb_size)
        buffer = io.BytesIO()
        image.save(buffer, THUMBNAIL_FORMAT, quality=JPEG_QUALITY)
        self._store(location, buffer.getvalue())
        return location

    def _store(self, location: Path, data: bytes) -> None:
        location.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=location.parent, prefix="." + location.stem[:8], suffix=".tmp")
        try:
            with open(fd, "wb") as stream:
                stream.write(data)
            os.replace(temp_name, location)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise

    # ---- housekeeping ------------------------------------------------------------------------

    def _entries(self) -> tuple[list[_Entry], list[Path]]:
        """(thumbnails, temp files left by interrupted writes older than an hour)."""
        entries: list[_Entry] = []
        stale: list[Path] = []
        now = time.time()
        if not self.directory.is_dir():
            return entries, stale
        for folder in self.directory.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            try:
                children = list(os.scandir(folder))
            except OSError:
                continue
            for child in children:
                try:
                    info = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                if child.name.endswith(THUMBNAIL_SUFFIX) and not child.name.startswith("."):
                    entries.append(_Entry(Path(child.path), info.st_size, info.st_mtime))
                elif child.name.endswith(".tmp") and now - info.st_mtime > STALE_TEMP_S:
                    stale.append(Path(child.path))
        return entries, stale

    def total_bytes(self) -> int:
        """Bytes the cache's thumbnails take now."""
        return sum(entry.size for entry in self._entries()[0])

    def prune(self, max_bytes: int) -> int:
        """Delete the least recently used thumbnails (oldest mtime first) until the cache holds at
        most ``max_bytes``; returns the bytes freed (stale temporary files included)."""
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        entries, stale = self._entries()
        freed = 0
        for temp in stale:
            with contextlib.suppress(OSError):
                size = temp.stat().st_size
                temp.unlink()
                freed += size
        total = sum(entry.size for entry in entries)
        entries.sort(key=lambda entry: (entry.mtime, entry.path.name))
        for entry in entries:
            if total <= max_bytes:
                break
            try:
                entry.path.unlink()
            except FileNotFoundError:
                total -= entry.size  # someone else removed it: no longer counts, not freed by us
                continue
            except OSError:
                continue
            total -= entry.size
            freed += entry.size
        return freed
