"""Compiled OpenVINO networks standing in for the torch modules inside a diffusers pipeline.

diffusers' StableDiffusionPipeline (and its img2img sibling) read a few things from each network (its
`.config`, `.dtype`, `.device`) and call it with torch tensors, taking element 0 of what it returns. These
classes give exactly that and nothing more: the pipeline, its schedulers, callbacks, generators and safety
checker run unchanged, so previews, cancel and seeds work as on torch. Everything crosses as float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import FrozenDict


class _StaysOnTheCpu:
    """What diffusers reads of a network's place, and its moves between devices and dtypes, which a
    compiled OpenVINO network ignores: it runs where and how it was compiled."""

    dtype = torch.float32
    device = torch.device("cpu")

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self


class OpenVinoNetwork(_StaysOnTheCpu):
    """One compiled model and its infer request (a pipeline runs on one thread: one request is enough)."""

    def __init__(self, compiled, config: dict, *, name: str, precision: str) -> None:
        self.compiled = compiled
        self.config = FrozenDict(config)
        self.name = name
        self.precision = precision  # the precision OpenVINO actually runs ("f32", "bf16")
        self._request = compiled.create_infer_request()

    def run(self, *inputs) -> torch.Tensor:
        feeds = [np.ascontiguousarray(_numpy(value)) for value in inputs]
        self._request.infer(feeds)
        # The request reuses its output buffer on the next call: keep a copy.
        return torch.from_numpy(np.array(self._request.get_output_tensor(0).data, copy=True))

    def __repr__(self) -> str:
        return f"OpenVinoNetwork({self.name}, {self.precision})"


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.is_floating_point():
            value = value.float()
        return value.cpu().numpy()
    return np.asarray(value)


class OpenVinoTextEncoder(OpenVinoNetwork):
    def __call__(self, input_ids, attention_mask=None, **_ignored):
        return (self.run(input_ids.to(torch.long)),)


class OpenVinoUNet(OpenVinoNetwork):
    def __call__(self, sample, timestep, encoder_hidden_states, *args, return_dict: bool = False, **kwargs):
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(sample.shape[0])
        return (self.run(sample, timestep, encoder_hidden_states),)


class _Encoded:
    def __init__(self, moments: torch.Tensor) -> None:
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        self.latent_dist = DiagonalGaussianDistribution(moments)


class OpenVinoVae(_StaysOnTheCpu):
    """The VAE's decoder, and its encoder for img2img (the encoder's moments are sampled in torch)."""

    def __init__(self, decoder: OpenVinoNetwork, encoder: OpenVinoNetwork) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.config = decoder.config

    def decode(self, latents, return_dict: bool = False, generator=None, **_ignored):
        return (self.decoder.run(latents),)

    def encode(self, image, return_dict: bool = True, **_ignored):
        encoded = _Encoded(self.encoder.run(image))
        return encoded if return_dict else (encoded.latent_dist,)

    def __repr__(self) -> str:
        return f"OpenVinoVae({self.decoder.precision})"
