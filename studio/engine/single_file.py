"""Single-file Stable Diffusion 1.x / 2.x checkpoints, loaded fully offline.

A single file (the original CompVis/LDM key layout: ``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.*``) carries weights only. The architecture comes from the diffusers-layout config
folders shipped in ``studio/resources/configs/{sd1,sd2}`` and the tokenizer from the shared CLIP vocabulary
in ``studio/resources/clip_tokenizer``, so nothing is ever fetched and no code from a model repository runs.

- ``.safetensors`` is the only format read by default. Its header is parsed (``library.safetensors_header``)
  without loading a tensor, which is how a file is identified (family, or what else it is) in milliseconds
  even for 4-7 GB files.
- Pickle files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run arbitrary code when unpickled: they are
  refused unless the caller opts in (``allow_ckpt=True``, the CLI's ``--allow-ckpt``), and then read only with
  ``torch.load(weights_only=True, map_location="cpu")``, which admits tensors and plain containers and
  refuses every other Python object. We load the state dict ourselves and hand diffusers a dict, so its own
  file reader never sees the pickle.
- The pipeline is assembled from the components diffusers converts (``from_single_file`` of the UNet and the
  VAE given the state dict and ``config=<our folder>``, ``local_files_only=True``; diffusers' LDM CLIP /
  OpenCLIP converter for the text encoder), our scheduler config and our tokenizer. We never call the
  pipeline-level ``StableDiffusionPipeline.from_single_file``: when its config lookup misses the local cache
  it silently retries with ``local_files_only=False`` (a download).
- Single files carry no safety checker, so the pipeline comes back with ``safety_checker=None`` and
  ``requires_safety_checker=False``; the engine's safety layer decides separately whether to attach one. The
  SD 1.x pipeline keeps its ``feature_extractor`` (CLIP image preprocessing, config only) for that purpose.

Importing this module is cheap: torch, diffusers, transformers and safetensors are imported inside functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from studio.engine.errors import InvalidModelError
from studio.engine.model_checks import check_config_folder, read_config
from studio.library.resources import clip_tokenizer_dir, component_configs_dir
from studio.library.safetensors_header import NO_TENSORS, HeaderError, read_header

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionPipeline

__all__ = [
    "FAMILIES",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIX",
    "Prediction",
    "SingleFileError",
    "SingleFileModel",
    "decide_prediction",
    "detect_family",
    "family_from_shapes",
    "load_single_file",
    "read_checkpoint_header",
    "read_checkpoint_keys",
    "read_safetensors_header",
    "sidecar_config",
]

FAMILIES = ("sd1", "sd2")
FAMILY_NAMES = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x"}
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SUPPORTED = "supported: Stable Diffusion 1.x and 2.x text-to-image and inpainting checkpoints (.safetensors)"

# LDM key prefixes of the three components a Stable Diffusion single file holds.
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD 1.x: OpenAI CLIP ViT-L/14 (transformers layout)
OPENCLIP_PREFIX = "cond_stage_model.model."  # SD 2.x: OpenCLIP ViT-H/14 (open_clip layout)
CONV_IN = UNET_PREFIX + "input_blocks.0.0.weight"
CLIP_TOKENS = CLIP_PREFIX + "text_model.embeddings.token_embedding.weight"
OPENCLIP_TOKENS = OPENCLIP_PREFIX + "token_embedding.weight"
WANTED_PREFIXES = (UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX)
# Some SD 1.x files were saved with a CLIPTextModel lacking the ``text_model.`` level (older transformers);
# diffusers only knows the nested names, so those keys are renamed on read.
_CLIP_UNNESTED = tuple(CLIP_PREFIX + part for part in ("embeddings.", "encoder.", "final_layer_norm."))

CONFIG_FILES = (
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
)

Shapes = Mapping[str, tuple[int, ...]]


class SingleFileError(InvalidModelError):
    """A single-file checkpoint that cannot be loaded: one line naming the file and saying why (exit 2)."""

    def __init__(self, path: str | os.PathLike[str], message: str):
        self.path = str(path)
        self.reason = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable despite the two-argument constructor (errors may cross processes)
        return (type(self), (self.path, self.reason))


# ---------------------------------------------------------------------------------------------------------
# Reading a file's table of contents


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SingleFileError(path, "no such file")
    if path.is_dir():
        raise SingleFileError(
            path, "is a folder, not a single-file checkpoint (a diffusers folder loads as a model folder)"
        )
    if path.stat().st_size == 0:
        raise SingleFileError(path, "is empty (0 bytes): an interrupted download or copy?")


def _is_pickle(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES


def _check_suffix(path: Path, allow_ckpt: bool) -> None:
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return
    if suffix in PICKLE_SUFFIXES:
        if allow_ckpt:
            return
        raise SingleFileError(
            path,
            f"is a pickle checkpoint ({suffix}); unpickling can run arbitrary code, so it is refused. "
            "Convert it to .safetensors, or opt in with --allow-ckpt (allow_ckpt=True) to read it restricted "
            "to tensors (torch.load weights_only=True)",
        )
    raise SingleFileError(path, f"unsupported file type {suffix or '(no extension)'!r}; {SUPPORTED}")


def read_checkpoint_header(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a ``.safetensors`` file, from its JSON header alone (no tensor is read).

    Validates the header (`read_safetensors_header`) so that an empty, truncated, foreign or crafted file
    is a `SingleFileError` here rather than a crash later.
    """
    return read_safetensors_header(path)[0]


