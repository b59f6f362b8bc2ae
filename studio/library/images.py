"""Safe image loading and atomic saving.

Loading: images come from users (init images, drag and drop, gallery folders) and may be huge,
truncated, oddly encoded or not images at all.  :func:`load_image` checks the pixel count from the
header before decoding anything, applies EXIF orientation (phone photos), and always returns a plain,
fully loaded RGB image with its file closed, so callers never deal with modes or open handles.

Saving: a crash, a full disk or a second process must never leave a half-written image or clobber an
existing one.  The image is encoded in memory first (encoder errors touch no file), then written to a
temporary file in the destination folder, fsynced and renamed over the target with ``os.replace``
(atomic on POSIX and Windows), and the folder is fsynced where the platform allows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from studio.library.metadata import JPEG_EXIF_LIMIT, exif_for, pnginfo_for

__all__ = [
    "MAX_PIXELS",
    "ImageLoadError",
    "SaveError",
    "atomic_write_bytes",
    "encode_image",
    "format_for_path",
    "load_image",
    "save_image",
    "sha256_image",
    "to_rgb",
]

MAX_PIXELS = 8192 * 8192
"""Default decompression-bomb limit (64 Mpx).  Pillow's own global limit (about 179 Mpx, where it
raises) still applies above this, so ``max_pixels`` larger than that cannot take effect."""

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageLoadError(ValueError):
    """An image could not be loaded; the message is one line naming the file and the problem."""


class SaveError(OSError):
    """An image could not be saved; nothing at the destination was changed."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<image bytes>"
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str | os.PathLike) else "<image stream>"


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB.

    Transparency is composited on white (what a user sees in a viewer; black would turn transparent
    logos into black squares).  16-bit and 32-bit integer images are scaled, not clipped, to 8 bits
    (Pillow's own conversion clips everything above 255 to white).  Returns ``image`` itself when it
    is already RGB.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        import numpy as np  # only for deep images; keeps `import studio.library` light

    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if mode == "I" and values.size and values.max() <= 255 and values.min() >= 0:
            scaled = values
        else:
            scaled = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if mode == "F":
        floats = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if floats.size and floats.max() <= 1.0:
            floats = floats * 255.0
        return Image.fromarray(np.clip(np.rint(floats), 0, 255).astype(np.uint8)).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_checked(stream: IO[bytes], name: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open lazily (header only) and check format and pixel count before anything is decoded.

    Shared by full loading and by the thumbnail cache (which then decodes in draft mode)."""
    try:
        image = Image.open(stream)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image (unrecognised or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{name}: image is too large to load safely ({exc})") from None
    except Exception as exc:  # Pillow raises many types on corrupt headers
        raise ImageLoadError(f"{name}: not a readable image ({exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        image.close()
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"{name}: invalid image size {width}x{height}")
        raise ImageLoadError(
            f"{name}: image is too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,})"
        )
    return image


def _open_and_decode(stream: IO[bytes], name: str, max_pixels: int) -> Image.Image:
    with open_checked(stream, name, max_pixels) as image:
        width, height = image.size
        try:
            image.seek(0)  # animated GIF / APNG / WebP: the first frame
            image.load()
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"{name}: image is too large to load safely ({exc})") from None
        except MemoryError:
            raise ImageLoadError(f"{name}: not enough memory to decode a {width}x{height} image") from None
        except Exception as exc:
            raise ImageLoadError(f"{name}: truncated or corrupt image data ({exc})") from None
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception:  # a corrupt EXIF block must not make a good image unloadable
            oriented = image.copy()
        try:
            rgb = to_rgb(oriented)
        except Exception as exc:
            raise ImageLoadError(f"{name}: unsupported image mode {image.mode} ({exc})") from None
        rgb.load()
        return rgb


def load_image(
    source: str | os.PathLike[str] | bytes | bytearray | IO[bytes], *, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Load an image safely as a detached RGB :class:`PIL.Image.Image`.

    ``source`` is a path, the file's bytes, or a binary file object (left open; a file we open is
    closed before returning).  Raises :class:`ImageLoadError` for missing files, folders, empty or
    non-image files, truncated data and images over ``max_pixels`` (checked before decoding).
    """
    name = _describe(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ImageLoadError(f"{name}: no such file") from None
        except PermissionError:
            raise ImageLoadError(f"{name}: permission denied") from None
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot access ({exc.strerror or exc})") from None
        if stat.S_ISDIR(info.st_mode):
            raise ImageLoadError(f"{name}: is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise ImageLoadError(f"{name}: not a regular file")
        if info.st_size == 0:
            raise ImageLoadError(f"{name}: empty file")
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot open ({exc.strerror or exc})") from None
        with stream:
            return _open_and_decode(stream, name, max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageLoadError(f"{name}: empty file")
        return _open_and_decode(io.BytesIO(bytes(source)), name, max_pixels)
    if hasattr(source, "read"):
        return _open_and_decode(source, name, max_pixels)
    raise TypeError(f"load_image() needs a path, bytes or a binary file object, not {type(source).__name__}")


def sha256_image(image: Image.Image) -> str:
    """SHA-256 of the RGB pixels and the size: identifies an init image independent of its file format
    and metadata (the same pixels saved as PNG or re-tagged give the same hash)."""
    rgb = to_rgb(image)
    digest = hashlib.sha256()
    digest.update(f"RGB {rgb.width}x{rgb.height}\n".encode("ascii"))
    digest.update(rgb.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------


@functools.cache
def _umask() -> int:
    """The process umask without changing it (os.umask() can only be read by setting it, which is not
    thread-safe); temp files from mkstemp are 0600, and the saved image should get normal permissions."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync_directory(folder: Path) -> None:
    """Make the rename durable; not possible on Windows (directories cannot be opened), so best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never a mix.

    On any failure the temporary file is removed, the existing file (if any) is untouched, and
    :class:`SaveError` is raised with a one-line message.
    """
    path = Path(path)
    folder = path.parent
    try:
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix="." + path.name[:100] + ".", suffix=".part")
    except OSError as exc:
        raise SaveError(f"cannot save {path}: {_reason(exc)}") from exc
    temp = Path(temp_name)
    try:
        with open(fd, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), 0o666 & ~_umask())
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, Exception):
            raise SaveError(f"cannot save {path}: {_reason(exc)}") from exc
        raise
    _fsync_directory(folder)


def format_for_path(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Pillow format name ("PNG", "JPEG", "WEBP") from an explicit format or the file suffix."""
    if format:
        wanted = format.upper().lstrip(".")
        wanted = {"JPG": "JPEG"}.get(wanted, wanted)
        if wanted in ("PNG", "JPEG", "WEBP"):
            return wanted
        raise SaveError(f"cannot save {path}: unsupported format {format!r} (use PNG, JPEG or WebP)")
    suffix = Path(path).suffix.lower()
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    raise SaveError(
        f"cannot save {path}: unsupported file type {suffix or '(none)'!r} (use .png, .jpg or .webp)"
    )


def encode_image(
    image: Image.Image, format: str = "PNG", meta: dict[str, Any] | None = None, *, quality: int = 95
) -> bytes:
    """The encoded file bytes with our metadata embedded (also what the batch command base64-encodes).

    Raises whatever Pillow or the metadata writers raise (ValueError, TypeError, OSError);
    :func:`save_image` turns those into :class:`SaveError`.
    """
    fmt = {"JPG": "JPEG"}.get(format.upper(), format.upper())
    buffer = io.BytesIO()
    if fmt == "PNG":
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
            image = to_rgb(image)
        extra = {"pnginfo": pnginfo_for(meta)} if meta is not None else {}
        image.save(buffer, "PNG", **extra)
    elif fmt == "JPEG":
        if image.mode not in ("L", "RGB"):
            image = to_rgb(image)
        extra = {"exif": exif_for(meta, max_bytes=JPEG_EXIF_LIMIT)} if meta is not None else {}
        image.save(buffer, "JPEG", quality=quality, **extra)
    elif fmt == "WEBP":
        if image.mode not in ("RGB", "RGBA"):
            image = to_rgb(image)
        extra = {"exif": exif_for(meta)} if meta is not None else {}
        image.save(buffer, "WEBP", quality=quality, **extra)
    else:
        raise ValueError(f"unsupported format {format!r} (use PNG, JPEG or WebP)")
    return buffer.getvalue()


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    meta: dict[str, Any] | None = None,
    *,
    format: str | None = None,
    quality: int = 95,
) -> Path:
    """Save ``image`` atomically with its metadata; returns the path.

    The format comes from ``format`` or the suffix (.png, .jpg/.jpeg, .webp).  PNG gets
    :func:`~studio.library.metadata.pnginfo_for`, JPEG/WebP :func:`~studio.library.metadata.exif_for`.
    Missing parent folders are created.  Any failure raises :class:`SaveError` and leaves an existing
    file at ``path`` as it was.
    """
    path = Path(path)
    fmt = format_for_path(path, format)
    try:
        data = encode_image(image, fmt, meta, quality=quality)
    except Exception as exc:
        raise SaveError(f"cannot save {path}: encoding as {fmt} failed ({_reason(exc)})") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"cannot save {path}: cannot create folder {path.parent} ({_reason(exc)})") from exc
    atomic_write_bytes(path, data)
    return path
