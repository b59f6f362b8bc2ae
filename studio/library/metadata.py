"""Generation metadata: write ours (A1111 ``parameters`` text + our JSON), read ours and other tools'.

Why both formats: the AUTOMATIC1111 ``parameters`` text is what the ecosystem reads (A1111 "PNG Info",
Civitai, image browsers), while our JSON (``latent-studio`` key) carries everything needed to
regenerate the same pixels (model revision, scheduler config, dtype, device ...), which the A1111
layout cannot express without loss.

Where things go:

* PNG: ``parameters`` as ``tEXt`` when the text is plain ASCII, else ``iTXt`` (UTF-8); our JSON as
  ``iTXt`` ``latent-studio``.  We write ``tEXt`` only for ASCII (the brief said "latin-1") because
  third-party writers often put UTF-8 bytes into ``tEXt``; readers (ours included) then have to
  guess, and ASCII is the one case where every guess agrees.
* JPEG / WebP: EXIF ``UserComment`` (0x9286) = ``b"UNICODE\\0"`` + the A1111 text in UTF-16 big-endian,
  byte for byte what A1111 writes through ``piexif.helper.UserComment.dump(text, encoding="unicode")``;
  our JSON (ASCII-only, ``ensure_ascii``) in ``ImageDescription`` (0x010E), and ``Software`` (0x0131) =
  ``latent-studio <version>``.  ImageDescription was chosen over MakerNote (tools rewrite or drop
  maker notes whose layout they do not know) and XPComment (Windows-only, shown in Explorer).  A JPEG
  APP1 segment holds at most 65,533 bytes: when both do not fit, the JSON is dropped first (the
  A1111 text still lets people reuse the parameters), then the comment.

Everything read is untrusted: nothing is evaluated, text entries over :data:`MAX_TEXT_BYTES` are
ignored, decompression is capped, JSON errors / absurd nesting give ``None`` and the readers return
partial data rather than raising.  Only "this is not a readable image" raises :class:`MetadataError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image, PngImagePlugin, UnidentifiedImageError

__all__ = [
    "JPEG_EXIF_LIMIT",
    "MAX_TEXT_BYTES",
    "PARAMETERS_KEY",
    "STUDIO_KEY",
    "ImageMetadata",
    "MetadataError",
    "decode_user_comment",
    "exif_for",
    "format_parameters",
    "parse_parameters",
    "pnginfo_for",
    "read_metadata",
    "split_scheduler",
    "studio_json",
]

STUDIO_KEY = "latent-studio"
"""PNG iTXt key (and ``app`` value) of our JSON."""
PARAMETERS_KEY = "parameters"
"""PNG text key of the A1111 text."""
APP_NAME = "latent-studio"
SCHEMA_VERSION = 1

MAX_TEXT_BYTES = 1 << 20
"""A single text entry larger than this (1 MiB) is ignored: no real prompt or graph comes close."""
MAX_TOTAL_TEXT_BYTES = 8 << 20
MAX_TEXT_ENTRIES = 64
RAW_LIMIT = 64 * 1024
"""Characters kept per entry in :attr:`ImageMetadata.raw` (ComfyUI workflows can be large)."""
MAX_GRAPH_NODES = 10_000
MAX_SEGMENTS = 4096
"""``Key: value`` segments read from one parameters line (real ones have a few dozen)."""
MAX_TRAILING_LINES = 64
"""How far from the end the ``Steps:`` line is looked for."""
MAX_PNG_CHUNKS = 200_000
JPEG_EXIF_LIMIT = 65533
"""Largest EXIF payload a JPEG APP1 segment can carry (Pillow refuses more)."""

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_EXIF_IFD = 0x8769
TAG_USER_COMMENT = 0x9286

_UC_UNICODE = b"UNICODE\x00"
_UC_ASCII = b"ASCII\x00\x00\x00"
_UC_JIS = b"JIS\x00\x00\x00\x00\x00"
_UC_UNDEFINED = b"\x00" * 8

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KNOWN_KEYS = frozenset(
    {STUDIO_KEY, PARAMETERS_KEY, "prompt", "workflow", "invokeai_metadata", "sd-metadata"}
)


class MetadataError(ValueError):
    """The file is not a readable image; the message is one line naming the file."""


# --------------------------------------------------------------------------------------------------
# Small, defensive conversions (values come from untrusted files)
# --------------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d{1,40}")


def _as_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        number = _as_float(text)
        if number is not None and number.is_integer():
            return int(number)
    return None


def _as_float(value: Any) -> float | None:
    """A finite float from a number or a short numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _fmt_number(value: Any) -> str:
    """Number formatting for the A1111 text: 7.0 -> "7", 7.5 -> "7.5", 0.1 -> "0.1"."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def _truncate(text: str, limit: int = RAW_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [truncated, {len(text)} characters]"


def _safe_json(text: str | None) -> Any:
    """Parse JSON text of sane size; None on any problem (bad syntax, huge numbers, deep nesting)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_BYTES:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


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
    """Our JSON as stored in files.  Strict (no NaN, no arbitrary objects): files must stay valid JSON."""
    return json.dumps(dict(meta), ensure_ascii=ascii_only, allow_nan=False, default=_json_default)


# --------------------------------------------------------------------------------------------------
# A1111 "parameters" text: writing
# --------------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A1111's rule: a value containing ',', ':' or a newline is written as a JSON string."""
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def split_scheduler(name: str | None) -> tuple[str | None, str | None]:
    """Our scheduler name -> (A1111 Sampler, Schedule type): "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras")."""
    if not name:
        return None, None
    if name.endswith(" Karras") and name[: -len(" Karras")].strip():
        return name[: -len(" Karras")].strip(), "Karras"
    return name, "Automatic"


