"""The remote client against a real `studio serve` on loopback (a tiny model, a CPU engine): jobs, their
event streams (resumed, reconnected, lost), images equal to a local run's, and every kind of refusal.

Network trouble is made for real too, with :class:`Relay`, a TCP relay in front of the server that can cut
its connections, go away and come back, or lead to another server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import time

import numpy as np
import pytest
from PIL import Image

from studio.engine.request import GenerationRequest
from studio.remote import (
    ConnectionLost,
    JobInfo,
    QueueFull,
    RemoteClient,
    RemoteError,
    RemoteEvent,
    Unauthorized,
    check_server,
    normalize_url,
)
from studio.server.app import ServerThread
from studio.server.config import ServerConfig

TOKEN = "remote-test-token-0123456789"
MODEL = "tiny-sd1"


def request(**fields) -> GenerationRequest:
    base = {"model": MODEL, "prompt": "a lighthouse at dusk", "steps": 3, "seed": 7, "width": 64, "height": 64,
            "scheduler": "DDIM"}
    return GenerationRequest(**{**base, **fields})


@pytest.fixture(scope="module")
def models_dir(tiny_sd1, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served-models")
    (folder / MODEL).symlink_to(tiny_sd1, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def server(models_dir):
    """The module's server: with a token, as one reachable from other machines must be."""
    thread = ServerThread(ServerConfig(host="127.0.0.1", port=0, token=TOKEN, model_dirs=[models_dir], device="cpu",
                                       preview="linear"))
    url = thread.start()
    yield url
    thread.stop()


@pytest.fixture(scope="module")
def small_server(models_dir):
    """A second server, without a token and with room for one waiting job: for a full queue, and for a
    "restarted" server that no longer knows the first one's jobs."""
    thread = ServerThread(ServerConfig(host="127.0.0.1", port=0, queue_limit=1, model_dirs=[models_dir], device="cpu",
                                       preview="linear"))
    url = thread.start()
    yield url
    thread.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Relay:
    """A TCP relay on loopback: real connections, with the network's failures on demand."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again on the same port after `stop`: the server came back)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Break every connection now, as a network blip does (the server never notices)."""
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def stop(self) -> None:
        """Stop listening and break every connection: a server that went away."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def collect(client: RemoteClient, job_id: str, after: int = 0) -> list[RemoteEvent]:
    return [event async for event in client.events(job_id, after)]


async def until(client: RemoteClient, job_id: str, stop, after: int = 0) -> list[RemoteEvent]:
    """The job's events up to the first one `stop` accepts; the stream is closed there."""
    seen = []
    async with contextlib.aclosing(client.events(job_id, after)) as events:
        async for event in events:
            seen.append(event)
            if stop(event):
                break
    return seen


def numbered_from_one(events: list[RemoteEvent]) -> bool:
    return [event.id for event in events] == list(range(1, len(events) + 1))


