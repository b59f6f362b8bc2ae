"""The reader: which tool wrote an image, and its metadata in our fields."""

from __future__ import annotations

import os

from PIL import Image

from studio.library.metadata.a1111 import from_a1111, looks_like_a1111
from studio.library.metadata.comfyui import from_comfy
from studio.library.metadata.containers import file_texts, pillow_texts
from studio.library.metadata.invokeai import from_invokeai, from_invokeai_legacy
from studio.library.metadata.ours import from_studio, valid_studio
from studio.library.metadata.record import ImageMetadata
from studio.library.metadata.values import PARAMETERS_KEY, STUDIO_KEY, safe_json, truncate


def _interpret(texts: dict[str, str]) -> ImageMetadata | None:
    raw = {key: truncate(value) for key, value in texts.items()}

    studio = valid_studio(texts.get(STUDIO_KEY)) or valid_studio(texts.get("exif:ImageDescription"))
    if studio is not None:
        result = from_studio(studio)
        result.raw = raw
        return result

    parameters = texts.get(PARAMETERS_KEY)
    if parameters is not None and not parameters.strip():
        parameters = None
    if parameters is None:
        for key in ("exif:UserComment", "comment", "Comment", "Description"):
            if looks_like_a1111(texts.get(key)):
                parameters = texts[key]
                break
    if parameters is not None:
        as_json = safe_json(parameters)
        if isinstance(as_json, dict):  # some tools (Fooocus ...) put JSON under "parameters"
            result = from_invokeai(as_json)
            result.source = "unknown"
        else:
            result = from_a1111(parameters)
        result.raw = raw
        return result

    invoke = safe_json(texts.get("invokeai_metadata"))
    if isinstance(invoke, dict):
        result = from_invokeai(invoke)
        result.raw = raw
        return result
    legacy = safe_json(texts.get("sd-metadata"))
    if isinstance(legacy, dict):
        result = from_invokeai_legacy(legacy)
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
    comfy = from_comfy(graph) if isinstance(graph, dict) else None
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
    when a file cannot be read as an image at all.
    """
    if isinstance(source, Image.Image):
        texts = pillow_texts(source)
    elif isinstance(source, str | os.PathLike | bytes | bytearray):
        texts = file_texts(source)
    else:
        raise TypeError(f"read_metadata() needs a path, bytes or a PIL image, not {type(source).__name__}")
    return _interpret(texts)
