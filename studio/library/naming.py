"""Output file names from a template, kept strictly inside the output folder and never overwriting.

Why this is careful: a prompt is free text ("../../etc/x", "C:\\Windows", "CON", NUL bytes, right-to-left
overrides) and the template is a user setting, yet the result must be a harmless file name that works
on Linux, macOS and Windows and stays inside the folder the user chose, symlinks included.

Concurrency: the chosen name is reserved by creating an empty placeholder with
``os.open(O_CREAT | O_EXCL)``, which the OS guarantees only one process can win; the other gets the
next ``-N`` name.  :func:`studio.library.images.save_image` then replaces the placeholder atomically.
If saving fails, call :func:`discard_placeholder` to remove the empty file.  A crash between the two
leaves an empty file behind; readers (the gallery) should skip zero-byte images.  This protects against
our own processes racing, not against an attacker swapping folders for symlinks at the same moment.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "discard_placeholder",
    "output_path",
    "render_template",
    "sanitize_component",
    "slugify_prompt",
]

DEFAULT_TEMPLATE = "{date}/{time}-{seed}-{prompt}"
"""Default layout: one folder per day, then time, seed and a prompt slug (extension added separately)."""
PLACEHOLDERS = frozenset({"seed", "prompt", "model", "steps", "width", "height", "index", "date", "time"})
PROMPT_SLUG_CHARS = 48
MAX_COMPONENT_BYTES = 150
"""Below the 255-byte limit of common file systems, leaving room for "-N", the extension and the
temporary-file prefix/suffix used by the atomic save."""
MAX_UNIQUE_TRIES = 10_000

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in "123456789¹²³"}
    | {f"LPT{i}" for i in "123456789¹²³"}
)
_WINDOWS_BAD_CHARS = re.compile(r'[<>:"/\\|?*]')
_EXTENSION_RE = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _strip_controls(text: str) -> str:
    """Drop control and format characters (NUL, newlines, bidi overrides that disguise names)."""
    return "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cf", "Cs"))


def sanitize_component(text: str) -> str:
    """One path component that is safe everywhere.

    No separators or Windows-reserved characters, no control characters, no leading dots (hidden
    files, "..") or dashes (read as options by command-line tools), no trailing dots or spaces
    (Windows drops them), no reserved device names (CON, NUL, COM1 ...), at most
    :data:`MAX_COMPONENT_BYTES` UTF-8 bytes; never empty.
    """
    text = _strip_controls(unicodedata.normalize("NFC", text))
    text = _WINDOWS_BAD_CHARS.sub("_", text)
    text = re.sub(r"^[\s.\-]+", "", text).rstrip(" .")
    stem = text.split(".", 1)[0].strip().upper()
    if stem in _WINDOWS_RESERVED:
        text = "_" + text
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_COMPONENT_BYTES:
        text = encoded[:MAX_COMPONENT_BYTES].decode("utf-8", errors="ignore").rstrip(" .")
    return text or "_"


def slugify_prompt(prompt: str | None, max_chars: int = PROMPT_SLUG_CHARS) -> str:
    """A short file-name-friendly form of a prompt: letters and digits (any script) joined by "_",
    lower case, cut at a word boundary near ``max_chars``; "untitled" when nothing is left."""
    text = unicodedata.normalize("NFKC", prompt or "").lower()
    words: list[str] = []
    current: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LN" or (category[0] == "M" and current):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    slug = "_".join(words)
    if len(slug) > max_chars:
        cut = slug.rfind("_", 0, max_chars + 1)
        slug = slug[:cut] if cut >= max_chars // 2 else slug[:max_chars]
    return slug or "untitled"


def _value_text(value: Any) -> Any:
    """Field values keep ints (for format specs such as {index:03d}); strings lose separators."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    return _strip_controls(str(value)).replace("/", "_").replace("\\", "_")


def _field_values(fields: Mapping[str, Any], now: datetime | None) -> dict[str, Any]:
    moment = now or datetime.now()
    values = {name: _value_text(fields.get(name)) for name in PLACEHOLDERS}
    values["prompt"] = slugify_prompt(fields.get("prompt") if isinstance(fields.get("prompt"), str) else None)
    values["date"] = _value_text(fields.get("date")) or moment.strftime("%Y-%m-%d")
    values["time"] = _value_text(fields.get("time")) or moment.strftime("%H%M%S")
    return values


