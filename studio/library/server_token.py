"""The token the window sends to a `studio serve` server, kept in a file of its own (owner-only), never in
the preferences file, which people copy, share and paste into bug reports."""

from __future__ import annotations

import os
from pathlib import Path

from studio.library.paths import config_dir

MAX_TOKEN_CHARS = 1024


def token_path() -> Path:
    return config_dir() / "server-token"


def clean_token(text: str) -> str | None:
    """A token as typed or pasted: surrounding blanks and a "Bearer " prefix removed; None when empty.
    ValueError for one that cannot travel in an HTTP header."""
    token = text.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("a token is one word of printable ASCII characters")
    return token


def read_token(path: Path | None = None) -> str | None:
    """The kept token, or None (no file, unreadable, or not a usable token)."""
    try:
        text = (path or token_path()).read_text(encoding="utf-8")[: MAX_TOKEN_CHARS + 8]
        return clean_token(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def write_token(token: str | None, path: Path | None = None) -> None:
    """Keep `token` readable by this user only (None removes it). OSError when it cannot be written."""
    path = path or token_path()
    if token is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(token + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
