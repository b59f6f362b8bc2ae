"""Sanity checks of a model's configs and tokenizer, before anything is built.

diffusers and transformers trust a config: a UNet with ``block_out_channels: [1e9]``, a text encoder with
``num_hidden_layers: 100000`` or a VAE with ``latent_channels: -1`` is built as asked, and fails minutes
later with an allocator's message ("DefaultCPUAllocator: ... 72000000000 bytes") or a type error from deep
inside torch; zero sizes build models that produce nothing, and an emptied tokenizer loads as a two-token
vocabulary that silently turns every prompt into padding. Here each component's config is read (JSON only,
no torch: milliseconds) and checked against generous bounds of real models: every Stable Diffusion 1.x / 2.x,
DeciDiffusion and SDXL-sized config passes, an absurd one is one `InvalidModelError` (CLI exit 2) naming the
file and the field, e.g. ``.../unet/config.json: block_out_channels[0] = 1000000000 is out of range (1..8192)``.

Two checks look at sizes together, because fields that are each plausible can still describe a model no
machine holds: a lower bound of each component's parameter count (counting only weights every such model
certainly has) must stay under `MAX_PARAMETERS`, and must not exceed what the component's safetensors
weights hold (from their headers): libraries fill weights a file lacks with fresh random tensors, which is
how a config that does not match its weights turns into a huge allocation instead of an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from studio.engine.errors import InvalidModelError
from studio.library.safe_json import JSONRefused, kind, loads, shown

__all__ = [
    "MAX_PARAMETERS",
    "check_config_folder",
    "check_model_folder",
    "check_safety_checker_config",
    "check_scheduler_config",
    "check_text_encoder_config",
    "check_tokenizer",
    "check_unet_config",
    "check_vae_config",
    "read_config",
]

# Bounds: several times what real models use, far below what would exhaust a machine.
MAX_CHANNELS = 8192  # UNet/VAE block widths, text widths (SD 320-1280, SDXL's text encoder 1280)
MAX_FEATURES = 65536  # MLP and embedding widths (CLIP bigG's intermediate_size is 5120)
MAX_LAYERS = 256  # layers per block / transformer layers (CLIP bigG has 32, SDXL 10 per block)
MAX_BLOCKS = 16  # UNet/VAE resolution levels (real: 3-4)
MAX_LATENT_SIZE = 1024  # UNet sample_size, in latent pixels (SD 64, SD 2.x 96, SDXL 128)
MAX_IMAGE_SIZE = 8192  # VAE sample_size and image processor sizes, in pixels (SDXL 1024)
MAX_VOCAB = 1_000_000  # tokens (CLIP 49,408)
MAX_POSITIONS = 16384  # text positions (CLIP 77)
MAX_KERNEL = 31
MAX_TIMESTEPS = 100_000  # scheduler training steps (real: 1000)
MAX_PARAMETERS = 20_000_000_000  # per component (SDXL's UNet has 2.6 billion)
MAX_CONFIG_BYTES = 10_000_000  # a config.json is a few KB
MAX_TOKENIZER_BYTES = 100_000_000  # CLIP's tokenizer.json is 3.6 MB
MAX_CONFIG_DEPTH = 32  # configs nest 2-3 levels

# What diffusers / transformers use for a field a config leaves out.
_UNET_DEFAULTS: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
    "transformer_layers_per_block": 1,
    "cross_attention_dim": 1280,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
}
_VAE_DEFAULTS: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [64],
    "down_block_types": ["DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D"],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 32,
    "mid_block_add_attention": True,
}
_CLIP_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
}
_CLIP_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
}
_DECI_LISTS = ("down_blocks_in_channels", "down_blocks_out_channels", "prev_output_channels")
_DECI_COUNTS = (
    "down_blocks_num_resnets",
    "down_blocks_num_attentions",
    "up_blocks_num_resnets",
    "up_blocks_num_attentions",
)


# ------------------------------------------------------------------------------------------- reading


def read_config(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """A JSON object from a model folder, read defensively (`safe_json`): size, nesting and type checked.

    Raises `InvalidModelError` naming the file for anything but a JSON object; `FileNotFoundError` for a
    file that is not there, so that callers decide whether it is optional.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InvalidModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size > max_bytes:
        raise InvalidModelError(f"{path}: {size:,} bytes, too large for a config (at most {max_bytes:,})")
    try:
        data = loads(path.read_bytes(), max_depth=MAX_CONFIG_DEPTH)
    except JSONRefused as exc:
        raise InvalidModelError(f"{path}: {exc}") from None
    except OSError as exc:
        raise InvalidModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise InvalidModelError(f"{path}: holds {kind(data)}, not a JSON object")
    return data


