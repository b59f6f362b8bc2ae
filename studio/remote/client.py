"""The async client of `studio serve`: what the window uses instead of its own engine thread when the
engine runs on another machine.

Why it looks the way it does:

* asyncio and aiohttp only, no Qt: the window runs it on qasync's loop, scripts and tests on a plain one.
* Every failure is a :class:`RemoteError` (never an aiohttp exception): the window shows ``str(error)`` as it
  is, one line that names the server and the reason, and acts on the subclass (ask for a token, wait and
  resubmit, offer to reconnect). A refusal of the request carries the field the server named, so the
  window can point at the widget at fault.
* :meth:`RemoteClient.events` survives a dropped stream (the server restarted, Wi-Fi blinked): it resumes
  with ``Last-Event-ID``, so the window sees each event once and in order, and only gives up after
  `reconnect_seconds` without the server.
* Nothing the server sends is trusted further than it must be: JSON is parsed with the library's bounded
  parser, messages are cut to one printable line, an event stream's events are size-capped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import json
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from studio import __version__
from studio.engine.request import GenerationRequest
from studio.engine.request_json import request_to_json
from studio.library.display import first_line, printable
from studio.library.safe_json import JSONRefused, loads
from studio.remote.sse import SSEError, SSEMessage, SSEParser

__all__ = [
    "TERMINAL_KINDS",
    "ConnectionLost",
    "JobInfo",
    "QueueFull",
    "RemoteClient",
    "RemoteError",
    "RemoteEvent",
    "RemoteImage",
    "RemoteModel",
    "Unauthorized",
    "check_server",
    "normalize_url",
]

TERMINAL_KINDS = frozenset({"done", "failed", "cancelled"})
"""Event kinds after which a job's stream ends (and its state no longer changes)."""
FINISHED_STATES = frozenset({"done", "failed", "cancelled"})