def _basename(text: str) -> str:
    return re.split(r"[\\/]", text.rstrip("/\\"))[-1]


def _model_display_name(model: Mapping[str, Any]) -> str | None:
    """The A1111 ``Model`` value: our id, else the repo or file name without its extension."""
    model_id = _as_str(model.get("id"))
    if model_id:
        return model_id
    for key in ("repo", "path"):
        value = _as_str(model.get(key))
        if value:
            name = _basename(value)
            return re.sub(r"\.(safetensors|ckpt|bin|pt|pth)$", "", name, flags=re.IGNORECASE) or name
    return None


def format_parameters(meta: Mapping[str, Any]) -> str:
    """The AUTOMATIC1111 ``parameters`` text for our metadata dict.

    Layout (A1111's own): the prompt; ``Negative prompt: ...`` unless empty; one line of ``Key: value``
    pairs joined by ", ".  Missing values are left out rather than written as "None", so a partial
    dict still gives valid text.  Like A1111, the whole text is stripped at the ends.
    """
    request = meta.get("request")
    request = request if isinstance(request, Mapping) else {}
    model = meta.get("model")
    model = model if isinstance(model, Mapping) else {}

    prompt = _as_str(request.get("prompt")) or ""
    negative = _as_str(request.get("negative_prompt")) or ""
    sampler, schedule = split_scheduler(_as_str(request.get("scheduler")))
    seed = meta.get("seed", request.get("seed"))
    width, height = _as_int(request.get("width")), _as_int(request.get("height"))
    strength = request.get("strength")
    app_version = _as_str(meta.get("app_version"))

    pairs: list[tuple[str, Any]] = [
        ("Steps", request.get("steps")),
        ("Sampler", sampler),
        ("Schedule type", schedule),
        ("CFG scale", request.get("guidance")),
        ("Seed", seed),
        ("Size", f"{width}x{height}" if width is not None and height is not None else None),
        ("Model hash", model.get("hash") or None),
        ("Model", _model_display_name(model)),
        ("Denoising strength", strength),
        ("Version", f"{APP_NAME} {app_version}" if app_version else APP_NAME),
    ]
    line = ", ".join(f"{key}: {_quote(_fmt_number(value))}" for key, value in pairs if value is not None)
    negative_text = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_text}\n{line}".strip()


# --------------------------------------------------------------------------------------------------
# A1111 "parameters" text: parsing
# --------------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"\w[\w \-/.()+#]{0,79}")


class _Budget:
    """Characters that nested value scans (quoted / bracketed) may still span on one line.

    An unclosed quote or bracket makes a scan run to the end of the line; without a shared budget a
    hostile line of many such values would cost quadratic time.  Once spent, values are read the plain
    way (up to the next comma), which is still a valid, if less faithful, parse.
    """

    def __init__(self, line: str) -> None:
        self.left = 2 * len(line) + 65536
        self.bracket_steps = 20_000


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_RE = re.compile(r'["{}\[\]]')


def _scan_string(line: str, start: int, budget: _Budget) -> int:
    """Index just after the JSON string starting at ``start`` (a quote), or -1 if it never closes."""
    if budget.left <= 0:
        return -1
    match = _STRING_RE.match(line, start)
    budget.left -= (match.end() if match else len(line)) - start
    return match.end() if match else -1


def _scan_balanced(line: str, start: int, budget: _Budget) -> int:
    """Index just after the bracketed JSON value at ``start`` ({ or [), strings respected; -1 if open."""
    depth, position = 0, start
    while budget.left > 0 and budget.bracket_steps > 0:
        budget.bracket_steps -= 1
        match = _BRACKET_RE.search(line, position)
        if match is None:
            budget.left -= len(line) - position
            return -1
        budget.left -= match.end() - position
        char = match.group()
        if char == '"':
            end = _scan_string(line, match.start(), budget)
            if end < 0:
                return -1
            position = end
            continue
        depth += 1 if char in "{[" else -1
        position = match.end()
        if depth == 0:
            return position
    return -1


def _scan_pairs(line: str) -> list[tuple[str, str]]:
    """``Key: value, Key: "quoted, value", ...`` -> pairs.  Linear time; junk segments are skipped.

    Handles A1111's JSON-quoted values (with escapes) and, for tools that write JSON unquoted
    (``Hashes: {"model": "..", "vae": ".."}``), bracketed values that contain commas.
    """
    pairs: list[tuple[str, str]] = []
    budget = _Budget(line)
    i, n = 0, len(line)
    colon = -1
    for _ in range(MAX_SEGMENTS):
        if i >= n:
            break
        while i < n and line[i] in " \t,":
            i += 1
        if i >= n:
            break
        if colon < i:  # reuse the last search: scanning for ':' again from every comma is quadratic
            colon = line.find(":", i)
            if colon < 0:
                break
        key = line[i:colon].strip() if colon - i <= 100 else ""
        if not _KEY_RE.fullmatch(key):
            comma = line.find(",", i)
            if comma < 0:
                break
            i = comma + 1
            continue
        j = colon + 1
        while j < n and line[j] in " \t":
            j += 1
        end = -1
        value = ""
        if j < n and line[j] == '"':
            end = _scan_string(line, j, budget)
            if end > 0:
                raw = line[j:end]
                try:
                    decoded = json.loads(raw)
                except ValueError:
                    decoded = None
                value = decoded if isinstance(decoded, str) else raw[1:-1]
        elif j < n and line[j] in "{[":
            end = _scan_balanced(line, j, budget)
            if end > 0:
                value = line[j:end]
        if end > 0:
            pairs.append((key, value))
            comma = line.find(",", end)
            i = n if comma < 0 else comma + 1
            continue
        comma = line.find(",", j)
        stop = n if comma < 0 else comma
        pairs.append((key, line[j:stop].strip()))
        i = stop + 1
    return pairs


