"""The job queue kept across a quit: what was running or waiting is saved, and offered again at start.

A JSON file of request fields, with each job's init image and inpainting mask beside it as PNGs
(job-N.png, job-N-mask.png: a request holds the canvas image itself, not a path, as the canvas may have
come from the clipboard). Written atomically; read as untrusted input: a damaged file or entry is
skipped and counted, never a crash. Files of older versions, without masks, still load.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.engine.errors import RequestError
from studio.engine.request import STORED_FIELDS, GenerationRequest, request_fields
from studio.library.images import ImageLoadError, atomic_write_bytes, encode_image, load_image
from studio.library.masks import MaskError, read_mask

__all__ = ["SavedQueue", "clear_queue", "load_queue", "save_queue"]

log = logging.getLogger(__name__)
VERSION = 1
MAX_JOBS = 1000


@dataclass
class SavedQueue:
    requests: list[GenerationRequest]
    skipped: int = 0  # entries that could not be read back (damaged file, init image or mask gone)


def _images_dir(path: Path) -> Path:
    return path.with_name(path.stem + "-images")


def _remove_images(images: Path) -> None:
    """The init images and masks a saved queue kept (only ours: job-N.png, job-N-mask.png)."""
    for file in images.glob("job-*.png"):
        file.unlink(missing_ok=True)


def save_queue(path: Path, requests: list[GenerationRequest]) -> None:
    """Write the requests (in run order); an empty list removes the file. Raises SaveError/OSError."""
    if not requests:
        clear_queue(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    images = _images_dir(path)
    _remove_images(images)  # from an earlier save
    entries: list[dict[str, Any]] = []
    for index, request in enumerate(requests[:MAX_JOBS]):
        entry: dict[str, Any] = {"request": request_fields(request), "init_image": None, "mask_image": None}
        source = request.init_image
        if source is not None:
            images.mkdir(exist_ok=True)
            name = f"job-{index}.png"
            image = source if not isinstance(source, str | Path) else load_image(source)
            atomic_write_bytes(images / name, encode_image(image, "PNG"))
            entry["init_image"] = name
        if request.mask_image is not None:
            images.mkdir(exist_ok=True)
            name = f"job-{index}-mask.png"
            mask = read_mask(request.mask_image)  # a mask as the engine reads it: one channel, kept exactly
            mask.info = {}
            atomic_write_bytes(images / name, encode_image(mask, "PNG"))
            entry["mask_image"] = name
        entries.append(entry)
    payload = {"version": VERSION, "jobs": entries}
    atomic_write_bytes(path, json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8"))


def load_queue(path: Path) -> SavedQueue:
    """The saved requests, each checked as a new request would be; unreadable ones are skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SavedQueue([])
    except (OSError, ValueError) as exc:
        log.warning("saved queue %s is unreadable: %s", path, exc)
        return SavedQueue([], skipped=1)
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        return SavedQueue([], skipped=1)
    requests: list[GenerationRequest] = []
    skipped = 0
    for entry in jobs[:MAX_JOBS]:
        request = _request_from(entry, _images_dir(path))
        if request is None:
            skipped += 1
        else:
            requests.append(request)
    return SavedQueue(requests, skipped)


def _request_from(entry: Any, images: Path) -> GenerationRequest | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        return None
    values = {k: v for k, v in entry["request"].items() if k in STORED_FIELDS}
    if isinstance(values.get("expand"), list):  # JSON has no tuples: back to the request's own type
        values["expand"] = tuple(values["expand"])
    name, mask_name = entry.get("init_image"), entry.get("mask_image")
    try:
        if name is not None:
            if not _is_ours(name):
                return None
            values["init_image"] = load_image(images / name)
        if mask_name is not None:
            if not _is_ours(mask_name):
                return None
            values["mask_image"] = read_mask(images / mask_name)
        request = GenerationRequest(**values)
        request.validate()
    except (TypeError, RequestError, ImageLoadError, MaskError):
        return None
    return request


def _is_ours(name: Any) -> bool:
    """A bare file name, so inside our folder only (the JSON is untrusted: never "../x" or a full path)."""
    return isinstance(name, str) and bool(name) and Path(name).name == name


def clear_queue(path: Path) -> None:
    """Forget the saved queue (after it was resumed or discarded)."""
    path.unlink(missing_ok=True)
    images = _images_dir(path)
    if images.is_dir():
        _remove_images(images)
        with contextlib.suppress(OSError):  # not empty (someone else's file): leave it
            images.rmdir()