def _optional_config(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any] | None:
    try:
        return read_config(path, max_bytes=max_bytes)
    except FileNotFoundError:
        return None


# ------------------------------------------------------------------------------------------- fields


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count:,} entries"


class _Fields:
    """One config's fields, read with bounds; every refusal names the file and the field."""

    def __init__(self, where: str, data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None):
        self.where = where
        self.data = data
        self.defaults = defaults or {}
        self.blocks_key = "block_out_channels"  # the list whose length the per-block lists must have

    def fail(self, message: str) -> NoReturn:
        raise InvalidModelError(f"{self.where}: {message}")

    def get(self, key: str) -> Any:
        return self.data.get(key, self.defaults.get(key))

    def check_int(self, value: Any, name: str, low: int, high: int) -> int:
        """`value` as an int in low..high. A float with an integer value is named as such (1e9 is out of
        range rather than "not an integer", which would hide the bigger problem)."""
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            if not low <= value <= high:
                self.fail(f"{name} = {shown(value)} is out of range ({low}..{high})")
            self.fail(f"{name} = {value!r} is not an integer (write {int(value)})")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{name} = {shown(value)} is {kind(value)}, not an integer")
        if not low <= value <= high:
            self.fail(f"{name} = {value} is out of range ({low}..{high})")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        """A required int (or the library's default when the config leaves it out)."""
        return self.check_int(self.get(key), key, low, high)

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        value = self.get(key)
        return None if value is None else self.check_int(value, key, low, high)

    def integers(self, key: str, low: int, high: int, *, length: int | None = None) -> list[int]:
        """A list of 1..MAX_BLOCKS ints (exactly `length` when given)."""
        value = self.get(key)
        if not isinstance(value, list | tuple):
            self.fail(f"{key} is {kind(value)}, not a list of integers")
        self._check_length(key, value, length)
        return [self.check_int(item, f"{key}[{i}]", low, high) for i, item in enumerate(value)]

    def per_block(self, key: str, low: int, high: int, length: int, *, optional: bool = False) -> list[int]:
        """An int for every block, or one list entry per block (diffusers accepts both); a list of lists
        (SDXL's per-layer transformer counts) is flattened. [] when optional and absent."""
        value = self.get(key)
        if value is None and optional:
            return []
        if not isinstance(value, list | tuple):
            return [self.check_int(value, key, low, high)] * length
        self._check_length(key, value, length)
        out: list[int] = []
        for i, item in enumerate(value):
            if isinstance(item, list | tuple) and key == "transformer_layers_per_block":
                if not 1 <= len(item) <= MAX_LAYERS:
                    self.fail(f"{key}[{i}] has {_entries(len(item))} (1..{MAX_LAYERS})")
                out.append(max(self.check_int(v, f"{key}[{i}][{j}]", low, high) for j, v in enumerate(item)))
            else:
                out.append(self.check_int(item, f"{key}[{i}]", low, high))
        return out

    def strings(self, key: str, *, length: int) -> list[str]:
        value = self.get(key)
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            self.fail(f"{key} is {kind(value)}, not a list of block names")
        self._check_length(key, value, length)
        return list(value)

    def size(self, key: str, low: int, high: int) -> None:
        """A sample size: an int, [height, width], or null (then the library's default)."""
        value = self.get(key)
        if value is None:
            return
        if isinstance(value, list | tuple):
            if len(value) != 2:
                self.fail(f"{key} has {_entries(len(value))} (an int, or [height, width])")
            for i, item in enumerate(value):
                self.check_int(item, f"{key}[{i}]", low, high)
        else:
            self.check_int(value, key, low, high)

    def _check_length(self, key: str, value: Sequence[Any], length: int | None) -> None:
        if length is None:
            if not 1 <= len(value) <= MAX_BLOCKS:
                self.fail(f"{key} has {_entries(len(value))} (1..{MAX_BLOCKS})")
        elif len(value) != length:
            self.fail(f"{key} has {_entries(len(value))}, but {self.blocks_key} has {length}")

    def divisible(self, channels: list[int], groups: int | None, key: str = "block_out_channels") -> None:
        """GroupNorm needs every width to be a multiple of its groups (else torch raises mid-build)."""
        for i, width in enumerate(channels):
            if groups and width % groups:
                self.fail(f"{key}[{i}] = {width} is not a multiple of norm_num_groups = {groups}")