def _find_params_line(lines: list[str]) -> int | None:
    """Index of the ``Steps: ...`` line.

    A1111 only looks at the last line (and needs 3 pairs there); we also accept the bottom-most line
    starting with "Steps:" among the last :data:`MAX_TRAILING_LINES`, so text that tools append after
    it does not turn the parameters into prompt text.
    """
    for index in range(len(lines) - 1, max(-1, len(lines) - 1 - MAX_TRAILING_LINES), -1):
        text = lines[index].strip()
        if text.startswith("Steps:") and len(_scan_pairs(text)) >= 2:
            return index
    if lines and len(_scan_pairs(lines[-1])) >= 3:
        return len(lines) - 1
    return None


def parse_parameters(text: str) -> dict[str, Any]:
    """Parse A1111 ``parameters`` text.

    Returns ``{"prompt": str, "negative_prompt": str, "params": {key: str}}`` plus ``"trailing"``
    (text after the parameters line that is not ``Key: value`` pairs) when there is any.  Quoted
    values are unquoted; keys keep A1111's spelling ("CFG scale", "Lora hashes" ...).  Never raises.
    """
    if not isinstance(text, str):
        text = ""
    text = text[:MAX_TEXT_BYTES].replace("\r\n", "\n").replace("\r", "\n").strip().replace("\x00", "")
    lines = text.split("\n") if text else []
    params: dict[str, str] = {}
    trailing: list[str] = []
    index = _find_params_line(lines)
    body = lines
    if index is not None:
        params.update(_scan_pairs(lines[index].strip()))
        for extra_line in lines[index + 1 :]:
            pairs = _scan_pairs(extra_line.strip())
            if pairs:
                for key, value in pairs:
                    params.setdefault(key, value)
            elif extra_line.strip():
                trailing.append(extra_line.strip())
        body = lines[:index]

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for raw_line in body:
        line = raw_line.strip()
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
        "params": params,
    }
    if trailing:
        result["trailing"] = "\n".join(trailing)
    return result


def _looks_like_a1111(text: str | None) -> bool:
    """For generic fields (EXIF comment, JPEG comment): only count text that has a parameters line."""
    if not text:
        return False
    params = parse_parameters(text)["params"]
    return "Steps" in params or len(params) >= 3


# --------------------------------------------------------------------------------------------------
# The result type
# --------------------------------------------------------------------------------------------------

_SOURCE_LABELS = {
    "latent-studio": "Latent Studio",
    "a1111": "AUTOMATIC1111 parameters",
    "comfyui": "ComfyUI",
    "invokeai": "InvokeAI",
    "unknown": "unknown tool",
}


