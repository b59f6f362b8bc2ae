"""AUTOMATIC1111's ``parameters`` text: written in its exact layout, parsed defensively in linear time."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from studio.library.metadata.record import ImageMetadata, mask_fields
from studio.library.metadata.values import (
    APP_NAME,
    MAX_INT_DIGITS,
    MAX_SEGMENTS,
    MAX_TEXT_BYTES,
    MAX_TRAILING_LINES,
    as_float,
    as_int,
    as_str,
    clean_text,
    fmt_number,
    truncate,
)

# --------------------------------------------------------------------------------------------------
# A1111 "parameters" text: writing
# --------------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A1111's rule: a value containing ',', ':' or a newline is written as a JSON string."""
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


# Scheduler names: ours are A1111's sampler names with the schedule appended ("DPM++ 2M Karras"), except
# where A1111 says otherwise. Checked against A1111 1.10's sd_samplers_kdiffusion / sd_samplers_timesteps /
# sd_schedulers.
_TO_A1111_SAMPLER = {"PNDM": "PLMS"}  # A1111's PLMS is PNDM without its Runge-Kutta warm-up, as ours
# Spellings other writers put in "Sampler:" (A1111's own aliases, its old API's k_* names) -> ours.
_FROM_A1111_SAMPLER = {
    "plms": "PNDM",
    "k_euler_a": "Euler a",
    "k_euler_ancestral": "Euler a",
    "k_euler": "Euler",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m_ka": "DPM++ 2M Karras",
    "ddim": "DDIM",
    "unipc": "UniPC",
}
# Since 1.9, A1111 gives these samplers a schedule of their own when "Schedule type" is "Automatic".
_A1111_DEFAULT_SCHEDULE = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 2S a": "Karras",
    "DPM++ 3M SDE": "Exponential",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
    "Restart": "Karras",
}
# A1111's "Schedule type" labels; "Uniform" (and the near-identical "Normal") are k-diffusion's plain
# spacing, which is what our names without a schedule use.
_SCHEDULE_LABELS = (
    "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps", "Simple",
    "Normal", "DDIM", "Beta", "Uniform",
)
_PLAIN_SCHEDULES = ("Uniform", "Normal")


def split_scheduler(name: str | None) -> tuple[str | None, str | None]:
    """Our scheduler name -> (A1111 Sampler, Schedule type): "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras").

    Names A1111 spells otherwise are translated ("PNDM" -> "PLMS"). A name without a schedule is the
    plain spacing: "Automatic" for most samplers, but "Uniform" for those to which A1111 (1.9 and later)
    gives a schedule of their own under "Automatic" (our "DPM++ 2M" is not its Karras default).
    """
    if not name:
        return None, None
    sampler, schedule = name, None
    for label in _SCHEDULE_LABELS:
        head = name[: -len(label) - 1].strip()
        if name.endswith(" " + label) and head:
            sampler, schedule = head, label
            break
    sampler = _TO_A1111_SAMPLER.get(sampler, sampler)
    if schedule is None:
        schedule = "Uniform" if sampler in _A1111_DEFAULT_SCHEDULE else "Automatic"
    return sampler, schedule


def basename(text: str) -> str:
    return re.split(r"[\\/]", text.rstrip("/\\"))[-1]


def _model_display_name(model: Mapping[str, Any]) -> str | None:
    """The A1111 ``Model`` value: our id, else the repo or file name without its extension."""
    model_id = as_str(model.get("id"))
    if model_id:
        return model_id
    for key in ("repo", "path"):
        value = as_str(model.get(key))
        if value:
            name = basename(value)
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

    prompt = as_str(request.get("prompt")) or ""
    negative = as_str(request.get("negative_prompt")) or ""
    sampler, schedule = split_scheduler(as_str(request.get("scheduler")))
    seed = meta.get("seed", request.get("seed"))
    width, height = as_int(request.get("width")), as_int(request.get("height"))
    strength = request.get("strength")
    app_version = as_str(meta.get("app_version"))

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
        *_inpaint_pairs(request),
        ("Lora hashes", _hashes(meta.get("loras"))),
        ("TI hashes", _hashes(meta.get("embeddings"))),
        ("Version", f"{APP_NAME} {app_version}" if app_version else APP_NAME),
    ]
    line = ", ".join(f"{key}: {_quote(fmt_number(value))}" for key, value in pairs if value is not None)
    negative_text = f"\nNegative prompt: {negative}" if negative else ""
    # A lone surrogate (a broken paste) could not be encoded into the file: written as U+FFFD.
    return clean_text(f"{prompt}{negative_text}\n{line}".strip())


def _hashes(entries: Any) -> str | None:
    """A1111's "Lora hashes" / "TI hashes" value: "name: hash12, name: hash12" (names without ":" and
    ",", the short hash Civitai looks files up by), or None without entries."""
    if not isinstance(entries, list):
        return None
    parts = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name, digest = as_str(entry.get("name")), as_str(entry.get("sha256"))
        if name and digest:
            parts.append(f"{name.translate(_HASH_NAME_SYMBOLS)}: {digest[:12]}")
    return ", ".join(parts) or None


_HASH_NAME_SYMBOLS = str.maketrans("", "", ":,")

_MASKED_CONTENT_NAMES = {"original": "original", "fill": "fill", "noise": "latent noise", "nothing": "latent nothing"}