# ---------------------------------------------------------------------------------------- components
# Each check returns a lower bound of the component's parameter count: only weights that every model
# of that kind has, so that a real model never exceeds it (tests compare with the real counts).


def _within_total(fields: _Fields, bound: int) -> int:
    if bound > MAX_PARAMETERS:
        fields.fail(
            f"describes at least {bound:,} parameters, more than the {MAX_PARAMETERS:,} a component may have"
        )
    return bound


def check_unet_config(config: Mapping[str, Any], where: str) -> int:
    """A diffusers ``UNet2DConditionModel`` config (SD 1.x / 2.x / SDXL). Returns a parameter lower bound."""
    f = _Fields(where, config, _UNET_DEFAULTS)
    f.size("sample_size", 1, MAX_LATENT_SIZE)
    f.integer("in_channels", 1, MAX_CHANNELS)
    f.integer("out_channels", 1, MAX_CHANNELS)
    channels = f.integers("block_out_channels", 1, MAX_CHANNELS)
    n = len(channels)
    down = f.strings("down_block_types", length=n)
    up = f.strings("up_block_types", length=n)
    layers = f.per_block("layers_per_block", 1, MAX_LAYERS, n)
    transformer = f.per_block("transformer_layers_per_block", 1, MAX_LAYERS, n)
    f.per_block("cross_attention_dim", 1, MAX_CHANNELS, n)
    f.per_block("attention_head_dim", 1, MAX_CHANNELS, n)
    f.per_block("num_attention_heads", 1, MAX_CHANNELS, n, optional=True)
    f.divisible(channels, f.optional_integer("norm_num_groups", 1, MAX_CHANNELS))
    for key in ("time_embedding_dim", "encoder_hid_dim", "addition_time_embed_dim",
                "projection_class_embeddings_input_dim", "time_cond_proj_dim"):  # fmt: skip
        f.optional_integer(key, 1, MAX_FEATURES)
    f.optional_integer("num_class_embeds", 1, MAX_VOCAB)
    f.integer("conv_in_kernel", 1, MAX_KERNEL)
    f.integer("conv_out_kernel", 1, MAX_KERNEL)
    # Every resnet has a 3x3 conv from its width to its width (9 c^2); every transformer layer at least an
    # attention's query and output (2 c^2) and a feed-forward of 4x width (8 c^2; SD's GEGLU has 12 c^2).
    # Up blocks have one resnet (and transformer) more than down blocks.
    bound = 0
    for i, width in enumerate(channels):
        bound += layers[i] * 9 * width * width
        if "CrossAttn" in down[i]:
            bound += layers[i] * transformer[i] * 10 * width * width
    for i, (width, count, depth) in enumerate(zip(channels[::-1], layers[::-1], transformer[::-1], strict=True)):
        bound += (count + 1) * 9 * width * width
        if "CrossAttn" in up[i]:
            bound += (count + 1) * depth * 10 * width * width
    if f.get("mid_block_type") is not None:
        bound += 2 * 9 * channels[-1] ** 2
    return _within_total(f, bound)


def check_vae_config(config: Mapping[str, Any], where: str) -> int:
    """A diffusers ``AutoencoderKL`` config. Returns a parameter lower bound."""
    f = _Fields(where, config, _VAE_DEFAULTS)
    f.integer("in_channels", 1, MAX_CHANNELS)
    f.integer("out_channels", 1, MAX_CHANNELS)
    f.integer("latent_channels", 1, MAX_CHANNELS)
    channels = f.integers("block_out_channels", 1, MAX_CHANNELS)
    f.strings("down_block_types", length=len(channels))
    f.strings("up_block_types", length=len(channels))
    layers = f.integer("layers_per_block", 1, MAX_LAYERS)
    f.divisible(channels, f.optional_integer("norm_num_groups", 1, MAX_CHANNELS))
    f.size("sample_size", 1, MAX_IMAGE_SIZE)
    # Encoder: `layers` resnets per level, decoder one more; each has a 3x3 conv at its width; both
    # middles have two resnets at the deepest width.
    squares = sum(width * width for width in channels)
    bound = (2 * layers + 1) * 9 * squares + 4 * 9 * channels[-1] ** 2
    return _within_total(f, bound)