@dataclass
class ImageMetadata:
    """What an image says about how it was made, normalised across tools.

    ``studio`` is our full JSON when the image came from us (the only source precise enough to
    regenerate pixels); ``raw`` keeps the text entries found (truncated) so nothing is hidden from
    the user; ``extra`` holds other tool parameters as display strings.
    """

    source: str
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    model: str | None = None
    strength: float | None = None
    nsfw: bool | None = None
    studio: dict[str, Any] | None = None
    raw: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    REQUEST_FIELDS: ClassVar[tuple[str, ...]] = (
        "prompt",
        "negative_prompt",
        "steps",
        "guidance",
        "seed",
        "width",
        "height",
        "scheduler",
        "model",
        "strength",
    )

    def to_request_fields(self) -> dict[str, Any]:
        """The non-None request fields, for "reuse parameters" (names match GenerationRequest)."""
        return {name: getattr(self, name) for name in self.REQUEST_FIELDS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``studio info --json``)."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """Human-readable lines for ``studio info``."""
        lines = [f"Source: {_SOURCE_LABELS.get(self.source, self.source)}"]
        if self.prompt is not None:
            lines.append(f"Prompt: {self.prompt}")
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        size = f"{self.width}x{self.height}" if self.width is not None and self.height is not None else None
        for label, value in (
            ("Steps", self.steps),
            ("Guidance (CFG)", self.guidance),
            ("Seed", self.seed),
            ("Size", size),
            ("Scheduler", self.scheduler),
            ("Model", self.model),
            ("Strength", self.strength),
            ("NSFW", self.nsfw),
        ):
            if value is not None:
                lines.append(f"{label}: {_fmt_number(value)}")
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Interpreting each tool's data
# --------------------------------------------------------------------------------------------------


def _valid_studio(text: str | None) -> dict[str, Any] | None:
    data = _safe_json(text)
    if not isinstance(data, dict) or data.get("app") != APP_NAME:
        return None
    schema = data.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        return None
    if not isinstance(data.get("request", {}), dict):
        return None
    return data


def _from_studio(meta: dict[str, Any]) -> ImageMetadata:
    request = meta.get("request")
    request = request if isinstance(request, dict) else {}
    model = meta.get("model")
    model = model if isinstance(model, dict) else {}
    seed = _as_int(meta.get("seed"))
    if seed is None:
        seed = _as_int(request.get("seed"))
    model_ref = _as_str(model.get("id")) or _as_str(model.get("repo")) or _as_str(model.get("path"))
    extra: dict[str, str] = {}
    for label, value in (
        ("Guidance rescale", request.get("guidance_rescale")),
        ("Batch", request.get("batch")),
        ("Batch index", meta.get("batch_index")),
        ("Model repo", model.get("repo")),
        ("Model revision", model.get("revision")),
        ("Model path", model.get("path")),
        ("Model hash", model.get("hash")),
        ("Init image sha256", request.get("init_image_sha256")),
        ("Device", meta.get("device")),
        ("Dtype", meta.get("dtype")),
        (
            "Version",
            f"{APP_NAME} {meta['app_version']}" if isinstance(meta.get("app_version"), str) else None,
        ),
        ("Created", meta.get("created")),
    ):
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            extra[label] = _fmt_number(value)
    nsfw = meta.get("nsfw")
    return ImageMetadata(
        source="latent-studio",
        prompt=_as_str(request.get("prompt")),
        negative_prompt=_as_str(request.get("negative_prompt")),
        steps=_as_int(request.get("steps")),
        guidance=_as_float(request.get("guidance")),
        seed=seed,
        width=_as_int(request.get("width")),
        height=_as_int(request.get("height")),
        scheduler=_as_str(request.get("scheduler")),
        model=model_ref,
        strength=_as_float(request.get("strength")),
        nsfw=nsfw if isinstance(nsfw, bool) else None,
        studio=meta,
        extra=extra,
    )


_SIZE_RE = re.compile(r"\s*(\d{1,6})\s*x\s*(\d{1,6})\s*")


def _combine_scheduler(sampler: str | None, schedule: str | None) -> str | None:
    """A1111 Sampler + Schedule type -> one name in our style ("DPM++ 2M" + "Karras" -> "DPM++ 2M Karras")."""
    if not sampler:
        return None
    if not schedule or schedule == "Automatic" or sampler.endswith(f" {schedule}"):
        return sampler
    return f"{sampler} {schedule}"


def _from_a1111(text: str) -> ImageMetadata:
    parsed = parse_parameters(text)
    params: dict[str, str] = dict(parsed["params"])
    used = {"Steps", "CFG scale", "Seed", "Size", "Model", "Sampler", "Schedule type"}
    width = height = None
    match = _SIZE_RE.fullmatch(params.get("Size", ""))
    if match:
        width, height = int(match.group(1)), int(match.group(2))
    # A txt2img "Denoising strength" belongs to the hires-fix pass, not to img2img.
    hires = any(key.startswith(("Hires ", "First pass size")) for key in params)
    strength = None if hires else _as_float(params.get("Denoising strength"))
    if strength is not None:
        used.add("Denoising strength")
    extra = {key: _truncate(value, 4096) for key, value in params.items() if key not in used}
    if "trailing" in parsed:
        extra["Trailing text"] = _truncate(parsed["trailing"], 4096)
    return ImageMetadata(
        source="a1111",
        prompt=parsed["prompt"],
        negative_prompt=parsed["negative_prompt"],
        steps=_as_int(params.get("Steps")),
        guidance=_as_float(params.get("CFG scale")),
        seed=_as_int(params.get("Seed")),
        width=width,
        height=height,
        scheduler=_combine_scheduler(params.get("Sampler") or None, params.get("Schedule type")),
        model=params.get("Model") or None,
        strength=strength,
        extra=extra,
    )


# Best-effort names in A1111 style, so "reuse parameters" can map them; the raw names stay in extra.
_COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
}
_COMFY_SCHEDULES = {
    "normal": None,
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM Uniform",
    "beta": "Beta",
}
_INVOKE_SCHEDULERS = {
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "deis": "DEIS",
    "lms": "LMS",
    "pndm": "PNDM",
    "heun": "Heun",
    "euler": "Euler",
    "euler_a": "Euler a",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
    "dpmpp_2s": "DPM++ 2S",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_3m": "DPM++ 3M",
    "unipc": "UniPC",
    "lcm": "LCM",
    "tcd": "TCD",
    "k_lms": "LMS",
    "k_euler": "Euler",
    "k_euler_a": "Euler a",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "k_dpmpp_2": "DPM++ 2M",
    "plms": "PLMS",
}


def _comfy_scheduler(sampler: str | None, schedule: str | None) -> str | None:
    if not sampler:
        return None
    name = _COMFY_SAMPLERS.get(sampler, sampler)
    suffix = _COMFY_SCHEDULES.get(schedule or "normal", schedule)
    return f"{name} {suffix}" if suffix else name


def _invoke_scheduler(name: str | None) -> str | None:
    if not name:
        return None
    if name in _INVOKE_SCHEDULERS:
        return _INVOKE_SCHEDULERS[name]
    if name.endswith("_k") and name[:-2] in _INVOKE_SCHEDULERS:
        return f"{_INVOKE_SCHEDULERS[name[:-2]]} Karras"
    return name


def _scalar_extras(data: Mapping[str, Any], skip: Iterable[str], limit: int = 48) -> dict[str, str]:
    """Top-level scalars of a tool's JSON as display strings (bounded)."""
    skipped = set(skip)
    extra: dict[str, str] = {}
    for key, value in data.items():
        if len(extra) >= limit:
            break
        if key in skipped or not isinstance(key, str):
            continue
        if isinstance(value, bool | int | float) or (isinstance(value, str) and value):
            extra[key] = _truncate(_fmt_number(value), 1024)
    return extra