# ------------------------------------------------------------------------------------------- the basics
def test_health_status_and_models(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            return await client.health(), await client.status(), await client.models()

    health, status, models = asyncio.run(main())
    assert health["status"] == "ok"
    assert set(status["queue"]) >= {"waiting", "running", "limit"}
    tiny = [model for model in models if model.name == MODEL]
    assert len(tiny) == 1 and tiny[0].kind == "folder" and tiny[0].family == "sd1" and tiny[0].local


def test_a_job_streams_each_step_and_its_image_equals_a_local_run(server, engine, tiny_sd1):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            job = await client.submit(request())
            events = await collect(client, job.id)
            png = await client.image(job.id, 0)
            return job, events, png, await client.job(job.id), await client.jobs()

    job, events, png, finished, listed = asyncio.run(main())
    assert job.state in ("queued", "running") and job.model == MODEL and job.prompt == "a lighthouse at dusk"
    assert numbered_from_one(events)
    assert events[0].kind == "queued" and events[-1].kind == "done" and events[-1].is_terminal
    steps = [event for event in events if event.kind == "step"]
    assert [(event.data["step"], event.data["total"]) for event in steps] == [(1, 3), (2, 3), (3, 3)]
    previews = [event.preview_jpeg() for event in steps]
    assert previews[-1] is not None  # the newest step keeps its preview even when replayed
    for preview in filter(None, previews):
        assert Image.open(io.BytesIO(preview)).format == "JPEG"
    images = [event for event in events if event.kind == "image"]
    assert [(event.data["index"], event.data["seed"]) for event in images] == [(0, 7)]
    assert images[0].preview_jpeg() is None

    remote = Image.open(io.BytesIO(png))
    assert remote.format == "PNG" and any("a lighthouse at dusk" in text for text in remote.text.values())
    local = engine.generate(request(model=str(tiny_sd1)))[0].image
    assert np.array_equal(np.asarray(remote.convert("RGB")), np.asarray(local))

    assert finished.state == "done" and finished.is_finished and (finished.step, finished.total) == (3, 3)
    assert [(image.index, image.seed) for image in finished.images] == [(0, 7)] and finished.error is None
    assert job.id in {info.id for info in listed}


def test_cancel_a_running_job(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            job = await client.submit(request(steps=200))
            events = []
            async for event in client.events(job.id):
                events.append(event)
                if event.kind == "step" and event.data["step"] == 1:
                    await client.cancel(job.id)
            return events, await client.job(job.id)

    events, job = asyncio.run(main())
    assert events[-1].kind == "cancelled" and numbered_from_one(events)
    assert max(event.data["step"] for event in events if event.kind == "step") < 200
    assert job.state == "cancelled" and job.images == ()


def test_a_refused_request_names_its_field(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            errors = []
            for bad in (request(steps=0), request(model="no-such-model"), request(width=65)):
                with pytest.raises(RemoteError) as caught:
                    await client.submit(bad)
                errors.append(caught.value)
            with pytest.raises(RemoteError) as missing:
                await client.job("no-such-job")
            with pytest.raises(RemoteError) as no_events:
                await collect(client, "no-such-job")
            return errors, missing.value, no_events.value

    errors, missing, no_events = asyncio.run(main())
    assert [(error.status, error.field) for error in errors] == [(400, "steps"), (400, "model"), (400, "width")]
    assert "steps must be between 1 and 500" in str(errors[0]) and "not offered" in str(errors[1])
    assert all(type(error) is RemoteError for error in errors)
    assert (missing.status, missing.field) == (404, "job_id") and (no_events.status, no_events.field) == (404, "job_id")


def test_missing_image_index_is_a_404_naming_the_index(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            job = await client.submit(request(steps=1))
            await collect(client, job.id)
            with pytest.raises(RemoteError) as caught:
                await client.image(job.id, 5)
            return caught.value

    error = asyncio.run(main())
    assert (error.status, error.field) == (404, "index") and "1 image" in str(error)


# ---------------------------------------------------------------------------------------------- tokens
def test_the_token_is_required_and_checked(server):
    async def main():
        async with RemoteClient(server, "wrong-token-0123456789") as wrong, RemoteClient(server) as none:
            assert (await none.health())["status"] == "ok"  # the probe needs no token
            for call in (wrong.status(), wrong.jobs(), wrong.submit(request()), none.status(), collect(none, "x")):
                with pytest.raises(Unauthorized) as caught:
                    await call
                assert caught.value.status == 401
        described = await check_server(server, TOKEN)
        reasons = []
        for token in ("wrong-token-0123456789", None):
            with pytest.raises(Unauthorized) as caught:
                await check_server(server, token)
            reasons.append(str(caught.value))
        return described, reasons

    described, reasons = asyncio.run(main())
    assert re.fullmatch(rf"Latent Studio \d+\.\d+\.\d+\S* at {re.escape(server)}: \d+ waiting, \d+ running", described)
    assert reasons == [f"{server}: wrong token: the server refused it", f"{server}: missing token: the server requires one"]


# ------------------------------------------------------------------------------------------ full queue
def test_a_full_queue_says_when_to_retry(small_server):
    async def main():
        async with RemoteClient(small_server) as client:
            running = await client.submit(request(steps=500))
            await until(client, running.id, lambda event: event.kind == "started")
            waiting = await client.submit(request(steps=500))
            try:
                with pytest.raises(QueueFull) as caught:
                    await client.submit(request())
                status = await client.status()
            finally:
                await client.cancel(waiting.id)
                await client.cancel(running.id)
            ends = [(await collect(client, job.id))[-1].kind for job in (waiting, running)]
            return caught.value, status, ends

    full, status, ends = asyncio.run(main())
    assert full.status == 429 and full.retry_after >= 1 and "queue is full" in str(full)
    assert status["queue"] == {"waiting": 1, "running": 1, "limit": 1}
    assert ends == ["cancelled", "cancelled"]


# ----------------------------------------------------------------------------------- unreachable server
def test_a_closed_port_is_connection_lost_in_one_line():
    port = closed_port()

    async def main():
        errors = []
        async with RemoteClient(f"127.0.0.1:{port}", reconnect_seconds=0.6) as client:
            with pytest.raises(ConnectionLost) as caught:
                await client.health()
            errors.append(caught.value)
            started = time.monotonic()
            with pytest.raises(ConnectionLost) as caught:
                await collect(client, "some-job")
            errors.append(caught.value)
            waited = time.monotonic() - started
        with pytest.raises(ConnectionLost) as caught:
            await check_server(f"127.0.0.1:{port}/")
        errors.append(caught.value)
        return errors, waited

    errors, waited = asyncio.run(main())
    assert str(errors[0]) == f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert errors[0].status is None
    assert str(errors[1]).startswith("lost the events of job some-job from http://127.0.0.1:")
    assert "connection refused (retried for 0.6 s)" in str(errors[1])
    assert 0.5 <= waited < 3.0
    assert str(errors[2]) == str(errors[0])
    assert all("\n" not in str(error) for error in errors)


# -------------------------------------------------------------------------------- resuming and reconnecting
def test_events_resume_after_the_last_id_seen(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            job = await client.submit(request(steps=30))
            first = await until(client, job.id, lambda event: event.kind == "step" and event.data["step"] == 3)
            rest = await collect(client, job.id, after=first[-1].id)
            return first, rest

    first, rest = asyncio.run(main())
    assert first[-1].data["step"] == 3 and rest[-1].kind == "done"
    assert numbered_from_one(first + rest)
    assert [event.data["step"] for event in first + rest if event.kind == "step"] == list(range(1, 31))


def test_a_dropped_stream_reconnects_without_repeating_or_losing_an_event(server):
    async def main():
        relay = Relay(port_of(server))
        await relay.start()
        try:
            async with RemoteClient(relay.url, TOKEN) as client:
                job = await client.submit(request(steps=40))
                events, cuts = [], 0
                async for event in client.events(job.id):
                    events.append(event)
                    if event.kind == "step" and event.data["step"] in (2, 10):
                        relay.cut()  # twice, the second time while it runs on
                        cuts += 1
                return events, cuts, relay.connections
        finally:
            await relay.stop()

    events, cuts, connections = asyncio.run(main())
    assert cuts == 2 and connections >= 3 and numbered_from_one(events) and events[-1].kind == "done"
    assert [event.data["step"] for event in events if event.kind == "step"] == list(range(1, 41))


def test_a_server_that_comes_back_is_waited_for_and_one_that_stays_away_is_given_up(server):
    async def main():
        relay = Relay(port_of(server))
        await relay.start()
        async with RemoteClient(server, TOKEN) as direct, RemoteClient(relay.url, TOKEN, reconnect_seconds=1.5) as client:
            job = await direct.submit(request(steps=60))
            events: list[RemoteEvent] = []

            async def back_soon():
                await relay.stop()
                await asyncio.sleep(0.6)  # refused meanwhile: the client retries (0.25 s, then 0.5 s)
                await relay.start()

            comeback = None
            async for event in client.events(job.id):
                events.append(event)
                if event.kind == "step" and event.data["step"] == 2:
                    comeback = asyncio.create_task(back_soon())
            await comeback

            other = await direct.submit(request(steps=200))
            seen = await until(client, other.id, lambda event: event.kind == "step")
            await relay.stop()  # and it stays away
            started = time.monotonic()
            with pytest.raises(ConnectionLost) as lost:
                await collect(client, other.id, after=seen[-1].id)
            waited = time.monotonic() - started
            await direct.cancel(other.id)
            return events, lost.value, waited

    events, lost, waited = asyncio.run(main())
    assert numbered_from_one(events) and events[-1].kind == "done"
    assert [event.data["step"] for event in events if event.kind == "step"] == list(range(1, 61))
    assert "connection refused (retried for 1.5 s)" in str(lost) and 1.4 <= waited < 4.0


def test_closing_the_client_ends_its_stream_instead_of_reconnecting(server):
    async def main():
        async with RemoteClient(server, TOKEN) as client:
            job = await client.submit(request(steps=200))
            try:
                with pytest.raises(ConnectionLost) as caught:
                    async for event in client.events(job.id):
                        if event.kind == "step":
                            await client.close()
                return caught.value
            finally:
                await client.cancel(job.id)  # a new session, made for this call

    assert "the client was closed" in str(asyncio.run(main()))


def test_a_job_gone_after_a_reconnect_is_a_clear_error(server, small_server):
    async def main():
        relay = Relay(port_of(server))
        await relay.start()
        try:
            async with RemoteClient(server, TOKEN) as direct, RemoteClient(relay.url, TOKEN) as client:
                job = await direct.submit(request(steps=200))
                try:
                    with pytest.raises(RemoteError) as caught:
                        async for event in client.events(job.id):
                            if event.kind == "step":
                                relay.target_port = port_of(small_server)  # the "restarted" server knows no job
                                relay.cut()
                finally:
                    await direct.cancel(job.id)
                return job.id, caught.value
        finally:
            await relay.stop()

    job_id, gone = asyncio.run(main())
    assert type(gone) is RemoteError and (gone.status, gone.field) == (404, "job_id")
    assert f"job {job_id} is no longer on http://127.0.0.1:" in str(gone) and "restarted" in str(gone)


# ------------------------------------------------------------------------------------------- addresses
@pytest.mark.parametrize(("given", "url"), [
    ("127.0.0.1:7861", "http://127.0.0.1:7861"),
    ("  studio.lan:7861/ ", "http://studio.lan:7861"),
    ("HTTPS://studio.example/latent//", "https://studio.example/latent"),
    ("http://[::1]:7861/", "http://[::1]:7861"),
])
def test_addresses_are_normalized(given, url):
    assert normalize_url(given) == url
    assert RemoteClient(given).url == url


@pytest.mark.parametrize(("given", "words"), [
    ("ftp://studio.lan", "must start with http:// or https://, not ftp://"),
    ("ws://studio.lan:7861", "not ws://"),
    ("", "no server address"),
    ("studio.lan:99999", "port"),
    ("http://user:secret@studio.lan", "token in its own field"),
    ("http://:7861", "names no host"),
    ("studio.lan:7861/?x=1", "no ?query"),
])
def test_bad_addresses_are_refused_in_words(given, words):
    with pytest.raises(RemoteError) as caught:
        RemoteClient(given)
    assert words in str(caught.value) and caught.value.field == "url"


def test_a_token_with_a_line_break_is_refused_before_it_reaches_a_header():
    with pytest.raises(RemoteError) as caught:
        RemoteClient("127.0.0.1:7861", "abc\r\nX-Evil: 1")
    assert caught.value.field == "token"
    assert RemoteClient("127.0.0.1:7861", "  ").token is None
    assert "secret-token" not in repr(RemoteClient("127.0.0.1:7861", "secret-token"))


# ------------------------------------------------------------------------------ what the server sends back
def test_a_server_that_is_not_ours_is_named_as_such():
    """A real web server on loopback that answers every request with a page of HTML."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        page = b"<html>router login</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()
        writer.close()

    async def main():
        web = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = web.sockets[0].getsockname()[1]
        try:
            with pytest.raises(RemoteError) as caught:
                await check_server(f"127.0.0.1:{port}")
            return port, caught.value
        finally:
            web.close()

    port, error = asyncio.run(main())
    assert type(error) is RemoteError and error.status is None
    assert str(error) == (f"unexpected answer from the server: http://127.0.0.1:{port} does not look like a Latent "
                          "Studio server: /health answered text/html, not application/json")


def test_malformed_summaries_and_previews_are_remote_errors():
    summary = {"id": "a", "state": "done", "model": MODEL, "prompt": "p", "step": 1, "total": 1,
               "images": [{"index": 0, "seed": 3, "nsfw": None, "url": "/v1/jobs/a/images/0"}], "warnings": [],
               "error": None}
    assert JobInfo.from_json(summary).images[0].seed == 3
    for broken in ({**summary, "step": "1"}, {**summary, "images": [{"index": 0}]}, [summary], {**summary, "error": 3}):
        with pytest.raises(RemoteError, match="unexpected answer from the server"):
            JobInfo.from_json(broken)
    assert RemoteEvent(3, "step", {"step": 1, "total": 2}).preview_jpeg() is None
    with pytest.raises(RemoteError, match="preview of step 1 is not valid base64"):
        RemoteEvent(3, "step", {"step": 1, "total": 2, "preview": "not base64!"}).preview_jpeg()
