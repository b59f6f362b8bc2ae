"""Model sources -> pipelines: catalogue id, hub repo id, local diffusers folder, single checkpoint file.

Components are loaded one by one with classes we name ourselves, never from whatever a repository's
`model_index.json` asks for: a repository can name custom pipeline code, and we never run code from a
model repository. Weights are safetensors unless the user opted in to pickles (then weights_only=True).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.engine.catalog import CatalogEntry, ModelDefaults, family_defaults, lookup
from studio.engine.errors import ModelNotFoundError, RequestError
from studio.engine.precision import auto_cpu_dtype, cpu_has_native_bf16, place_pipeline, vae_dtype_name

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SINGLE_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
# Components of a Stable-Diffusion-shaped repository and the only classes we accept for them.
TEXT_ENCODER_CLASSES = {"CLIPTextModel", "CLIPTextModelWithProjection"}


@dataclass
class DownloadProgress:
    done: int  # bytes
    total: int | None
    description: str = ""


DownloadCallback = Callable[[DownloadProgress], None]


@dataclass
class ModelSource:
    """Where a model comes from. `family` is known for catalogue entries, detected for the rest."""

    spec: str
    kind: str  # "catalog" | "hub" | "folder" | "file"
    repo: str | None = None
    revision: str | None = None
    path: Path | None = None
    entry: CatalogEntry | None = None
    family: str | None = None

    @property
    def id(self) -> str:
        if self.entry:
            return self.entry.id
        return self.repo or (self.path.name if self.path else self.spec)

    def defaults_for(self, prediction_type: str | None = None) -> ModelDefaults:
        return self.entry.defaults if self.entry else family_defaults(self.family, prediction_type)


def resolve_source(spec: str) -> ModelSource:
    """Classify a user's model string. An existing path wins over a hub id of the same spelling."""
    if not isinstance(spec, str) or not spec.strip():
        raise RequestError("no model given")
    spec = spec.strip()
    entry = lookup(spec)
    if entry:
        return ModelSource(spec, "catalog", repo=entry.repo, revision=entry.revision, entry=entry, family=entry.family)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ModelSource(spec, "folder", path=path.resolve())
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise RequestError(f"{path.name}: not a model file (expected .safetensors, or .ckpt with --allow-ckpt)")
        return ModelSource(spec, "file", path=path.resolve())
    repo, _, revision = spec.partition("@")
    if HUB_ID.match(repo) and not spec.startswith((".", "/", "~")):
        return ModelSource(spec, "hub", repo=repo, revision=revision or None)
    from studio.engine.catalog import CATALOG

    raise ModelNotFoundError(
        f"model {spec!r} not found: not in the catalogue ({', '.join(CATALOG)}), "
        "not an existing folder or .safetensors file, not a Hugging Face repo id (owner/name)"
    )


# ---------------------------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" | "cuda" | "cuda:1" | "mps"
    dtype_name: str  # "float32" | "float16" | "bfloat16"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def vae_dtype(self):
        import torch

        return getattr(torch, vae_dtype_name(self.device, self.dtype_name))


