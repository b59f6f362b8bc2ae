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
        config = dict(config)
        # The layers taking LoRA inputs (openvino_convert's "lora" format), (name, in, out) in input order:
        # their (A, B) pairs are the model's last inputs, set once per change of LoRAs (`set_lora`).
        self.lora_layers = [(str(n), int(i), int(o)) for n, i, o in config.pop("lora_layers", None) or []]
        self.config = FrozenDict(config)
        self.compiled = compiled
        self.name = name
        self.precision = precision  # the precision OpenVINO actually runs ("f32", "bf16")
        self._request = compiled.create_infer_request()
        self._lora_start = len(compiled.inputs) - 2 * len(self.lora_layers)
        self._held: list[np.ndarray] = []  # the arrays behind the set input tensors (they share memory)
        self.lora_key: object = None  # what `set_lora` was last given (the caller's key): no work when unchanged
        if self.lora_layers:
            self.set_lora({}, key=None)

    def set_lora(self, pairs: dict[str, tuple[np.ndarray, np.ndarray]], *, key: object = None) -> None:
        """Each named layer's (A [r, in], B [out, r]), B already scaled; the other layers get rank-1
        zeros (the plain network's output). Kept for every later call until set again."""
        import openvino as ov

        held = []
        for index, (name, fin, fout) in enumerate(self.lora_layers):
            pair = pairs.get(name)
            a, b = pair if pair is not None else (np.zeros((1, fin), np.float32), np.zeros((fout, 1), np.float32))
            for offset, value in enumerate((a, b)):
                value = np.ascontiguousarray(value, dtype=np.float32)
                self._request.set_input_tensor(self._lora_start + 2 * index + offset, ov.Tensor(value))
                held.append(value)
        self._held = held
        self.lora_key = key

    def run(self, *inputs) -> torch.Tensor:
        feeds = {index: np.ascontiguousarray(_numpy(value)) for index, value in enumerate(inputs)}
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
    """With LoRA inputs, also textual-inversion vectors: the model looks id vocab+i up in its `extra`
    input's row i; a token the tokenizer was given for an embedding maps to its row here."""

    def __init__(self, compiled, config: dict, *, name: str, precision: str) -> None:
        super().__init__(compiled, config, name=name, precision=precision)
        self.vocab = int(self.config.get("vocab_size", 0) or 0)
        self._rows: dict[int, int] = {}  # token id -> row of the extra vectors
        self._vectors: np.ndarray | None = None
        if self.takes_vectors:
            self._set_vectors(np.zeros((1, self._width()), np.float32))

    @property
    def takes_vectors(self) -> bool:
        return bool(self.lora_layers) and self._lora_start == 2

    def _width(self) -> int:
        return int(self.compiled.inputs[1].get_partial_shape()[1].get_length())

    def add_vectors(self, token_ids: list[int], vectors) -> None:
        """Give the tokens `token_ids` (one per row of `vectors` [n, width]) these vectors."""
        vectors = np.asarray(_numpy(vectors), np.float32).reshape(len(token_ids), -1)
        known = [] if self._vectors is None or not self._rows else [self._vectors[: len(self._rows)]]
        for token in token_ids:
            self._rows[int(token)] = len(self._rows)
        self._set_vectors(np.concatenate([*known, vectors]))

    def _set_vectors(self, vectors: np.ndarray) -> None:
        import openvino as ov

        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._request.set_input_tensor(1, ov.Tensor(self._vectors))

    def __call__(self, input_ids, attention_mask=None, **_ignored):
        ids = input_ids.to(torch.long)
        if self._rows:
            original = ids
            ids = ids.clone()
            for token, row in self._rows.items():
                ids[original == token] = self.vocab + row
        return (self.run(ids),)


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
