"""Where each component runs and in which number format, and what that format needs to stay correct.

Two cases need more than `pipeline.to(dtype)`:

- bf16 on the CPU: the UNet and text encoder run in bf16 (the heavy matrix work), the VAE stays in fp32.
  diffusers assumes one dtype per pipeline (it hands bf16 latents to the VAE, and fp32 VAE latents to
  the UNet in img2img), so each of those modules casts its inputs to its own dtype on entry.
- fp16 with a UNet whose attention asks for `upcast_attention` (SD 2.1 768-v): diffusers' default SDPA
  processor ignores that flag, and 768-v's attention scores overflow fp16 (black or NaN images).
  `UpcastAttnProcessor` computes those attentions in fp32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.engine.errors import RequestError

if TYPE_CHECKING:
    import torch
    from torch import nn

# Modules of a diffusers AutoencoderKL that receive a tensor from outside the VAE.
VAE_ENTRY_MODULES = ("encoder", "quant_conv", "post_quant_conv", "decoder")


# bench/bf16_fidelity (issue 5's rule: bf16 may be the CPU's `auto` only if PSNR >= 35 dB): final 128 px
# images, 20 DDIM steps, random weights at real widths, bf16 placement vs fp32. Figures in its output.
BF16_MIN_PSNR_DB = 35.0
BF16_MEASURED_PSNR_DB = 45.5  # worst of SD 1.x (48.9, 49.2 dB, two seeds) and DeciDiffusion (45.5 dB)
AUTO_CPU_DTYPE_ENV = "STUDIO_AUTO_CPU_DTYPE"  # "float32" / "bfloat16": what `auto` means on the CPU


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 then runs the SD 1.5 UNet 2.4x faster than fp32 (the brief's measurement,
    1.2 s vs 2.9 s per step). Without them
    bf16 goes through fallback kernels: 3.5x slower than fp32 (Deci UNet, channels-last) on an AVX2 EPYC."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def auto_cpu_dtype(native_bf16: bool) -> str:
    """bf16 where it is both fast (native) and keeps the result (measured PSNR over the rule), else fp32."""
    override = os.environ.get(AUTO_CPU_DTYPE_ENV, "").strip().lower()
    if override in {"float32", "bfloat16"}:
        return override
    return "bfloat16" if native_bf16 and BF16_MEASURED_PSNR_DB >= BF16_MIN_PSNR_DB else "float32"


def vae_dtype_name(device: str, dtype_name: str) -> str:
    """The VAE's dtype: fp32 beside a bf16 UNet on the CPU (it runs once per image, a small share of the
    time, and its output is the pixels themselves); the pipeline's dtype elsewhere."""
    return "float32" if device == "cpu" and dtype_name == "bfloat16" else dtype_name


def module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def place_pipeline(pipe, placement: Placement) -> None:
    """Move a StableDiffusionPipeline's components to `placement` and make mixed dtypes and fp16 safe.

    Components loaded at their target dtype are not converted again (converting is not free, and a
    bf16 round trip would lose the fp32 VAE's precision).
    """
    import torch

    vae_dtype = placement.vae_dtype
    with torch.no_grad():
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):
                dtype = vae_dtype if name == "vae" else placement.dtype
                if module_dtype(component) != dtype:  # diffusers warns on every dtype `.to`, even a no-op
                    component.to(dtype=dtype)
                component.to(placement.device)
    if placement.device == "cpu":
        # oneDNN's convolutions run NHWC natively: channels-last saves a layout reorder around each of the
        # UNet's convolutions (bench/unet_speed prints both layouts side by side).
        pipe.unet.to(memory_format=torch.channels_last)
    if vae_dtype != placement.dtype:
        cast_inputs_on_entry(pipe.unet)
        for name in VAE_ENTRY_MODULES:
            module = getattr(pipe.vae, name, None)
            if module is not None:
                cast_inputs_on_entry(module)
    if placement.dtype == torch.float16:
        honour_attention_upcast(pipe.unet)


def cast_inputs_on_entry(module: nn.Module) -> None:
    """Cast the floating-point tensors `module` is called with to the dtype of its weights."""
    if getattr(module, "_studio_casts_inputs", False):
        return
    import torch

    def cast(value, dtype):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
            return value.to(dtype)
        return value

    def pre_hook(mod, args, kwargs):
        dtype = module_dtype(mod)
        return tuple(cast(a, dtype) for a in args), {k: cast(v, dtype) for k, v in kwargs.items()}

    module.register_forward_pre_hook(pre_hook, with_kwargs=True)
    module._studio_casts_inputs = True


