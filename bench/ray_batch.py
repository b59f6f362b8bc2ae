"""`studio batch --ray` throughput: the same prompts on 1 and on 2 Ray workers, and a local Engine beside.

One local Ray cluster in this process (2 CPUs unless --cpus); each pool is started, its model loaded and run once
before the clock runs (those times are printed apart: they are paid once a worker), then the batch is
timed end to end as `run_ray_batch` runs it: queue, transfer of the card rows (base64 PNG), ordering.
The local figure is `Engine.generate` + the same PNG rows in this process with torch on one thread: what a
1-CPU worker does without Ray, so 1 worker / local is Ray's overhead and 2 workers / 1 worker the scaling.

Options: --prompts N (default 24), --model M (default: a tiny random-weight SD 1.x made in a temporary
folder), --steps (default 4), --size px (default 64), --cpus-per-worker (default 1), --device (default cpu),
--rounds (timed runs of each, the best shown; default 2).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _requests(model: str, prompts: int, steps: int, size: int):
    from studio.engine.card_format import parse_card

    data = [f"prompt {n}: a lighthouse at dusk, {n} gulls" for n in range(prompts)]
    card = parse_card({"input_data": {"data": data, "parameters": {
        "num_inference_steps": steps, "width": size, "height": size, "seed": 1}}})
    return card.requests(model)


def _local(requests, device: str, rounds: int) -> float:
    """Best seconds for the batch on a local Engine, torch on one thread (model loaded and run first)."""
    import torch

    from studio.engine import Engine
    from studio.engine.card_format import card_items

    engine = Engine(device=device, preview="none")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine.generate(requests[0])  # model load and first-call costs, as the pools' warm()
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for request in requests:
                card_items(request.prompt, engine.generate(request))
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        torch.set_num_threads(threads)


def _pool_run(requests, workers: int, cpus_per_worker: int, device: str, rounds: int) -> tuple[float, float, int]:
    """(seconds to start the workers, load the model and run it once; best seconds for the batch; PNG
    bytes per image)."""
    from studio.server.ray_batch import RayBatchPool

    start = time.perf_counter()
    with RayBatchPool({"device": device}, workers=workers, cpus_per_worker=cpus_per_worker) as pool:
        pool.warm(requests[0])
        ready = time.perf_counter() - start
        took = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            rows = pool.run(requests)
            took = min(took, time.perf_counter() - start)
    png = sum(len(r["generated_image"]) * 3 // 4 for item in rows for r in item) // max(1, len(rows))
    return ready, took, png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ray_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each; the best is shown")
    args = parser.parse_args(argv or [])

    load = os.getloadavg()
    os.environ.setdefault("STUDIO_AUTO_CPU_DTYPE", "float32")  # the same pixels everywhere (see tests/conftest.py)
    os.environ.setdefault("STUDIO_AUTO_BACKEND", "torch")
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        model = args.model
        if model is None:
            from studio.engine.tiny import make_tiny_model

            model = str(make_tiny_model(Path(folder) / "tiny-sd1", "sd1", seed=0))
        requests = _requests(model, args.prompts, args.steps, args.size)
        local = _local(requests, args.device, args.rounds)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=200 << 20)
        try:
            figures = {n: _pool_run(requests, n, args.cpus_per_worker, args.device, args.rounds) for n in (1, 2)}
        finally:
            ray.shutdown()

    label = "tiny random SD 1.x" if args.model is None else args.model
    print(f"{label}, {args.device}, {args.size}px, {args.steps} steps, {args.prompts} prompts, "
          f"{args.cpus_per_worker} CPU(s) a worker, Ray cluster of {args.cpus} CPUs")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} before the runs (other work shares the cores)")
    print(f"local Engine, 1 thread : {args.prompts / local:7.2f} images/s  ({local / args.prompts * 1000:.0f} ms/image)")
    for n, (ready, took, png) in figures.items():
        print(f"Ray, {n} worker{'s' if n > 1 else ' '}        : {args.prompts / took:7.2f} images/s  "
              f"({took / args.prompts * 1000:.0f} ms/image; start + load + first image {ready:.1f} s; PNG {png / 1024:.1f} KiB/image)")
    one, two = figures[1][1], figures[2][1]
    print(f"ratio 2 workers / 1 worker: {one / two:.2f}  (ideal 2.00);  1 worker / local: {args.prompts / one / (args.prompts / local):.2f}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
