"""Building and running the server: the aiohttp application, its middlewares (token, CORS, JSON errors),
one :class:`~studio.server.device_worker.DeviceWorker` per device, and a clean shutdown that cancels
what runs.

Why aiohttp (not FastAPI + uvicorn): one library gives the server, the SSE stream and the async client the
window uses on its qasync loop; our request checks are the CLI's own (FastAPI's pydantic models would be a
second, drifting copy of them); and Ray Serve is reached through deployment handles, which need no ASGI
framework in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from studio.engine.errors import RequestError
from studio.server.config import ServerConfig, check_bind
from studio.server.device_worker import DeviceWorker
from studio.server.jobs import JobBoard
from studio.server.model_names import ModelNames
from studio.server.routes import BOARD, CONFIG, DECODES, NAMES, routes
from studio.server.wire import ApiError, error_response

if TYPE_CHECKING:
    from studio.engine import Engine

log = logging.getLogger(__name__)

WORKERS = web.AppKey("workers", list)
OPEN_PATHS = frozenset({"/health"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

EngineMaker = Callable[[ServerConfig, str], "Engine"]


def make_engine(config: ServerConfig, device: str) -> Engine:
    """The engine of one device: no pickles ever (models come from the network's choices), the server's
    LoRA and embedding folders."""
    from studio.engine import Engine
    from studio.engine.loading import quiet_libraries
    from studio.library.extra_networks import NetworkCatalog

    quiet_libraries()
    return Engine(
        device=device, dtype=config.dtype, backend=config.backend, threads=config.threads, allow_ckpt=False,
        preview=config.preview, networks=NetworkCatalog.with_folders(config.lora_dirs, config.embedding_dirs),
    )


def worker_devices(device: str, cuda_count: int | None = None) -> list[str]:
    """One engine thread per device: each visible GPU for "cuda" (or "auto" with GPUs), else the one device."""
    if device not in ("auto", "cuda"):
        return [device]
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_count > 1:
        return [f"cuda:{n}" for n in range(cuda_count)]
    return ["cuda" if device == "cuda" or cuda_count == 1 else device]


@web.middleware
async def _errors(request: web.Request, handler):
    """Every error as JSON; never a traceback to the client."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.field, exc.headers)
    except RequestError as exc:
        return error_response(400, str(exc), exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:  # noqa: BLE001 - logged here, one line to the client
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error (see the server's log)")


def _auth(token: str):
    expected = token.encode("utf-8")

    @web.middleware
    async def check(request: web.Request, handler):
        if request.path not in OPEN_PATHS and request.method != "OPTIONS":
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected):
                raise ApiError(401, "a valid token is required (Authorization: Bearer TOKEN)",
                               headers={"WWW-Authenticate": 'Bearer realm="latent-studio"'})
        return await handler(request)

    return check


def _from_this_machine(allowed_origins: list[str]):
    """Without a token, only this machine's programs may call: a web page in the user's browser must not
    (it could run jobs, or with DNS rebinding read every prompt and image). Refused: a Host that is not a
    loopback name (rebinding), an Origin not allowed by --cors-origin, and a POST that is not JSON (which a
    page can only send after a CORS preflight, never answered here unless configured)."""
    origins = frozenset(allowed_origins)

    @web.middleware
    async def check(request: web.Request, handler):
        host = (request.host or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES and not name.startswith("127."):
            raise ApiError(403, f"this server answers loopback names only (Host: {host[:80]!r}); give it a token "
                           "(--token-file) to serve other names")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in origins:
            raise ApiError(403, "requests from web pages are refused (see --cors-origin)")
        return await handler(request)

    return check


@web.middleware
async def _json_posts(request: web.Request, handler):
    """A POST body must say it is JSON: a form or text body (what a web page may send without asking) is
    refused. A POST without a body (cancel) needs none."""
    if request.method == "POST" and request.can_read_body and request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    return await handler(request)


def _cors(origins: list[str]):
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler):
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin in allowed:
            response: web.StreamResponse = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
                "Access-Control-Max-Age": "600",
            })
        else:
            response = await handler(request)
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return cors


