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
import re
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
# float32 and bfloat16: the text encoder and UNet take LoRAs and textual-inversion vectors as inputs
# ("fp16-lora": float16 weights, see `lora_targets`), so one conversion serves every set of extra networks and a
# job without any feeds zeros (the plain network's pixels, bit for bit in f32). int8 keeps the plain IR:
# calibrating on zero LoRA inputs would quantize the LoRA away (those jobs stay on torch).
LORA_FORMAT = "fp16-lora"
LORA_COMPONENTS = ("text_encoder", "unet")
# The layers a LoRA may change (kohya / diffusers naming, as peft targets them): attention and
# feed-forward linears and the transformers' proj_in / proj_out (Linear or 1x1 Conv2d) of the UNet, the
# attention projections and MLP of the text encoder. A LoRA's other layers (LoCon's resnet convolutions)
# are not applied on OpenVINO, and its note says how many.
UNET_LORA_TARGET = re.compile(r"(attn\d\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|proj_in|proj_out)$")
TEXT_LORA_TARGET = re.compile(r"(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$")


def weights_format(component: str, precision: str) -> str:
    """How a component's IR stores its weights for a precision: "w8a8", "int8", "fp16-lora" (float16
    weights and LoRA inputs) or "fp16" (never fp32)."""
    if precision == "int8":
        return INT8_FORMATS.get(component, "fp16")
    return LORA_FORMAT if component in LORA_COMPONENTS else "fp16"


def float_weights(weights: str) -> bool:
    """Whether a weights format stores float16 weights (not int8)."""
    return weights in ("fp16", LORA_FORMAT)


def needs_calibration(weights: str) -> bool:
    """Whether a weights format is made from calibration samples (openvino_calibration)."""
    return weights == "w8a8"


@dataclass
class Traceable:
    module: Any  # torch.nn.Module with tensor-only inputs
    example: tuple
    shapes: list  # openvino.PartialShape per input
    config: dict  # what the pipeline reads from the component's `.config`


def traceable(pipe, component: str, *, lora: bool = False) -> Traceable:
    """The torch module of `component` wrapped for tracing, with an example input and dynamic shapes.
    `lora`: the text encoder or UNet with LoRA inputs (see :func:`_lora_traceable`)."""
    dynamic = ov.PartialShape
    if lora and component in LORA_COMPONENTS:
        return _lora_traceable(traceable(pipe, component), component)
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


def convert(pipe, component: str, *, lora: bool = False):
    """(openvino.Model with float32 weights, the component's config). `lora`: with LoRA inputs (the
    config then lists them under "lora_layers"); the torch module is left as it was."""
    item = traceable(pipe, component, lora=lora)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer warns about every shape-dependent Python branch
            # Traced here without torch's check (a second and third run of the network, a third of the time):
            # the check compares two traces of the same inputs, which a deterministic network always passes.
            traced = torch.jit.trace(item.module.eval(), item.example, check_trace=False, strict=False)
            model = ov.convert_model(traced, example_input=item.example, input=item.shapes)
    finally:
        if isinstance(item.module, _LoraInputs):
            item.module.unwrap()
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


# ------------------------------------------------------------------------------------------ LoRA inputs
class _Slot:
    """One wrapped layer's LoRA matrices for the current trace (written by the outer wrapper)."""

    a: torch.Tensor | None = None
    b: torch.Tensor | None = None


class _LoraLayer(torch.nn.Module):
    """y = base(x) + B (A x): A [r, in] and B [out, r] are model inputs (B already scaled by weight * alpha / r)."""

    def __init__(self, base, slot: _Slot):
        super().__init__()
        self.base, self.slot = base, slot
        self.conv = isinstance(base, torch.nn.Conv2d)

    def forward(self, x):
        y = self.base(x)
        a, b = self.slot.a, self.slot.b
        if self.conv:  # a 1x1 convolution: matrix products on [N, C, H*W]
            return y + torch.matmul(b, torch.matmul(a, x.flatten(2))).reshape(y.shape)
        return y + torch.nn.functional.linear(torch.nn.functional.linear(x, a), b)


