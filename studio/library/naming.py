"""Output file names from a template, kept strictly inside the output folder and never overwriting.

Why this is careful: a prompt is free text ("../../etc/x", "C:\\Windows", "CON", NUL bytes, right-to-left
overrides) and the template is a user setting, yet the result must be a harmless file name that works
on Linux, macOS and Windows and stays inside the folder the user chose, symlinks included.  A template
is also untrusted input to ``str.format``: widths and precisions are capped (``{seed:999999999999}``
would otherwise try to allocate a terabyte), attribute and index access and conversions are refused,
and a result longer than the file system allows is a :class:`ValueError`, never an ``OSError`` from
deep inside a ``mkdir``.

Uniqueness without placeholders: :func:`plan_output` creates the folders and returns an
:class:`OutputName` whose :meth:`~OutputName.candidates` are ``name.png``, ``name-1.png``, ...; it
creates no file.  The writer (:func:`studio.library.images.save_new_image`, used by
:func:`studio.library.saving.save_result`) writes the complete image to a hidden temporary file and
then publishes it under the first free candidate with an atomic no-overwrite step (a hard link, which
fails if the name exists, so a concurrent process simply gets the next ``-N``).  A crash at any moment
therefore leaves either nothing visible or a complete image, never an empty or half-written file; a
hidden temporary file left by a killed writer is removed by the next save into that folder.  Earlier
versions reserved names with empty placeholder files, which a ``kill -9`` left behind for ever.

This protects against our own processes racing and crashing, not against an attacker swapping folders
for symlinks at the same moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import string
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_FORMAT_WIDTH",
    "PLACEHOLDERS",
    "TEMP_NAME_MAX_BYTES",
    "OutputName",
    "output_path",
    "plan_output",
    "render_template",
    "sanitize_component",
    "slugify_prompt",
]

DEFAULT_TEMPLATE = "{date}/{time}-{seed}-{prompt}"
"""Default layout: one folder per day, then time, seed and a prompt slug (extension added separately)."""
PLACEHOLDERS = frozenset({"seed", "prompt", "model", "steps", "width", "height", "index", "date", "time"})
PROMPT_SLUG_CHARS = 48
MAX_COMPONENT_BYTES = 150
"""Below the 255-byte limit of common file systems, leaving room for "-N" and the extension."""
MAX_UNIQUE_TRIES = 10_000
MAX_FORMAT_WIDTH = 64
"""Largest width or precision a template may ask for ({index:03d} needs 3): anything bigger makes no
sense in a file name, and an unbounded one ({seed:999999999999}) makes ``format`` allocate without limit."""
TEMP_NAME_MAX_BYTES = 96
"""Longest hidden temporary name the atomic savers in :mod:`studio.library.images` use next to the
image; the path-length check keeps room for it."""

_FORMAT_SPEC_RE = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?(?P<width>[0-9]+)?[,_]?"
    r"(?:\.(?P<precision>[0-9]+))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)

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


def _preview(value: Any) -> str:
    """A short repr for messages; repr itself can fail (an int beyond Python's digit limit)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_format_spec(name: str, spec: str) -> None:
    """Refuse specs ``format`` would choke on or blow up with, naming the placeholder in the message."""
    shown = f"{{{name}:{spec}}}"
    match = _FORMAT_SPEC_RE.fullmatch(spec)
    if match is None:
        raise ValueError(
            f"placeholder {shown} in file name template: invalid format spec {spec!r} "
            "(use Python's format mini-language, e.g. {index:03d}; {date} and {time} are already text)"
        )
    for part in ("width", "precision"):
        value = match.group(part)
        if value is not None and int(value) > MAX_FORMAT_WIDTH:
            raise ValueError(
                f"placeholder {shown} in file name template: {part} {int(value)} is too large "
                f"(at most {MAX_FORMAT_WIDTH})"
            )


def render_template(template: str, fields: Mapping[str, Any], *, now: datetime | None = None) -> list[str]:
    """The sanitised path components (relative, without extension) for ``template`` and ``fields``.

    Placeholders: {seed} {prompt} {model} {steps} {width} {height} {index} {date} {time}, with optional
    format specs ({index:03d}, {seed:,}, {width:>5}), widths and precisions at most
    :data:`MAX_FORMAT_WIDTH`.  Unknown placeholders, attribute or index access ({seed.real},
    {prompt[0]}), conversions ({seed!r}), nested fields and specs that do not fit the value are refused
    with ValueError: the template is a user setting and must neither reach into objects nor make
    ``format`` allocate without bound.
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
            if name not in PLACEHOLDERS and re.split(r"[.\[]", name, maxsplit=1)[0] in PLACEHOLDERS:
                raise ValueError(
                    f"placeholder {{{name}}} in file name template: attribute and index access are not allowed"
                )
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + key + "}" for key in sorted(PLACEHOLDERS))
                shown = "{" + name + "}" if name else "{}"
                raise ValueError(f"unknown placeholder {shown} in file name template; use one of {known}")
            if conversion or (spec and "{" in spec):
                raise ValueError(
                    f"placeholder {{{name}}} in file name template: "
                    "conversions and nested fields are not allowed"
                )
            if spec:
                _check_format_spec(name, spec)
            try:
                rendered.append(format(values[name], spec or ""))
            except (ValueError, TypeError, OverflowError) as exc:  # {seed:c} with a big seed overflows
                shown = "{" + name + (f":{spec}" if spec else "") + "}"
                raise ValueError(
                    f"placeholder {shown} cannot format {_preview(values[name])}: {exc}"
                ) from None
        components.append(sanitize_component("".join(rendered)))
    return components


def _inside(path: Path, root: Path, *, strictly: bool) -> bool:
    if path == root:
        return not strictly
    return path.is_relative_to(root)


def _name_too_long(exc: OSError) -> bool:
    """ENAMETOOLONG, or Windows' ERROR_FILENAME_EXCED_RANGE (206)."""
    return exc.errno == errno.ENAMETOOLONG or getattr(exc, "winerror", None) == 206


def _size(text: str) -> int:
    """Length as the file system counts it: bytes on POSIX, (about) UTF-16 units on Windows."""
    return len(os.fsencode(text)) if os.name == "posix" else len(text)


def _limits(root: Path) -> tuple[int, int]:
    """(longest name, longest path) the file system holding ``root`` accepts.  Windows has no
    pathconf: 255 and the classic MAX_PATH, which Explorer and many tools still cannot go beyond."""
    name_max, path_max = (255, 4096) if os.name == "posix" else (255, 260)
    if hasattr(os, "pathconf"):
        with contextlib.suppress(OSError, ValueError):
            found = os.pathconf(root, "PC_NAME_MAX")
            name_max = found if found and found > 0 else name_max
        with contextlib.suppress(OSError, ValueError):
            found = os.pathconf(root, "PC_PATH_MAX")
            path_max = found if found and found > 0 else path_max
    return name_max, path_max


def _check_lengths(starts: list[Path], directories: list[str], stem: str, ext: str, root: Path) -> None:
    """Refuse (ValueError) a name or path the file system would refuse with ENAMETOOLONG, counting the
    longest "-N" suffix and the temporary name the saver puts next to the image."""
    name_max, path_max = _limits(root)
    longest_name = f"{stem}-{MAX_UNIQUE_TRIES - 1}{ext}"
    for name in [*directories, longest_name]:
        if _size(name) > name_max:
            raise ValueError(
                f"file name template gives a name too long for the file system "
                f"({_size(name)} > {name_max} bytes): {name[:60]!r}..."
            )
    last = max(_size(longest_name), TEMP_NAME_MAX_BYTES)
    for start in starts:
        total = _size(str(start)) + sum(_size(name) + 1 for name in directories) + 1 + last
        if total >= path_max:  # the limit counts the terminating NUL
            raise ValueError(
                f"file name template gives a path too long for the file system "
                f"(about {total} > {path_max - 1} bytes) under {start}"
            )


@dataclass(frozen=True)
class OutputName:
    """Where a new image goes: an existing folder inside the output folder, and a file name stem.

    Nothing is reserved: :meth:`candidates` lists the names to try in order and the writer takes the
    first one it can create without overwriting (see :func:`studio.library.images.save_new_image`).
    """

    folder: Path
    """The folder, in the user's terms (a symlinked output folder is not resolved away)."""
    stem: str
    ext: str

    def candidates(self) -> Iterator[Path]:
        """``stem.ext``, ``stem-1.ext``, ... ``stem-9999.ext`` in :attr:`folder`."""
        for attempt in range(MAX_UNIQUE_TRIES):
            yield self.folder / f"{self.stem}{'' if attempt == 0 else f'-{attempt}'}{self.ext}"

    def first_free(self) -> Path:
        """The first candidate nobody has taken yet (a snapshot: another process may take it next)."""
        for path in self.candidates():
            if not os.path.lexists(path):
                return path
        raise FileExistsError(
            f"no free file name for {self.stem}{self.ext} in {self.folder} after {MAX_UNIQUE_TRIES} tries"
        )


def plan_output(
    folder: str | os.PathLike[str],
    fields: Mapping[str, Any],
    *,
    template: str = DEFAULT_TEMPLATE,
    ext: str = ".png",
    now: datetime | None = None,
) -> OutputName:
    """Render, sanitise and contain an output name; creates ``folder`` and sub-folders, no file.

    Raises ValueError for a bad template or extension, a name or path too long for the file system,
    or a path that would resolve outside ``folder`` (symlinked sub-folders included).
    """
    if not isinstance(ext, str) or not _EXTENSION_RE.fullmatch(ext):
        raise ValueError(f"bad file extension {ext!r} (expected something like '.png')")
    components = render_template(template, fields, now=now)
    *directories, stem = components

    base = Path(folder).expanduser()
    try:
        base.mkdir(parents=True, exist_ok=True)
        root = base.resolve(strict=True)
    except OSError as exc:
        if _name_too_long(exc):
            raise ValueError(f"output folder path is too long for the file system: {base}") from None
        raise
    if not root.is_dir():
        raise NotADirectoryError(f"output folder {base} is not a folder")
    _check_lengths([base, root], directories, stem, ext, root)

    # Walk down one component at a time so nothing is created through a symlink that leaves the root.
    current = root
    for name in directories:
        candidate = current / name
        try:
            if not os.path.lexists(candidate):
                with contextlib.suppress(FileExistsError):
                    candidate.mkdir()
            resolved = candidate.resolve()  # not strict: a dangling symlink must be judged, not crash
        except OSError as exc:
            if _name_too_long(exc):
                raise ValueError(
                    f"file name template gives a path too long for the file system: {candidate}"
                ) from None
            raise
        if not _inside(resolved, root, strictly=False):
            raise ValueError(
                f"refusing to write outside the output folder {base}: {candidate} leads to {resolved}"
            )
        if not resolved.is_dir():
            raise ValueError(f"cannot write into {candidate}: it exists and is not a folder")
        current = resolved
    if not _inside(current / f"{stem}{ext}", root, strictly=True):
        raise ValueError(f"refusing to write outside the output folder {base}: {current / stem}{ext}")
    return OutputName(base.joinpath(*directories), stem, ext)


def output_path(
    folder: str | os.PathLike[str],
    fields: Mapping[str, Any],
    *,
    template: str = DEFAULT_TEMPLATE,
    ext: str = ".png",
    now: datetime | None = None,
) -> Path:
    """The first free output path right now, as :func:`plan_output` plans it ("-1", "-2", ... appended
    when the name is taken).  Creates the folders but no file, so it reserves nothing: to write without
    ever overwriting, even against concurrent processes, pass ``plan_output(...).candidates()`` to
    :func:`studio.library.images.save_new_image` (as :func:`studio.library.saving.save_result` does).
    """
    return plan_output(folder, fields, template=template, ext=ext, now=now).first_free()
