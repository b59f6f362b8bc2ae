"""Torch networks -> OpenVINO models (imported only by the OpenVINO backend: it imports torch), from the modules we load ourselves (never a repository's code).

Each network is traced through a small `nn.Module` whose inputs are plain tensors, with dynamic batch
and spatial sizes, so one conversion serves every image size and batch (bench/openvino_speed measured
dynamic against per-size static shapes). DeciDiffusion's UNet-NAS is our own module
(:mod:`studio.engine.deci_unet`) and converts like any other.

The UNet is traced at a latent size that is not a multiple of its downsampling factor: diffusers then
takes the branch that upsamples to the skip connection's size (read from the tensor's shape, so dynamic
in the trace), which gives exactly the 2x of the other branch on the sizes where both apply and stays
right on the others (a 520 px image has a 65-latent side).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openvino as ov
import torch

# The parts of a pipeline that move, in the order they are converted (the UNet takes most of the time).
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
# What `int8` does to each part. The UNet is the time (every step): its convolutions run in int8,
# weights and activations ("w8a8", calibrated); the text encoder runs once per prompt: int8 weights only
# ("int8", no calibration). The VAE runs once per image and its output is the pixels: it keeps float16
# weights (the same IR as float32). A format's name is its recipe: when the calibration plan or the
# quantization settings change, give it a new name (w8a8r2 ...) so no cache serves the old one.
INT8_FORMATS = {"text_encoder": "int8", "unet": "w8a8"}


def weights_format(component: str, precision: str) -> str:
    """How a component's IR stores its weights for a precision: "w8a8", "int8" or "fp16" (never fp32)."""
    return INT8_FORMATS.get(component, "fp16") if precision == "int8" else "fp16"


def needs_calibration(weights: str) -> bool:
    """Whether a weights format is made from calibration samples (openvino_calibration)."""
    return weights == "w8a8"


@dataclass
class Traceable:
    module: Any  # torch.nn.Module with tensor-only inputs
    example: tuple
    shapes: list  # openvino.PartialShape per input
    config: dict  # what the pipeline reads from the component's `.config`


def traceable(pipe, component: str) -> Traceable:
    """The torch module of `component` wrapped for tracing, with an example input and dynamic shapes."""
    dynamic = ov.PartialShape
    if component == "text_encoder":
        encoder = pipe.text_encoder
        length = int(getattr(pipe.tokenizer, "model_max_length", 77) or 77)
        return Traceable(
            _TextEncoder(encoder), (torch.ones(1, length, dtype=torch.long),), [dynamic([-1, length])],
            _plain(encoder.config.to_dict()),
        )
    if component == "unet":
        unet = pipe.unet
        channels = int(unet.config.in_channels)
        width = int(pipe.text_encoder.config.hidden_size) if pipe.text_encoder is not None else int(unet.config.cross_attention_dim)
        side = _trace_side(unet)
        example = (torch.randn(2, channels, side, side), torch.tensor([500.0, 500.0]), torch.randn(2, 77, width))
        shapes = [dynamic([-1, channels, -1, -1]), dynamic([-1]), dynamic([-1, -1, width])]
        return Traceable(_UNet(unet), example, shapes, _plain(dict(unet.config)))
    vae = pipe.vae
    latent = int(vae.config.latent_channels)
    if component == "vae_decoder":
        return Traceable(_VaeDecoder(vae), (torch.randn(1, latent, 8, 8),), [dynamic([-1, latent, -1, -1])], _plain(dict(vae.config)))
    if component == "vae_encoder":
        channels = int(vae.config.in_channels)
        return Traceable(_VaeEncoder(vae), (torch.randn(1, channels, 64, 64),), [dynamic([-1, channels, -1, -1])], _plain(dict(vae.config)))
    raise ValueError(f"unknown component {component!r}")


def convert(pipe, component: str):
    """(openvino.Model with float32 weights, the component's config)."""
    item = traceable(pipe, component)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer warns about every shape-dependent Python branch
        # Traced here without torch's check (a second and third run of the network, a third of the time):
        # the check compares two traces of the same inputs, which a deterministic network always passes.
        traced = torch.jit.trace(item.module.eval(), item.example, check_trace=False, strict=False)
        model = ov.convert_model(traced, example_input=item.example, input=item.shapes)
    return model, item.config


def compress_int8(model):
    """NNCF's int8 weight compression (asymmetric, per channel): weights only, no calibration data."""
    import nncf

    with _quiet_nncf():
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF draws progress bars on stdout (rich) and logs each step: our progress is the "Optimising…" status."""
    logging.getLogger("nncf").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def quantize_w8a8(model, samples: list, check: Callable[[], None] | None = None):
    """NNCF post-training quantization of the UNet, weights and activations in int8 (its convolutions and
    matrix multiplications), on calibration `samples` (openvino_calibration).

    Measured on DeciDiffusion at 512 px (random weights, 8 samples at 256 px): 1.69 s per step against
    3.00 for bf16 and 2.18 for int8 activations on the convolutions only (matrix multiplications with
    int8 weights), at the same final-image PSNR (41.3 and 41.6 dB against torch fp32). SmoothQuant is
    off: it made no difference but time. `check` runs before NNCF reads each sample (it may raise Cancelled).
    """
    import nncf

    def sample(item):
        if check is not None:
            check()
        return item

    with _quiet_nncf():
        return nncf.quantize(
            model, nncf.Dataset(samples, sample), subset_size=len(samples), model_type=nncf.ModelType.TRANSFORMER,
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(convolution=-1, matmul=-1),
            ),
        )


def save(model, folder) -> None:
    """The IR with float16 weights (int8 ones stay int8): the cache stays near the model's own size."""
    from pathlib import Path

    ov.save_model(model, str(Path(folder) / "openvino_model.xml"), compress_to_fp16=True)


def _trace_side(unet) -> int:
    """A latent side that no downsampling divides (see the module's docstring); DeciDiffusion's UNet
    refuses such sides and has no such branch, so it is traced at a multiple of its factor."""
    factor = int(getattr(unet, "latent_multiple", 0) or 0)
    if factor:
        return factor
    return 2 ** max(len(unet.config.down_block_types) - 1, 0) + 1


def _plain(config: dict) -> dict:
    """A config as JSON-able values (tuples to lists, classes and dtypes to their names)."""
    import json

    return json.loads(json.dumps(dict(config), default=str))


class _TextEncoder(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids):
        return self.encoder(input_ids)[0]


class _UNet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class _VaeDecoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


class _VaeEncoder(torch.nn.Module):
    """The encoder's moments (mean and log-variance); sampling from them stays in torch, on our generator."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image):
        return self.vae.encode(image).latent_dist.parameters