RECONNECT_FIRST_DELAY = 0.25
RECONNECT_MAX_DELAY = 4.0
STREAM_IDLE_SECONDS = 45.0
"""The server sends a keep-alive every 15 s: three missed ones mean a dead connection (a laptop that slept,
a NAT that forgot us), which only a read timeout detects; then the stream reconnects."""
MAX_JSON_DEPTH = 64
MAX_ERROR_BODY_BYTES = 64 << 10
MAX_MESSAGE_CHARS = 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ errors
class RemoteError(Exception):
    """Anything that went wrong talking to the server, as one line for the user.

    `status` is the HTTP status when the server answered (None when it did not), `field` the request field
    the server named as at fault ("steps", "model", "job_id"), for the window to point at."""

    def __init__(self, message: str, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


class Unauthorized(RemoteError):
    """HTTP 401: the server wants a token and ours is missing or wrong."""


class QueueFull(RemoteError):
    """HTTP 429: the server's queue is full; `retry_after` is its guess, in whole seconds, of when it has room."""

    def __init__(self, message: str, retry_after: int, status: int | None = 429, field: str | None = None) -> None:
        super().__init__(message, status, field)
        self.retry_after = retry_after


class ConnectionLost(RemoteError):
    """The server could not be reached or stopped answering (refused, no such host, timed out, dropped)."""


# ------------------------------------------------------------------------------------------ data classes
@dataclass(frozen=True)
class RemoteModel:
    """A model the server offers (GET /v1/models): `name` is what a request's `model` field names."""

    name: str
    kind: str  # "catalogue" | "folder" | "file"
    family: str | None
    local: bool  # its weights are on the server now (a catalogue model may need a download first)


@dataclass(frozen=True)
class RemoteImage:
    """One finished image of a job; fetch its PNG with :meth:`RemoteClient.image` (`index`)."""

    index: int
    seed: int
    nsfw: bool | None
    url: str


@dataclass(frozen=True)
class JobInfo:
    """A job as the server summarizes it (GET /v1/jobs/{id}).

    `state` is queued | running | done | failed | cancelled; `step` / `total` the progress so far; `error`
    the failed event's data ({message, field?, kind}) once it failed, else None."""

    id: str
    state: str
    model: str
    prompt: str
    step: int
    total: int
    images: tuple[RemoteImage, ...]
    warnings: tuple[str, ...]
    error: dict[str, Any] | None
    created: float | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @classmethod
    def from_json(cls, data: Any) -> JobInfo:
        """The summary the server sent, checked field by field (RemoteError for a malformed one)."""
        data = _mapping(data, "a job")
        images = []
        for item in _typed(data, "images", list, "a job"):
            item = _mapping(item, "a job's image")
            images.append(RemoteImage(
                index=_typed(item, "index", int, "a job's image"),
                seed=_typed(item, "seed", int, "a job's image"),
                nsfw=_typed(item, "nsfw", bool, "a job's image", optional=True),
                url=_typed(item, "url", str, "a job's image"),
            ))
        warnings = _typed(data, "warnings", list, "a job")
        error = data.get("error")
        if error is not None and not isinstance(error, dict):
            raise _malformed("a job's error is not an object")
        return cls(
            id=_typed(data, "id", str, "a job"),
            state=_typed(data, "state", str, "a job"),
            model=_typed(data, "model", str, "a job"),
            prompt=_typed(data, "prompt", str, "a job"),
            step=_typed(data, "step", int, "a job"),
            total=_typed(data, "total", int, "a job"),
            images=tuple(images),
            warnings=tuple(str(w) for w in warnings),
            error=error,
            created=_number(data.get("created")),
            started=_number(data.get("started")),
            finished=_number(data.get("finished")),
        )


@dataclass(frozen=True)
class RemoteEvent:
    """One event of a job's stream: `id` its number in the job (1, 2, ...), `kind` queued | started | status
    | warning | step | image | done | failed | cancelled, `data` its JSON object (for a step: step, total
    and, for the newest step, preview; for an image: index, seed, nsfw, url; for failed: message, field?,
    kind)."""

    id: int
    kind: str
    data: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        """The last event of the job: done, failed or cancelled."""
        return self.kind in TERMINAL_KINDS

    def preview_jpeg(self) -> bytes | None:
        """A step's preview image as JPEG bytes; None where the event has none (not a step, previews off, or
        a step replayed after a reconnect: the server keeps the preview of its newest step only)."""
        encoded = self.data.get("preview")
        if not isinstance(encoded, str) or not encoded:
            return None
        try:
            return base64.b64decode(encoded.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise RemoteError(f"the preview of step {self.data.get('step')} is not valid base64") from None


# ---------------------------------------------------------------------------------------------- the URL
def normalize_url(url: str) -> str:
    """The server's base URL as the client uses it: a scheme (``host:port`` gets ``http://``), no trailing
    slash. Refused with a one-line reason: other schemes, no host, a bad port, a user or password (the token
    has a field of its own; a password in an address ends up in logs), a query or fragment."""
    text = (url or "").strip()
    if not text:
        raise RemoteError("no server address: give host:port, e.g. 192.168.1.20:7861", field="url")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RemoteError(f"{printable(url)}: the server address must start with http:// or https://, not {scheme}://",
                          field="url")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError:
        raise RemoteError(f"{printable(url)}: the port must be a number from 1 to 65535", field="url") from None
    if not parts.hostname:
        raise RemoteError(f"{printable(url)}: the address names no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise RemoteError("give the token in its own field, not as user:password in the address", field="url")
    if parts.query or parts.fragment:
        raise RemoteError(f"{printable(url)}: a server address has no ?query or #fragment", field="url")
    if any(char.isspace() for char in text):
        raise RemoteError(f"{printable(url)}: the address holds a space", field="url")
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _check_token(token: str | None) -> str | None:
    if token is None:
        return None
    token = token.strip()
    if not token:
        return None
    if not token.isascii() or not token.isprintable() or " " in token:
        raise RemoteError("the token must be one line of printable ASCII characters without spaces", field="token")
    return token


# ------------------------------------------------------------------------------------------- the client
class RemoteClient:
    """One server, one :class:`aiohttp.ClientSession` (made on first use, on the running loop; close it with
    :meth:`close` or ``async with``).

    `connect_timeout` bounds reaching the server (DNS and TCP), `read_timeout` the wait for each answer,
    `reconnect_seconds` how long :meth:`events` keeps trying to get a dropped stream back."""

    def __init__(
        self, url: str, token: str | None = None, *, connect_timeout: float = 5.0, read_timeout: float = 60.0,
        reconnect_seconds: float = 30.0,
    ) -> None:
        self.url = normalize_url(url)
        self.token = _check_token(token)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.reconnect_seconds = reconnect_seconds
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RemoteClient({self.url!r}, token={'***' if self.token else None})"  # never the token itself

    async def __aenter__(self) -> RemoteClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections: a running :meth:`events` stream ends with ConnectionLost
        (instead of reconnecting). A later call opens a new session."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # ----------------------------------------------------------------------------------- the endpoints
    async def health(self) -> dict[str, Any]:
        """GET /health (no token needed): {"status": "ok", "version": ...}."""
        return _mapping(await self._json("GET", "/health"), "/health's answer")

    async def status(self) -> dict[str, Any]:
        """GET /v1/status (checks the token): {"version", "queue": {waiting, running, limit}, "workers"}."""
        return _mapping(await self._json("GET", "/v1/status"), "/v1/status's answer")

    async def models(self) -> list[RemoteModel]:
        """The models a request may name on this server."""
        items = await self._json("GET", "/v1/models")
        if not isinstance(items, list):
            raise _malformed("/v1/models did not answer a list")
        models = []
        for item in items:
            item = _mapping(item, "a model")
            models.append(RemoteModel(
                name=_typed(item, "name", str, "a model"),
                kind=_typed(item, "kind", str, "a model"),
                family=_typed(item, "family", str, "a model", optional=True),
                local=bool(item.get("local")),
            ))
        return models

    async def submit(self, request: GenerationRequest) -> JobInfo:
        """Queue `request` (its `model` is a name the server offers, see :meth:`models`). Refusals: RemoteError
        with the field at fault (400), QueueFull (429), Unauthorized (401)."""
        try:
            body = json.dumps(request_to_json(request), allow_nan=False, separators=(",", ":"))
        except OSError as exc:
            raise RemoteError(f"cannot read the image to send: {first_line(exc)}") from None
        except (TypeError, ValueError) as exc:
            raise RemoteError(f"the request cannot be sent as JSON: {first_line(exc)}") from None
        return JobInfo.from_json(await self._json("POST", "/v1/jobs", body=body.encode("utf-8")))

    async def job(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(await self._json("GET", f"/v1/jobs/{_segment(job_id)}"))

    async def jobs(self) -> list[JobInfo]:
        """Every job the server still keeps, waiting, running and finished."""
        items = await self._json("GET", "/v1/jobs")
        if not isinstance(items, list):
            raise _malformed("/v1/jobs did not answer a list")
        return [JobInfo.from_json(item) for item in items]

    async def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job: a waiting one at once, a running one within a step (its stream then ends with
        `cancelled`). A finished job is left as it is. The summary returned is the job at the time of asking."""
        return JobInfo.from_json(await self._json("POST", f"/v1/jobs/{_segment(job_id)}/cancel"))

    async def image(self, job_id: str, index: int) -> bytes:
        """Image `index` of a job: the PNG file, with our metadata, exactly as a local run saves it."""
        body = await self._call("GET", f"/v1/jobs/{_segment(job_id)}/images/{int(index)}", accept="image/png")
        if not body.startswith(PNG_SIGNATURE):
            raise _malformed(f"image {index} of job {job_id} is not a PNG file")
        return body

    async def events(self, job_id: str, after: int = 0) -> AsyncIterator[RemoteEvent]:
        """The job's events after id `after` (0: from the start), as they happen, ending after done, failed
        or cancelled.

        A stream that drops before its end is resumed with ``Last-Event-ID``: no event is repeated or lost.
        It retries with a growing pause (0.25 s up to 4 s) and raises ConnectionLost after
        `reconnect_seconds` without getting anything from the server; RemoteError (status 404) when the
        server answers again but no longer knows the job (it restarted: jobs live in its memory).

        An async generator: stop early with ``async with contextlib.aclosing(client.events(id)) as events``
        (or ``break`` and let it be collected) to close its connection."""
        path = f"/v1/jobs/{_segment(job_id)}/events"
        last = max(0, int(after))
        delay = RECONNECT_FIRST_DELAY
        lost_since: float | None = None
        reconnecting = False
        loop = asyncio.get_running_loop()
        while True:
            session = self._session_now()
            headers = {"Accept": "text/event-stream"}
            if last:
                headers["Last-Event-ID"] = str(last)
            progressed = False
            try:
                async with session.get(self.url + path, headers=headers, allow_redirects=False,
                                       timeout=self._timeout(STREAM_IDLE_SECONDS)) as response:
                    if response.status in (502, 503, 504):  # a proxy before a restarting server: try again
                        reason = f"HTTP {response.status} {printable(response.reason or '')}".strip()
                    else:
                        if response.status == 404 and reconnecting:
                            raise RemoteError(
                                f"job {printable(job_id)} is no longer on {self.url}: the server restarted or forgot "
                                "it (jobs live in its memory only)", 404, "job_id",
                            )
                        if response.status >= 300:
                            raise await self._http_error(response)
                        _check_type(response, "text/event-stream", path)
                        parser = SSEParser(str(last) if last else None)
                        async for chunk in response.content.iter_any():
                            try:
                                messages = parser.feed(chunk)
                            except SSEError as exc:
                                raise _malformed(f"the events of job {printable(job_id)}: {exc}") from None
                            progressed = progressed or parser.comments > 0
                            for message in messages:
                                event = _event(message)
                                if event.id <= last:
                                    continue  # already seen (a server replaying more than asked)
                                last, progressed = event.id, True
                                yield event
                                if event.is_terminal:
                                    return
                        reason = "the server ended the stream before the job finished"
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                if session.closed:  # close() while reading (aiohttp then raises RuntimeError or a ClientError)
                    raise ConnectionLost(
                        f"the events of job {printable(job_id)} from {self.url} stopped: the client was closed"
                    ) from None
                if isinstance(exc, RuntimeError):
                    raise
                if isinstance(exc, aiohttp.InvalidURL | aiohttp.ClientResponseError):
                    raise self._lost(exc) from None
                reason = self._reason(exc)
            reconnecting = True
            now = loop.time()
            if progressed or lost_since is None:
                lost_since, delay = now, RECONNECT_FIRST_DELAY
            waited = now - lost_since
            if waited >= self.reconnect_seconds:
                raise ConnectionLost(
                    f"lost the events of job {printable(job_id)} from {self.url}: {reason} "
                    f"(retried for {self.reconnect_seconds:g} s)"
                )
            await asyncio.sleep(min(delay, self.reconnect_seconds - waited))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    # ------------------------------------------------------------------------------------------ plumbing
    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError("a RemoteClient serves the event loop it was first used on: make one per loop")
            return self._session
        headers = {"User-Agent": f"LatentStudio/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._loop = loop
        self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout(self.read_timeout))
        return self._session

    def _timeout(self, read: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_connect=self.connect_timeout,
                                     sock_read=read)

    async def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        raw = await self._call(method, path, body=body, accept="application/json")
        try:
            return loads(raw, max_depth=MAX_JSON_DEPTH, allow_constants=False)
        except JSONRefused as exc:
            raise _malformed(f"{method} {path}: the answer {exc}") from None

    async def _call(self, method: str, path: str, *, body: bytes | None = None, accept: str) -> bytes:
        """One request; the answer's body when it is a success of the expected type, else RemoteError."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        session = self._session_now()
        try:
            async with session.request(method, self.url + path, data=body, headers=headers,
                                       allow_redirects=False) as response:
                if response.status >= 300:
                    raise await self._http_error(response)
                _check_type(response, accept, path)
                return await response.read()
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            if session.closed:  # close() from another task while this call waited
                raise ConnectionLost(f"{method} {path} on {self.url} stopped: the client was closed") from None
            if isinstance(exc, RuntimeError):
                raise
            raise self._lost(exc) from None

    async def _http_error(self, response: aiohttp.ClientResponse) -> RemoteError:
        """The server's refusal as our error: its JSON message and field, or the status line."""
        message, field = "", None
        try:
            raw = await response.content.read(MAX_ERROR_BODY_BYTES)
            error = loads(raw, max_depth=MAX_JSON_DEPTH).get("error")
            if isinstance(error, dict):
                message = error.get("message") if isinstance(error.get("message"), str) else ""
                field = error.get("field") if isinstance(error.get("field"), str) else None
        except (aiohttp.ClientError, TimeoutError, JSONRefused, AttributeError):
            pass
        status = response.status
        if 300 <= status < 400:
            location = printable(response.headers.get("Location", "elsewhere"))
            message = f"{self.url} redirects to {location}: use that address"
        message = _one_line(message) or f"HTTP {status} {printable(response.reason or '')}".strip()
        if status == 401:
            return Unauthorized(message, status, field)
        if status == 429:
            return QueueFull(message, _retry_after(response.headers.get("Retry-After")), status, field)
        return RemoteError(message, status, field)

    def _lost(self, exc: BaseException) -> RemoteError:
        if isinstance(exc, aiohttp.InvalidURL):
            return RemoteError(f"{self.url} is not a usable address ({_one_line(first_line(exc))})", field="url")
        if isinstance(exc, aiohttp.ClientResponseError):  # a malformed answer (bad headers, bad chunking)
            return RemoteError(f"{self.url} sent a malformed answer ({_one_line(exc.message or first_line(exc))})",
                               exc.status or None)
        return ConnectionLost(f"cannot reach {self.url}: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        """Why the server could not be reached, in a few words."""
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return "its TLS certificate is not trusted"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"TLS failed ({_one_line(first_line(exc))})"
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return "host name not found"
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"no connection within {self.connect_timeout:g} s"
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return "the server stopped answering (read timed out)"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return "the server closed the connection"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return "the connection broke off mid-answer"
        if isinstance(exc, aiohttp.ClientOSError):
            return _os_reason(exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc)
        if isinstance(exc, TimeoutError):
            return "timed out"
        return _one_line(first_line(exc))


async def check_server(url: str, token: str | None = None, *, timeout: float = 5.0) -> str:
    """The preferences' "Test" button: reach the server, check that it is ours (/health) and that the token
    is accepted (/v1/status). One line describing it, e.g. "Latent Studio 0.1.0 at http://host:7861: 0
    waiting, 0 running"; RemoteError with a one-line reason otherwise."""
    async with RemoteClient(url, token, connect_timeout=timeout, read_timeout=timeout * 2) as client:
        try:
            health = await client.health()
        except RemoteError as exc:
            if isinstance(exc, ConnectionLost) or exc.status is None:
                raise  # cannot reach it, or its answer already says it is not ours
            raise RemoteError(f"{client.url} is not a Latent Studio server (/health: {exc})", exc.status) from None
        if health.get("status") != "ok":
            raise RemoteError(f"{client.url} is not a Latent Studio server (its /health answer is not ours)")
        try:
            status = await client.status()
        except Unauthorized as exc:
            reason = "wrong token: the server refused it" if client.token else "missing token: the server requires one"
            raise Unauthorized(f"{client.url}: {reason}", exc.status, "token") from None
    queue = status.get("queue") if isinstance(status.get("queue"), dict) else {}
    version = status.get("version", health.get("version", "?"))
    workers = status.get("workers")
    devices = f" on {workers} devices" if isinstance(workers, int) and workers > 1 else ""
    return (f"Latent Studio {_one_line(str(version))} at {client.url}{devices}: "
            f"{queue.get('waiting', '?')} waiting, {queue.get('running', '?')} running")


# --------------------------------------------------------------------------------------------- helpers
def _segment(job_id: str) -> str:
    """A job id as one path segment (an id with a slash must not name another endpoint)."""
    if not isinstance(job_id, str) or not job_id:
        raise RemoteError("no job id given", field="job_id")
    return quote(job_id, safe="")


def _event(message: SSEMessage) -> RemoteEvent:
    if message.id is None or not message.id.isascii() or not message.id.isdigit() or len(message.id) > 12:
        raise _malformed(f"an event ({printable(message.event[:40])}) of the stream has no number")
    try:
        data = loads(message.data, max_depth=MAX_JSON_DEPTH, allow_constants=False)
    except JSONRefused as exc:
        raise _malformed(f"the data of event {message.id} {exc}") from None
    if not isinstance(data, dict):
        raise _malformed(f"the data of event {message.id} is not an object")
    return RemoteEvent(int(message.id), message.event, data)


def _check_type(response: aiohttp.ClientResponse, expected: str, path: str) -> None:
    if response.content_type != expected:
        raise _malformed(
            f"{response.url.origin()} does not look like a Latent Studio server: {path} answered "
            f"{printable(response.content_type or 'no content type')}, not {expected}"
        )


def _retry_after(value: str | None) -> int:
    """Retry-After in whole seconds (at least 1); an HTTP date or nonsense reads as 1."""
    text = (value or "").strip()
    return max(1, min(int(text), 86400)) if text.isascii() and text.isdigit() and len(text) < 10 else 1


def _os_reason(error: BaseException | None) -> str:
    if isinstance(error, socket.gaierror):
        return "host name not found"
    number = getattr(error, "errno", None)
    words = {
        errno.ECONNREFUSED: "connection refused", errno.ECONNRESET: "connection reset",
        errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
        errno.ETIMEDOUT: "timed out", errno.EADDRNOTAVAIL: "address not available",
    }
    if number in words:
        return words[number]
    if isinstance(error, OSError) and error.strerror:
        return _one_line(error.strerror).lower()
    return _one_line(first_line(error)) if error is not None else "connection failed"


def _one_line(text: str) -> str:
    """A message from the network as one printable line of modest length."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    line = printable(line)
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def _malformed(what: str) -> RemoteError:
    return RemoteError(f"unexpected answer from the server: {what}")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(f"{what} is not an object")
    return dict(value)


def _typed(data: Mapping[str, Any], key: str, kind: type, what: str, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _malformed(f"{what} has no {key} ({kind.__name__})")
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