def read_safetensors_header(
    path: str | os.PathLike[str],
) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name -> shape, ``__metadata__``) of a ``.safetensors`` file, from its header, validated.

    Every engine caller (the window's pickers, ``studio models``, the loaders) goes through here, and the
    file may be crafted: the checks are `studio.library.safetensors_header.read_header`'s (shared with the
    LoRA and embedding catalogue), after this module's own (the file exists, is not empty, is not a pickle).
    The first violation is one `SingleFileError` (an `InvalidModelError`, CLI exit 2) naming the file and
    what is wrong; nothing else can escape (no OverflowError or RecursionError from a crafted header).
    """
    path = Path(path)
    _check_file(path)
    if _is_pickle(path):
        raise SingleFileError(
            path,
            "is a pickle checkpoint: its tensor names cannot be read without unpickling it "
            "(detect_family / load_single_file with allow_ckpt=True read it restricted to tensors)",
        )
    _check_suffix(path, allow_ckpt=False)
    try:
        return read_header(path)
    except HeaderError as exc:
        reason = str(exc)
        raise SingleFileError(path, f"{reason}; {SUPPORTED}" if reason == NO_TENSORS else reason) from None


def read_checkpoint_keys(path: str | os.PathLike[str]) -> set[str]:
    """Tensor names of a ``.safetensors`` file, from its header alone (fast even for multi-GB files)."""
    return set(read_checkpoint_header(path))


# ---------------------------------------------------------------------------------------------------------
# Identifying what a file is


def _normalized(key: str) -> str:
    """The LDM name diffusers expects for `key` (identity except for un-nested SD 1.x CLIP keys)."""
    if key.startswith(_CLIP_UNNESTED):
        return CLIP_PREFIX + "text_model." + key[len(CLIP_PREFIX) :]
    return key


def _sgm_text_encoder(shapes: Shapes) -> str:
    """Describe a file with SGM-layout (``conditioner.embedders.N``) text encoders."""
    keys = list(shapes)
    if any(key.startswith("conditioner.embedders.1.") for key in keys):
        return "a Stable Diffusion XL checkpoint (two conditioner.embedders.* text encoders)"
    widths = {s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight") and len(s) == 2}
    if widths & {1280, 2048}:
        return "a Stable Diffusion XL checkpoint (conditioner.embedders.* text encoder)"
    return "an SGM-layout checkpoint (conditioner.embedders.*, e.g. SD-Turbo or Stable Diffusion XL)"


def _what_else(shapes: Shapes) -> str | None:
    """A short description of a known non-SD-1/2 file, or None."""
    keys = list(shapes)

    def has(*fragments: str) -> bool:
        return any(fragment in key for key in keys for fragment in fragments)

    def starts(*prefixes: str) -> bool:
        return any(key.startswith(prefixes) for key in keys)

    if starts("conditioner.embedders."):
        return _sgm_text_encoder(shapes)
    if has("joint_blocks."):
        return "a Stable Diffusion 3 checkpoint (MMDiT joint_blocks)"
    if has("double_blocks.", "single_blocks."):
        return "a FLUX checkpoint"
    if starts("lora_unet_", "lora_te", "lora_") or has(".lora_down.", ".lora_up.", ".lora_A.", ".lora_B."):
        return "a LoRA (apply it on top of a base model; it is not a model itself)"
    if starts("string_to_param", "emb_params", "clip_l", "clip_g") and len(keys) <= 4:
        return "a textual-inversion embedding, not a model"
    if starts("control_model.") or has("input_hint_block.", "controlnet_cond_embedding."):
        return "a ControlNet, not a base model"
    if has("motion_modules."):
        return "an AnimateDiff motion module, not a base model"
    return None


def _what_without_unet(keys: list[str]) -> str:
    def starts(*prefixes: str) -> bool:
        return any(key.startswith(prefixes) for key in keys)

    if starts("down_blocks.", "mid_block.", "up_blocks.", "conv_in.", "time_embedding."):
        return (
            "a single UNet in diffusers format (e.g. unet/diffusion_pytorch_model.safetensors), not an "
            "original-layout single file; load the whole diffusers folder instead"
        )
    if starts("encoder.down_blocks.", "decoder.up_blocks."):
        return "a VAE in diffusers format, not a full model; load the whole diffusers folder instead"
    if starts("text_model.", "encoder.layers.", "embeddings.token_embedding"):
        return "a text encoder in diffusers/transformers format, not a full model"
    if starts(VAE_PREFIX, "encoder.down.", "decoder.up.", "encoder.conv_in."):
        return "a standalone VAE, not a full model"
    return "not a Stable Diffusion checkpoint (it has no model.diffusion_model.* UNet weights)"


def family_from_shapes(
    shapes: Shapes, path: str | os.PathLike[str] = "<checkpoint>", family: str | None = None
) -> str:
    """The family ("sd1" or "sd2") from LDM tensor names and shapes; `SingleFileError` for anything else.

    The text encoder's key layout decides (SD 1.x: ``cond_stage_model.transformer.*``, OpenAI CLIP; SD 2.x:
    ``cond_stage_model.model.*``, OpenCLIP) and must agree with the UNet's cross-attention width (768 and
    1024 in the real models). Names and that ratio hold at any width, so tiny test exports are recognised
    too. With no text encoder weights the width decides (768 / 1024), else `family` (a caller's hint) must.
    A hint that contradicts the key names is an error.
    """
    if family is not None and family not in FAMILIES:
        raise SingleFileError(path, f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    shapes = {_normalized(key): shape for key, shape in shapes.items()}
    keys = list(shapes)
    if not keys:
        raise SingleFileError(path, f"holds no tensors; {SUPPORTED}")
    other = _what_else(shapes)
    if other:
        raise SingleFileError(path, f"looks like {other}; {SUPPORTED}")
    if not any(key.startswith(UNET_PREFIX) for key in keys):
        raise SingleFileError(path, f"looks like {_what_without_unet(keys)}; {SUPPORTED}")

    conv_in = shapes.get(CONV_IN)
    if conv_in is None or len(conv_in) != 4:
        raise SingleFileError(path, f"has an incomplete or unknown UNet (no {CONV_IN}); {SUPPORTED}")
    in_channels = conv_in[1]
    if in_channels not in (4, 9):  # 9: an inpainting model (latents, mask, masked image), run natively
        kind = {
            8: "an InstructPix2Pix model (UNet with 8 input channels)",
            7: "an upscaler (UNet with 7 input channels)",
            5: "a depth-to-image model (UNet with 5 input channels)",
        }.get(in_channels, f"a UNet with {in_channels} input channels (text-to-image models have 4)")
        raise SingleFileError(path, f"looks like {kind}; {SUPPORTED}")
    if any(key.startswith(UNET_PREFIX + "label_emb.") for key in keys):
        raise SingleFileError(path, f"looks like a class-conditioned UNet (unCLIP or upscaler); {SUPPORTED}")

    widths = {
        shape[1]
        for key, shape in shapes.items()
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight") and len(shape) == 2
    }
    if not widths:
        raise SingleFileError(path, f"has a UNet without cross-attention; {SUPPORTED}")
    if len(widths) > 1:
        raise SingleFileError(path, f"has inconsistent cross-attention widths {sorted(widths)}; {SUPPORTED}")
    (context,) = widths

    has_clip = any(key.startswith(CLIP_PREFIX) for key in keys)
    has_openclip = any(key.startswith(OPENCLIP_PREFIX) for key in keys)
    if has_clip and has_openclip:
        raise SingleFileError(
            path, "holds both an OpenAI CLIP and an OpenCLIP text encoder; cannot tell SD 1.x from 2.x"
        )
    if has_clip or has_openclip:
        detected = "sd1" if has_clip else "sd2"
        token_key = CLIP_TOKENS if has_clip else OPENCLIP_TOKENS
        tokens = shapes.get(token_key)
        if tokens is None or len(tokens) != 2:
            raise SingleFileError(path, f"has an incomplete text encoder (no {token_key})")
        if tokens[1] != context:
            raise SingleFileError(
                path,
                f"text encoder width {tokens[1]} does not match the UNet's cross-attention width {context}; "
                f"{SUPPORTED}",
            )
        if family is not None and family != detected:
            raise SingleFileError(
                path, f"is a {FAMILY_NAMES[detected]} checkpoint, but family {family!r} was requested"
            )
        return detected
    by_width = {768: "sd1", 1024: "sd2"}.get(context)
    if family is not None:
        if by_width is not None and by_width != family:
            raise SingleFileError(
                path,
                f"has {context}-wide cross-attention ({FAMILY_NAMES[by_width]}), but family {family!r} was requested",
            )
        return family
    if by_width is None:
        raise SingleFileError(
            path, f"has no text encoder weights and a {context}-wide cross-attention; cannot tell its family"
        )
    return by_width


def _shapes_of(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def detect_family(
    path: str | os.PathLike[str], *, allow_ckpt: bool = False, family: str | None = None
) -> str:
    """The family ("sd1" or "sd2") of a single-file checkpoint; `SingleFileError` saying what it is otherwise.

    ``.safetensors``: from the header alone. Pickle files only with ``allow_ckpt=True`` (loaded with
    ``weights_only=True``). ``family`` is a hint for files whose family the keys cannot decide.
    """
    path = Path(path)
    _check_file(path)
    _check_suffix(path, allow_ckpt)
    if _is_pickle(path):
        return family_from_shapes(_shapes_of(_load_pickle_state_dict(path)), path, family)
    return family_from_shapes(read_checkpoint_header(path), path, family)


# ---------------------------------------------------------------------------------------------------------
# Prediction type
#
# The weights of a single file cannot say whether its UNet predicts the noise (epsilon: SD 1.x, SD 2.x
# 512-base) or v (SD 2.x 768-v): both have the same tensors. Three conventions can, strongest first:
# - a YAML config beside the file (``model.yaml`` for ``model.safetensors``): how A1111 and ComfyUI are told,
#   an LDM inference config where ``parameterization: "v"`` means v and its absence means epsilon;
# - ``modelspec.prediction_type`` in the safetensors metadata (Stability's model spec: "epsilon" / "v");
# - ``ss_v_parameterization`` in it (kohya's trainer records "True" / "False").
# Without any, the family decides: SD 1.x epsilon, SD 2.x v (768-v is the SD 2.x most files are).
# Both files are untrusted text: only a regular expression and a dict lookup ever touch them.

PREDICTION_BY_NAME = {"eps": "epsilon", "epsilon": "epsilon", "v": "v_prediction", "v_prediction": "v_prediction"}
FAMILY_PREDICTION = {"sd1": "epsilon", "sd2": "v_prediction"}
PREDICTION_LABELS = {"epsilon": "epsilon (noise) prediction", "v_prediction": "v-prediction"}
SIDECAR_SUFFIXES = (".yaml", ".yml")
MAX_SIDECAR_BYTES = 1_000_000
_PARAMETERIZATION = re.compile(r"^\s*parameterization\s*:\s*[\"']?([A-Za-z_0-9]+)[\"']?\s*(?:#.*)?$", re.M)
_LDM_MODEL_KEY = re.compile(r"^model\s*:", re.M)


@dataclass(frozen=True)
class Prediction:
    """What the UNet predicts and what said so (shown to the user, e.g. "model.yaml beside the file")."""

    type: str  # "epsilon" | "v_prediction" (diffusers' scheduler names)
    source: str
    guessed: bool = False  # nothing recorded it: the family's default

    def note(self, path: str | os.PathLike[str], family: str) -> str | None:
        """One line for the user where it matters: a file that is not what its family usually is, or an
        SD 2.x file that nothing describes (768-v and 512-base look alike; a wrong guess gives noise)."""
        name = Path(path).name
        if self.type != FAMILY_PREDICTION[family]:
            return f"{name}: {PREDICTION_LABELS[self.type]}, from {self.source}"
        if self.guessed and family == "sd2":
            return (
                f"{name}: nothing records whether it is SD 2.x 768-v or 512-base; running it as 768-v "
                f"(v-prediction). If its images come out as noise, put a file {Path(path).stem}.yaml beside it "
                "holding the line: parameterization: eps"
            )
        return None


class SingleFileModel(NamedTuple):
    pipeline: StableDiffusionPipeline
    family: str
    prediction: Prediction


def sidecar_config(path: str | os.PathLike[str]) -> Path | None:
    """The LDM YAML config beside a checkpoint (``model.yaml`` / ``model.yml``), if there is one."""
    path = Path(path)
    for suffix in SIDECAR_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _prediction_from_sidecar(sidecar: Path) -> str | None:
    """epsilon / v_prediction from an LDM config; None for a YAML that is not one (then it is not ours)."""
    try:
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise SingleFileError(sidecar, f"is over {MAX_SIDECAR_BYTES // 1_000_000} MB: not a model config")
        text = sidecar.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SingleFileError(sidecar, f"cannot be read ({exc.strerror or exc})") from None
    match = _PARAMETERIZATION.search(text)
    if match is None:
        return "epsilon" if _LDM_MODEL_KEY.search(text) else None  # LDM's default parameterization is eps
    value = match.group(1)
    if value.lower() not in PREDICTION_BY_NAME:
        raise SingleFileError(sidecar, f"asks for parameterization {value[:40]!r}; supported: \"eps\" and \"v\"")
    return PREDICTION_BY_NAME[value.lower()]


def _prediction_from_metadata(metadata: Mapping[str, str]) -> tuple[str, str] | None:
    spec = metadata.get("modelspec.prediction_type", "").strip().lower()
    if spec in PREDICTION_BY_NAME:
        return PREDICTION_BY_NAME[spec], "the file's metadata (modelspec.prediction_type)"
    kohya = metadata.get("ss_v_parameterization", "").strip().lower()
    if kohya in ("true", "false"):
        return ("v_prediction" if kohya == "true" else "epsilon"), "the file's metadata (ss_v_parameterization)"
    return None


def decide_prediction(path: str | os.PathLike[str], family: str, metadata: Mapping[str, str]) -> Prediction:
    """The prediction type of a single-file checkpoint (see the conventions above)."""
    sidecar = sidecar_config(path)
    if sidecar is not None:
        found = _prediction_from_sidecar(sidecar)
        if found is not None:
            return Prediction(found, f"{sidecar.name} beside the file")
    from_metadata = _prediction_from_metadata(metadata)
    if from_metadata is not None:
        return Prediction(*from_metadata)
    return Prediction(FAMILY_PREDICTION[family], f"the {FAMILY_NAMES[family]} default", guessed=True)


# ---------------------------------------------------------------------------------------------------------
# Loading


def _load_pickle_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A pickle checkpoint's tensors, read with ``weights_only=True`` (no arbitrary objects, no code)."""
    import pickle
    import zipfile

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        # torch's message opens with generic advice to retry with weights_only=False (which we never do);
        # the line naming the refused global is the informative one.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        refused = [line for line in lines if "GLOBAL" in line or "Unsupported global" in line]
        if refused:
            raise SingleFileError(
                path,
                "contains Python objects other than tensors, refused even with --allow-ckpt "
                f"(torch.load weights_only=True): {refused[0]}",
            ) from None
        raise SingleFileError(
            path, "is not a readable PyTorch checkpoint (not a pickle, or corrupt)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise SingleFileError(path, f"is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    # Lightning checkpoints nest the weights: {"state_dict": {...}, "global_step": ..., ...}
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SingleFileError(path, f"holds a {type(obj).__name__}, not a state dict; {SUPPORTED}")
    state = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        raise SingleFileError(path, f"holds no tensors; {SUPPORTED}")
    return state


def _load_safetensors(path: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError) as exc:
        raise SingleFileError(path, f"could not be read: {exc}") from None


def _check_against_configs(path: Path, shapes: Shapes, family: str, config_dir: Path) -> None:
    """Fail early, in one line, when the file's widths do not match the component configs."""
    missing = [name for name in CONFIG_FILES if not (config_dir / name).is_file()]
    if missing:
        raise SingleFileError(path, f"component config folder {config_dir} lacks {', '.join(missing)}")
    check_config_folder(config_dir, family)  # sane sizes before anything is built from them
    for prefix, what in ((UNET_PREFIX, "UNet"), (VAE_PREFIX, "VAE"), (TEXT_PREFIX, "text encoder")):
        if not any(key.startswith(prefix) for key in shapes):
            raise SingleFileError(
                path, f"holds no {what} weights ({prefix}*); a complete checkpoint is needed"
            )
    unet = read_config(config_dir / "unet" / "config.json")
    text = read_config(config_dir / "text_encoder" / "config.json")
    conv_in = shapes[CONV_IN]
    context = next(
        shape[1]
        for key, shape in shapes.items()
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight")
    )
    token_key = CLIP_TOKENS if family == "sd1" else OPENCLIP_TOKENS
    text_width = shapes[token_key][1] if token_key in shapes else None
    checks = [
        ("UNet base width", conv_in[0], (unet.get("block_out_channels") or [None])[0]),
        ("UNet cross-attention width", context, unet.get("cross_attention_dim")),
        ("text encoder width", text_width, text.get("hidden_size")),
    ]
    for label, found, expected in checks:
        if found is not None and expected is not None and found != expected:
            raise SingleFileError(
                path,
                f"{label} {found} does not match {expected} in the {FAMILY_NAMES.get(family, family)} "
                f"component configs ({config_dir}): not a standard {FAMILY_NAMES.get(family, family)} checkpoint",
            )


def _no_meta(path: Path, module: Any, what: str) -> None:
    """diffusers leaves a weight absent from the file on the meta device: report it instead of crashing later."""
    missing = [
        name for name, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta
    ]
    if missing:
        raise SingleFileError(
            path,
            f"lacks {len(missing)} {what} weight(s) the config expects (e.g. {missing[0]}): incomplete checkpoint",
        )


def _convert(path: Path, what: str, build):
    """Run one diffusers conversion step, turning its errors into a one-line `SingleFileError`."""
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    try:
        return build()
    except (SingleFileComponentError, ValueError, KeyError, RuntimeError, TypeError, IndexError) as exc:
        if isinstance(exc, SingleFileError):
            raise
        text = str(exc).strip()
        if "meta tensor" in text:  # diffusers left a weight the file lacks on the meta device, then moved it
            raise SingleFileError(
                path, f"lacks {what} weights the config expects: incomplete or non-standard checkpoint"
            ) from exc
        message = text.splitlines()[0] if text else type(exc).__name__
        raise SingleFileError(path, f"could not build the {what}: {message[:300]}") from exc


def _scheduler(config_dir: Path):
    import diffusers
    from diffusers import SchedulerMixin

    config = read_config(config_dir / "scheduler" / "scheduler_config.json")
    name = config.get("_class_name", "")
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise ValueError(f"unknown scheduler class {name!r} in {config_dir / 'scheduler'}")
    return cls.from_config(config)


def load_single_file(
    path: str | os.PathLike[str],
    *,
    torch_dtype: torch.dtype | None = None,
    vae_dtype: torch.dtype | None = None,
    allow_ckpt: bool = False,
    family: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
) -> SingleFileModel:
    """Load an SD 1.x / 2.x single-file checkpoint into a `StableDiffusionPipeline`, offline.

    Returns ``(pipeline, family, prediction)``; the scheduler predicts what `decide_prediction` found. ``.safetensors`` only unless ``allow_ckpt`` (then pickles are read with
    ``torch.load(weights_only=True)``). ``family`` overrides nothing the keys decide (a contradiction is an
    error) but decides when they cannot. ``config_dir`` replaces the shipped config folder (tests use tiny
    configs). ``vae_dtype`` (default ``torch_dtype``) lets the VAE keep fp32 beside a bf16 UNet. The pipeline has no safety checker (``requires_safety_checker=False``): single files carry none.
    Raises `SingleFileError` (one line naming the file) for anything that is not a loadable SD 1.x/2.x file.
    """
    import torch

    from studio.engine.loading import quiet_libraries

    quiet_libraries()  # before the pipeline imports below: transformers warns about torchvision otherwise
    if torch_dtype is not None and not isinstance(torch_dtype, torch.dtype):
        raise TypeError(f"torch_dtype must be a torch.dtype or None, not {torch_dtype!r}")
    path = Path(path)
    _check_file(path)
    _check_suffix(path, allow_ckpt)

    state: dict[str, torch.Tensor] | None = None
    metadata: dict[str, str] = {}
    if _is_pickle(path):
        state = _load_pickle_state_dict(path)
        file_shapes = _shapes_of(state)
    else:
        file_shapes, metadata = read_safetensors_header(path)
    family = family_from_shapes(file_shapes, path, family)
    prediction = decide_prediction(path, family, metadata)  # before the slow part: a bad sidecar fails fast
    shapes = {_normalized(key): shape for key, shape in file_shapes.items()}
    configs = Path(config_dir) if config_dir is not None else component_configs_dir(family)
    _check_against_configs(path, shapes, family, configs)

    # Only the three components: EMA copies (model_ema.*), DDPM schedule buffers etc. are never read.
    wanted = [key for key in file_shapes if key.startswith(WANTED_PREFIXES)]
    tensors = _load_safetensors(path, wanted) if state is None else {key: state[key] for key in wanted}
    state = {_normalized(key): tensor for key, tensor in tensors.items()}
    del tensors

    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer

    common = {"config": str(configs), "local_files_only": True, "torch_dtype": torch_dtype}
    in_channels = file_shapes[CONV_IN][1]  # 4, or 9 for an inpainting model (family_from_shapes checked)
    unet = _convert(
        path, "UNet",
        lambda: UNet2DConditionModel.from_single_file(state, subfolder="unet", in_channels=in_channels, **common),
    )
    _no_meta(path, unet, "UNet")
    vae_common = {**common, "torch_dtype": vae_dtype or torch_dtype}
    vae = _convert(path, "VAE", lambda: AutoencoderKL.from_single_file(state, subfolder="vae", **vae_common))
    _no_meta(path, vae, "VAE")
    text_encoder = _convert(
        path,
        "text encoder",
        lambda: create_diffusers_clip_model_from_ldm(
            CLIPTextModel, state, subfolder="text_encoder", **common
        ),
    )
    _no_meta(path, text_encoder, "text encoder")
    state.clear()  # drop our references; the models hold theirs
    scheduler = _convert(path, "scheduler", lambda: _scheduler(configs))
    if scheduler.config.get("prediction_type") != prediction.type:
        scheduler = type(scheduler).from_config(scheduler.config, prediction_type=prediction.type)

    # Single files carry no tokenizer: the shared CLIP vocabulary; SD 2.x (OpenCLIP) pads with "!".
    tokenizer = CLIPTokenizer.from_pretrained(
        str(clip_tokenizer_dir()), local_files_only=True, **({"pad_token": "!"} if family == "sd2" else {})
    )
    feature_extractor = None
    if (configs / "feature_extractor" / "preprocessor_config.json").is_file():
        feature_extractor = CLIPImageProcessor.from_pretrained(
            str(configs / "feature_extractor"), local_files_only=True
        )

    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=feature_extractor,
        requires_safety_checker=False,
    )
    return SingleFileModel(pipeline, family, prediction)