def _from_invokeai(data: dict[str, Any]) -> ImageMetadata:
    model = data.get("model")
    model_name = None
    if isinstance(model, dict):
        model_name = _as_str(model.get("name")) or _as_str(model.get("model_name"))
    elif isinstance(model, str):
        model_name = model
    prompt = data.get("positive_prompt", data.get("prompt"))
    if isinstance(prompt, list):  # old style: [{"prompt": ..., "weight": ...}]
        prompt = " ".join(
            p["prompt"] for p in prompt if isinstance(p, dict) and isinstance(p.get("prompt"), str)
        )
    mode = _as_str(data.get("generation_mode")) or ""
    strength = None
    if "txt2img" not in mode:
        strength = _as_float(data.get("strength"))
        if strength is None:
            strength = _as_float(data.get("denoising_strength"))
    extra = _scalar_extras(
        data,
        skip=(
            "positive_prompt",
            "negative_prompt",
            "prompt",
            "seed",
            "steps",
            "cfg_scale",
            "width",
            "height",
            "scheduler",
            "model",
            "strength",
            "denoising_strength",
        ),
    )
    if isinstance(model, dict):
        base = _as_str(model.get("base")) or _as_str(model.get("base_model"))
        if base:
            extra["model base"] = base
    return ImageMetadata(
        source="invokeai",
        prompt=_as_str(prompt),
        negative_prompt=_as_str(data.get("negative_prompt")),
        steps=_as_int(data.get("steps")),
        guidance=_as_float(data.get("cfg_scale")),
        seed=_as_int(data.get("seed")),
        width=_as_int(data.get("width")),
        height=_as_int(data.get("height")),
        scheduler=_invoke_scheduler(_as_str(data.get("scheduler"))),
        model=model_name,
        strength=strength,
        extra=extra,
    )


def _from_invokeai_legacy(data: dict[str, Any]) -> ImageMetadata | None:
    """InvokeAI 2.x ``sd-metadata``: ``{"model_weights": ..., "image": {"prompt": [...], ...}}``."""
    image = data.get("image")
    if not isinstance(image, dict):
        return None
    flattened = dict(image)
    flattened["model"] = data.get("model_weights") or data.get("model")
    flattened.setdefault("generation_mode", image.get("type") or "")
    result = _from_invokeai(flattened)
    sampler = _as_str(image.get("sampler"))
    if sampler:
        result.scheduler = _invoke_scheduler(sampler)
    return result


class _ComfyGraph:
    """ComfyUI API graph (``{"id": {"class_type": ..., "inputs": {...}}}``), walked defensively.

    Every walk has a depth limit and a visited set, and the whole object has a step budget, so
    cycles, dangling links and hostile graphs end quickly with partial answers.
    """

    MAX_DEPTH = 48

    def __init__(self, graph: dict[Any, Any]) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        for key, node in list(graph.items())[:MAX_GRAPH_NODES]:
            if isinstance(node, dict) and isinstance(node.get("class_type"), str):
                inputs = node.get("inputs")
                self.nodes[str(key)] = {
                    "class": node["class_type"],
                    "inputs": inputs if isinstance(inputs, dict) else {},
                }
        self.budget = 20_000

    @staticmethod
    def link(value: Any) -> str | None:
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str | int)
            and not isinstance(value[0], bool)
            and isinstance(value[1], int)
        ):
            return str(value[0])
        return None

    def node(self, ref: Any) -> dict[str, Any] | None:
        self.budget -= 1
        if self.budget < 0:
            return None
        node_id = self.link(ref)
        return self.nodes.get(node_id) if node_id is not None else None

    def scalar(self, value: Any, keys: tuple[str, ...], depth: int = 0) -> Any:
        """A literal input, or the value behind a link to a primitive/seed node."""
        if self.link(value) is None:
            return value
        if depth > self.MAX_DEPTH:
            return None
        node = self.node(value)
        if node is None:
            return None
        for key in keys:
            if key in node["inputs"]:
                return self.scalar(node["inputs"][key], keys, depth + 1)
        return None

    def string(self, value: Any, depth: int = 0) -> str | None:
        return _as_str(self.scalar(value, ("text", "string", "value", "prompt", "String", "Text"), depth))

    def text(self, ref: Any, role: str, depth: int = 0, seen: set[str] | None = None) -> str | None:
        """Prompt text behind a conditioning link: CLIPTextEncode* directly, else through
        conditioning passthrough nodes (ControlNet apply, combine, set area ...)."""
        seen = set() if seen is None else seen
        node_id = self.link(ref)
        if node_id is None or node_id in seen or depth > self.MAX_DEPTH:
            return None
        seen.add(node_id)
        node = self.node(ref)
        if node is None:
            return None
        inputs = node["inputs"]
        for key in (
            "text",
            "text_g",
            "text_l",
            "prompt",
            "positive_prompt" if role == "positive" else "negative_prompt",
        ):
            if key in inputs:
                value = self.string(inputs[key])
                if value is not None:
                    return value
        candidates = [role, "conditioning", "conditioning_1", "conditioning_to", "conditioning_from"]
        candidates += [key for key in inputs if "cond" in key.lower() and key not in candidates]
        for key in candidates:
            if self.link(inputs.get(key)) is not None:
                found = self.text(inputs[key], role, depth + 1, seen)
                if found is not None:
                    return found
        return None

    def model_name(self, ref: Any, depth: int = 0, seen: set[str] | None = None) -> str | None:
        seen = set() if seen is None else seen
        node_id = self.link(ref)
        if node_id is None or node_id in seen or depth > self.MAX_DEPTH:
            return None
        seen.add(node_id)
        node = self.node(ref)
        if node is None:
            return None
        inputs = node["inputs"]
        for key in ("ckpt_name", "unet_name", "model_name", "base_ckpt_name", "checkpoint", "model_path"):
            value = self.string(inputs.get(key)) if key in inputs else None
            if value:
                return value
        for key in ["model", *[k for k in inputs if "model" in k.lower() and k != "model"]]:
            if self.link(inputs.get(key)) is not None:
                found = self.model_name(inputs[key], depth + 1, seen)
                if found:
                    return found
        return None

    def latent_size(
        self, ref: Any, depth: int = 0, seen: set[str] | None = None, passes: int = 0
    ) -> tuple[int, int, bool, int] | None:
        """(width, height, from_empty_latent, samplers_passed) behind a latent link.

        ``samplers_passed`` counts earlier sampler nodes on the way (a refiner or hires pass starts
        from another sampler's output), so the first pass can be told apart from later ones.
        """
        seen = set() if seen is None else seen
        node_id = self.link(ref)
        if node_id is None or node_id in seen or depth > self.MAX_DEPTH:
            return None
        seen.add(node_id)
        node = self.node(ref)
        if node is None:
            return None
        inputs = node["inputs"]
        width = _as_int(self.scalar(inputs.get("width"), ("value", "int", "width", "number")))
        height = _as_int(self.scalar(inputs.get("height"), ("value", "int", "height", "number")))
        if width is not None and height is not None:
            return width, height, "empty" in node["class"].lower(), passes
        if self.is_sampler(node["class"]):
            passes += 1
        for key in ("samples", "latent_image", "latent", "latents", "source", "samples_from"):
            if self.link(inputs.get(key)) is not None:
                found = self.latent_size(inputs[key], depth + 1, seen, passes)
                if found:
                    return found
        return None

    @staticmethod
    def is_sampler(class_type: str) -> bool:
        name = class_type.lower()
        return "ksampler" in name or name.startswith("samplercustom")

    def samplers(self) -> list[str]:
        return [node_id for node_id, node in self.nodes.items() if self.is_sampler(node["class"])]


