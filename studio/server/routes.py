"""The HTTP handlers: the jobs API, the model cards' /score, models, health and the OpenAPI description.

Handlers run on the event loop and never wait on the engine: parsing bodies, decoding images and reading
disks go to the loop's executor, and jobs go to the :class:`~studio.server.jobs.JobBoard`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from studio import __version__
from studio.engine.card_format import MAX_CARD_BYTES, card_item, parse_card
from studio.engine.errors import RequestError
from studio.engine.request_json import MAX_IMAGE_FILE_BYTES, request_from_json
from studio.server.config import ServerConfig
from studio.server.jobs import TERMINAL, Job, JobBoard, JobEvent, JobState, QueueFull, ServerClosing
from studio.server.model_names import ModelNames
from studio.server.wire import ApiError, parse_json, read_body, request_error

CONFIG = web.AppKey("config", ServerConfig)
DECODES = web.AppKey("decodes", asyncio.Semaphore)
"""At most this many requests' images are decoded at once (each may be tens of megapixels)."""
BOARD = web.AppKey("board", JobBoard)
NAMES = web.AppKey("names", ModelNames)
MAX_JOB_BYTES = 2 * (MAX_IMAGE_FILE_BYTES * 4 // 3 + 4) + (1 << 20)
"""A job's body: two base64 image files at most, and the fields."""
KEEPALIVE_SECONDS = 15.0
WRITE_SECONDS = 30.0
"""An event stream whose client has not taken an event for this long is closed (it may resume later)."""

routes = web.RouteTableDef()


def _board(request: web.Request) -> JobBoard:
    return request.app[BOARD]


def _job(request: web.Request) -> Job:
    job = _board(request).get(request.match_info["job_id"])
    if job is None:
        raise ApiError(404, "no such job (finished jobs are kept for a while, then forgotten)", "job_id")
    return job


def _room(board: JobBoard) -> int:
    try:
        return board.room()
    except ServerClosing as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "30"}) from None


def _busy(board: JobBoard) -> ApiError:
    retry = board.retry_after()
    return ApiError(429, f"the queue is full; try again in about {retry} s", headers={"Retry-After": str(retry)})


def _submit(board: JobBoard, request, model_name: str) -> Job:
    try:
        return board.submit(request, model_name)
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except ServerClosing as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "30"}) from None


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Open to all (no token): a load balancer's probe. Says nothing about jobs or models."""
    return web.json_response({"status": "ok", "version": __version__})


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    board = _board(request)
    return web.json_response({"version": __version__, "queue": board.counts(), "workers": board.workers})


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    offered = await asyncio.get_running_loop().run_in_executor(None, request.app[NAMES].offered)
    return web.json_response(
        [{"name": m.name, "kind": m.kind, "family": m.family, "local": m.local} for m in offered]
    )


@routes.post("/v1/jobs")
async def submit_job(request: web.Request) -> web.Response:
    board = _board(request)
    if _room(board) <= 0:  # before reading and decoding anything
        raise _busy(board)
    raw = await read_body(request, MAX_JOB_BYTES)
    loop = asyncio.get_running_loop()
    async with request.app[DECODES]:
        data = await loop.run_in_executor(None, parse_json, raw)
        try:
            generation = await loop.run_in_executor(None, request_from_json, data, request.app[NAMES])
        except RequestError as exc:
            raise request_error(exc) from None
    job = _submit(board, generation, data["model"])
    return web.json_response(job.summary(), status=202, headers={"Location": f"/v1/jobs/{job.id}"})


