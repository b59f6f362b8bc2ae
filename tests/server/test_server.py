"""`studio serve` on a free loopback port with a tiny model: the model cards' /score, the jobs API with its
event stream, cancel, the queue's limit, tokens and the model-name policy."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from studio.engine import GenerationRequest
from studio.engine.errors import RequestError
from studio.library.metadata import read_metadata
from studio.server.app import ServerThread, make_app, worker_devices
from studio.server.config import ServerConfig, check_bind, is_loopback
from tests.server.http import call, events

TOKEN = "test-token-0123456789abcdef"
SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 11}


def _server(tiny_sd1, **options) -> ServerThread:
    config = ServerConfig(host="127.0.0.1", port=0, model_dirs=[tiny_sd1.parent], score_model=str(tiny_sd1),
                          preview="linear", **options)
    server = ServerThread(config)
    server.start()
    return server


@pytest.fixture(scope="module")
def server(tiny_sd1):
    server = _server(tiny_sd1)
    yield server
    server.stop()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _local(engine, tiny_sd1, **fields) -> list[np.ndarray]:
    results = engine.generate(GenerationRequest(model=str(tiny_sd1), **fields))
    return [np.asarray(result.image) for result in results]


def _submit(server, token=None, **fields) -> dict:
    reply = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "a lighthouse", **fields}, token=token)
    assert reply.status == 202, reply.body
    return reply.json()


def _wait_state(server, job_id, states, token=None, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = call(f"{server.url}/v1/jobs/{job_id}", token=token).json()
        if job["state"] in states:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}")


# ------------------------------------------------------------------------------------------- /score


def test_score_answers_the_model_cards_sample_input_in_its_format(server, engine, tiny_sd1):
    sample = {"input_data": {
        "columns": ["prompt"], "index": [0, 1],
        "data": ["A photo of an astronaut riding a horse on Mars", "a watercolour fox"],
        "parameters": {"num_inference_steps": 2, "guidance_scale": 7.5, "height": 64, "width": 64, "seed": 42},
    }}
    reply = call(f"{server.url}/score", "POST", sample)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    rows = reply.json()
    assert [set(row) for row in rows] == [{"prompt", "generated_image", "nsfw_content_detected"}] * 2
    assert [row["prompt"] for row in rows] == sample["input_data"]["data"]
    for n, row in enumerate(rows):
        png = base64.b64decode(row["generated_image"], validate=True)
        assert png.startswith(b"\x89PNG")
        meta = read_metadata(png)
        assert meta is not None and meta.prompt == row["prompt"] and meta.seed == 42 + n  # the CLI's seeds
        assert row["nsfw_content_detected"] in (True, False, None)
        expected = _local(engine, tiny_sd1, prompt=row["prompt"], steps=2, guidance=7.5, width=64, height=64, seed=42 + n)
        assert np.array_equal(_pixels(png), expected[0])


def test_score_refuses_what_studio_batch_refuses_with_the_field(server):
    reply = call(f"{server.url}/score", "POST", {"input_data": {"data": ["a"], "parameters": {"num_inference_steps": 0}}})
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["field"] == "input_data.parameters.num_inference_steps"
    assert "steps must be between 1 and 500" in error["message"]
    assert call(f"{server.url}/score", "POST", {"inputs": []}).json()["error"]["field"] == "input_data"
    bad = call(f"{server.url}/score", "POST", raw=b'{"input_data": {"data": [NaN]}}')
    assert bad.status == 400 and "body" in bad.json()["error"]["message"]


# ---------------------------------------------------------------------------------------------- jobs


def test_a_job_streams_one_event_per_step_and_its_pixels_equal_a_local_run(server, engine, tiny_sd1):
    job = _submit(server, **SMALL, batch=2)
    assert job["state"] in ("queued", "running") and job["model"] == "tiny-sd1"
    stream = events(f"{server.url}{job['events']}")
    kinds = [e.kind for e in stream]
    assert kinds[0] == "queued" and "started" in kinds and kinds[-1] == "done"
    steps = [e.data for e in stream if e.kind == "step"]
    assert [(s["step"], s["total"]) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    preview = Image.open(io.BytesIO(base64.b64decode(steps[0]["preview"])))
    assert preview.format == "JPEG" and max(preview.size) <= 256
    assert [e.id for e in stream] == list(range(1, len(stream) + 1))
    images = [e.data for e in stream if e.kind == "image"]
    assert [(i["index"], i["seed"]) for i in images] == [(0, 11), (1, 12)]
    local = _local(engine, tiny_sd1, prompt="a lighthouse", **SMALL, batch=2)
    for image, expected in zip(images, local, strict=True):
        reply = call(f"{server.url}{image['url']}")
        assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
        assert np.array_equal(_pixels(reply.body), expected)
        assert read_metadata(reply.body).seed == image["seed"]
    summary = call(f"{server.url}/v1/jobs/{job['id']}").json()
    assert summary["state"] == "done" and summary["step"] == 3 and len(summary["images"]) == 2


def test_a_client_that_reconnects_gets_only_the_events_it_missed(server):
    job = _submit(server, **SMALL)
    first = events(f"{server.url}{job['events']}", until=lambda e: e.kind == "step")
    rest = events(f"{server.url}{job['events']}", after=first[-1].id)
    ids = [e.id for e in first + rest]
    assert ids == list(range(1, len(ids) + 1)) and rest[-1].kind == "done"
    older = [e for e in events(f"{server.url}{job['events']}") if e.kind == "step"]
    assert [("preview" in e.data) for e in older] == [False, False, True]  # history keeps the newest preview only


def test_cancel_stops_a_running_job_within_a_step(server):
    job = _submit(server, width=64, height=64, steps=400, seed=1)
    url = f"{server.url}{job['events']}"
    seen = events(url, until=lambda e: e.kind == "step")
    reply = call(f"{server.url}/v1/jobs/{job['id']}/cancel", "POST")
    assert reply.status == 200
    rest = events(url, after=seen[-1].id)
    assert rest[-1].kind == "cancelled"
    final = call(f"{server.url}/v1/jobs/{job['id']}").json()
    assert final["state"] == "cancelled" and final["step"] < 400 and final["images"] == []
    # the engine thread goes on with the next job
    after = _submit(server, **SMALL)
    assert events(f"{server.url}{after['events']}")[-1].kind == "done"


def test_errors_are_json_naming_the_field(server):
    cases = {
        "steps": {"steps": 0},
        "seed": {"seed": -1},
        "width": {"width": 65},
        "prompt": {"prompt": 5},
        "scheduler": {"scheduler": "nonsense"},
        "colour": {"colour": "red"},
        "init_image": {"init_image": "not base64!"},
        "mask_image": {"mask_image": base64.b64encode(b"not an image").decode()},
    }
    for field, fields in cases.items():
        reply = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "x", **fields})
        assert reply.status == 400, (field, reply.body)
        assert reply.json()["error"]["field"] == field, reply.body
    assert call(f"{server.url}/v1/jobs", "POST", ["a list"]).status == 400
    assert call(f"{server.url}/v1/jobs", "POST", raw=b"").json()["error"]["message"].startswith("the body is empty")
    huge = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "x" * 70_000})
    assert huge.status == 400 and huge.json()["error"]["field"] == "prompt"
    assert call(f"{server.url}/v1/jobs/nope").status == 404
    assert call(f"{server.url}/v1/jobs/nope").json()["error"]["field"] == "job_id"


@pytest.mark.parametrize("name", [
    "/etc", "../tiny-sd1", "tiny-sd1/../tiny-sd1", "CompVis/stable-diffusion-v1-4", "~/models/x", "C:\\models\\x",
    ".hidden", "tiny-sd1\0", "",
])
def test_a_path_or_hub_id_as_model_name_is_refused(server, tiny_sd1, name):
    for model in (name, str(tiny_sd1)):
        reply = call(f"{server.url}/v1/jobs", "POST", {"model": model, "prompt": "x"})
        assert reply.status == 400
        assert reply.json()["error"]["field"] == "model"


def test_img2img_with_an_init_image_sent_as_base64(server, engine, tiny_sd1):
    init = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    init.save(buffer, "PNG")
    job = _submit(server, **SMALL, init_image=base64.b64encode(buffer.getvalue()).decode(), strength=0.6)
    stream = events(f"{server.url}{job['events']}")
    assert stream[-1].kind == "done"
    png = call(f"{server.url}/v1/jobs/{job['id']}/images/0").body
    expected = _local(engine, tiny_sd1, prompt="a lighthouse", **SMALL, init_image=init, strength=0.6)
    assert np.array_equal(_pixels(png), expected[0])


def test_models_health_status_and_openapi(server):
    models = call(f"{server.url}/v1/models").json()
    assert {"name": "tiny-sd1", "kind": "folder", "family": "sd1", "local": True} in models
    assert {m["name"] for m in models} >= {"sd-1.4", "sd-2.1", "deci-diffusion-1.0"}
    assert call(f"{server.url}/health").json()["status"] == "ok"
    assert set(call(f"{server.url}/v1/status").json()["queue"]) == {"waiting", "running", "limit"}
    spec = call(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/score", "/v1/jobs", "/v1/jobs/{job_id}/events", "/v1/models", "/health"} <= set(spec["paths"])
    schema = spec["components"]["schemas"]["GenerationRequest"]
    assert {"model", "prompt", "steps", "init_image", "mask_image", "expand"} <= set(schema["properties"])
    assert "Access-Control-Allow-Origin" not in call(f"{server.url}/health", headers={"Origin": "http://evil"}).headers


# ------------------------------------------------------------------------------------- queue, token


def test_a_full_queue_answers_429_with_retry_after(tiny_sd1):
    server = _server(tiny_sd1, queue_limit=1)
    try:
        running = _submit(server, width=64, height=64, steps=500, seed=1)
        _wait_state(server, running["id"], {"running"})
        waiting = _submit(server, **SMALL)
        reply = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "x", **SMALL})
        assert reply.status == 429
        assert int(reply.headers["Retry-After"]) >= 1
        assert "queue is full" in reply.json()["error"]["message"]
        score = call(f"{server.url}/score", "POST", {"input_data": {"data": ["a"]}})
        assert score.status == 429 and int(score.headers["Retry-After"]) >= 1
        call(f"{server.url}/v1/jobs/{waiting['id']}/cancel", "POST")
        assert call(f"{server.url}/v1/jobs/{waiting['id']}").json()["state"] == "cancelled"  # at once
        call(f"{server.url}/v1/jobs/{running['id']}/cancel", "POST")
        _wait_state(server, running["id"], {"cancelled"})
        assert call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "x", **SMALL}).status == 202
    finally:
        server.stop()


def test_a_token_is_required_and_compared_exactly(tiny_sd1):
    server = _server(tiny_sd1, token=TOKEN)
    try:
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            reply = call(f"{server.url}/v1/models", token=token)
            assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "x"}, token=token).status == 401
        assert call(f"{server.url}/health").status == 200  # a load balancer's probe needs no token
        job = _submit(server, token=TOKEN, **SMALL)
        assert events(f"{server.url}{job['events']}", token=TOKEN)[-1].kind == "done"
        assert call(f"{server.url}/v1/jobs/{job['id']}/images/0").status == 401
        assert call(f"{server.url}/v1/jobs/{job['id']}/images/0", token=TOKEN).status == 200
    finally:
        server.stop()


def test_binding_beyond_loopback_needs_a_token():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(RequestError, match="token"):
            check_bind(host, None)
        with pytest.raises(RequestError, match="token"):
            make_app(ServerConfig(host=host))
        check_bind(host, TOKEN)


def test_one_engine_thread_per_device():
    assert worker_devices("cpu") == ["cpu"]
    assert worker_devices("cuda", cuda_count=1) == ["cuda"]
    assert worker_devices("cuda", cuda_count=3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_devices("auto", cuda_count=2) == ["cuda:0", "cuda:1"]
    assert worker_devices("auto", cuda_count=0) == ["auto"]
    assert worker_devices("mps") == ["mps"]


def test_a_score_client_that_goes_away_has_its_jobs_cancelled(server):
    import socket

    from studio.server.routes import BOARD

    body = b'{"input_data": {"data": ["a slow one"], "parameters": {"num_inference_steps": 400, "width": 64, "height": 64}}}'
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        board = server.app[BOARD]
        deadline = time.monotonic() + 30
        while not any(job.state.value == "running" for job in board.jobs()) and time.monotonic() < deadline:
            time.sleep(0.02)
        [job] = [job for job in board.jobs() if job.state.value == "running"]
    deadline = time.monotonic() + 30
    while not job.is_finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.state.value == "cancelled" and job.step < 400


def test_without_a_token_web_pages_and_other_host_names_are_refused(server):
    job = {"model": "tiny-sd1", "prompt": "x", **SMALL}
    assert call(f"{server.url}/v1/models", headers={"Host": "attacker.example:7861"}).status == 403  # DNS rebinding
    assert call(f"{server.url}/v1/models", headers={"Origin": "https://evil.example"}).status == 403
    plain = call(f"{server.url}/v1/jobs", "POST", raw=json.dumps(job).encode(), headers={"Content-Type": "text/plain"})
    assert plain.status == 415  # what a page may send without a preflight
    assert call(f"{server.url}/v1/models", headers={"Host": "localhost:1"}).status == 200


def test_a_finished_job_keeps_no_decoded_init_image(server):
    from studio.server.routes import BOARD

    init = Image.new("RGB", (64, 64), "red")
    buffer = io.BytesIO()
    init.save(buffer, "PNG")
    job = _submit(server, **SMALL, init_image=base64.b64encode(buffer.getvalue()).decode(), strength=0.5)
    assert events(f"{server.url}{job['events']}")[-1].kind == "done"
    kept = server.app[BOARD].get(job["id"])
    assert kept.request.init_image is None and kept.images
    assert call(f"{server.url}/v1/jobs/{job['id']}/images/-1").status == 404


def test_a_score_body_bigger_than_the_queue_is_refused_before_its_prompts_are_checked(tiny_sd1):
    server = _server(tiny_sd1, queue_limit=3)
    try:
        many = {"input_data": {"data": ["a"] * 4, "parameters": {"negative_prompt": "n" * 60_000}}}
        reply = call(f"{server.url}/score", "POST", many)
        assert reply.status == 413 and reply.json()["error"]["field"] == "input_data.data"
    finally:
        server.stop()


def test_the_openapi_request_schema_lists_every_request_field():
    from dataclasses import fields

    from studio.server.openapi import openapi_document, request_schema

    properties = request_schema()["properties"]
    assert all(properties[f.name] for f in fields(GenerationRequest))  # each described, none left empty
    spec = openapi_document("0")
    for path, item in spec["paths"].items():
        names = {p["name"] for p in item.get("parameters", [])}
        assert names == set(part[1:-1] for part in path.split("/") if part.startswith("{")), path
