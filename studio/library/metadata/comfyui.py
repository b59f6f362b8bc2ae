"""ComfyUI's ``prompt`` graph: the sampler, prompts and model found by walking it (bounded, never run)."""

from __future__ import annotations

import re
from typing import Any

from studio.library.metadata.a1111 import basename
from studio.library.metadata.record import ImageMetadata
from studio.library.metadata.values import MAX_GRAPH_NODES, as_float, as_int, as_str, fmt_number

# Best-effort names in A1111 style, so "reuse parameters" can map them; the raw names stay in extra.
_COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
}
_COMFY_SCHEDULES = {
    "normal": None,
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM Uniform",
    "beta": "Beta",
}


def _comfy_scheduler(sampler: str | None, schedule: str | None) -> str | None:
    if not sampler:
        return None
    name = _COMFY_SAMPLERS.get(sampler, sampler)
    suffix = _COMFY_SCHEDULES.get(schedule or "normal", schedule)
    return f"{name} {suffix}" if suffix else name


class _ComfyGraph:
    """ComfyUI API graph (``{"id": {"class_type": ..., "inputs": {...}}}``), walked defensively.

    Every walk has a depth limit and a visited set, and the whole object has a step budget, so
    cycles, dangling links and hostile graphs end quickly with partial answers.
    """

    MAX_DEPTH = 48

    def __init__(self, graph: dict[Any, Any]) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        for key, node in list(graph.items())[:MAX_GRAPH_NODES]:
            if isinstance(node, dict) and isinstance(node.get("class_type"), str):
                inputs = node.get("inputs")
                self.nodes[str(key)] = {
                    "class": node["class_type"],
                    "inputs": inputs if isinstance(inputs, dict) else {},
                }
        self.budget = 20_000

    @staticmethod
    def link(value: Any) -> str | None:
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str | int)
            and not isinstance(value[0], bool)
            and isinstance(value[1], int)
        ):
            return str(value[0])
        return None

    def node(self, ref: Any) -> dict[str, Any] | None:
        self.budget -= 1
        if self.budget < 0:
            return None
        node_id = self.link(ref)
        return self.nodes.get(node_id) if node_id is not None else None

    def scalar(self, value: Any, keys: tuple[str, ...], depth: int = 0) -> Any:
        """A literal input, or the value behind a link to a primitive/seed node."""
        if self.link(value) is None:
            return value
        if depth > self.MAX_DEPTH:
            return None
        node = self.node(value)
        if node is None:
            return None
        for key in keys:
            if key in node["inputs"]:
                return self.scalar(node["inputs"][key], keys, depth + 1)
        return None

    def string(self, value: Any, depth: int = 0) -> str | None:
        return as_str(self.scalar(value, ("text", "string", "value", "prompt", "String", "Text"), depth))

    def _enter(self, ref: Any, depth: int, seen: set[str]) -> dict[str, Any] | None:
        """The node `ref` links to, added to `seen`; None for a dangling link, a node already seen (a
        cycle) or one past MAX_DEPTH, so every walk over an untrusted graph stays bounded."""
        node_id = self.link(ref)
        if node_id is None or node_id in seen or depth > self.MAX_DEPTH:
            return None
        seen.add(node_id)
        return self.node(ref)

    def text(self, ref: Any, role: str, depth: int = 0, seen: set[str] | None = None) -> str | None:
        """Prompt text behind a conditioning link: CLIPTextEncode* directly, else through
        conditioning passthrough nodes (ControlNet apply, combine, set area ...)."""
        seen = set() if seen is None else seen
        node = self._enter(ref, depth, seen)
        if node is None:
            return None
        inputs = node["inputs"]
        for key in (
            "text",
            "text_g",
            "text_l",
            "prompt",
            "positive_prompt" if role == "positive" else "negative_prompt",
        ):
            if key in inputs:
                value = self.string(inputs[key])
                if value is not None:
                    return value
        candidates = [role, "conditioning", "conditioning_1", "conditioning_to", "conditioning_from"]
        candidates += [key for key in inputs if "cond" in key.lower() and key not in candidates]
        for key in candidates:
            if self.link(inputs.get(key)) is not None:
                found = self.text(inputs[key], role, depth + 1, seen)
                if found is not None:
                    return found
        return None

    def model_name(self, ref: Any, depth: int = 0, seen: set[str] | None = None) -> str | None:
        seen = set() if seen is None else seen
        node = self._enter(ref, depth, seen)
        if node is None:
            return None
        inputs = node["inputs"]
        for key in ("ckpt_name", "unet_name", "model_name", "base_ckpt_name", "checkpoint", "model_path"):
            value = self.string(inputs.get(key)) if key in inputs else None
            if value:
                return value
        for key in ["model", *[k for k in inputs if "model" in k.lower() and k != "model"]]:
            if self.link(inputs.get(key)) is not None:
                found = self.model_name(inputs[key], depth + 1, seen)
                if found:
                    return found
        return None

    def latent_size(
        self, ref: Any, depth: int = 0, seen: set[str] | None = None, passes: int = 0
    ) -> tuple[int, int, bool, int] | None:
        """(width, height, from_empty_latent, samplers_passed) behind a latent link.

        ``samplers_passed`` counts earlier sampler nodes on the way (a refiner or hires pass starts
        from another sampler's output), so the first pass can be told apart from later ones.
        """
        seen = set() if seen is None else seen
        node = self._enter(ref, depth, seen)
        if node is None:
            return None
        inputs = node["inputs"]
        width = as_int(self.scalar(inputs.get("width"), ("value", "int", "width", "number")))
        height = as_int(self.scalar(inputs.get("height"), ("value", "int", "height", "number")))
        if width is not None and height is not None:
            return width, height, "empty" in node["class"].lower(), passes
        if self.is_sampler(node["class"]):
            passes += 1
        for key in ("samples", "latent_image", "latent", "latents", "source", "samples_from"):
            if self.link(inputs.get(key)) is not None:
                found = self.latent_size(inputs[key], depth + 1, seen, passes)
                if found:
                    return found
        return None

    @staticmethod
    def is_sampler(class_type: str) -> bool:
        name = class_type.lower()
        return "ksampler" in name or name.startswith("samplercustom")

    def samplers(self) -> list[str]:
        return [node_id for node_id, node in self.nodes.items() if self.is_sampler(node["class"])]


