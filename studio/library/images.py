"""Safe image loading and atomic saving.

Loading: images come from users (init images, drag and drop, gallery folders) and may be huge,
truncated, oddly encoded or not images at all.  :func:`load_image` checks the pixel count from the
header before decoding anything, applies EXIF orientation (phone photos), and always returns a plain,
fully loaded RGB image with its file closed, so callers never deal with modes or open handles.

Saving: a crash (even ``kill -9``), a full disk or a second process must never leave an empty or
half-written image or clobber an existing one.  The image is encoded in memory first (encoder errors
touch no file), then written to a hidden temporary file in the destination folder (named by
:func:`temp_name` after this machine and process) and fsynced.  Only a complete file ever gets a
visible name: :func:`save_image` / :func:`atomic_write_bytes` rename it over the target with
``os.replace``; :func:`save_new_image` / :func:`write_new_file` hard-link it to the first free
candidate name, which atomically fails if the name is taken, so nothing is ever overwritten.  The
folder is then fsynced where the platform allows.  A writer killed mid-save leaves only its hidden
temporary file; every save first removes such files of writers that are no longer running
(:func:`remove_stale_temp_files`), and never anything that is not ours.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import itertools
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from studio.library.metadata import JPEG_EXIF_LIMIT, exif_for, pnginfo_for

__all__ = [
    "MAX_PIXELS",
    "STALE_TEMP_SECONDS",
    "ImageLoadError",
    "SaveError",
    "atomic_write_bytes",
    "encode_image",
    "format_for_path",
    "load_image",
    "remove_stale_temp_files",
    "sweep_stale_temp_files",
    "save_image",
    "save_new_image",
    "sha256_image",
    "temp_name",
    "to_rgb",
    "write_new_file",
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


def _open_and_decode(
    stream: IO[bytes], name: str, max_pixels: int, convert: Callable[[Image.Image], Image.Image]
) -> Image.Image:
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
            rgb = convert(oriented)
        except Exception as exc:
            raise ImageLoadError(f"{name}: unsupported image mode {image.mode} ({exc})") from None
        rgb.load()
        return rgb


def load_image(
    source: str | os.PathLike[str] | bytes | bytearray | IO[bytes], *, max_pixels: int = MAX_PIXELS,
    convert: Callable[[Image.Image], Image.Image] | None = None,
) -> Image.Image:
    """Load an image safely as a detached RGB :class:`PIL.Image.Image` (or what `convert` makes of the
    decoded, upright image: a mask takes its alpha).

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
            return _open_and_decode(stream, name, max_pixels, convert or to_rgb)
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageLoadError(f"{name}: empty file")
        return _open_and_decode(io.BytesIO(bytes(source)), name, max_pixels, convert or to_rgb)
    if hasattr(source, "read"):
        return _open_and_decode(source, name, max_pixels, convert or to_rgb)
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


STALE_TEMP_SECONDS = 3600.0
"""A temporary file of ours this old is abandoned whoever wrote it: a save writes for seconds, not hours."""

_TEMP_RE = re.compile(
    r"\..*\.studio-tmp-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.part", re.DOTALL
)
_TEMP_TARGET_BYTES = 40
_NO_HARD_LINKS = {
    getattr(errno, name)
    for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EXDEV", "EMLINK", "EINVAL")
    if hasattr(errno, name)
}
_WINDOWS_NO_HARD_LINKS = {1, 50}  # ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED (FAT, some shares)


def _host_tag(host: str) -> str:
    """8 hex digits for a host name: pids only mean something on the machine that wrote them (a shared
    network folder can hold temporary files of writers on other machines)."""
    return hashlib.sha256(host.encode("utf-8", "surrogateescape")).hexdigest()[:8]


@functools.cache
def _this_host_tag() -> str:
    """This machine, and on Linux this boot and pid namespace. Containers sharing a host name and a folder
    do not see each other's processes; and the initial pid namespace has the same id on every Linux
    host, so two machines of the same name saving into one network folder are told apart by their boot
    id. Each must not judge the other's writers dead."""
    host = socket.gethostname()
    for source in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        with contextlib.suppress(OSError), open(source, encoding="ascii", errors="replace") as stream:
            host += "|" + stream.read(64).strip()
            break
    with contextlib.suppress(OSError):
        host += "|" + os.readlink("/proc/self/ns/pid")
    return _host_tag(host)