def lora_targets(module, component: str) -> list[tuple[str, int, int]]:
    """(name, in features, out features) of each layer of `module` that takes a LoRA, in input order."""
    pattern = UNET_LORA_TARGET if component == "unet" else TEXT_LORA_TARGET
    found = []
    for name, layer in module.named_modules():
        if not pattern.search(name):
            continue
        if isinstance(layer, torch.nn.Linear):
            found.append((name, layer.in_features, layer.out_features))
        elif isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (1, 1) and layer.groups == 1:
            found.append((name, layer.in_channels, layer.out_channels))
    return found


class _LoraInputs(torch.nn.Module):
    """The plain traceable with each target layer wrapped; its extra inputs are the (A, B) pairs in
    `layers`' order. `unwrap` puts the torch layers back."""

    def __init__(self, inner, network, layers):
        super().__init__()
        self.inner, self.network = inner, network
        self.slots, self._wrapped = [], []
        for name, _fin, _fout in layers:
            parent_name, _, child = name.rpartition(".")
            parent = network.get_submodule(parent_name) if parent_name else network
            base = getattr(parent, child)
            slot = _Slot()
            setattr(parent, child, _LoraLayer(base, slot))
            self.slots.append(slot)
            self._wrapped.append((parent, child, base))

    def set_pairs(self, pairs) -> None:
        for i, slot in enumerate(self.slots):
            slot.a, slot.b = pairs[2 * i], pairs[2 * i + 1]

    def unwrap(self) -> None:
        for parent, child, base in self._wrapped:
            setattr(parent, child, base)


class _LoraUNet(_LoraInputs):
    def forward(self, sample, timestep, encoder_hidden_states, *pairs):
        self.set_pairs(pairs)
        return self.inner(sample, timestep, encoder_hidden_states)


class _LoraTextEncoder(_LoraInputs):
    """The text encoder on token ids and `extra` vectors: id vocab+i looks up extra[i] (textual
    inversion without reconverting; a job without embeddings feeds one row of zeros, never looked up)."""

    def forward(self, input_ids, extra, *pairs):
        from transformers.masking_utils import create_causal_mask

        self.set_pairs(pairs)
        model = self.network.text_model if hasattr(self.network, "text_model") else self.network
        table = torch.cat([model.embeddings.token_embedding.weight, extra.to(model.embeddings.token_embedding.weight.dtype)])
        hidden = model.embeddings(inputs_embeds=torch.nn.functional.embedding(input_ids, table))
        mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=None, cache=None)
        out = model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
        return model.final_layer_norm(out.last_hidden_state)


def _lora_traceable(plain: Traceable, component: str) -> Traceable:
    """`plain` with LoRA inputs: each target layer's A [r, in] and B [out, r], every r dynamic of its own."""
    network = plain.module.unet if component == "unet" else plain.module.encoder
    layers = lora_targets(network, component)
    generator = torch.Generator().manual_seed(0)
    pairs, shapes = [], []
    for _name, fin, fout in layers:
        pairs += [torch.randn(2, fin, generator=generator) * 0.01, torch.randn(fout, 2, generator=generator) * 0.01]
        shapes += [ov.PartialShape([-1, fin]), ov.PartialShape([fout, -1])]
    config = {**plain.config, "lora_layers": [list(layer) for layer in layers]}
    if component == "unet":
        return Traceable(_LoraUNet(plain.module, network, layers), (*plain.example, *pairs), [*plain.shapes, *shapes], config)
    width = int(network.config.hidden_size)
    extra = torch.zeros(1, width)
    return Traceable(
        _LoraTextEncoder(plain.module, network, layers), (*plain.example, extra, *pairs),
        [*plain.shapes, ov.PartialShape([-1, width]), *shapes], config,
    )
