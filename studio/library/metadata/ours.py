"""Our JSON (the ``latent-studio`` entry): written strictly, read back only when it is valid and ours."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from studio.library.metadata.record import ImageMetadata, mask_fields
from studio.library.metadata.values import (
    APP_NAME,
    as_float,
    as_int,
    as_str,
    clean_value,
    display_value,
    fmt_number,
    safe_json,
)


def _json_default(value: Any) -> Any:
    """Let numpy scalars and paths through json.dumps; everything else is a bug in the caller."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        result = item()
        if isinstance(result, int | float | bool | str):
            return result
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON serialisable")


def studio_json(meta: Mapping[str, Any], *, ascii_only: bool = False) -> str:
    """Our JSON as stored in files.  Strict (no NaN, no arbitrary objects): files must stay valid JSON.

    A lone surrogate in a string (a prompt pasted from a broken source) is written as U+FFFD: as
    UTF-8 it could not be stored at all, and as a ``\\udXXX`` escape it would read back as invalid text.
    """
    document = clean_value(dict(meta))
    return json.dumps(document, ensure_ascii=ascii_only, allow_nan=False, default=_json_default)


def valid_studio(text: str | None) -> dict[str, Any] | None:
    data = safe_json(text)
    if not isinstance(data, dict) or data.get("app") != APP_NAME:
        return None
    schema = data.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        return None
    if not isinstance(data.get("request", {}), dict):
        return None
    return data


def _networks_line(entries: Any, *, weights: bool) -> str | None:
    """"style (9573fe6cec15) 0.8, detail (1a2b3c4d5e6f) te 0.5 unet 1" from our JSON's loras/embeddings
    list (untrusted: entries that are not what we write are skipped)."""
    if not isinstance(entries, list):
        return None
    parts = []
    for entry in entries[:50]:
        if not isinstance(entry, dict) or not as_str(entry.get("name")):
            continue
        text = as_str(entry.get("name"))
        digest = as_str(entry.get("sha256"))
        if digest:
            text += f" ({digest[:12]})"
        te, unet = as_float(entry.get("te")), as_float(entry.get("unet"))
        if weights and te is not None and unet is not None:
            text += f" {fmt_number(te)}" if te == unet else f" te {fmt_number(te)} unet {fmt_number(unet)}"
        parts.append(text)
    return ", ".join(parts) or None


def from_studio(meta: dict[str, Any]) -> ImageMetadata:
    request = meta.get("request")
    request = request if isinstance(request, dict) else {}
    model = meta.get("model")
    model = model if isinstance(model, dict) else {}
    seed = as_int(meta.get("seed"))
    if seed is None:
        seed = as_int(request.get("seed"))
    # What "reuse parameters" hands back as the model must load it again: a local folder or file by its
    # path (its id is only the folder's name), a catalogue entry or hub model by its id.
    model_ref = (
        as_str(model.get("path")) or as_str(model.get("id")) or as_str(model.get("repo")) or as_str(request.get("model"))
    )
    extra: dict[str, str] = {}
    for label, value in (
        ("Guidance rescale", request.get("guidance_rescale")),
        ("Batch", request.get("batch")),
        ("Batch index", meta.get("batch_index")),
        ("Model repo", model.get("repo")),
        ("Model revision", model.get("revision")),
        ("Model path", model.get("path")),
        ("Model hash", model.get("hash")),
        ("LoRAs", _networks_line(meta.get("loras"), weights=True)),
        ("Embeddings", _networks_line(meta.get("embeddings"), weights=False)),
        ("Init image sha256", request.get("init_image_sha256")),
        ("Mask sha256", request.get("mask_image_sha256")),
        ("Device", meta.get("device")),
        ("Dtype", meta.get("dtype")),
        ("Backend", meta.get("backend")),
        (
            "Version",
            f"{APP_NAME} {meta['app_version']}" if isinstance(meta.get("app_version"), str) else None,
        ),
        ("Created", meta.get("created")),
    ):
        shown = display_value(value) if not isinstance(value, bool) else None
        if shown is not None:
            extra[label] = shown
    nsfw = meta.get("nsfw")
    masking = mask_fields(request)
    # Every request records invert_mask (False for txt2img): it says something only for a masked one, which
    # build_metadata marks by its mask hash (None for an outpainting without a mask) and its filled-in blur.
    masked = "mask_image_sha256" in request or request.get("mask_blur") is not None
    masked = masked or request.get("expand") is not None
    if not masked:
        masking["invert_mask"] = None
    return ImageMetadata(
        source="latent-studio",
        prompt=as_str(request.get("prompt")),
        negative_prompt=as_str(request.get("negative_prompt")),
        steps=as_int(request.get("steps")),
        guidance=as_float(request.get("guidance")),
        seed=seed,
        width=as_int(request.get("width")),
        height=as_int(request.get("height")),
        scheduler=as_str(request.get("scheduler")),
        model=model_ref,
        strength=as_float(request.get("strength")),
        guidance_rescale=as_float(request.get("guidance_rescale")),
        nsfw=nsfw if isinstance(nsfw, bool) else None,
        **masking,
        studio=meta,
        extra=extra,
    )
