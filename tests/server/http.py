"""Plain HTTP for the server tests: urllib against a real server on loopback, and a reader of its SSE."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, method: str = "GET", body: Any = None, *, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None, timeout: float = 60.0) -> Reply:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and not any(k.lower() == "content-type" for k in (headers or {})):
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


@dataclass
class Event:
    id: int
    kind: str
    data: dict[str, Any]


def events(url: str, *, token: str | None = None, after: int = 0, until=None, timeout: float = 120.0):
    """The job's SSE events, in order, until the stream ends (or `until(event)` says stop)."""
    request = urllib.request.Request(url, headers={"Last-Event-ID": str(after)} if after else {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    out: list[Event] = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response:
            text = line.decode().rstrip("\r\n")
            if text.startswith(":"):
                continue
            if text:
                name, _, value = text.partition(": ")
                fields[name] = value
                continue
            event = Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}
            out.append(event)
            if until is not None and until(event):
                break
    return out
