"""Engine.generate with a preview at every step vs a bare diffusers pipeline call.

Same pipeline object, prompt, steps, size and seed; the two are alternated in one process so that
machine noise hits both alike. Target (design.md section 5, issue 3): ratio <= 1.02.
Env: BENCH_SIZE (px, default 256), BENCH_STEPS (default 6), BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import os
import statistics
import time


def main() -> None:
    import torch

    from bench.realistic import build_random_pipeline
    from studio.engine import Engine, GenerationRequest

    size = int(os.environ.get("BENCH_SIZE", 256))
    steps = int(os.environ.get("BENCH_STEPS", 6))
    rounds = int(os.environ.get("BENCH_ROUNDS", 3))
    pipe = build_random_pipeline("sd1")
    engine = Engine(device="cpu", preview="linear")
    engine.add_pipeline("random-sd1", pipe, "sd1")
    request = GenerationRequest(
        model="random-sd1", prompt="a lighthouse at dusk", steps=steps, seed=1, width=size, height=size,
        scheduler="DDIM", guidance=7.5,
    )
    previews = []

    def bare() -> None:
        pipe(
            "a lighthouse at dusk", num_inference_steps=steps, guidance_scale=7.5, width=size, height=size,
            generator=[torch.Generator("cpu").manual_seed(1)],
        )

    def ours() -> None:
        engine.generate(request, on_step=lambda ev: previews.append(ev.preview))

    bare()  # warm-up: first-call allocations and kernel selection
    times: dict[str, list[float]] = {"bare": [], "engine": []}
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("engine", ours)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    bare_s, ours_s = statistics.median(times["bare"]), statistics.median(times["engine"])
    print(f"SD 1.x widths, random weights, CPU {torch.get_num_threads()} threads, {size}px, {steps} steps, batch 1")
    print(f"bare pipeline : median {bare_s:.2f} s  ({bare_s / steps:.3f} s/step)  runs {[round(t, 2) for t in times['bare']]}")
    print(f"engine+preview: median {ours_s:.2f} s  ({ours_s / steps:.3f} s/step)  runs {[round(t, 2) for t in times['engine']]}")
    print(f"ratio engine/bare: {ours_s / bare_s:.3f}  (target <= 1.02); previews made: {len(previews)}")


if __name__ == "__main__":
    main()