def _node_order(node_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then the others.  Only short ASCII digit strings are numbers:
    ``str.isdigit`` also accepts "²" (which ``int`` refuses), and ``int`` refuses over 4300 digits."""
    if node_id.isascii() and node_id.isdigit() and len(node_id) <= 18:
        return (0, int(node_id))
    return (1, node_id)


def from_comfy(graph: dict[Any, Any]) -> ImageMetadata | None:
    """None when the dict holds no ComfyUI nodes at all (some other tool's "prompt" JSON)."""
    comfy = _ComfyGraph(graph)
    if not comfy.nodes:
        return None
    result = ImageMetadata(source="comfyui")
    candidates = []
    for node_id in comfy.samplers():
        inputs = comfy.nodes[node_id]["inputs"]
        size = comfy.latent_size(inputs.get("latent_image"))
        later_pass = size[3] if size else 0
        candidates.append((later_pass, not (size and size[2]), _node_order(node_id), node_id, size))
    if not candidates:
        return result
    # Prefer the first pass (no sampler before it; starts from an empty latent), then the lowest id.
    *_, node_id, size = min(candidates)
    node = comfy.nodes[node_id]
    inputs = node["inputs"]
    guider = comfy.node(inputs.get("guider")) or {"inputs": {}}
    sigmas = comfy.node(inputs.get("sigmas")) or {"inputs": {}}
    sampler_node = comfy.node(inputs.get("sampler")) or {"inputs": {}}
    noise = comfy.node(inputs.get("noise")) or {"inputs": {}}
    seed_keys = ("seed", "noise_seed", "value", "int", "number")

    def first(*values: Any) -> Any:
        return next((value for value in values if value is not None), None)

    seed = as_int(
        comfy.scalar(
            first(
                inputs.get("seed"),
                inputs.get("noise_seed"),
                noise["inputs"].get("noise_seed"),
                noise["inputs"].get("seed"),
            ),
            seed_keys,
        )
    )
    steps = as_int(
        comfy.scalar(first(inputs.get("steps"), sigmas["inputs"].get("steps")), ("steps", "value", "int"))
    )
    cfg = as_float(
        comfy.scalar(first(inputs.get("cfg"), guider["inputs"].get("cfg")), ("cfg", "value", "float"))
    )
    sampler_name = as_str(
        comfy.scalar(
            first(inputs.get("sampler_name"), sampler_node["inputs"].get("sampler_name")),
            ("sampler_name", "value"),
        )
    )
    schedule = as_str(
        comfy.scalar(
            first(inputs.get("scheduler"), sigmas["inputs"].get("scheduler")), ("scheduler", "value")
        )
    )
    denoise = as_float(
        comfy.scalar(
            first(inputs.get("denoise"), sigmas["inputs"].get("denoise")), ("denoise", "value", "float")
        )
    )
    positive = first(
        inputs.get("positive"), guider["inputs"].get("positive"), guider["inputs"].get("conditioning")
    )
    negative = first(inputs.get("negative"), guider["inputs"].get("negative"))
    model_ref = first(inputs.get("model"), guider["inputs"].get("model"))

    result.prompt = comfy.text(positive, "positive")
    result.negative_prompt = comfy.text(negative, "negative")
    result.steps = steps
    result.guidance = cfg
    result.seed = seed
    if size:
        result.width, result.height = size[0], size[1]
    result.scheduler = _comfy_scheduler(sampler_name, schedule)
    model = comfy.model_name(model_ref)
    result.model = (
        re.sub(r"\.(safetensors|ckpt|bin|pt|pth|gguf)$", "", basename(model), flags=re.IGNORECASE)
        if model
        else None
    )
    if denoise is not None and denoise < 1.0:
        result.strength = denoise
    result.extra = {"sampler node": f"{node_id} ({node['class']})"}
    for label, value in (
        ("sampler_name", sampler_name),
        ("scheduler", schedule),
        ("denoise", denoise),
        ("checkpoint", model),
    ):
        if value is not None:
            result.extra[label] = fmt_number(value)
    return result
