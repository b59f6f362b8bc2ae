"""The reader: which tool wrote an image, and its metadata in our fields.

Readers return partial data, never raise for content: each tool's format is interpreted on its own,
and anything unexpected while interpreting one (a bug, a document no one foresaw) costs only that
part, as if it were missing.  Only a file that is not a readable image raises (:class:`MetadataError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from PIL import Image

from studio.library.metadata.a1111 import from_a1111, looks_like_a1111
from studio.library.metadata.comfyui import from_comfy
from studio.library.metadata.containers import file_texts, pillow_texts
from studio.library.metadata.invokeai import from_invokeai, from_invokeai_legacy
from studio.library.metadata.ours import from_studio, valid_studio
from studio.library.metadata.record import ImageMetadata, checked
from studio.library.metadata.values import PARAMETERS_KEY, STUDIO_KEY, clean_text, safe_json, truncate

_T = TypeVar("_T")


def _attempt(reader: Callable[..., _T], *args: Any) -> _T | None:
    """`reader(*args)`, or None when it fails: one format's surprise must not hide the others (or the
    file's other text) nor turn into an error for a file that is a perfectly good image."""
    try:
        return reader(*args)
    except Exception:  # deliberately any: untrusted content, partial data wanted
        return None


def _interpret(texts: dict[str, str]) -> ImageMetadata | None:
    raw = {key: truncate(value) for key, value in texts.items()}

    studio = _attempt(valid_studio, texts.get(STUDIO_KEY)) or _attempt(
        valid_studio, texts.get("exif:ImageDescription")
    )
    result = _attempt(from_studio, studio) if studio is not None else None
    if result is not None:
        result.raw = raw
        return result

    parameters = texts.get(PARAMETERS_KEY)
    if parameters is not None and not parameters.strip():
        parameters = None
    if parameters is None:
        for key in ("exif:UserComment", "comment", "Comment", "Description"):
            if _attempt(looks_like_a1111, texts.get(key)):
                parameters = texts[key]
                break
    if parameters is not None:
        as_json = safe_json(parameters)
        if isinstance(as_json, dict):  # some tools (Fooocus ...) put JSON under "parameters"
            result = _attempt(from_invokeai, as_json)
            if result is not None:
                result.source = "unknown"
        else:
            result = _attempt(from_a1111, parameters)
        if result is not None:
            result.raw = raw
            return result

    invoke = safe_json(texts.get("invokeai_metadata"))
    if isinstance(invoke, dict):
        result = _attempt(from_invokeai, invoke)
        if result is not None:
            result.raw = raw
            return result
    legacy = safe_json(texts.get("sd-metadata"))
    if isinstance(legacy, dict):
        result = _attempt(from_invokeai_legacy, legacy)
        if result is not None:
            result.raw = raw
            return result

    prompt_text = texts.get("prompt")
    workflow_text = texts.get("workflow")
    for key in ("exif:Model", "exif:Make", "exif:ImageDescription"):  # ComfyUI's WebP/animated saves
        value = texts.get(key, "")
        if prompt_text is None and value.startswith("prompt:"):
            prompt_text = value[len("prompt:") :]
        elif workflow_text is None and value.startswith("workflow:"):
            workflow_text = value[len("workflow:") :]
    graph = safe_json(prompt_text)
    comfy = _attempt(from_comfy, graph) if isinstance(graph, dict) else None
    if comfy is not None:
        comfy.raw = raw
        return comfy
    if isinstance(safe_json(workflow_text), dict):
        return ImageMetadata(source="comfyui", raw=raw)
    return None


def read_metadata(source: str | os.PathLike[str] | bytes | Image.Image) -> ImageMetadata | None:
    """Generation metadata of an image file (path or bytes) or of an already-open Pillow image.

    Precedence: ours (``latent-studio`` JSON, app and schema checked) > A1111 ``parameters`` (PNG text,
    EXIF UserComment, JPEG/GIF comment) > InvokeAI (``invokeai_metadata``, legacy ``sd-metadata``) >
    ComfyUI (``prompt`` API graph; ``workflow`` alone gives source "comfyui" with no fields).
    Returns None when the image carries no generation metadata.  Raises :class:`MetadataError` only
    when a file cannot be read as an image at all (and TypeError for a `source` of the wrong type).

    Whatever comes back holds only valid Unicode (lone surrogates replaced by U+FFFD), fields of their
    annotated types within plausible ranges, and JSON-ready ``studio`` / ``raw`` / ``extra``: so
    ``json.dumps(meta.to_dict(), ensure_ascii=False).encode("utf-8")`` always works.
    """
    if isinstance(source, Image.Image):
        texts = pillow_texts(source)
    elif isinstance(source, str | os.PathLike | bytes | bytearray):
        texts = file_texts(source)
    else:
        raise TypeError(f"read_metadata() needs a path, bytes or a PIL image, not {type(source).__name__}")
    # Decoded file text is valid already; an in-memory Pillow image's info may hold anything.
    texts = {clean_text(key): clean_text(value) for key, value in texts.items()}
    result = _interpret(texts)
    return checked(result) if result is not None else None
