"""A generation request as JSON, for the network: the fields of our metadata's `request` object, with the
init image and the mask as base64 image files.

The server reads requests with :func:`request_from_json` (untrusted input: every key and type checked, an
image decoded with the library's size limits, the model name passed through the server's own policy) and
the remote client writes them with :func:`request_to_json`. The checks after parsing are the CLI's
(:meth:`GenerationRequest.validate`), so both refuse the same requests with the same words.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from studio.engine.errors import RequestError
from studio.engine.request import STORED_FIELDS, GenerationRequest, request_fields

IMAGE_FIELDS = ("init_image", "mask_image")
DIGEST_FIELDS = ("init_image_sha256", "mask_image_sha256")
"""Hashes our metadata records beside the request; accepted so that a metadata `request` object can be sent
back as it is, and checked against the images sent with it."""
MAX_IMAGE_FILE_BYTES = 48 << 20
"""An init image or mask file larger than this (48 MiB, before base64) is refused undecoded."""

ModelPolicy = Callable[[str], str]
"""The server's rule for model names: the name a client gave -> what the engine loads; RequestError
(field "model") for a name it does not offer."""


def request_from_json(data: Any, resolve_model: ModelPolicy) -> GenerationRequest:
    """The request a client sent, checked as the CLI checks one; RequestError naming the field at fault."""
    if not isinstance(data, Mapping):
        raise RequestError("the request must be a JSON object of generation fields")
    known = STORED_FIELDS | set(IMAGE_FIELDS) | set(DIGEST_FIELDS)
    unknown = sorted(str(key)[:40] for key in data if key not in known)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})", field=unknown[0])
    values = {key: data[key] for key in data if key in STORED_FIELDS}
    model = values.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("name a model (see GET /v1/models)", field="model")
    values["model"] = resolve_model(model)
    if "prompt" not in values:
        raise RequestError("the request has no prompt", field="prompt")
    if isinstance(values.get("expand"), list):
        values["expand"] = tuple(values["expand"])
    for name, digest_name in zip(IMAGE_FIELDS, DIGEST_FIELDS, strict=True):
        encoded = data.get(name)
        if encoded is None:
            if data.get(digest_name) is not None:
                raise RequestError(f"{digest_name} is given without the {_label(name)} itself: send the image", field=name)
            continue
        image = decode_image(name, encoded)
        _check_digest(name, image, data.get(digest_name))
        values[name] = image
    request = GenerationRequest(**values)
    request.validate()
    return request


def _label(name: str) -> str:
    return "init image" if name == "init_image" else "mask"


def decode_image(name: str, encoded: Any):
    """A base64 image file (PNG, JPEG, WebP) as the engine reads one from disk: the init image as RGB, a mask
    as grey (its alpha where it has transparency)."""
    from studio.library.images import ImageLoadError, load_image
    from studio.library.masks import to_mask

    if not isinstance(encoded, str):
        raise RequestError(f"{name} must be a base64 image file, got {type(encoded).__name__}", field=name)
    if len(encoded) > MAX_IMAGE_FILE_BYTES * 4 // 3 + 4:
        raise RequestError(f"{name} is over {MAX_IMAGE_FILE_BYTES >> 20} MiB", field=name)
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise RequestError(f"{name} is not valid base64", field=name) from None
    try:
        return load_image(raw, convert=to_mask if name == "mask_image" else None)
    except ImageLoadError as exc:
        raise RequestError(f"{_label(name)}: {exc}", field=name) from None


def _check_digest(name: str, image, digest: Any) -> None:
    from studio.library.images import sha256_image

    if digest is None:
        return
    if not isinstance(digest, str) or digest != sha256_image(image):
        raise RequestError(f"the {_label(name)} sent differs from the one its hash names", field=name)


def request_to_json(request: GenerationRequest) -> dict[str, Any]:
    """The request as the server reads it: its fields, and an init image or mask as base64 file bytes (a
    file's own bytes as they are; an image in memory as PNG, lossless, so the server hashes the same
    pixels)."""
    data = {key: value for key, value in request_fields(request).items() if value is not None}
    for name in IMAGE_FIELDS:
        source = getattr(request, name)
        if source is not None:
            data[name] = base64.b64encode(_file_bytes(source)).decode("ascii")
    return data


def _file_bytes(source) -> bytes:
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    return buffer.getvalue()