WorkerMaker = Callable[[JobBoard], list[threading.Thread]]
"""What runs the board's jobs: by default one DeviceWorker per device; `studio serve --ray`, Ray Serve replicas."""


def make_app(
    config: ServerConfig, *, engine_maker: EngineMaker = make_engine, devices: list[str] | None = None,
    workers: WorkerMaker | None = None, workers_count: int | None = None,
) -> web.Application:
    """The application; its workers start with it and stop at its cleanup. `workers` replaces the engine
    threads (with `workers_count` of them, for the queue's Retry-After estimate)."""
    check_bind(config.host, config.token)
    middlewares = [_errors]
    if config.token:
        middlewares.append(_auth(config.token))
    else:
        middlewares.append(_from_this_machine(config.cors_origins))
    middlewares.append(_json_posts)
    if config.cors_origins:
        middlewares.insert(0, _cors(config.cors_origins))
    app = web.Application(middlewares=middlewares)  # bodies are read by the routes, each with its own limit
    app[CONFIG] = config
    app[NAMES] = ModelNames(config.model_dirs)
    app.add_routes(routes)
    if workers is None:
        devices = devices if devices is not None else worker_devices(config.device)
        workers_count = len(devices)

        def workers(board: JobBoard) -> list[threading.Thread]:
            return [DeviceWorker(board, device, lambda d: engine_maker(config, d)) for device in devices]

    async def start(app: web.Application) -> None:
        board = JobBoard(
            asyncio.get_running_loop(), queue_limit=config.queue_limit, keep_jobs=config.keep_jobs,
            keep_bytes=config.keep_bytes, workers=workers_count or 1,
        )
        app[BOARD] = board
        app[DECODES] = asyncio.Semaphore(2)
        app[WORKERS] = workers(board)
        for worker in app[WORKERS]:
            worker.start()

    async def stop(app: web.Application) -> None:
        app[BOARD].close()
        loop = asyncio.get_running_loop()
        for worker in app[WORKERS]:
            await loop.run_in_executor(None, worker.join, 30.0)

    app.on_startup.append(start)
    app.on_shutdown.append(_close_board)
    app.on_cleanup.append(stop)
    return app


async def _close_board(app: web.Application) -> None:
    app[BOARD].close()


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0: a free port); the runner and the port bound."""
    # handler_cancellation: a client that goes away cancels its handler, so /score cancels its jobs
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockets = site._server.sockets if site._server is not None else []  # noqa: SLF001 - aiohttp exposes no other way
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


def serve_forever(config: ServerConfig, on_ready: Callable[[str], None] = print) -> None:
    """`studio serve`: run until interrupted (Ctrl+C, SIGTERM)."""
    import signal

    async def main(**app_options) -> None:
        app = make_app(config, **app_options)
        runner, port = await start_site(app, config.host, config.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, or not the main thread
                loop.add_signal_handler(sig, stop.set)
        host = f"[{config.host}]" if ":" in config.host else config.host
        on_ready(f"http://{host}:{port}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    if config.ray is None:
        asyncio.run(main())
        return
    from studio.server.ray_serve import ray_workers

    with ray_workers(config, config.ray, config.replicas, config.max_replicas) as (workers, count):
        asyncio.run(main(workers=workers, workers_count=count))


class ServerThread:
    """A server on a thread of its own, with its own loop: for tests, benches and a window that wants a
    server beside it. `start()` returns its URL once it listens; `stop()` shuts it down cleanly."""

    def __init__(self, config: ServerConfig, **app_options) -> None:
        self.config = config
        self._options = app_options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""
        self.app: web.Application | None = None

    def start(self, timeout: float = 30.0) -> str:
        self._thread = threading.Thread(target=self._run, name="studio-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the server did not start")
        if self._error is not None:
            raise self._error
        return self.url

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.app = make_app(self.config, **self._options)
            runner, port = await start_site(self.app, self.config.host, self.config.port)
        except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
            self._error = exc
            self._ready.set()
            return
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{port}"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
