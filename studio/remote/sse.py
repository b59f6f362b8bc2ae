"""A server-sent events parser fed raw byte chunks, as the network hands them over.

Why our own (and not a package): it is forty lines of the WHATWG rules, the network splits chunks anywhere
(inside a line, between the CR and LF of a line end, inside a UTF-8 character), and the client must stay
free to reconnect with the last id it saw, which a parser owning the connection would hide. The rules kept:
lines end with CRLF, LF or CR; a line starting with ":" is a comment (the server's keep-alives); a field's
value loses one leading space; several `data` lines join with newlines; an empty line dispatches; an event
with no data is not dispatched; `id` persists to later events; a stream that ends mid-event drops it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_EVENT_BYTES", "SSEError", "SSEMessage", "SSEParser"]

MAX_EVENT_BYTES = 16 << 20
"""An event (or a line) larger than this is refused: our largest, a step with its JPEG preview, is a few kB,
and a server that never ends a line must not fill the window's memory."""

_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEError(ValueError):
    """The stream breaks the format beyond repair (an event over MAX_EVENT_BYTES)."""


@dataclass(frozen=True)
class SSEMessage:
    """One dispatched event: its type ("message" when the server named none), its data (data lines joined
    by newlines) and the last id seen so far (None before any)."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Feed it chunks; it returns the events each chunk completes. One parser per connection, except that
    `last_id` may be carried to the next one (the id a reconnect sends as Last-Event-ID)."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.comments = 0  # keep-alives and other comment lines seen: a sign of life, not an event
        self.retry: int | None = None  # ms: the reconnection delay the server asked for last, if any
        self._buffer = bytearray()
        self._skip_lf = False  # the previous chunk ended with CR: an LF starting this one ends no line
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        """The events completed by `chunk` (often none; several when the chunk holds several)."""
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        out: list[SSEMessage] = []
        start = 0
        for end in _LINE_END.finditer(chunk):
            line = chunk[start:end.start()]
            if self._buffer:
                line = bytes(self._buffer) + line
                self._buffer.clear()
            start = end.end()
            message = self._line(line)
            if message is not None:
                out.append(message)
        if start < len(chunk):
            self._buffer += chunk[start:]
            if len(self._buffer) + self._data_bytes > MAX_EVENT_BYTES:
                raise SSEError(f"an event of the stream is over {MAX_EVENT_BYTES >> 20} MiB")
        elif chunk.endswith(b"\r"):
            self._skip_lf = True  # a CR last in the chunk: an LF first in the next one ends no second line
        return out

    def _line(self, raw: bytes) -> SSEMessage | None:
        if self._first_line:
            self._first_line = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            return self._dispatch()
        if raw.startswith(b":"):
            self.comments += 1
            return None
        text = raw.decode("utf-8", "replace")
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_bytes += len(raw)
            if self._data_bytes > MAX_EVENT_BYTES:
                raise SSEError(f"an event of the stream is over {MAX_EVENT_BYTES >> 20} MiB")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None  # other fields are ignored, as the format says

    def _dispatch(self) -> SSEMessage | None:
        data, event = self._data, self._event
        self._data, self._data_bytes, self._event = [], 0, ""
        if not data:
            return None
        return SSEMessage(event or "message", "\n".join(data), self.last_id)
