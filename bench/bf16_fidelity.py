"""Does bf16 keep the result? The final image of a realistic-width random model, bf16 vs fp32, on the CPU.

The engine's bf16 placement (UNet and text encoder in bf16, VAE in fp32) against fp32, same pipeline
weights, prompt, seed and steps, through Engine.generate as the app runs it. PSNR over the saved 8-bit
RGB pixels; the rule (issue 5): bf16 may be the CPU's `auto` only if PSNR >= 35 dB. Step times are
printed too (bf16 is only worth it on CPUs with native bf16: AVX512-BF16 or AMX).
The fp32 image's pixel standard deviation and the PSNR between two seeds' fp32 images are printed as a
scale (a flat image would make any PSNR look good).
Caveat: random weights are not a trained model. They run the same arithmetic at the same widths, so
rounding meets the same magnitudes at every layer, but a trained model's denoising trajectory may damp
or amplify early differences differently. The figure is an estimate, printed with that caveat.
Env: BENCH_FAMILIES (default "sd1,deci"), BENCH_SIZE (px, default 128), BENCH_STEPS (default 20),
BENCH_SEEDS (default "1,2").
"""

from __future__ import annotations

import copy
import math
import os
import time

PSNR_RULE_DB = 35.0


def psnr(a, b) -> float:
    import numpy as np

    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _engines(family: str):
    from bench.realistic import build_random_pipeline
    from studio.engine import Engine

    pipe = build_random_pipeline(family, seed=0)
    engines = {}
    for dtype, copy_of in (("float32", pipe), ("bfloat16", copy.deepcopy(pipe))):
        engine = Engine(device="cpu", dtype=dtype, preview="none")
        engine.add_pipeline(f"random-{family}", copy_of, family)
        engines[dtype] = engine
    return engines


def main() -> None:
    import numpy as np
    import torch

    from studio.engine import GenerationRequest

    families = [f for f in os.environ.get("BENCH_FAMILIES", "sd1,deci").split(",") if f]
    size = int(os.environ.get("BENCH_SIZE", 128))
    steps = int(os.environ.get("BENCH_STEPS", 20))
    seeds = [int(s) for s in os.environ.get("BENCH_SEEDS", "1,2").split(",") if s]
    native = torch.backends.cpu.get_cpu_capability()
    print(f"bf16 vs fp32, random weights at real widths, CPU ({native}), {torch.get_num_threads()} threads, "
          f"{size}px, {steps} steps DDIM, CFG 7.5; rule: PSNR >= {PSNR_RULE_DB} dB")
    worst = math.inf
    for family in families:
        engines = _engines(family)
        previous = None
        for seed in seeds:
            request = GenerationRequest(
                model=f"random-{family}", prompt="a lighthouse on a cliff at dusk, oil painting", seed=seed,
                steps=steps, width=size, height=size, scheduler="DDIM", guidance=7.5,
            )
            images, seconds = {}, {}
            for dtype, engine in engines.items():
                start = time.perf_counter()
                (result,) = engine.generate(request)
                seconds[dtype] = time.perf_counter() - start
                images[dtype] = result.image
            value = psnr(images["bfloat16"], images["float32"])
            worst = min(worst, value)
            spread = float(np.asarray(images["float32"], dtype=np.float64).std())
            print(f"{family:>5} seed {seed}: PSNR {value:6.2f} dB   fp32 {seconds['float32']:7.1f} s   "
                  f"bf16 {seconds['bfloat16']:7.1f} s   (bf16/fp32 time {seconds['bfloat16'] / seconds['float32']:.1f}x)"
                  f"   fp32 image pixel std {spread:.1f}", flush=True)
            if previous is not None:  # scale: two unrelated images of the same model
                print(f"{'':>5} fp32 seed {seed} vs the previous seed: PSNR {psnr(images['float32'], previous):.2f} dB")
            previous = images["float32"]
        del engines
    verdict = "keeps" if worst >= PSNR_RULE_DB else "does not keep"
    print(f"worst PSNR {worst:.2f} dB: bf16 {verdict} the result by the {PSNR_RULE_DB} dB rule")


if __name__ == "__main__":
    main()