def honour_attention_upcast(unet: nn.Module) -> int:
    """Give every attention that asks for `upcast_attention` the fp32 processor; returns how many."""
    from diffusers.models.attention_processor import Attention

    processor = UpcastAttnProcessor()
    count = 0
    for module in unet.modules():
        if isinstance(module, Attention) and module.upcast_attention:
            module.set_processor(processor)
            count += 1
    return count


class UpcastAttnProcessor:
    """Scaled dot-product attention that runs in fp32 when the module asks for `upcast_attention` and the
    inputs are fp16; otherwise exactly diffusers' SDPA processor (same operations, same order).

    Only the attention itself is upcast: the projections stay in fp16, and the fp32 product goes back
    to fp16 before the output projection. SDPA in fp32 still uses the memory-efficient kernel on CUDA,
    so 768 px (9,216 tokens) needs no quadratic score matrix.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        import torch
        import torch.nn.functional as F

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, sequence_length, _ = context.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out_dtype = query.dtype
        if attn.upcast_attention and out_dtype == torch.float16:
            query, key, value = query.float(), key.float(), value.float()
            if attention_mask is not None:
                attention_mask = attention_mask.float()
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(out_dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


# ---------------------------------------------------------------------------------------------- devices



@dataclass(frozen=True)
class Placement:
    """Where the networks run and in which precision. On the OpenVINO backend `dtype_name` is the
    networks' precision ("float32", "bfloat16", "int8") and everything left in torch runs in float32."""

    device: str  # "cpu" | "cuda" | "cuda:1" | "mps"
    dtype_name: str  # "float32" | "float16" | "bfloat16" | "int8" (OpenVINO only)
    backend: str = "torch"  # "torch" | "openvino"

    @property
    def dtype(self):
        """The torch dtype of what runs in torch."""
        import torch

        return torch.float32 if self.backend == "openvino" else getattr(torch, self.dtype_name)

    @property
    def vae_dtype(self):
        import torch

        if self.backend == "openvino":
            return torch.float32
        return getattr(torch, vae_dtype_name(self.device, self.dtype_name))

    @property
    def label(self) -> str:
        """"cpu bfloat16", "cpu int8 (OpenVINO)": what the status bar says "Auto" came to."""
        suffix = " (OpenVINO)" if self.backend == "openvino" else ""
        return f"{self.device} {self.dtype_name}{suffix}"


DTYPE_ALIASES = {
    "fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}


def choose_placement(device: str = "auto", dtype: str = "auto", backend: str = "torch") -> Placement:
    """`auto`: CUDA fp16, MPS fp16, else the CPU in fp32, or in bf16 where the CPU has native bf16
    (:func:`auto_cpu_dtype`). Asking for hardware that is absent is the user's error.

    `backend` ("auto", "torch", "openvino") is resolved for the device (:func:`choose_backend`); the
    OpenVINO backend has its own precisions (:func:`openvino_precision`)."""
    import torch

    from studio.engine.backends import check_backend, choose_backend, openvino_precision

    check_backend(backend)

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise RequestError(f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no CUDA GPU")
    elif device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RequestError("device 'mps' asked for, but Apple's Metal backend is not available here")
    elif device != "cpu":
        raise RequestError(f"unknown device {device!r}: choose auto, cpu, cuda or mps")

    if choose_backend(backend, device) == "openvino":
        return Placement(device, openvino_precision(dtype, cpu_has_native_bf16()), "openvino")
    if (dtype or "auto").lower() == "int8":
        raise RequestError("int8 runs on the OpenVINO backend only: choose backend openvino (or auto on the CPU)")
    if (dtype or "auto") == "auto":
        dtype_name = auto_cpu_dtype(cpu_has_native_bf16()) if device == "cpu" else "float16"
    else:
        if dtype.lower() not in DTYPE_ALIASES:
            raise RequestError(f"unknown dtype {dtype!r}: choose auto, float32, float16 or bfloat16")
        dtype_name = DTYPE_ALIASES[dtype.lower()]
    if device == "cpu" and dtype_name == "float16":
        raise RequestError("float16 is not supported on the CPU: use float32 or bfloat16")
    return Placement(device, dtype_name)
