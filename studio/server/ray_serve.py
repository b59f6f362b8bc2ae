"""`studio serve --ray`: the same HTTP API, with the engines in a Ray Serve deployment of one replica per GPU
(or per CPU slot), so a server grows by adding nodes to its cluster.

The aiohttp front (routes, the bounded queue, tokens, the model-name policy) is unchanged: one
:class:`ReplicaWorker` thread per replica takes the board's next job and streams it through a deployment
handle to a free replica, whose :class:`StudioReplica` runs it with the same code as a local engine thread
(:func:`~studio.server.device_worker.run_request`) and yields the same events. Serve's own HTTP proxy stays
off: the front is ours, so the API, its checks and its errors are the same with or without Ray.

A cancel reaches the replica as a Ray Serve request cancellation: its streaming call is cancelled, which
sets the engine's cancel event, and the engine stops within a step. Model paths (from the front's
`--model-dir`) and LoRA folders are read on the replica's node: they must exist on every node.

Ray is an optional extra: it is imported inside the functions here only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import Any

from studio.server.config import ServerConfig
from studio.server.device_worker import Emit, JobWorker, failure, run_request
from studio.server.jobs import TERMINAL, Job, JobBoard, JobImage
from studio.server.ray_batch import DEFAULT_CPUS_PER_CPU_WORKER, EngineOptions, connect, make_worker_engine

APP_NAME = "latent-studio"


class StudioReplica:
    """One engine in one Ray Serve replica (wrapped by `serve.deployment` at run time). Jobs run one at a
    time on its own thread, so the pipeline is used from one thread only."""

    def __init__(self, options: dict[str, Any], cpu_threads: int | None) -> None:
        self.engine = make_worker_engine(options, cpu_threads)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="studio-replica")

    async def generate(self, request_json: dict[str, Any]) -> AsyncIterator[tuple[str, dict[str, Any], bytes | None]]:
        """The job's events as (kind, data, PNG or None), ending with done, failed or cancelled."""
        from studio.engine.errors import RequestError
        from studio.engine.request_json import request_from_json

        try:
            request = request_from_json(request_json, lambda name: name)  # the front applied its policy
        except RequestError as exc:
            yield "failed", failure(exc), None
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(kind: str, data: dict[str, Any], image: JobImage | None = None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, data, image.png if image is not None else None))

        running = loop.run_in_executor(self._thread, run_request, self.engine, request, cancel, emit)
        try:
            while True:
                event = await queue.get()
                yield event
                if event[0] in TERMINAL:
                    break
        finally:
            cancel.set()  # a cancelled request (the client or the front gave up) stops within a step
            with contextlib.suppress(Exception):
                await asyncio.shield(running)


class ReplicaWorker(JobWorker):
    """The front's side of one replica: takes the board's next job and streams it through the handle."""

    def __init__(self, board: JobBoard, handle: Any, name: str) -> None:
        super().__init__(board, name)
        self.handle = handle

    def run_job(self, job: Job, emit: Emit) -> None:
        from studio.engine.request_json import request_to_json

        stream = self.handle.options(stream=True).generate.remote(request_to_json(job.request))
        watcher = threading.Thread(target=_cancel_when_set, args=(job, stream), daemon=True)
        watcher.start()
        try:
            for kind, data, png in stream:
                image = JobImage(png, data["seed"], data["nsfw"]) if png is not None else None
                emit(kind, data, image)
                if kind in TERMINAL:
                    return
        except Exception:  # a cancelled stream, a lost replica
            if job.cancel.is_set():
                emit("cancelled", {})
                return
            raise
        emit("failed", {"message": "the replica ended the job's events before it finished", "kind": "generation"})


def _cancel_when_set(job: Job, stream: Any) -> None:
    """Cancel the replica's call when the job is cancelled (at once, even while a model loads)."""
    while not job.is_finished:
        if job.cancel.wait(0.05):
            with contextlib.suppress(Exception):
                stream.cancel()
            return


def replica_plan(ray: Any, config: ServerConfig, replicas: int | None) -> tuple[dict[str, Any], int | None, int]:
    """Actor options, the CPU replicas' threads (None on GPUs), and how many replicas: one per GPU, else
    CPU slots of up to 4 cores (or `replicas` sharing the cores)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus > 0 and config.device != "cpu":
        return {"num_gpus": 1, "num_cpus": 1}, None, replicas or gpus
    per = max(1, cpus // replicas) if replicas else min(DEFAULT_CPUS_PER_CPU_WORKER, cpus)
    return {"num_cpus": per}, per, replicas or max(1, cpus // per)


def deploy(ray: Any, config: ServerConfig, replicas: int | None = None, max_replicas: int | None = None) -> tuple[Any, int]:
    """Deploy the replicas on the connected cluster; the handle and the most replicas there will be.

    `max_replicas` makes the deployment autoscale from one replica up to that many as jobs wait: replicas
    start on nodes that join the cluster later, so the server grows by adding nodes."""
    from ray import serve

    actor_options, cpu_threads, count = replica_plan(ray, config, max_replicas or replicas)  # cores per replica
    scaling: dict[str, Any] = {"num_replicas": count}
    if max_replicas is not None:
        count = max_replicas
        scaling = {"autoscaling_config": {
            "min_replicas": 1, "max_replicas": max_replicas, "target_ongoing_requests": 1,
            "look_back_period_s": 6.0, "upscale_delay_s": 2.0, "downscale_delay_s": 300.0,
        }}
    engine = EngineOptions(
        device="cuda" if "num_gpus" in actor_options else "cpu", dtype=config.dtype, backend=config.backend,
        threads=config.threads, lora_dirs=tuple(map(str, config.lora_dirs)),
        embedding_dirs=tuple(map(str, config.embedding_dirs)), preview=config.preview,
    )
    env = engine.worker_env()
    if env:
        actor_options["runtime_env"] = {"env_vars": env}
    options = asdict(engine)
    options.pop("env")
    serve.start(proxy_location="Disabled")  # the front is ours: no Serve HTTP proxy
    deployment = serve.deployment(StudioReplica).options(
        name="StudioReplica", max_ongoing_requests=1, ray_actor_options=actor_options, **scaling,
    )
    handle = serve.run(deployment.bind(options, cpu_threads), name=APP_NAME, route_prefix=None)
    return handle, count


@contextlib.contextmanager
def ray_workers(
    config: ServerConfig, address: str, replicas: int | None = None, max_replicas: int | None = None,
) -> Iterator[tuple[Any, int]]:
    """For the block: the replicas deployed (connecting to `address` as `studio batch --ray` does) and
    (make_app's `workers`, their number: one front thread per replica there can be); the application is
    deleted from the cluster afterwards."""
    with connect(address) as ray:
        handle, count = deploy(ray, config, replicas, max_replicas)
        try:
            yield (lambda board: [ReplicaWorker(board, handle, f"ray-{n}") for n in range(count)]), count
        finally:
            from ray import serve

            with contextlib.suppress(Exception):
                serve.delete(APP_NAME)