def _node_order(node_id: str) -> tuple[int, int | str]:
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def _from_comfy(graph: dict[Any, Any]) -> ImageMetadata | None:
    """None when the dict holds no ComfyUI nodes at all (some other tool's "prompt" JSON)."""
    comfy = _ComfyGraph(graph)
    if not comfy.nodes:
        return None
    result = ImageMetadata(source="comfyui")
    candidates = []
    for node_id in comfy.samplers():
        inputs = comfy.nodes[node_id]["inputs"]
        size = comfy.latent_size(inputs.get("latent_image"))
        later_pass = size[3] if size else 0
        candidates.append((later_pass, not (size and size[2]), _node_order(node_id), node_id, size))
    if not candidates:
        return result
    # Prefer the first pass (no sampler before it; starts from an empty latent), then the lowest id.
    *_, node_id, size = min(candidates)
    node = comfy.nodes[node_id]
    inputs = node["inputs"]
    guider = comfy.node(inputs.get("guider")) or {"inputs": {}}
    sigmas = comfy.node(inputs.get("sigmas")) or {"inputs": {}}
    sampler_node = comfy.node(inputs.get("sampler")) or {"inputs": {}}
    noise = comfy.node(inputs.get("noise")) or {"inputs": {}}
    seed_keys = ("seed", "noise_seed", "value", "int", "number")

    def first(*values: Any) -> Any:
        return next((value for value in values if value is not None), None)

    seed = _as_int(
        comfy.scalar(
            first(
                inputs.get("seed"),
                inputs.get("noise_seed"),
                noise["inputs"].get("noise_seed"),
                noise["inputs"].get("seed"),
            ),
            seed_keys,
        )
    )
    steps = _as_int(
        comfy.scalar(first(inputs.get("steps"), sigmas["inputs"].get("steps")), ("steps", "value", "int"))
    )
    cfg = _as_float(
        comfy.scalar(first(inputs.get("cfg"), guider["inputs"].get("cfg")), ("cfg", "value", "float"))
    )
    sampler_name = _as_str(
        comfy.scalar(
            first(inputs.get("sampler_name"), sampler_node["inputs"].get("sampler_name")),
            ("sampler_name", "value"),
        )
    )
    schedule = _as_str(
        comfy.scalar(
            first(inputs.get("scheduler"), sigmas["inputs"].get("scheduler")), ("scheduler", "value")
        )
    )
    denoise = _as_float(
        comfy.scalar(
            first(inputs.get("denoise"), sigmas["inputs"].get("denoise")), ("denoise", "value", "float")
        )
    )
    positive = first(
        inputs.get("positive"), guider["inputs"].get("positive"), guider["inputs"].get("conditioning")
    )
    negative = first(inputs.get("negative"), guider["inputs"].get("negative"))
    model_ref = first(inputs.get("model"), guider["inputs"].get("model"))

    result.prompt = comfy.text(positive, "positive")
    result.negative_prompt = comfy.text(negative, "negative")
    result.steps = steps
    result.guidance = cfg
    result.seed = seed
    if size:
        result.width, result.height = size[0], size[1]
    result.scheduler = _comfy_scheduler(sampler_name, schedule)
    model = comfy.model_name(model_ref)
    result.model = (
        re.sub(r"\.(safetensors|ckpt|bin|pt|pth|gguf)$", "", _basename(model), flags=re.IGNORECASE)
        if model
        else None
    )
    if denoise is not None and denoise < 1.0:
        result.strength = denoise
    result.extra = {"sampler node": f"{node_id} ({node['class']})"}
    for label, value in (
        ("sampler_name", sampler_name),
        ("scheduler", schedule),
        ("denoise", denoise),
        ("checkpoint", model),
    ):
        if value is not None:
            result.extra[label] = _fmt_number(value)
    return result


# --------------------------------------------------------------------------------------------------
# Collecting text entries from files / images
# --------------------------------------------------------------------------------------------------


