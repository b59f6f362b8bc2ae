"""The model cards' batch and online-endpoint format: `{"input_data": {"columns": ["prompt"], "data": [...],
"index": [...], "parameters": {...}}}` in, a list of `{"prompt", "generated_image", "nsfw_content_detected"}`
out.

`studio batch` reads it from a file and `studio serve` answers it on `POST /score`: both parse it here, so a
body the CLI refuses the server refuses with the same words, and every type and range is checked before any
model loads. Errors are :class:`RequestError` with `field` set to the JSON path at fault.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from studio.engine.errors import RequestError
from studio.engine.request import GenerationRequest, GenerationResult

MAX_CARD_BYTES = 8 << 20
"""A batch file or /score body larger than this (8 MiB) is refused unread: thousands of prompts fit in far less."""

PARAMETERS = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "guidance_rescale": "guidance_rescale",
    "negative_prompt": "negative_prompt",
    "height": "height",
    "width": "width",
    "seed": "seed",
    "scheduler": "scheduler",
}
"""The card's parameter names and the request fields they set."""


@dataclass(frozen=True)
class CardInput:
    """A parsed card body: the prompts in input order and the request fields its parameters set."""

    prompts: list[str]
    fields: dict[str, Any]

    def requests(self, model: str, seed: int | None = None) -> list[GenerationRequest]:
        """One checked request per prompt; seeds count up from the first (`seed`, else the parameters')
        so that item n always gets seed + n, wherever it runs.

        The shared fields were checked once by :func:`parse_card`; here each prompt and seed is checked
        alone, so a long shared negative prompt is not parsed again for every one of thousands of prompts."""
        base_seed = seed if seed is not None else self.fields.get("seed")
        fields = {k: v for k, v in self.fields.items() if k != "seed"}
        requests = []
        for n, prompt in enumerate(self.prompts):
            item_seed = None if base_seed is None else base_seed + n
            try:
                GenerationRequest(model=model, prompt=prompt, seed=item_seed).validate()
            except RequestError as exc:
                raise RequestError(f"input_data.data[{n}]: {exc}", field=f"input_data.data[{n}]") from None
            requests.append(GenerationRequest(model=model, prompt=prompt, seed=item_seed, **fields))
        return requests


def parse_card(data: Any) -> CardInput:
    """Prompts and request fields from the card's `input_data` JSON; RequestError naming the field that is
    malformed (types and ranges are all checked here, before any model is loaded)."""
    if not isinstance(data, dict) or not isinstance(data.get("input_data"), dict):
        raise RequestError('batch input must be a JSON object with an "input_data" object', field="input_data")
    body = data["input_data"]
    params = body.get("parameters")
    return CardInput(_prompts(body), _fields({} if params is None else params))


def _prompts(body: dict) -> list[str]:
    columns = body.get("columns", ["prompt"])
    if not isinstance(columns, list) or "prompt" not in columns:
        raise RequestError('input_data.columns must be a list containing "prompt"', field="input_data.columns")
    rows = body.get("data")
    if not isinstance(rows, list) or not rows:
        raise RequestError("input_data.data must be a non-empty list of prompts", field="input_data.data")
    column = columns.index("prompt")
    prompts = []
    for n, row in enumerate(rows):
        value = row[column] if isinstance(row, list) and len(row) > column else row
        if isinstance(row, dict):
            value = row.get("prompt")
        if not isinstance(value, str):
            raise RequestError(
                f"input_data.data[{n}]: the prompt must be text, got {type(value).__name__}", field=f"input_data.data[{n}]"
            )
        prompts.append(value)
    return prompts


def _fields(params: object) -> dict[str, Any]:
    """The request fields of input_data.parameters, each checked alone so the message names its key."""
    if not isinstance(params, dict):
        raise RequestError("input_data.parameters must be an object", field="input_data.parameters")
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        shown = ", ".join(k[:40] for k in unknown[:5])
        raise RequestError(
            f"unknown parameter(s) {shown} (known: {', '.join(PARAMETERS)})", field=f"input_data.parameters.{unknown[0][:40]}"
        )
    fields = {}
    for key, value in params.items():
        field = PARAMETERS[key]
        try:
            GenerationRequest(model="-", prompt="", **{field: value}).validate()
        except RequestError as exc:
            raise RequestError(f"input_data.parameters.{key}: {exc}", field=f"input_data.parameters.{key}") from None
        fields[field] = value
    return fields


def card_item(prompt: str, png: bytes, nsfw: bool | None) -> dict[str, Any]:
    """One output row: the prompt, the PNG (with its metadata) in base64, the safety checker's verdict."""
    return {"prompt": prompt, "generated_image": base64.b64encode(png).decode("ascii"), "nsfw_content_detected": nsfw}


def card_items(prompt: str, results: Iterable[GenerationResult]) -> list[dict[str, Any]]:
    """The output rows of one prompt's results (a batch of n gives n rows)."""
    from studio.library.images import encode_image

    return [card_item(prompt, encode_image(r.image, "PNG", r.metadata), r.nsfw) for r in results]
