"""What crosses the wire besides images: JSON bodies read with limits, and errors as JSON that name the
field at fault (`{"error": {"message": ..., "field": ...}}`), the same words the CLI prints."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from studio.engine.errors import RequestError
from studio.library.safe_json import JSONRefused, loads

MAX_JSON_DEPTH = 64
BODY_SECONDS = 120.0
"""A body that takes longer than this to arrive is refused (a client trickling bytes holds a connection)."""


class ApiError(Exception):
    """An HTTP error answered as JSON."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message}
    if field:
        body["field"] = field
    return web.json_response({"error": body}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, or 413 past `limit` bytes (checked while reading: a chunked body has no length)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the body is {request.content_length:,} bytes; at most {limit >> 20} MiB is accepted")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the body is over {limit >> 20} MiB, the most accepted")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the body took over {BODY_SECONDS:g} s to arrive") from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """Untrusted JSON: UTF-8, nesting and number sizes bounded (library.safe_json); 400 otherwise."""
    if not raw.strip():
        raise ApiError(400, "the body is empty: send a JSON object")
    try:
        return loads(raw, max_depth=MAX_JSON_DEPTH, allow_constants=False)
    except JSONRefused as exc:
        raise ApiError(400, f"the body {exc}") from None


def request_error(exc: RequestError) -> ApiError:
    return ApiError(400, str(exc), exc.field)
