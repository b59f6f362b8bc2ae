"""The init images and masks that jobs used, kept by content so that a result can be made again.

An image's metadata records its init image and mask only by hash (``init_image_sha256``,
``mask_image_sha256``: :func:`~studio.library.images.sha256_image`, of the RGB pixels and the size).
This store keeps the images themselves under those hashes, ``<root>/<first two digits>/<digest>.png``,
so "Reuse parameters" can put the canvas and the mask back and the metadata alone regenerates the
same pixels, even when the canvas came from the clipboard or the file has since changed. Content
addressing deduplicates: a canvas inpainted fifty times is one file.

A digest read from an image's metadata is untrusted text: only exactly 64 lowercase hex digits name a
file (never a path outside the root), and a file read back must hash to its name (a damaged or swapped
file is refused, not used). Writes are atomic (a crash leaves no half file under a digest's name). The
store is bounded: :meth:`InputStore.prune` removes the least recently used inputs beyond a size.
No torch, no Qt: the worker, the CLI and the view-model share it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from studio.library.images import (
    ImageLoadError,
    SaveError,
    atomic_write_bytes,
    encode_image,
    load_image,
    sha256_image,
    to_rgb,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from PIL import Image

__all__ = ["DEFAULT_LIMIT", "InputStore", "is_digest"]

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 2 * 2**30
"""The store's size after pruning: about 5,000 canvases of 512 px, 300 of 2048 px."""

_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_digest(value: object) -> TypeGuard[str]:
    """Whether `value` is a SHA-256 as we write them: exactly 64 lowercase hex digits (nothing else can
    be a file name of the store)."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _as_stored(image: Image.Image) -> Image.Image:
    """The image as it is kept and read back: a mask (plain "L") stays one channel, anything else is
    RGB as :func:`sha256_image` sees it, so the hash of what is read back is the hash it was kept under.
    Both without Pillow's info (no EXIF orientation or transparency travels into the file)."""
    if image.mode == "L" and "transparency" not in image.info:
        kept = image.copy()
    else:
        rgb = to_rgb(image)
        kept = rgb.copy() if rgb is image else rgb
    kept.info = {}
    return kept


class InputStore:
    """Job inputs (init images, masks) by content under `root`: put once, read back verified."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: object) -> Path | None:
        """Where the image of `digest` is (or would be) kept; None unless `digest` is exactly 64 lowercase
        hex digits, so untrusted text never names a path outside the root. Says nothing of existence."""
        if not is_digest(digest):
            return None
        return self.root / digest[:2] / f"{digest}.png"

    def has(self, digest: object) -> bool:
        """Whether a file is kept under `digest` (not checked: :meth:`get` checks)."""
        path = self.path(digest)
        return path is not None and path.is_file()

    def put(self, image: Image.Image, digest: str | None = None) -> str:
        """Keep `image` (unless a good copy is kept already) and return its digest: `digest` when given
        (the hash the metadata records, so it is not computed twice), else :func:`sha256_image`'s.
        ValueError for a `digest` that is not one; OSError (a full or read-only disk: a one-line
        :class:`~studio.library.images.SaveError`) propagates."""
        return self._put(image, digest)[0]

    def keep(self, images: Mapping[str, Image.Image]) -> list[str]:
        """Keep several images given by digest (a :class:`~studio.engine.request.GenerationResult`'s
        ``inputs``); returns the digests written now (not those kept already). OSError propagates."""
        written = []
        for digest, image in images.items():
            name, new = self._put(image, digest)
            if new:
                written.append(name)
        return written

    def get(self, digest: object) -> Image.Image | None:
        """The image kept under `digest` ("L" for a mask, else RGB), or None: not a digest, not kept,
        unreadable, or its pixels no longer hash to its name (damaged or swapped: logged). Never raises
        for bad input."""
        path = self.path(digest)
        if path is None:
            return None
        try:
            if not path.is_file():
                return None
            image = load_image(path, convert=_as_stored)
        except (ImageLoadError, OSError) as exc:
            log.warning("kept input %s is unreadable: %s", path, exc)
            return None
        if sha256_image(image) != digest:
            log.warning("kept input %s does not match its name (damaged or replaced): not used", path)
            return None
        return image

    def prune(self, limit: int = DEFAULT_LIMIT) -> int:
        """Remove the least recently used inputs until the store holds at most `limit` bytes (each put
        marks its image used); returns how many files went. An image a result names but the store lost
        is said when it is reused: its parameters still come back, its canvas does not."""
        files = []
        for path in self.root.glob("??/*.png"):
            try:
                info = path.stat()
            except OSError:
                continue
            files.append((info.st_mtime, info.st_size, path))
        total = sum(size for _mtime, size, _path in files)
        removed = 0
        for _mtime, size, path in sorted(files):
            if total <= limit:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            removed += 1
        return removed

    def _put(self, image: Image.Image, digest: str | None) -> tuple[str, bool]:
        stored = _as_stored(image)
        actual = sha256_image(stored)
        digest = actual if digest is None else digest
        path = self.path(digest)
        if path is None:
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        if digest != actual:  # kept under a name it does not have, it could never be read back
            raise ValueError(f"the image does not hash to {digest}")
        if self.get(digest) is not None:  # deduplicated; a damaged copy is written again
            with contextlib.suppress(OSError):
                os.utime(path)  # used again: the last to go when the store is pruned
            return digest, False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # one readable line, as a failed save says it
            raise SaveError(f"cannot create folder {path.parent} ({exc.strerror or exc})") from exc
        atomic_write_bytes(path, encode_image(stored, "PNG"))
        return digest, True
