"""A small Hugging Face hub on 127.0.0.1 for download tests: real HTTP, real huggingface_hub client.

It answers the requests `snapshot_download` and `HfApi.model_info` make (model info, tree listing, HEAD and
GET on /resolve with Range for resumes) for one repo at one commit, and can trickle a file out slowly so
that a test can cancel mid-file. It records every request, so tests can see retries and resumes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repo: str
    commit: str
    files: dict[str, bytes]
    slow_file: str | None = None  # its first GET is sent in chunks with pauses (for cancel tests)
    chunk: int = 512 * 1024
    pause: float = 0.05
    requests: list[Request] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)  # files whose transfer the client cut off

    def __post_init__(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, head=True)

            def do_GET(self) -> None:
                hub._answer(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    def from_folder(cls, repo: str, commit: str, folder: Path, extra: dict[str, bytes] | None = None, **kw) -> FakeHub:
        return cls(repo, commit, {**folder_files(folder), **(extra or {})}, **kw)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def etag(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    # ------------------------------------------------------------------------------------------ answers

    def _answer(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path)
        self.requests.append(Request(h.command, path, h.headers.get("Range")))
        info = f"/api/models/{self.repo}/revision/"
        tree = f"/api/models/{self.repo}/tree/"
        resolve = f"/{self.repo}/resolve/"
        if path.startswith(info):
            siblings = [{"rfilename": name, "size": len(data)} for name, data in self.files.items()]
            self._json(h, {"id": self.repo, "sha": self.commit, "siblings": siblings})
        elif path.startswith(tree):
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in self.files.items()
            ]
            self._json(h, entries)
        elif path.startswith(resolve):
            _revision, _, name = path[len(resolve):].partition("/")
            if name not in self.files:
                self._error(h, 404, "EntryNotFound")
            else:
                self._file(h, name, head)
        else:
            self._error(h, 404, "RepoNotFound")

    def _json(self, h: BaseHTTPRequestHandler, payload) -> None:
        body = json.dumps(payload).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _file(self, h: BaseHTTPRequestHandler, name: str, head: bool) -> None:
        data = self.files[name]
        start = 0
        ranged = h.headers.get("Range", "")
        if ranged.startswith("bytes=") and not head:
            start = int(ranged[len("bytes="):].split("-")[0] or 0)
        part = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", self.commit)
        h.send_header("ETag", f'"{self.etag(data)}"')
        h.send_header("Content-Length", str(len(part) if not head else len(data)))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        slow = name == self.slow_file and not any(r.path.endswith(f"/{name}") for r in self.requests[:-1])
        try:
            if not slow:
                h.wfile.write(part)
                return
            for offset in range(0, len(part), self.chunk):
                h.wfile.write(part[offset:offset + self.chunk])
                h.wfile.flush()
                time.sleep(self.pause)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped (a cancel)
            self.aborted.append(name)


def cache_repo(
    cache: Path,
    repo: str,
    commit: str,
    files: dict[str, bytes],
    *,
    listing: dict[str, bytes] | None = None,
    ref: str | None = "main",
) -> Path:
    """A repo in the Hugging Face cache layout, as huggingface_hub writes it: `blobs/<sha256>` holding the
    bytes once, `snapshots/<commit>/<path>` symlinks to them, `refs/<ref>`, and (hub 2.x) the listing of the
    repo's files in `trees/<commit>.json` (`listing`: what the repo holds, present here or not; None: none
    kept, as older clients or hand copies leave it). Returns the snapshot folder."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    for name, data in files.items():
        blob = root / "blobs" / FakeHub.etag(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    if ref:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    if listing is not None:
        (root / "trees").mkdir(parents=True, exist_ok=True)
        entries = {
            name: {"size": len(data), "blob_id": hashlib.sha1(data).hexdigest()} for name, data in listing.items()
        }
        (root / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": entries}))
    return snapshot


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by its repo path: a tiny model's files as a hub repo would hold them."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released): connecting is refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