def temp_name(target_name: str, *, pid: int | None = None, host: str | None = None) -> str:
    """The hidden name of a temporary file that a save of ``target_name`` writes before publishing it.

    ``.<start of target name>.studio-tmp-<host tag>-<pid>-<random>.part``: hidden (the gallery and file
    managers skip it), recognisably ours (so :func:`remove_stale_temp_files` never touches anything
    else), and naming the writer, so that a later save can tell an abandoned file from one being written.
    At most :data:`~studio.library.naming.TEMP_NAME_MAX_BYTES` bytes.  ``pid`` and ``host`` default to
    this process and this machine.
    """
    start = target_name.encode("utf-8", "surrogateescape")[:_TEMP_TARGET_BYTES].decode("utf-8", "ignore")
    tag = _this_host_tag() if host is None else _host_tag(host)
    writer = os.getpid() if pid is None else pid
    return f".{start}.studio-tmp-{tag}-{writer}-{secrets.token_hex(4)}.part"


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here.  Only POSIX can ask without side effects (on Windows
    ``os.kill(pid, 0)`` would send Ctrl-C), so elsewhere every writer counts as alive and only age
    makes its temporary file stale."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files our savers left in ``folder`` (not below it) when they were killed.

    Only names made by :func:`temp_name` that are regular files are considered, so nothing that is not
    ours is touched.  One is removed when its writer, on this machine, is no longer running, or when it
    is older than :data:`STALE_TEMP_SECONDS` (writers on other machines, pids reused since).  Every save
    calls this for its folder first; it is best effort and never raises.  Returns the removed paths.
    """
    removed: list[Path] = []
    ours = _this_host_tag()
    now = time.time()
    try:
        with os.scandir(folder) as scan:
            entries = [(entry, match) for entry in scan if (match := _TEMP_RE.fullmatch(entry.name))]
    except OSError:
        return removed
    for entry, match in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        abandoned = match["host"] == ours and not _pid_alive(int(match["pid"]))
        if abandoned or age > STALE_TEMP_SECONDS:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def sweep_stale_temp_files(root: str | os.PathLike[str], *, depth: int = 3, max_folders: int = 2000) -> list[Path]:
    """:func:`remove_stale_temp_files` in `root` and its sub-folders down to `depth` (the output template's
    date folders), for start-up: a writer killed in yesterday's folder is never followed by a save there.
    Hidden folders and symlinks are not entered; at most `max_folders` are visited, so a huge tree costs
    a bounded time. Best effort, never raises."""
    removed: list[Path] = []
    level = [Path(root)]
    visited = 0
    for _ in range(depth + 1):
        below: list[Path] = []
        for folder in level:
            visited += 1
            if visited > max_folders:
                return removed
            removed += remove_stale_temp_files(folder)
            try:
                with os.scandir(folder) as scan:
                    below += [
                        Path(entry.path) for entry in scan
                        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
                    ]
            except OSError:
                continue
        level = below
    return removed


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


def _write_temp(folder: Path, target_name: str, data: bytes) -> Path:
    """``data`` in a new hidden temporary file in ``folder``, flushed to disk; removed again on failure.

    Created with mode 0o666 so the umask (and default ACLs) apply as to any file the user creates.
    Stale temporary files of dead writers in ``folder`` are cleaned up first.
    """
    remove_stale_temp_files(folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    attempt = 0
    while True:
        temp = folder / temp_name(target_name)
        try:
            fd = os.open(temp, flags, 0o666)
            break
        except FileExistsError:  # 32 random bits collided: astronomically rare, try another
            attempt += 1
            if attempt >= 16:
                raise
    try:
        with open(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, replacing what is there: readers see the old file or the
    new one, never a mix.

    On any failure the temporary file is removed, the existing file (if any) is untouched, and
    :class:`SaveError` is raised with a one-line message.  A crash leaves at most a hidden temporary
    file, which the next save into the folder removes.
    """
    path = Path(path)

    def replace(temp: Path) -> Path:
        os.replace(temp, path)
        return path

    _write_then_place(path, data, replace)


def _write_then_place(first: Path, data: bytes, place: Callable[[Path], Path]) -> Path:
    """Write ``data`` to a hidden temporary file beside ``first``, then ``place`` it under its name; on
    any failure the temporary file is removed and an I/O error becomes :class:`SaveError` naming
    ``first``.  The folder is synced once the name is in place."""
    folder = first.parent
    try:
        temp = _write_temp(folder, first.name, data)
    except Exception as exc:
        raise SaveError(f"cannot save {first}: {_reason(exc)}") from exc
    try:
        target = place(temp)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, SaveError):
            raise
        if isinstance(exc, OSError):
            raise SaveError(f"cannot save {first}: {_reason(exc)}") from exc
        raise
    _fsync_directory(folder)
    return target


def _links_unsupported(exc: OSError) -> bool:
    return exc.errno in _NO_HARD_LINKS or getattr(exc, "winerror", None) in _WINDOWS_NO_HARD_LINKS


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _link(temp: Path, target: Path) -> bool | None:
    """Hard-link ``temp`` as ``target``: True when done, False when the name is taken, None when this
    file system has no hard links; other errors are raised."""
    try:
        os.link(temp, target)
    except FileExistsError:
        # NFS can answer a retransmitted link that had succeeded with EEXIST: then the name is ours.
        return _same_file(temp, target)
    except OSError as exc:
        if os.path.lexists(target):  # Windows reports an existing folder as access denied
            return False
        if _links_unsupported(exc):
            return None
        raise
    return True


