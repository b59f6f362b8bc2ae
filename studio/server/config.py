"""What a server is started with, and the rule that keeps it off the network without a token."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from studio.engine.errors import RequestError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7861
DEFAULT_QUEUE_LIMIT = 32
MIN_TOKEN_CHARS = 16
MAX_TOKEN_FILE_BYTES = 4096


@dataclass
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    model_dirs: list[Path] = field(default_factory=list)
    score_model: str = "sd-1.4"  # what POST /score runs (`--model`, as `studio batch --model`)
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    threads: int | None = None
    queue_limit: int = DEFAULT_QUEUE_LIMIT  # jobs waiting (not running) before a submit answers 429
    keep_jobs: int = 200  # finished jobs whose results can still be fetched
    keep_bytes: int = 1 << 30  # ... and at most this many bytes of their images
    cors_origins: list[str] = field(default_factory=list)  # none: no CORS headers at all
    lora_dirs: list[Path] = field(default_factory=list)
    embedding_dirs: list[Path] = field(default_factory=list)
    preview: str = "auto"  # the engine's previews: "auto" | "linear" | "none"
    ray: str | None = None  # `--ray [ADDRESS]`: the engines in a Ray Serve deployment on that cluster
    replicas: int | None = None  # with ray: how many (default: one per GPU, else per 4 CPU cores)
    max_replicas: int | None = None  # with ray: autoscale from 1 to this many as jobs wait (nodes added later too)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and "localhost"."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token: anyone who can reach the port could otherwise
    use the GPU, read the results and fill the disk."""
    if not is_loopback(host) and not token:
        raise RequestError(
            f"--host {host} makes the server reachable from other machines: give a token with --token-file "
            "(clients send it as 'Authorization: Bearer TOKEN')",
            field="host",
        )


def read_token_file(path: Path) -> str:
    """The token in `path` (its first line, stripped): a regular file, not readable by others where the
    file system has permissions, at least MIN_TOKEN_CHARS characters."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise RequestError(f"--token-file {path}: cannot read it ({exc.strerror or exc})", field="token_file") from None
    if not stat.S_ISREG(info.st_mode):
        raise RequestError(f"--token-file {path}: not a regular file", field="token_file")
    if info.st_size > MAX_TOKEN_FILE_BYTES:
        raise RequestError(f"--token-file {path}: {info.st_size:,} bytes; a token file holds one line", field="token_file")
    if os.name == "posix" and info.st_mode & 0o077:
        raise RequestError(
            f"--token-file {path}: readable by other users (mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it",
            field="token_file",
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"--token-file {path}: cannot read it ({exc})", field="token_file") from None
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise RequestError(
            f"--token-file {path}: the token must be one line of at least {MIN_TOKEN_CHARS} printable ASCII characters "
            "without spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            field="token_file",
        )
    return token
