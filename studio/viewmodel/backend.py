"""Where jobs run: "This computer" (the engine's thread) or a `studio serve` server (URL and token).

Preferences -> Backend binds to :class:`BackendChoice`. The mode and the URL persist with the other
preferences; the token lives in a file of its own readable by this user only
(:mod:`studio.library.server_token`). The session hands :meth:`BackendChoice.address` to the queue whenever
it changes; a job already running finishes where it started.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.library.display import first_line
from studio.library.server_token import clean_token, read_token, write_token
from studio.viewmodel.properties import Property, ViewModel, one_of
from studio.worker.remote_generation import ServerAddress
from studio.worker.tasks import TaskPool

__all__ = ["BACKEND_KEYS", "BackendChoice", "clean_url"]

BACKEND_KEYS = ("local", "server")
DEFAULT_URL = "http://127.0.0.1:7861"
MAX_URL_CHARS = 2048


def clean_url(text: Any) -> str:
    """A server URL as kept: stripped, one line, of a sensible length ("" allowed: not set yet)."""
    if not isinstance(text, str):
        raise TypeError("a URL is text")
    url = text.strip()
    if len(url) > MAX_URL_CHARS or any(c in url for c in "\r\n\0 "):
        raise ValueError("not a URL")
    return url


class BackendChoice(ViewModel):
    mode = Property("local", persist=True, check=one_of(BACKEND_KEYS), key="backend",
                    doc='"local": this computer; "server": a studio serve server')
    url = Property(DEFAULT_URL, kind=str, persist=True, check=clean_url, key="server_url")

    address_changed = Signal()
    test_finished = Signal(str, bool)  # what the server said (or why it could not be reached), whether it is usable

    def __init__(self, parent: QObject | None = None, *, token_file: Path | None = None) -> None:
        super().__init__(parent)
        self._token_file = token_file
        self._token = read_token(token_file)
        self._tasks = TaskPool("studio-server-queries", threads=1, parent=self)  # Test and the model list
        self._quiet = False  # while configure() sets several values: one address_changed at the end
        self.mode_changed.connect(lambda _value: self._changed())
        self.url_changed.connect(lambda _value: self.mode == "server" and self._changed())

    def _changed(self) -> None:
        if not self._quiet:
            self.address_changed.emit()

    def configure(self, mode: str, url: str, token_text: str) -> str:
        """Preferences' OK: set the mode, URL and token together (one address_changed); "" when done, else
        why not (nothing changed then)."""
        try:
            url = clean_url(url)
            clean_token(token_text)
        except (TypeError, ValueError) as exc:
            return f"That cannot be used: {first_line(exc)}"
        if mode == "server" and not url:
            return "Give the server's URL, e.g. http://192.168.1.20:7861"
        before = self.address()
        self._quiet = True
        try:
            problem = self.set_token(token_text)
            if problem:
                return problem
            self.url = url
            self.mode = mode
        finally:
            self._quiet = False
        if self.address() != before:
            self.address_changed.emit()
        return ""

    @property
    def token(self) -> str | None:
        return self._token

    def set_token(self, text: str) -> str:
        """Keep a new token (empty: none); "" when kept, else why not (a bad token, a disk that refuses)."""
        try:
            token = clean_token(text)
            write_token(token, self._token_file)
        except (ValueError, OSError) as exc:
            return f"Could not keep the token: {first_line(exc)}"
        if token != self._token:
            self._token = token
            if self.mode == "server":
                self._changed()
        return ""

    def address(self) -> ServerAddress | None:
        """The server jobs go to, or None for this computer."""
        if self.mode != "server" or not self.url:
            return None
        return ServerAddress(self.url, self._token)

    def test(self, url: str | None = None, token: str | None = None) -> None:
        """Ask the server at `url` (default: the kept one) whether it answers and takes the token, off the
        GUI thread; test_finished follows with one line."""
        url = self.url if url is None else url
        token = self._token if token is None else token
        self._tasks.submit(_check, url, token, on_result=lambda text: self.test_finished.emit(text, True),
                           on_error=lambda exc: self.test_finished.emit(first_line(exc), False))

    def list_models(self, on_result: Callable[[tuple[ServerAddress, dict[str, str | None]]], Any],
                    on_error: Callable[[BaseException], Any]) -> None:
        """Ask the kept server for its folders' models (name -> family), off the GUI thread; `on_result`
        gets (the address asked, the models), so an answer for an address changed meanwhile can be told."""
        address = self.address()
        if address is not None:
            self._tasks.submit(_models, address, on_result=on_result, on_error=on_error)

    def shutdown(self) -> None:
        self._tasks.shutdown(timeout_ms=0)


def _check(_context, url: str, token: str | None) -> str:
    import asyncio

    from studio.remote import check_server

    return asyncio.run(check_server(url, clean_token(token or "")))


def _models(_context, address: ServerAddress) -> tuple[ServerAddress, dict[str, str | None]]:
    """The server's folder models (name -> family); the catalogue's are in the model list already."""
    import asyncio

    from studio.remote import RemoteClient

    async def listed():
        async with RemoteClient(address.url, address.token) as client:
            return await client.models()

    return address, {m.name: m.family for m in asyncio.run(listed()) if m.kind != "catalogue"}