_DTYPE_ALIASES = {
    "fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}


def choose_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """`auto`: CUDA fp16, MPS fp16, else the CPU in fp32, or in bf16 where the CPU has native bf16
    (`precision.auto_cpu_dtype`). Asking for hardware that is absent is the user's error."""
    import torch

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

    if (dtype or "auto") == "auto":
        dtype_name = auto_cpu_dtype(cpu_has_native_bf16()) if device == "cpu" else "float16"
    else:
        if dtype.lower() not in _DTYPE_ALIASES:
            raise RequestError(f"unknown dtype {dtype!r}: choose auto, float32, float16 or bfloat16")
        dtype_name = _DTYPE_ALIASES[dtype.lower()]
    if device == "cpu" and dtype_name == "float16":
        raise RequestError("float16 is not supported on the CPU: use float32 or bfloat16")
    return Placement(device, dtype_name)


# ------------------------------------------------------------------------------------------------ hub


def _progress_class(callback: DownloadCallback | None):
    """A tqdm class that forwards huggingface_hub's aggregated byte counts to `callback`, silently."""
    from tqdm.auto import tqdm

    class _Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            shown = super().update(n)
            if callback and self.unit == "B":
                callback(DownloadProgress(int(self.n), int(self.total) if self.total else None, str(self.desc)))
            return shown

        def close(self):
            fp = self.fp
            super().close()
            fp.close()

    return _Progress


def allow_patterns(entry: CatalogEntry | None, family: str | None) -> list[str]:
    """Only the files a Stable-Diffusion-shaped model needs: configs, tokenizer, one set of weights.

    Weights are the full-precision safetensors that `load_folder` reads (whole or sharded), never the
    `.fp16` / `.non_ema` / `.ema` variants that many repos keep beside them: `*.safetensors` would match
    those too and double the download. DeciDiffusion publishes its UNet-NAS only in fp16, so its
    flexible_unet/ takes any safetensors file (`deci_unet` picks the best one present).
    """
    patterns = ["model_index.json", "scheduler/*.json", "tokenizer/*"]
    components = {"vae": "diffusion_pytorch_model", "text_encoder": "model"}
    if family == "deci":
        patterns += ["flexible_unet/*.json", "flexible_unet/*.safetensors"]
    else:
        components["unet"] = "diffusion_pytorch_model"
    if entry is None or entry.safety_checker:
        components["safety_checker"] = "model"
        patterns.append("feature_extractor/*.json")
    for folder, stem in components.items():
        patterns += [
            f"{folder}/*.json",
            f"{folder}/{stem}.safetensors",
            f"{folder}/{stem}-[0-9]*-of-[0-9]*.safetensors",
        ]
    return patterns


def fetch_from_hub(
    repo: str,
    revision: str | None,
    *,
    entry: CatalogEntry | None = None,
    on_progress: DownloadCallback | None = None,
    offline: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The repo's snapshot folder, from the Hugging Face cache or downloaded into it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    offline = offline if offline is not None else _env_offline()
    family = entry.family if entry else None
    kwargs: dict[str, Any] = {
        "revision": revision,
        "cache_dir": cache_dir,
        "allow_patterns": allow_patterns(entry, family),
        "ignore_patterns": list(entry.ignore_patterns) if entry else ["*.py"],
        "tqdm_class": _progress_class(on_progress),
    }
    name = f"{repo}@{revision}" if revision else repo
    try:
        return Path(snapshot_download(repo, local_files_only=True, **kwargs))
    except LocalEntryNotFoundError:
        if offline:
            raise ModelNotFoundError(
                f"model {name} is not downloaded and this machine is offline (HF_HUB_OFFLINE is set): "
                f"download it once with network access (`studio generate --model {repo} ...`), "
                "or pass a local diffusers folder or .safetensors file with --model"
            ) from None
    try:
        return Path(snapshot_download(repo, **kwargs))
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise ModelNotFoundError(f"model {name} does not exist on the Hugging Face hub (or needs a login): {exc}") from None
    except Exception as exc:  # noqa: BLE001 - network errors come in many classes
        raise ModelNotFoundError(
            f"model {name} is not downloaded and could not be fetched ({type(exc).__name__}: {str(exc)[:200]}); "
            "check the network, or pass a local folder or .safetensors file with --model"
        ) from None


def _env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def is_in_local_cache(repo: str, revision: str | None, entry: CatalogEntry | None = None) -> Path | None:
    """The cached snapshot when every needed file is there (for `studio models`), else None."""
    try:
        return fetch_from_hub(repo, revision, entry=entry, offline=True)
    except ModelNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------- folders


def detect_folder_family(folder: Path) -> str:
    """sd1 / sd2 / deci from a diffusers folder's configs (no weights read)."""
    if (folder / "flexible_unet").is_dir():
        return "deci"
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    unet = _read_json(folder / "unet" / "config.json")
    if scheduler.get("prediction_type") == "v_prediction" or unet.get("use_linear_projection"):
        return "sd2"
    return "sd1"


def file_stamp(source: ModelSource) -> tuple | None:
    """What a loaded single file depends on besides its path: the file itself and the YAML config beside it
    (added after a wrong guess of its prediction type, it must take effect on the next generation)."""
    if source.kind != "file" or source.path is None:
        return None
    from studio.engine.single_file import SIDECAR_SUFFIXES

    stamps = []
    for path in (source.path, *(source.path.with_suffix(s) for s in SIDECAR_SUFFIXES)):
        try:
            stat = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def local_model_kind(spec: str) -> tuple[str, str | None]:
    """(family, prediction type or None) of a local folder or single file, read cheaply (configs or the
    safetensors header and sidecar; no weights, no torch): what a form needs for sizes and defaults before
    any load. A guess: anything unreadable is ("sd1", None) here and a clear error when it is loaded."""
    from studio.engine.single_file import decide_prediction, family_from_shapes, read_safetensors_header

    path = Path(spec).expanduser()
    try:
        if path.is_dir():
            family = detect_folder_family(path)
            scheduler = _read_json(path / "scheduler" / "scheduler_config.json")
            prediction = scheduler.get("prediction_type")
            return family, prediction if isinstance(prediction, str) else None
        if path.is_file() and path.suffix.lower() == ".safetensors":
            shapes, metadata = read_safetensors_header(path)
            family = family_from_shapes(shapes, path)
            return family, decide_prediction(path, family, metadata).type
    except (OSError, RequestError):
        pass
    return "sd1", None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RequestError(f"{path}: unreadable config ({exc})") from None
    return data if isinstance(data, dict) else {}


def check_folder_layout(folder: Path, family: str) -> None:
    unet = "flexible_unet" if family == "deci" else "unet"
    missing = [c for c in (unet, "vae", "text_encoder", "tokenizer", "scheduler") if not (folder / c).is_dir()]
    if missing:
        raise RequestError(
            f"{folder}: not a Stable Diffusion folder in diffusers layout (missing {', '.join(m + '/' for m in missing)})"
        )


@dataclass
class LoadedComponents:
    components: dict[str, Any]
    family: str
    scheduler_config: dict
    safety_checker: Any = None
    feature_extractor: Any = None
    extra: dict = field(default_factory=dict)


def load_folder(folder: Path, family: str, placement: Placement, *, allow_pickle: bool = False, safety: bool = True):
    """A StableDiffusionPipeline from a diffusers-layout folder, component by component."""
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    check_folder_layout(folder, family)
    _quiet_libraries()
    dtype = placement.dtype
    use_st = None if allow_pickle else True
    try:
        if family == "deci":
            try:
                from studio.engine.deci_unet import load_flexible_unet
            except ImportError:
                raise RequestError(f"{folder}: DeciDiffusion's UNet-NAS is not supported yet") from None
            unet = load_flexible_unet(folder / "flexible_unet", dtype=dtype)
        else:
            unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, use_safetensors=use_st)
        vae = AutoencoderKL.from_pretrained(
            folder, subfolder="vae", torch_dtype=placement.vae_dtype, use_safetensors=use_st
        )
        te_config = _read_json(folder / "text_encoder" / "config.json")
        te_arch = (te_config.get("architectures") or ["CLIPTextModel"])[0]
        if te_arch not in TEXT_ENCODER_CLASSES:
            raise RequestError(f"{folder}: unsupported text encoder {te_arch!r} (expected a CLIP text model)")
        te_cls = CLIPTextModelWithProjection if te_arch == "CLIPTextModelWithProjection" else CLIPTextModel
        text_encoder = te_cls.from_pretrained(folder, subfolder="text_encoder", torch_dtype=dtype, use_safetensors=use_st)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        sched_config = _read_json(folder / "scheduler" / "scheduler_config.json")
        sched_cls_name = str(sched_config.get("_class_name", "PNDMScheduler"))
        sched_cls = getattr(diffusers, sched_cls_name, None) if sched_cls_name.endswith("Scheduler") else None
        if sched_cls is None:
            raise RequestError(f"{folder}: unknown scheduler class {sched_cls_name!r}")
        scheduler = sched_cls.from_config(sched_config)
        checker = processor = None
        if safety and (folder / "safety_checker").is_dir():
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
            from transformers import CLIPImageProcessor

            checker = StableDiffusionSafetyChecker.from_pretrained(
                folder, subfolder="safety_checker", torch_dtype=dtype, use_safetensors=use_st
            )
            processor = CLIPImageProcessor.from_pretrained(folder, subfolder="feature_extractor")
    except OSError as exc:
        raise RequestError(_explain_load_error(folder, exc, allow_pickle)) from None
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=processor,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    place_pipeline(pipe, placement)
    return pipe


def _quiet_libraries() -> None:
    """No tqdm bars or info chatter from diffusers/transformers: the app and CLI report progress themselves."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _explain_load_error(folder: Path, exc: Exception, allow_pickle: bool) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not allow_pickle and any(folder.rglob("*.bin")) and "safetensors" in text.lower():
        return (
            f"{folder}: weights are only in pickle (.bin) files, which can run code when loaded; "
            "convert them to .safetensors, or opt in with --allow-ckpt (loaded with weights_only=True)"
        )
    return f"{folder}: cannot load model ({text[:300]})"


def file_sha256(path: Path, *, chunk: int = 1 << 22) -> str:
    """Full sha256 of a checkpoint; A1111's "Model hash" is its first 10 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