def _clip_fields(f: _Fields, *, vocab: bool) -> tuple[int, int, int]:
    """The fields every CLIP tower has; (width, MLP width, layers)."""
    width = f.integer("hidden_size", 1, MAX_CHANNELS)
    mlp = f.integer("intermediate_size", 1, MAX_FEATURES)
    layers = f.integer("num_hidden_layers", 1, MAX_LAYERS)
    heads = f.integer("num_attention_heads", 1, MAX_CHANNELS)
    if width % heads:
        f.fail(f"hidden_size = {width} is not a multiple of num_attention_heads = {heads}")
    f.optional_integer("projection_dim", 1, MAX_CHANNELS)
    if vocab:
        f.integer("vocab_size", 1, MAX_VOCAB)
        f.integer("max_position_embeddings", 1, MAX_POSITIONS)
    return width, mlp, layers


def check_text_encoder_config(config: Mapping[str, Any], where: str) -> int:
    """A transformers ``CLIPTextConfig`` (``CLIPTextModel`` / ``...WithProjection``). Returns a lower bound."""
    f = _Fields(where, config, _CLIP_TEXT_DEFAULTS)
    width, mlp, layers = _clip_fields(f, vocab=True)
    # Token and position embeddings; per layer q, k, v, out (4 w^2) and the MLP (2 w m).
    bound = (f.get("vocab_size") + f.get("max_position_embeddings")) * width
    bound += layers * (4 * width * width + 2 * width * mlp)
    architectures = config.get("architectures")
    if isinstance(architectures, list) and "CLIPTextModelWithProjection" in architectures:
        bound += width * (f.get("projection_dim") or _CLIP_TEXT_DEFAULTS["projection_dim"])
    return _within_total(f, bound)


