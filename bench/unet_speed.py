"""UNet step time: DeciDiffusion 1.0's UNet-NAS (native, real configuration) vs the SD 1.5 UNet.

Random weights (speed does not depend on them), batch 2 as under classifier-free guidance, CPU. The two
UNets are alternated in one process (a warm-up call each, then rounds; medians) so that machine noise hits
both alike; medians and minima are printed (other processes only ever add time: on a shared machine the
minimum is the better estimate; the load average is printed before and after). The reference UNet-NAS code,
measured on the brief's machine (2 cores with AVX512-BF16), gave Deci/SD 0.86 at 256 px and 0.61 at 512 px:
ours must be at least as fast. Ratios move between CPUs (SD's attention and the convolutions get different
kernels), so compare on the same kind of machine; the fp32 matrix-multiply ceiling is printed for scale.
For scale, the FLOP ratio (torch's FlopCounterMode, printed with the achieved GFLOPS) is 0.855 at 256 px and
0.765 at 512 px: at 512 px SD's attention over 4096 tokens costs more time than its FLOPs say, which Deci's
attention-free outer level avoids.
Then fp32 vs bf16 for the Deci UNet (channels-last, as the engine runs it), at 128 px by default: on CPUs
without native bf16 (AVX512-BF16/AMX) torch has no fast bf16 convolution, and bf16 is several times slower.
Each UNet also runs in channels-last memory format (as the engine runs UNets on the CPU); with
BENCH_SD_CLASSIC=1, SD 1.5 also runs with diffusers' classic (pre-SDPA) attention, which shows how much a
Deci/SD ratio depends on the kernel SD's attention gets at 4096 tokens.
Env: BENCH_SIZES (px, default "256,512"), BENCH_ROUNDS (default 3), BENCH_CHANNELS_LAST (default 1),
BENCH_SD_CLASSIC (default 0), BENCH_BF16_SIZES (default "128"), BENCH_BF16_ROUNDS (default 2).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time

REFERENCE_RATIO = {256: 0.86, 512: 0.61}  # reference implementation, same protocol, the brief's machine
LABELS = {
    "deci": "Deci", "sd": "SD 1.5", "deci_cl": "Deci channels-last", "sd_cl": "SD 1.5 channels-last",
    "sd_classic": "SD 1.5 classic attention",
}


def _sizes(name: str, default: str) -> list[int]:
    return [int(s) for s in os.environ.get(name, default).replace(" ", "").split(",") if s]


def _builders():
    from diffusers import UNet2DConditionModel

    from studio.engine.deci_unet import DECI_V1_CONFIGURATIONS, build_unet
    from studio.library.resources import component_configs_dir

    config = json.loads((component_configs_dir("sd1") / "unet" / "config.json").read_text(encoding="utf-8"))

    def deci():
        return build_unet(DECI_V1_CONFIGURATIONS).eval()

    def sd():
        return UNet2DConditionModel.from_config(config).eval()

    return deci, sd


def _inputs(size: int, dtype):
    import torch

    g = torch.Generator().manual_seed(size)
    sample = torch.randn(2, 4, size // 8, size // 8, generator=g).to(dtype)
    context = torch.randn(2, 77, 768, generator=g).to(dtype)
    return sample, torch.tensor(500), context


def _flops(build, size: int) -> int:
    """FLOPs of one batch-2 step, counted on the meta device (no memory, no time)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = build()
        sample, context = torch.empty(2, 4, size // 8, size // 8), torch.empty(2, 77, 768)
        with FlopCounterMode(display=False) as counter:
            unet(sample, torch.tensor(500), encoder_hidden_states=context)
    return counter.get_total_flops()


def _sgemm_gflops() -> float:
    """This CPU's fp32 matrix-multiply speed (2048^3, best of 3): the ceiling the GFLOPS figures are read
    against. A UNet near it cannot be made much faster without fewer FLOPs."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * 2048**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timer(unet, inputs):
    from bench.realistic import unet_step_timer

    return unet_step_timer(unet, *inputs)


def _alternate(steps: dict, rounds: int) -> dict[str, list[float]]:
    for step in steps.values():
        step()  # warm-up: first-call allocations and kernel selection
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(step())
    return times


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    import diffusers
    import torch

    diffusers.utils.logging.set_verbosity_error()  # no dtype-cast chatter

    rounds = int(os.environ.get("BENCH_ROUNDS", 3))
    build_deci, build_sd = _builders()
    torch.manual_seed(0)
    deci, sd = build_deci(), build_sd()
    n_deci = sum(p.numel() for p in deci.parameters())
    n_sd = sum(p.numel() for p in sd.parameters())
    print(
        f"UNet step, batch 2 (CFG), random weights, CPU fp32, {torch.get_num_threads()} threads, "
        f"{rounds} rounds after a warm-up; {_load()}"
    )
    print(f"parameters: Deci UNet-NAS {n_deci:,}  SD 1.5 UNet {n_sd:,}")
    ceiling = _sgemm_gflops()
    print(f"this CPU's fp32 matrix multiply: {ceiling:.0f} GFLOPS (the ceiling for the figures below)")
    variants = {"deci": deci, "sd": sd}
    if os.environ.get("BENCH_CHANNELS_LAST", "1") == "1":  # how the engine runs UNets on the CPU
        variants["deci_cl"] = copy.deepcopy(deci).to(memory_format=torch.channels_last)
        variants["sd_cl"] = copy.deepcopy(sd).to(memory_format=torch.channels_last)
    if os.environ.get("BENCH_SD_CLASSIC") == "1":  # SD with diffusers' pre-SDPA attention, for comparison
        from diffusers.models.attention_processor import AttnProcessor

        variants["sd_classic"] = copy.deepcopy(sd)
        variants["sd_classic"].set_attn_processor(AttnProcessor())
    for size in _sizes("BENCH_SIZES", "256,512"):
        inputs = _inputs(size, torch.float32)
        times = _alternate({name: _timer(unet, inputs) for name, unet in variants.items()}, rounds)
        med = {name: statistics.median(t) for name, t in times.items()}
        low = {name: min(t) for name, t in times.items()}
        f_deci, f_sd = _flops(build_deci, size), _flops(build_sd, size)
        ref = REFERENCE_RATIO.get(size)
        verdict = "" if ref is None else f"  (reference UNet-NAS {ref:.2f})"
        for name in variants:
            flops = f_deci if name.startswith("deci") else f_sd
            print(f"{size:>4} px  {LABELS[name]:<26} {med[name]:6.2f} s {_runs(times[name])}  "
                  f"{flops / low[name] / 1e9:4.0f} GFLOPS")
        print(f"{'':>4}     FLOP ratio Deci/SD {f_deci / f_sd:.3f}")
        floor = f_deci / (ceiling * 1e9) / low["sd"]
        print(f"{'':>4}     floor: Deci at the matrix-multiply ceiling would be {floor:.3f} of this SD 1.5 time")
        for deci_name, sd_name in (("deci", "sd"), ("deci_cl", "sd"), ("deci_cl", "sd_cl"), ("deci", "sd_classic")):
            if deci_name in med and sd_name in med:
                print(f"{'':>4}     ratio {LABELS[deci_name]} / {LABELS[sd_name]}: median "
                      f"{med[deci_name] / med[sd_name]:.3f}, min {low[deci_name] / low[sd_name]:.3f}{verdict}")
    engine_deci = variants.get("deci_cl", deci)  # the layout the engine runs on the CPU
    del variants, sd, deci

    deci_bf16 = None
    bf16_rounds = int(os.environ.get("BENCH_BF16_ROUNDS", 2))
    for size in _sizes("BENCH_BF16_SIZES", "128"):
        if deci_bf16 is None:
            deci_bf16 = copy.deepcopy(engine_deci).to(dtype=torch.bfloat16)
        fp32, bf16 = _inputs(size, torch.float32), _inputs(size, torch.bfloat16)
        times = _alternate({"fp32": _timer(engine_deci, fp32), "bf16": _timer(deci_bf16, bf16)}, bf16_rounds)
        f, b = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        b_min, f_min = min(times["bf16"]), min(times["fp32"])
        print(f"{size:>4} px  Deci fp32 {f:6.2f} s {_runs(times['fp32'])}")
        print(f"{'':>4}     Deci bf16 {b:6.2f} s {_runs(times['bf16'])}")
        print(f"{'':>4}     time ratio bf16/fp32: median {b / f:.3f}, min {b_min / f_min:.3f}")
    print(_load())


if __name__ == "__main__":
    main()