def _inpaint_pairs(request: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A1111's inpainting keys, as its img2img tab writes them (padding only with "Only masked")."""
    if request.get("mask_blur") is None:
        return []
    only_masked = request.get("inpaint_area") == "masked"
    content = as_str(request.get("masked_content"))
    return [
        ("Mask blur", request.get("mask_blur")),
        ("Mask mode", "Inpaint not masked" if request.get("invert_mask") is True else None),
        ("Masked content", _MASKED_CONTENT_NAMES.get(content or "")),
        ("Inpaint area", "Only masked" if only_masked else "Whole picture"),
        ("Masked area padding", request.get("padding") if only_masked else None),
    ]


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
                # "\ud800" is a valid JSON escape for a lone surrogate: made valid text here.
                value = clean_text(decoded) if isinstance(decoded, str) else raw[1:-1]
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
    text = clean_text(text[:MAX_TEXT_BYTES])
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip().replace("\x00", "")
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


def looks_like_a1111(text: str | None) -> bool:
    """For generic fields (EXIF comment, JPEG comment): only count text that has a parameters line."""
    if not text:
        return False
    params = parse_parameters(text)["params"]
    return "Steps" in params or len(params) >= 3


_SIZE_RE = re.compile(r"\s*(\d{1,6})\s*x\s*(\d{1,6})\s*")


def _combine_scheduler(sampler: str | None, schedule: str | None) -> str | None:
    """A1111 Sampler + Schedule type -> one name in our style ("DPM++ 2M" + "Karras" -> "DPM++ 2M Karras").

    "PLMS" is our "PNDM". "Automatic" means what A1111 1.9+ makes of it: the sampler's own schedule
    (DPM++ 2M -> Karras) or the plain one. Without a "Schedule type" (before 1.9) the sampler name says
    it all ("DPM++ 2M Karras", or "DPM++ 2M" for the plain spacing).
    """
    if not sampler:
        return None
    sampler = _FROM_A1111_SAMPLER.get(sampler.lower(), sampler)
    if schedule == "Automatic":
        schedule = _A1111_DEFAULT_SCHEDULE.get(sampler)
    if not schedule or schedule in _PLAIN_SCHEDULES or sampler.endswith(f" {schedule}"):
        return sampler
    return f"{sampler} {schedule}"


_MASKED_CONTENT_FROM_NAMES = {name: ours for ours, name in _MASKED_CONTENT_NAMES.items()}
_INPAINT_AREA_FROM_NAMES = {"whole picture": "whole", "only masked": "masked"}
_MASK_MODE_FROM_NAMES = {"inpaint masked": False, "inpaint not masked": True}
# A1111 writes "Masked content" only when not "original", "Mask mode" only when inverted and "Inpaint area"
# only for "Only masked" (its PNG Info then fills in these defaults, as we do for an inpainted image).
_INPAINT_DEFAULTS = (
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Mask mode", "Inpaint masked"),
)
_INPAINT_KEYS = {
    "Mask blur": "mask_blur",
    "Masked content": "masked_content",
    "Inpaint area": "inpaint_area",
    "Masked area padding": "padding",
    "Mask mode": "invert_mask",
}


def _small_int(text: str | None) -> int | None:
    return as_int(text) if text is not None and len(text) <= MAX_INT_DIGITS else None


def _masking(params: Mapping[str, str]) -> tuple[dict[str, Any], set[str]]:
    """The inpainting fields of A1111's keys, and the keys they were read from (a value that is not one
    A1111 writes gives None and its key stays among the extras, as text)."""
    if not any(key in params for key in _INPAINT_KEYS):
        return {}, set()
    given = dict(params)
    for key, default in _INPAINT_DEFAULTS:
        given.setdefault(key, default)

    def named(key: str, names: Mapping[str, Any]) -> Any:
        value = given.get(key)
        return names.get(value.strip().lower()) if isinstance(value, str) and len(value) <= 64 else None

    fields = mask_fields(
        {
            "mask_blur": _small_int(given.get("Mask blur")),
            "masked_content": named("Masked content", _MASKED_CONTENT_FROM_NAMES),
            "inpaint_area": named("Inpaint area", _INPAINT_AREA_FROM_NAMES),
            "padding": _small_int(given.get("Masked area padding")),
            "invert_mask": named("Mask mode", _MASK_MODE_FROM_NAMES),
        }
    )
    return fields, {key for key, name in _INPAINT_KEYS.items() if fields[name] is not None}


def from_a1111(text: str) -> ImageMetadata:
    parsed = parse_parameters(text)
    params: dict[str, str] = dict(parsed["params"])
    used = {"Steps", "CFG scale", "Seed", "Size", "Model", "Sampler", "Schedule type"}
    width = height = None
    match = _SIZE_RE.fullmatch(params.get("Size", ""))
    if match:
        width, height = int(match.group(1)), int(match.group(2))
    # A txt2img "Denoising strength" belongs to the hires-fix pass, not to img2img.
    hires = any(key.startswith(("Hires ", "First pass size")) for key in params)
    strength = None if hires else as_float(params.get("Denoising strength"))
    if strength is not None:
        used.add("Denoising strength")
    masking, mask_keys = _masking(params)
    used |= mask_keys
    extra = {key: truncate(value, 4096) for key, value in params.items() if key not in used}
    if "trailing" in parsed:
        extra["Trailing text"] = truncate(parsed["trailing"], 4096)
    return ImageMetadata(
        source="a1111",
        prompt=parsed["prompt"],
        negative_prompt=parsed["negative_prompt"],
        steps=as_int(params.get("Steps")),
        guidance=as_float(params.get("CFG scale")),
        seed=as_int(params.get("Seed")),
        width=width,
        height=height,
        scheduler=_combine_scheduler(params.get("Sampler") or None, params.get("Schedule type")),
        model=params.get("Model") or None,
        strength=strength,
        **masking,
        extra=extra,
    )