def _publish(temp: Path, candidates: Iterable[Path], folder: Path) -> Path:
    """Give the complete ``temp`` the first free candidate name, never replacing anything.

    ``os.link`` is the atomic no-overwrite step: it fails with FileExistsError when the name is taken
    (by a file, folder or symlink, which is not followed), so concurrent writers each get their own
    name.  Where hard links are unsupported (FAT, some FUSE and SMB mounts) this falls back to an
    existence check and ``os.rename``.  That fallback has a race: on POSIX a file another process
    creates between the check and the rename is replaced (Windows' rename refuses instead), so two
    processes saving the same name at the same instant on such a file system can lose one image.
    """
    use_links = True
    for target in candidates:
        if target.parent != folder:
            raise ValueError(f"all candidate names must be in one folder: {target} is not in {folder}")
        if use_links:
            linked = _link(temp, target)
            if linked is None:
                use_links = False
            elif linked:
                with contextlib.suppress(OSError):  # if this fails, a later save removes it
                    temp.unlink()
                return target
            else:
                continue
        if os.path.lexists(target):
            continue
        try:
            os.rename(temp, target)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(errno.EEXIST, "no free file name among the candidates")


def write_new_file(candidates: Iterable[str | os.PathLike[str]], data: bytes) -> Path:
    """Write ``data`` as a new file under the first of ``candidates`` that is free; returns its path.

    Never overwrites anything, even against concurrent processes, and never shows a partial file: the
    data goes to a hidden temporary file, is flushed to disk, and only then appears under its name
    atomically (see :func:`_publish`).  All candidates must be in one existing folder.  Raises
    :class:`SaveError` (nothing left behind) on I/O errors or when every candidate is taken, ValueError
    for no candidates or candidates in different folders.
    """
    names = iter(candidates)
    first = next(names, None)
    if first is None:
        raise ValueError("write_new_file() needs at least one candidate file name")
    first = Path(first)

    def publish(temp: Path) -> Path:
        try:
            return _publish(temp, itertools.chain([first], (Path(name) for name in names)), first.parent)
        except FileExistsError as exc:
            raise SaveError(f"cannot save {first}: no free file name (all candidates are taken)") from exc

    return _write_then_place(first, data, publish)


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


def _encode_for(
    path: Path, image: Image.Image, meta: dict[str, Any] | None, format: str | None, quality: int
) -> bytes:
    fmt = format_for_path(path, format)
    try:
        return encode_image(image, fmt, meta, quality=quality)
    except Exception as exc:
        raise SaveError(f"cannot save {path}: encoding as {fmt} failed ({_reason(exc)})") from exc


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"cannot save {path}: cannot create folder {path.parent} ({_reason(exc)})") from exc


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    meta: dict[str, Any] | None = None,
    *,
    format: str | None = None,
    quality: int = 95,
) -> Path:
    """Save ``image`` atomically with its metadata at ``path``, replacing a file there; returns the path.

    The format comes from ``format`` or the suffix (.png, .jpg/.jpeg, .webp).  PNG gets
    :func:`~studio.library.metadata.pnginfo_for`, JPEG/WebP :func:`~studio.library.metadata.exif_for`.
    Missing parent folders are created.  Any failure raises :class:`SaveError` and leaves an existing
    file at ``path`` as it was.  For new images that must never replace anything use
    :func:`save_new_image`.
    """
    path = Path(path)
    data = _encode_for(path, image, meta, format, quality)
    _make_parent(path)
    atomic_write_bytes(path, data)
    return path


def save_new_image(
    image: Image.Image,
    candidates: Iterable[str | os.PathLike[str]],
    meta: dict[str, Any] | None = None,
    *,
    format: str | None = None,
    quality: int = 95,
) -> Path:
    """Save ``image`` with its metadata under the first free name of ``candidates`` (all in one folder,
    e.g. :meth:`studio.library.naming.OutputName.candidates`); returns the path used.

    Like :func:`save_image`, but never replaces an existing file, even when other processes save the
    same names at the same time, and a crash at any point leaves no empty or partial image (see
    :func:`write_new_file`).  The format comes from ``format`` or the first candidate's suffix.
    """
    names = iter(candidates)
    first = next(names, None)
    if first is None:
        raise ValueError("save_new_image() needs at least one candidate file name")
    first = Path(first)
    data = _encode_for(first, image, meta, format, quality)
    _make_parent(first)
    return write_new_file(itertools.chain([first], names), data)