def check_safety_checker_config(config: Mapping[str, Any], where: str) -> int:
    """A ``StableDiffusionSafetyChecker`` config (a ``CLIPConfig``): its vision tower is built, the text
    tower's config only read, so both are checked. Returns a lower bound (vision tower)."""
    f = _Fields(where, config, {"projection_dim": 512})
    projection = f.integer("projection_dim", 1, MAX_CHANNELS)
    for key in ("text_config", "vision_config"):
        value = config.get(key, {})
        if value is not None and not isinstance(value, Mapping):
            f.fail(f"{key} is {kind(value)}, not an object")
    text = _Fields(f"{where} (text_config)", config.get("text_config") or {}, _CLIP_TEXT_DEFAULTS)
    _clip_fields(text, vocab=True)
    vision = _Fields(f"{where} (vision_config)", config.get("vision_config") or {}, _CLIP_VISION_DEFAULTS)
    width, mlp, layers = _clip_fields(vision, vocab=False)
    image = vision.integer("image_size", 1, MAX_IMAGE_SIZE)
    patch = vision.integer("patch_size", 1, image)
    vision.integer("num_channels", 1, MAX_CHANNELS)
    bound = ((image // patch) ** 2 + 1) * width + width * projection  # positions, projection
    bound += layers * (4 * width * width + 2 * width * mlp)
    return _within_total(f, bound)


def check_image_processor_config(config: Mapping[str, Any], where: str) -> None:
    """A ``CLIPImageProcessor`` config (the safety checker's input): sizes an image is resized to."""
    f = _Fields(where, config)
    for key in ("size", "crop_size"):
        value = config.get(key)
        if isinstance(value, Mapping):
            for name, item in value.items():
                if item is not None:
                    f.check_int(item, f"{key}.{name}", 1, MAX_IMAGE_SIZE)
        elif value is not None:
            f.check_int(value, key, 1, MAX_IMAGE_SIZE)


def check_scheduler_config(config: Mapping[str, Any], where: str) -> None:
    """A diffusers scheduler config: the training schedule is an array of `num_train_timesteps` values."""
    _Fields(where, config, {"num_train_timesteps": 1000}).integer("num_train_timesteps", 1, MAX_TIMESTEPS)


def check_deci_unet_config(config: Mapping[str, Any], where: str) -> int:
    """DeciDiffusion's ``flexible_unet/config.json``: the sizes in its "configurations" (their structure is
    `deci_unet.validate_configurations`' business, at load). Returns a parameter lower bound."""
    outer = _Fields(where, config, {"in_channels": 4, "out_channels": 4})
    outer.integer("in_channels", 1, MAX_CHANNELS)
    outer.integer("out_channels", 1, MAX_CHANNELS)
    nested = config.get("configurations", config)  # the published nested layout, or flat fields
    if not isinstance(nested, Mapping):
        outer.fail(f"configurations is {kind(nested)}, not an object")
    f = _Fields(f"{where} (configurations)", nested)
    f.blocks_key = "down_blocks_out_channels"
    f.size("sample_size", 1, MAX_LATENT_SIZE)
    f.integer("temb_dim", 1, MAX_FEATURES)
    f.integer("num_attention_heads", 1, MAX_CHANNELS)
    f.integer("cross_attention_dim", 1, MAX_CHANNELS)
    f.integer("mid_num_resnets", 0, MAX_LAYERS)
    f.integer("mid_num_attentions", 0, MAX_LAYERS)
    widths = {key: f.integers(key, 1, MAX_CHANNELS) for key in _DECI_LISTS}
    n = len(widths["down_blocks_out_channels"])
    counts = {key: f.integers(key, 0, MAX_LAYERS, length=n) for key in _DECI_COUNTS}
    out = widths["down_blocks_out_channels"]
    bound = 0
    resnets, attentions = counts["down_blocks_num_resnets"], counts["down_blocks_num_attentions"]
    up_resnets, up_attentions = counts["up_blocks_num_resnets"], counts["up_blocks_num_attentions"]
    for i, width in enumerate(out):  # resnets: a 3x3 conv at the block's width; attentions: 16 c^2
        bound += (9 * resnets[i] + 16 * attentions[i]) * width**2
        bound += (9 * up_resnets[i] + 16 * up_attentions[i]) * out[n - 1 - i] ** 2
    bound += (9 * (1 + f.get("mid_num_resnets")) + 16 * f.get("mid_num_attentions")) * out[-1] ** 2
    return _within_total(f, bound)


# ----------------------------------------------------------------------------------------- tokenizer


def _check_vocab(where: str, vocab: Any) -> int:
    """A BPE vocabulary (token -> id); returns its highest id."""
    if not isinstance(vocab, Mapping):
        raise InvalidModelError(f"{where}: the vocabulary is {kind(vocab)}, not an object of token ids")
    if not vocab:
        raise InvalidModelError(f"{where}: the vocabulary is empty; a tokenizer needs its tokens")
    if len(vocab) > MAX_VOCAB:
        raise InvalidModelError(f"{where}: {len(vocab):,} tokens, more than {MAX_VOCAB:,}")
    f = _Fields(where, {})
    return max(f.check_int(i, f"the id of {shown(token)}", 0, MAX_VOCAB - 1) for token, i in vocab.items())


def _merge_parts(where: str, index: int, merge: Any) -> tuple[str, str]:
    if isinstance(merge, str):
        parts = merge.split(" ")
    elif isinstance(merge, list | tuple):
        parts = list(merge)
    else:
        parts = []
    if len(parts) != 2 or not all(isinstance(part, str) and part for part in parts):
        raise InvalidModelError(f"{where}: merge {index + 1} ({shown(merge)}) is not a pair of tokens")
    return parts[0], parts[1]


def _check_merges(where: str, merges: Sequence[Any], vocab: Mapping[str, Any], prefix: str = "") -> None:
    """Byte-pair merges: at least one, each joining two known tokens into a known token (what the
    tokenizers library checks when it builds the tokenizer, there with a message that names no file)."""
    if not merges:
        raise InvalidModelError(
            f"{where}: no merges; a BPE tokenizer without them splits every prompt into letters"
        )
    for index, merge in enumerate(merges):
        first, second = _merge_parts(where, index, merge)
        joined = first + (second[len(prefix) :] if prefix and second.startswith(prefix) else second)
        for token in (first, second, joined):
            if token not in vocab:
                raise InvalidModelError(
                    f"{where}: merge {index + 1} ({first} {second}) uses {token!r}, which the vocabulary lacks"
                )


def check_tokenizer(folder: Path, vocab_size: int | None = None) -> None:
    """The CLIP BPE tokenizer in `folder` (a model's ``tokenizer/``), in every layout it holds: which one
    ``CLIPTokenizer`` reads depends on the transformers version (5.x prefers ``tokenizer.json``, 4.x's
    slow class reads ``vocab.json`` + ``merges.txt``), so a sound one must not hide an emptied other.
    Its vocabulary must not be empty, its merges present and consistent, and its ids within the text
    encoder's `vocab_size` (an id beyond it fails at the first prompt that uses it)."""
    fast = folder / "tokenizer.json"
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    checked: list[tuple[int, Path]] = []
    if fast.is_file():
        checked.append(_check_fast_tokenizer(fast))
    if not fast.is_file() or (vocab_path.is_file() and merges_path.is_file()):
        missing = [p.name for p in (vocab_path, merges_path) if not p.is_file()]
        if missing:
            raise InvalidModelError(
                f"{folder}: no tokenizer.json, and {' and '.join(missing)} missing: the tokenizer is incomplete"
            )
        checked.append(_check_slow_tokenizer(vocab_path, merges_path))
    for top, source in checked:
        if vocab_size is not None and top >= vocab_size:
            raise InvalidModelError(
                f"{source}: token ids go up to {top}, but the text encoder has only {vocab_size} embeddings "
                "(vocab_size in text_encoder/config.json)"
            )


def _check_fast_tokenizer(fast: Path) -> tuple[int, Path]:
    """(highest token id, the file) of a ``tokenizer.json``, checked."""
    data = read_config(fast, max_bytes=MAX_TOKENIZER_BYTES)
    model = data.get("model")
    if not isinstance(model, Mapping):
        raise InvalidModelError(f"{fast}: has no \"model\" object")
    if model.get("type", "BPE") != "BPE":
        raise InvalidModelError(f"{fast}: a {shown(model.get('type'))} tokenizer; CLIP's is BPE")
    vocab = model.get("vocab")
    top = _check_vocab(str(fast), vocab)
    merges = model.get("merges")
    if merges is not None and not isinstance(merges, list):
        raise InvalidModelError(f"{fast}: merges is {kind(merges)}, not a list")
    prefix = model.get("continuing_subword_prefix")
    _check_merges(str(fast), merges or [], vocab, prefix if isinstance(prefix, str) else "")
    added = data.get("added_tokens") or []
    ids = [t.get("id") for t in added if isinstance(t, Mapping)] if isinstance(added, list) else []
    return max([top, *(i for i in ids if isinstance(i, int) and not isinstance(i, bool))]), fast


def _check_slow_tokenizer(vocab_path: Path, merges_path: Path) -> tuple[int, Path]:
    """(highest token id, the vocabulary file) of a ``vocab.json`` + ``merges.txt`` pair, checked."""
    vocab = read_config(vocab_path, max_bytes=MAX_TOKENIZER_BYTES)
    top = _check_vocab(str(vocab_path), vocab)
    if merges_path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise InvalidModelError(f"{merges_path}: larger than {MAX_TOKENIZER_BYTES:,} bytes")
    lines = merges_path.read_text(encoding="utf-8", errors="replace").splitlines()
    if lines and lines[0].startswith("#version"):  # the header line the tokenizers skip
        lines = lines[1:]
    _check_merges(str(merges_path), [line for line in lines if line.strip()], vocab)
    return top, vocab_path


# --------------------------------------------------------------------------------------------- folders


def _stored_values(component: Path, stem: str) -> tuple[int, str] | None:
    """(values, file name) held by a component's safetensors weights, from their headers (validated); None
    when it has none (pickle weights, missing files: the loader reports those)."""
    from studio.engine.single_file import read_safetensors_header

    single = component / f"{stem}.safetensors"
    if single.is_file():
        files, name = [single], single.name
    else:
        index = component / f"{stem}.safetensors.index.json"
        data = _optional_config(index)
        weight_map = data.get("weight_map") if data else None
        if not isinstance(weight_map, Mapping) or not weight_map:
            return None
        shards = sorted({str(shard) for shard in weight_map.values()})
        if any(Path(shard).name != shard for shard in shards):  # names inside this folder only
            raise InvalidModelError(f"{index}: its weight_map names files outside {component}")
        files, name = [component / shard for shard in shards], index.name
        if not all(path.is_file() for path in files):
            return None
    total = 0
    for path in files:
        shapes, _metadata = read_safetensors_header(path)
        total += sum(math.prod(shape) for shape in shapes.values())
    return total, name


def _matches_weights(config_path: Path, bound: int, stem: str) -> None:
    stored = _stored_values(config_path.parent, stem)
    if stored is not None and bound > stored[0]:
        raise InvalidModelError(
            f"{config_path}: describes at least {bound:,} parameters, but {stored[1]} holds {stored[0]:,}: "
            "the config does not match its weights"
        )


def _component(folder: Path, name: str, file: str = "config.json") -> tuple[Path, dict[str, Any] | None]:
    path = folder / name / file
    return path, _optional_config(path)


def _text_encoder_widths(config: Mapping[str, Any]) -> tuple[int, int]:
    return (
        config.get("hidden_size", _CLIP_TEXT_DEFAULTS["hidden_size"]),
        config.get("vocab_size", _CLIP_TEXT_DEFAULTS["vocab_size"]),
    )


def check_config_folder(folder: Path, family: str) -> dict[str, int]:
    """The UNet, VAE, text encoder and scheduler configs of a diffusers-layout folder (a model, or the
    config folder a single-file checkpoint is built from), those present; {component: parameter bound}."""
    bounds: dict[str, int] = {}
    unet_name = "flexible_unet" if family == "deci" else "unet"
    path, config = _component(folder, unet_name)
    if config is not None:
        check = check_deci_unet_config if family == "deci" else check_unet_config
        bounds[unet_name] = check(config, str(path))
    path, vae = _component(folder, "vae")
    if vae is not None:
        bounds["vae"] = check_vae_config(vae, str(path))
    te_path, text = _component(folder, "text_encoder")
    if text is not None:
        bounds["text_encoder"] = check_text_encoder_config(text, str(te_path))
    path, scheduler = _component(folder, "scheduler", "scheduler_config.json")
    if scheduler is not None:
        check_scheduler_config(scheduler, str(path))
    unet_config = config.get("configurations", config) if family == "deci" and config else config
    if text is not None and unet_config is not None and unet_config.get("encoder_hid_dim") is None:
        width = _text_encoder_widths(text)[0]
        cross = unet_config.get("cross_attention_dim", _UNET_DEFAULTS["cross_attention_dim"])
        crosses = cross if isinstance(cross, list) else [cross]
        if any(c != width for c in crosses):
            raise InvalidModelError(
                f"{folder / unet_name / 'config.json'}: cross_attention_dim = {shown(cross)} does not match the "
                f"text encoder's hidden_size = {width} ({te_path})"
            )
    return bounds


def check_model_folder(folder: Path, family: str, *, safety: bool = True) -> None:
    """Everything `loading.load_folder` builds from a diffusers folder, checked before it builds any of it:
    the component configs (`check_config_folder`), the tokenizer, the safety checker and its image
    processor when they will be loaded (`safety`), and each component's parameter bound against its
    safetensors weights. `InvalidModelError` naming the file and field; configs that are missing are left
    to the loader, which names them."""
    bounds = check_config_folder(folder, family)
    text_path, text = _component(folder, "text_encoder")
    check_tokenizer(folder / "tokenizer", _text_encoder_widths(text)[1] if text else None)
    if safety and (folder / "safety_checker").is_dir():
        path, checker = _component(folder, "safety_checker")
        if checker is not None:
            bounds["safety_checker"] = check_safety_checker_config(checker, str(path))
        path, processor = _component(folder, "feature_extractor", "preprocessor_config.json")
        if processor is not None:
            check_image_processor_config(processor, str(path))
    stems = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
             "safety_checker": "model"}  # fmt: skip
    for name, bound in bounds.items():
        if name in stems:  # Deci's flexible_unet is loaded strictly (every key and shape must match)
            _matches_weights(folder / name / "config.json", bound, stems[name])