@routes.get("/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response([job.summary() for job in _board(request).jobs()])


@routes.get("/v1/jobs/{job_id}")
async def job_status(request: web.Request) -> web.Response:
    return web.json_response(_job(request).summary())


@routes.post("/v1/jobs/{job_id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    job = _job(request)
    if not job.is_finished:
        _board(request).cancel(job)
    return web.json_response(job.summary())


@routes.get("/v1/jobs/{job_id}/images/{index}")
async def job_image(request: web.Request) -> web.Response:
    job = _job(request)
    try:
        index = int(request.match_info["index"])
        if index < 0:
            raise IndexError(index)
        image = job.images[index]
    except (ValueError, IndexError):
        raise ApiError(404, f"this job has {len(job.images)} image(s) so far", "index") from None
    return web.Response(body=image.png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@routes.get("/v1/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each event's `id` is its number in the job; a client reconnecting with
    `Last-Event-ID` (or `?after=N`) gets only what it missed. The stream ends after done, failed or cancelled."""
    job = _job(request)
    after = _after(request)
    history, queue = job.subscribe(after)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    try:
        await response.prepare(request)
        for event in history:
            await _send(response, event)
            if event.kind in TERMINAL:
                return response
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await asyncio.wait_for(response.write(b": keep-alive\n\n"), WRITE_SECONDS)
                continue
            await _send(response, event)
            if event.kind in TERMINAL:
                return response
    except (ConnectionError, TimeoutError):
        return response  # the client left or stopped reading; the job goes on (it may resume)
    finally:
        job.unsubscribe(queue)


def _after(request: web.Request) -> int:
    text = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        return max(0, int(text[:12]))
    except ValueError:
        raise ApiError(400, "Last-Event-ID must be an event number", "after") from None


async def _send(response: web.StreamResponse, event: JobEvent) -> None:
    data = json.dumps(event.data, separators=(",", ":"))
    await asyncio.wait_for(response.write(f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()), WRITE_SECONDS)


@routes.post("/score")
async def score(request: web.Request) -> web.Response:
    """The model cards' online endpoint: the batch format in, a list of {prompt, generated_image,
    nsfw_content_detected} out, in input order. Each prompt is a job on the same queue as the jobs API; if
    the client goes away, its jobs are cancelled."""
    config, board = request.app[CONFIG], _board(request)
    raw = await read_body(request, MAX_CARD_BYTES)
    loop = asyncio.get_running_loop()
    try:  # thousands of prompts take a while to read and check: off the loop
        card = await loop.run_in_executor(None, lambda: parse_card(parse_json(raw)))
        if len(card.prompts) > _room(board):
            _refuse_too_many(board, len(card.prompts))
        generations = await loop.run_in_executor(None, card.requests, config.score_model)
    except RequestError as exc:
        raise request_error(exc) from None
    if len(generations) > _room(board):  # others took the room meanwhile
        _refuse_too_many(board, len(generations))
    jobs = [_submit(board, generation, config.score_model) for generation in generations]
    try:
        await asyncio.gather(*(job.wait() for job in jobs))
    finally:
        for job in jobs:
            if not job.is_finished:
                board.cancel(job)
    out: list[dict[str, Any]] = []
    for n, (generation, job) in enumerate(zip(generations, jobs, strict=True)):
        if job.state is JobState.FAILED:
            error = job.error or {}
            status = 400 if error.get("kind") == "request" else 500
            raise ApiError(status, f"input_data.data[{n}]: {error.get('message', 'failed')}", f"input_data.data[{n}]")
        if job.state is JobState.CANCELLED:
            raise ApiError(503, f"input_data.data[{n}]: cancelled (the server is shutting down)")
        out.extend(card_item(generation.prompt, image.png, image.nsfw) for image in job.images)
    return web.json_response(out)


def _refuse_too_many(board: JobBoard, count: int) -> None:
    """A /score body runs whole or not at all: refuse it when the queue has no room for all its prompts."""
    limit = board.queue_limit
    if count > limit:
        raise ApiError(413, f"{count} prompts; this server queues at most {limit} at a time", "input_data.data")
    retry = board.retry_after()
    raise ApiError(
        429, f"the queue has room for {_room(board)} prompts, not {count}; try again in about {retry} s",
        headers={"Retry-After": str(retry)},
    )


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    from studio.server.openapi import openapi_document

    return web.json_response(openapi_document(__version__))