def decode_user_comment(data: bytes | str | None) -> str | None:
    """Decode an EXIF UserComment (8-byte charset prefix + body).

    "UNICODE" is UTF-16; the standard and piexif (what A1111 uses) write big-endian, but some tools
    write little-endian, so a BOM or the position of the zero bytes (ASCII-heavy text) decides.
    """
    if data is None:
        return None
    if isinstance(data, str):
        return data.rstrip("\x00")
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_TEXT_BYTES * 2:
        return None
    data = bytes(data)
    prefix, body = data[:8], data[8:]
    if prefix == _UC_UNICODE:
        if body[:2] == b"\xfe\xff":
            encoding, body = "utf-16-be", body[2:]
        elif body[:2] == b"\xff\xfe":
            encoding, body = "utf-16-le", body[2:]
        else:
            sample = body[:4096]
            zeros_even = sample[0::2].count(0)
            zeros_odd = sample[1::2].count(0)
            encoding = "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"
        if len(body) % 2:
            body = body[:-1]
        text = body.decode(encoding, errors="replace")
    elif prefix == _UC_JIS:
        text = body.decode("shift_jis", errors="replace")
    elif prefix in (_UC_ASCII, _UC_UNDEFINED):
        text = _decode_bytes(body)
    else:
        text = _decode_bytes(data)
    return text.rstrip("\x00")


