"""`studio serve --ray`: the same HTTP API in front of a Ray Serve deployment of 2 replicas on a local
cluster of 2 CPUs: a job's events and pixels, and a cancel reaching the replica."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")

from studio.engine import GenerationRequest  # noqa: E402
from studio.server.app import ServerThread  # noqa: E402
from studio.server.config import ServerConfig  # noqa: E402
from studio.server.ray_serve import ray_workers  # noqa: E402
from tests.server.http import call, events  # noqa: E402

SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 21}


@pytest.fixture(scope="module")
def server(tiny_sd1):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 << 20)
    config = ServerConfig(port=0, model_dirs=[tiny_sd1.parent], device="cpu", dtype="float32", backend="torch",
                          preview="linear")
    try:
        with ray_workers(config, "auto", replicas=2) as (workers, count):
            assert count == 2
            server = ServerThread(config, workers=workers, workers_count=count)
            server.start()
            yield server
            server.stop()
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def test_a_job_runs_on_a_replica_with_a_preview_per_step_and_the_local_pixels(server, tiny_sd1):
    import torch

    from studio.engine import Engine

    reply = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "a red cube", **SMALL})
    assert reply.status == 202, reply.body
    job = reply.json()
    stream = events(f"{server.url}{job['events']}")
    kinds = [e.kind for e in stream]
    assert kinds[-1] == "done", stream[-1].data
    started = next(e for e in stream if e.kind == "started")
    assert started.data["device"].startswith("ray-")
    assert [(e.data["step"], "preview" in e.data) for e in stream if e.kind == "step"] == [(1, True), (2, True), (3, True)]
    png = call(f"{server.url}/v1/jobs/{job['id']}/images/0").body
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each replica of 1 CPU runs (the thread count moves the last bits)
    try:
        local = Engine(device="cpu", dtype="float32", backend="torch", preview="none").generate(
            GenerationRequest(model=str(tiny_sd1), prompt="a red cube", **SMALL))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), np.asarray(local[0].image))


def test_cancel_reaches_the_replica(server):
    reply = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "slow", "width": 64, "height": 64,
                                                   "steps": 400, "seed": 1})
    job = reply.json()
    url = f"{server.url}{job['events']}"
    seen = events(url, until=lambda e: e.kind == "step")
    call(f"{server.url}/v1/jobs/{job['id']}/cancel", "POST")
    rest = events(url, after=seen[-1].id)
    assert rest[-1].kind == "cancelled"
    assert call(f"{server.url}/v1/jobs/{job['id']}").json()["step"] < 400
    # the replica is free again: the next job runs
    after = call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": "next", **SMALL}).json()
    assert events(f"{server.url}{after['events']}")[-1].kind == "done"


def test_two_jobs_run_at_once_on_the_two_replicas(server):
    jobs = [call(f"{server.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": f"p{n}", **SMALL}).json()
            for n in range(2)]
    streams = [events(f"{server.url}{job['events']}") for job in jobs]
    assert all(stream[-1].kind == "done" for stream in streams)
    devices = {next(e.data["device"] for e in stream if e.kind == "started") for stream in streams}
    assert devices == {"ray-0", "ray-1"}


def test_an_autoscaling_deployment_grows_to_its_waiting_jobs(server, tiny_sd1):
    """--max-replicas: one replica at first, a second when jobs wait (here on the same node; on a cluster,
    on nodes added later)."""
    config = ServerConfig(port=0, model_dirs=[tiny_sd1.parent], device="cpu", dtype="float32", backend="torch",
                          preview="none")
    from ray import serve

    serve.delete("latent-studio")  # the module's fixed deployment frees the cluster's two CPUs
    with ray_workers(config, "auto", max_replicas=2) as (workers, count):
        assert count == 2
        scaled = ServerThread(config, workers=workers, workers_count=count)
        scaled.start()
        try:
            assert _running_replicas() == 1
            jobs = [call(f"{scaled.url}/v1/jobs", "POST", {"model": "tiny-sd1", "prompt": f"p{n}", "width": 64,
                                                            "height": 64, "steps": 500, "seed": n}).json() for n in range(4)]
            deadline = time.monotonic() + 90
            while _running_replicas() < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _running_replicas() == 2
            for job in jobs:
                call(f"{scaled.url}/v1/jobs/{job['id']}/cancel", "POST")
            streams = [events(f"{scaled.url}{job['events']}") for job in jobs]
            assert all(stream[-1].kind in ("done", "cancelled") for stream in streams)
        finally:
            scaled.stop()


def _running_replicas() -> int:
    from ray import serve

    deployment = serve.status().applications["latent-studio"].deployments["StudioReplica"]
    return deployment.replica_states.get("RUNNING", 0)