def _template_parts(template: str) -> list[str]:
    if not isinstance(template, str) or not template.strip():
        raise ValueError("file name template is empty")
    if len(template) > 512 or _strip_controls(template) != template:
        raise ValueError("file name template is too long or contains control characters")
    if template.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", template):
        raise ValueError(f"file name template must be a relative path: {template!r}")
    parts = [part for part in re.split(r"[\\/]", template) if part.strip()]
    if not parts:
        raise ValueError(f"file name template has no file name: {template!r}")
    for part in parts:
        if part.strip() in (".", ".."):
            raise ValueError(f"file name template must not contain '.' or '..' components: {template!r}")
    return parts


def render_template(template: str, fields: Mapping[str, Any], *, now: datetime | None = None) -> list[str]:
    """The sanitised path components (relative, without extension) for ``template`` and ``fields``.

    Placeholders: {seed} {prompt} {model} {steps} {width} {height} {index} {date} {time}, with optional
    format specs ({index:03d}).  Unknown placeholders, attribute or index access and conversions are
    refused with ValueError: the template is a user setting and must not reach into objects.
    """
    values = _field_values(fields, now)
    formatter = string.Formatter()
    components = []
    for part in _template_parts(template):
        try:
            pieces = list(formatter.parse(part))
        except ValueError as exc:
            raise ValueError(f"bad file name template {template!r}: {exc}") from None
        rendered = []
        for literal, name, spec, conversion in pieces:
            rendered.append(literal)
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + key + "}" for key in sorted(PLACEHOLDERS))
                shown = "{" + name + "}" if name else "{}"
                raise ValueError(f"unknown placeholder {shown} in file name template; use one of {known}")
            if conversion or (spec and "{" in spec):
                raise ValueError(
                    f"placeholder {{{name}}} in file name template: "
                    "conversions and nested fields are not allowed"
                )
            try:
                rendered.append(format(values[name], spec or ""))
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"placeholder {{{name}:{spec}}} cannot format {values[name]!r}: {exc}"
                ) from None
        components.append(sanitize_component("".join(rendered)))
    return components


def _inside(path: Path, root: Path, *, strictly: bool) -> bool:
    if path == root:
        return not strictly
    return path.is_relative_to(root)


def output_path(
    folder: str | os.PathLike[str],
    fields: Mapping[str, Any],
    *,
    template: str = DEFAULT_TEMPLATE,
    ext: str = ".png",
    now: datetime | None = None,
) -> Path:
    """Render, sanitise, contain and reserve an output path; returns it (an empty placeholder exists).

    Creates ``folder`` and sub-folders as needed.  Raises ValueError for a bad template or extension,
    or when the path would resolve outside ``folder`` (symlinked sub-folders included).  Existing
    files are never overwritten: "-1", "-2", ... are appended to the name.
    """
    if not isinstance(ext, str) or not _EXTENSION_RE.fullmatch(ext):
        raise ValueError(f"bad file extension {ext!r} (expected something like '.png')")
    components = render_template(template, fields, now=now)
    *directories, stem = components

    base = Path(folder).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    root = base.resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(f"output folder {base} is not a folder")

    # Walk down one component at a time so nothing is created through a symlink that leaves the root.
    current = root
    for name in directories:
        candidate = current / name
        if not os.path.lexists(candidate):
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
        resolved = candidate.resolve()  # not strict: a dangling symlink must be judged, not crash
        if not _inside(resolved, root, strictly=False):
            raise ValueError(
                f"refusing to write outside the output folder {base}: {candidate} leads to {resolved}"
            )
        if not resolved.is_dir():
            raise ValueError(f"cannot write into {candidate}: it exists and is not a folder")
        current = resolved

    for attempt in range(MAX_UNIQUE_TRIES):
        name = f"{stem}{'' if attempt == 0 else f'-{attempt}'}{ext}"
        target = current / name
        if not _inside(target, root, strictly=True):
            raise ValueError(f"refusing to write outside the output folder {base}: {target}")
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            if os.path.lexists(target):  # Windows reports an existing folder this way
                continue
            raise
        os.close(fd)
        return base.joinpath(*directories, name)
    raise FileExistsError(f"no free file name for {stem}{ext} in {current} after {MAX_UNIQUE_TRIES} tries")


def discard_placeholder(path: str | os.PathLike[str]) -> bool:
    """Remove the empty placeholder :func:`output_path` reserved, after a failed save.  Only an empty
    regular file is removed, so a real image can never be deleted by mistake.  Returns True if removed."""
    target = Path(path)
    try:
        info = target.lstat()
    except OSError:
        return False
    if not os.path.isfile(target) or target.is_symlink() or info.st_size != 0:
        return False
    try:
        target.unlink()
    except OSError:
        return False
    return True