def _decode_bytes(data: bytes) -> str:
    """UTF-8 when valid (what most tools really write), else Latin-1 (never fails)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _exif_texts(exif: Image.Exif | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    if exif is None:
        return texts
    try:
        for tag, name in (
            (TAG_IMAGE_DESCRIPTION, "ImageDescription"),
            (TAG_MAKE, "Make"),
            (TAG_MODEL, "Model"),
            (TAG_SOFTWARE, "Software"),
        ):
            value = exif.get(tag)
            if isinstance(value, bytes):
                value = _decode_bytes(value)
            if isinstance(value, str) and value.strip("\x00") and len(value) <= MAX_TEXT_BYTES:
                texts[f"exif:{name}"] = value.rstrip("\x00")
    except Exception:  # corrupt EXIF must not hide the rest
        pass
    try:
        comment = decode_user_comment(exif.get_ifd(TAG_EXIF_IFD).get(TAG_USER_COMMENT))
        if comment and comment.strip():
            texts["exif:UserComment"] = comment
    except Exception:
        pass
    return texts


def _inflate(data: bytes, limit: int) -> bytes | None:
    """zlib with an output cap (zTXt/iTXt bombs)."""
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    return None if len(out) > limit else out


def _decode_png_text(ctype: bytes, data: bytes) -> tuple[str, str] | None:
    key_bytes, sep, rest = data.partition(b"\x00")
    if not sep or not 1 <= len(key_bytes) <= 79:
        return None
    key = key_bytes.decode("latin-1")
    if ctype == b"tEXt":
        return key, _decode_bytes(rest)
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        inflated = _inflate(rest[1:], MAX_TEXT_BYTES)
        return (key, _decode_bytes(inflated)) if inflated is not None else None
    # iTXt: flag, method, language \0, translated keyword \0, text
    if len(rest) < 2:
        return None
    flag, method = rest[0], rest[1]
    parts = rest[2:].split(b"\x00", 2)
    if len(parts) != 3:
        return None
    payload = parts[2]
    if flag:
        if method != 0:
            return None
        inflated = _inflate(payload, MAX_TEXT_BYTES)
        if inflated is None:
            return None
        payload = inflated
    return key, payload.decode("utf-8", errors="replace")


def _png_texts(stream: io.BufferedIOBase | io.BytesIO, name: str) -> tuple[dict[str, str], bytes | None]:
    """Walk PNG chunks ourselves: Pillow refuses to open a file with a zTXt over its limit, and we
    want oversize or corrupt text chunks skipped, not fatal.  Returns (texts, eXIf payload)."""
    texts: dict[str, str] = {}
    exif: bytes | None = None
    total = 0
    first = True
    for _ in range(MAX_PNG_CHUNKS):
        header = stream.read(8)
        if len(header) < 8:
            break
        length, ctype = struct.unpack(">I4s", header)
        if first:
            if ctype != b"IHDR" or length != 13:
                raise MetadataError(f"{name}: not an image (corrupt PNG header)")
            first = False
        if length > 0x7FFFFFFF:
            break
        wanted = ctype in (b"tEXt", b"zTXt", b"iTXt", b"eXIf")
        if wanted and length <= MAX_TEXT_BYTES and total + length <= MAX_TOTAL_TEXT_BYTES:
            data = stream.read(length)
            crc = stream.read(4)
            if len(data) < length or len(crc) < 4:
                break
            if zlib.crc32(ctype + data) & 0xFFFFFFFF != int.from_bytes(crc, "big"):
                continue
            total += length
            if ctype == b"eXIf":
                exif = data
                continue
            decoded = _decode_png_text(ctype, data)
            if decoded and (
                decoded[0] in texts or decoded[0] in _KNOWN_KEYS or len(texts) < MAX_TEXT_ENTRIES
            ):
                texts[decoded[0]] = decoded[1]
            continue
        if ctype == b"IEND":
            break
        stream.seek(length + 4, io.SEEK_CUR)
    if first:
        raise MetadataError(f"{name}: not an image (truncated PNG)")
    return texts, exif


def _load_exif(data: bytes | None) -> Image.Exif | None:
    if not data:
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
        return exif
    except Exception:  # corrupt EXIF is just "no EXIF"
        return None


def _pillow_texts(image: Image.Image) -> dict[str, str]:
    """Text entries of an opened Pillow image (non-PNG files, or images handed to us)."""
    texts: dict[str, str] = {}
    info = dict(image.info or {})
    if isinstance(image, PngImagePlugin.PngImageFile):
        with contextlib.suppress(Exception):  # text chunks after IDAT are only read on load
            info.update(image.text)
    for key, value in info.items():
        if not isinstance(key, str) or (len(texts) >= MAX_TEXT_ENTRIES and key not in _KNOWN_KEYS):
            continue
        if key == "comment" and isinstance(value, bytes):  # JPEG COM / GIF comment
            value = _decode_bytes(value[:MAX_TEXT_BYTES])
        if isinstance(value, str) and len(value) <= MAX_TEXT_BYTES:
            texts[key] = str(value)
    with contextlib.suppress(Exception):
        texts.update(_exif_texts(image.getexif()))
    return texts


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return "<image data>"


def _file_texts(source: str | os.PathLike[str] | bytes) -> dict[str, str]:
    name = _describe(source)
    if isinstance(source, bytes | bytearray):
        if not source:
            raise MetadataError(f"{name}: empty file")
        return _stream_texts(io.BytesIO(bytes(source)), name)
    path = Path(source)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise MetadataError(f"{name}: no such file") from None
    except OSError as exc:
        raise MetadataError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise MetadataError(f"{name}: is a directory, not an image")
    if info.st_size == 0:
        raise MetadataError(f"{name}: empty file")
    try:
        with open(path, "rb") as stream:
            return _stream_texts(stream, name)
    except OSError as exc:
        raise MetadataError(f"{name}: cannot read ({exc.strerror or exc})") from None


def _stream_texts(stream: Any, name: str) -> dict[str, str]:
    signature = stream.read(8)
    if signature == _PNG_SIGNATURE:
        texts, exif_data = _png_texts(stream, name)
        texts.update(_exif_texts(_load_exif(exif_data)))
        return texts
    stream.seek(0)
    try:
        with Image.open(stream) as image:
            return _pillow_texts(image)
    except UnidentifiedImageError:
        raise MetadataError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise MetadataError(f"{name}: image dimensions are too large to inspect safely") from None
    except MetadataError:
        raise
    except Exception as exc:  # corrupt headers raise all sorts of things in Pillow
        raise MetadataError(f"{name}: not a readable image ({exc})") from None


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------


def _interpret(texts: dict[str, str]) -> ImageMetadata | None:
    raw = {key: _truncate(value) for key, value in texts.items()}

    studio = _valid_studio(texts.get(STUDIO_KEY)) or _valid_studio(texts.get("exif:ImageDescription"))
    if studio is not None:
        result = _from_studio(studio)
        result.raw = raw
        return result

    parameters = texts.get(PARAMETERS_KEY)
    if parameters is not None and not parameters.strip():
        parameters = None
    if parameters is None:
        for key in ("exif:UserComment", "comment", "Comment", "Description"):
            if _looks_like_a1111(texts.get(key)):
                parameters = texts[key]
                break
    if parameters is not None:
        as_json = _safe_json(parameters)
        if isinstance(as_json, dict):  # some tools (Fooocus ...) put JSON under "parameters"
            result = _from_invokeai(as_json)
            result.source = "unknown"
        else:
            result = _from_a1111(parameters)
        result.raw = raw
        return result

    invoke = _safe_json(texts.get("invokeai_metadata"))
    if isinstance(invoke, dict):
        result = _from_invokeai(invoke)
        result.raw = raw
        return result
    legacy = _safe_json(texts.get("sd-metadata"))
    if isinstance(legacy, dict):
        result = _from_invokeai_legacy(legacy)
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
    graph = _safe_json(prompt_text)
    comfy = _from_comfy(graph) if isinstance(graph, dict) else None
    if comfy is not None:
        comfy.raw = raw
        return comfy
    if isinstance(_safe_json(workflow_text), dict):
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
        texts = _pillow_texts(source)
    elif isinstance(source, str | os.PathLike | bytes | bytearray):
        texts = _file_texts(source)
    else:
        raise TypeError(f"read_metadata() needs a path, bytes or a PIL image, not {type(source).__name__}")
    return _interpret(texts)


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def pnginfo_for(meta: Mapping[str, Any]) -> PngImagePlugin.PngInfo:
    """PNG text chunks for our metadata: ``parameters`` (tEXt if ASCII, else iTXt) + iTXt ``latent-studio``.

    Raises TypeError/ValueError when ``meta`` is not valid JSON (NaN, arbitrary objects): a file
    whose metadata cannot be read back is a bug to surface, not to hide.
    """
    info = PngImagePlugin.PngInfo()
    text = format_parameters(meta)
    if text.isascii():
        info.add_text(PARAMETERS_KEY, text)
    else:
        info.add_itxt(PARAMETERS_KEY, text)
    info.add_itxt(STUDIO_KEY, studio_json(meta))
    return info


def exif_for(meta: Mapping[str, Any], *, max_bytes: int | None = None) -> Image.Exif:
    """EXIF for JPEG/WebP: UserComment = A1111 text (UNICODE, UTF-16BE, as A1111 writes it),
    ImageDescription = our JSON (ASCII), Software = "latent-studio <version>".

    With ``max_bytes`` (JPEG: :data:`JPEG_EXIF_LIMIT`) the JSON, then the comment, are dropped when
    the whole does not fit, so saving never fails on a very long prompt.
    """
    text = format_parameters(meta)
    document = studio_json(meta, ascii_only=True)
    version = _as_str(meta.get("app_version"))

    def build(with_json: bool, with_comment: bool) -> Image.Exif:
        exif = Image.Exif()
        exif[TAG_SOFTWARE] = f"{APP_NAME} {version}" if version else APP_NAME
        if with_json:
            exif[TAG_IMAGE_DESCRIPTION] = document
        if with_comment:
            exif.get_ifd(TAG_EXIF_IFD)[TAG_USER_COMMENT] = _UC_UNICODE + text.encode("utf-16-be")
        return exif

    for with_json, with_comment in ((True, True), (False, True), (False, False)):
        exif = build(with_json, with_comment)
        if max_bytes is None or len(exif.tobytes()) <= max_bytes:
            return exif
    return exif
