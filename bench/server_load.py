"""A bounded load test of `studio serve` on loopback: concurrent clients each running jobs to the end, while a
prober measures how fast the API answers during generation.

A real server (studio.server.app.ServerThread) with a tiny random-weight model, or a model folder given with
--model-dir/--model. Each client (studio.remote.RemoteClient) submits its jobs one after another: submit,
follow the job's event stream to its end, fetch every image. A full queue (429) is asked again after a short
pause, as the window does. Meanwhile a prober calls GET /v1/status and GET /v1/jobs/{id} every 20 ms.

Printed: jobs accepted, done, failed, lost (accepted but never ended for its client: must be 0), the 429s,
API latency p50/p99 while generating (status, job, submit) and the images per second.
Usage: python -m bench server_load [--clients 8] [--jobs 3] [--steps 8] [--size 64] [--queue-limit 4]
[--model-dir DIR --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench server_load", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3, help="jobs per client")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--queue-limit", type=int, default=4, help="small, so that clients meet 429s")
    parser.add_argument("--model-dir", type=Path, help="a folder of models (default: a tiny model made here)")
    parser.add_argument("--model", default="tiny-sd1", help="the model's name in --model-dir")
    return parser.parse_args(list(argv))


@dataclass
class Tally:
    accepted: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    busy: int = 0  # 429 answers
    images: int = 0
    submit_ms: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    job_ms: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


async def _client(url: str, n: int, args: argparse.Namespace, tally: Tally) -> None:
    from studio.engine import GenerationRequest
    from studio.remote import QueueFull, RemoteClient

    async with RemoteClient(url) as client:
        for j in range(args.jobs):
            request = GenerationRequest(model=args.model, prompt=f"client {n} job {j}", steps=args.steps,
                                        width=args.size, height=args.size, seed=n * 1000 + j)
            while True:
                start = time.perf_counter()
                try:
                    info = await client.submit(request)
                except QueueFull:
                    tally.busy += 1
                    await asyncio.sleep(0.2)
                    continue
                tally.submit_ms.append((time.perf_counter() - start) * 1000)
                break
            tally.accepted += 1
            tally.job_ids.append(info.id)
            async for event in client.events(info.id):
                if event.kind == "image":
                    await client.image(info.id, int(event.data["index"]))
                    tally.images += 1
                elif event.kind in ("done", "failed", "cancelled"):
                    setattr(tally, event.kind, getattr(tally, event.kind) + 1)


async def _prober(url: str, tally: Tally, stop: asyncio.Event) -> None:
    from studio.remote import RemoteClient

    async with RemoteClient(url) as client:
        while not stop.is_set():
            start = time.perf_counter()
            await client.status()
            tally.status_ms.append((time.perf_counter() - start) * 1000)
            if tally.job_ids:
                start = time.perf_counter()
                await client.job(tally.job_ids[-1])
                tally.job_ms.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)


async def _load(url: str, args: argparse.Namespace) -> tuple[Tally, float]:
    tally, stop = Tally(), asyncio.Event()
    prober = asyncio.create_task(_prober(url, tally, stop))
    start = time.perf_counter()
    await asyncio.gather(*(_client(url, n, args, tally) for n in range(args.clients)))
    seconds = time.perf_counter() - start
    stop.set()
    await prober
    return tally, seconds


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):6.1f} ms   p99 {p99:6.1f} ms   ({len(ordered)} calls)"


def main(argv: Sequence[str] = ()) -> None:
    from studio.server.app import ServerThread
    from studio.server.config import ServerConfig
    from studio.server.routes import BOARD

    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="studio-load-") as temp:
        folder = args.model_dir
        if folder is None:
            from studio.engine.tiny import make_tiny_model

            folder = Path(temp) / "models"
            make_tiny_model(folder / "tiny-sd1", "sd1", seed=0)
        server = ServerThread(ServerConfig(port=0, model_dirs=[folder], queue_limit=args.queue_limit, preview="linear"))
        url = server.start()
        try:
            tally, seconds = asyncio.run(_load(url, args))
            board = server.app[BOARD]
            unfinished = [job.id for job in board.jobs() if not job.is_finished]
        finally:
            server.stop()
    ended = tally.done + tally.failed + tally.cancelled
    print(f"{args.clients} clients x {args.jobs} jobs, {args.size} px, {args.steps} steps, queue limit {args.queue_limit}")
    print(f"jobs accepted {tally.accepted}, done {tally.done}, failed {tally.failed}, cancelled {tally.cancelled}, "
          f"lost {tally.accepted - ended} (server: {len(unfinished)} unfinished); 429 answers {tally.busy}")
    print(f"images {tally.images} in {seconds:.1f} s = {tally.images / seconds:.2f} images/s")
    print(f"GET /v1/status while generating   {_percentiles(tally.status_ms)}")
    print(f"GET /v1/jobs/ID while generating  {_percentiles(tally.job_ms)}")
    print(f"POST /v1/jobs (accepted)          {_percentiles(tally.submit_ms)}")
