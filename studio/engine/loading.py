"""Model sources -> pipelines: catalogue id, hub repo id, local diffusers folder, single checkpoint file.

Components are loaded one by one with classes we name ourselves, never from whatever a repository's
`model_index.json` asks for: a repository can name custom pipeline code, and we never run code from a
model repository. Weights are safetensors unless the user opted in to pickles (then weights_only=True).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.engine.catalog import CatalogEntry, ModelDefaults, family_defaults, lookup
from studio.engine.errors import (
    Cancelled,
    InvalidModelError,
    ModelNotFoundError,
    RequestError,
    UnknownModelError,
    first_line,
)
from studio.engine.model_checks import check_model_folder, read_config
from studio.engine.precision import Placement, place_pipeline

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

    raise UnknownModelError(
        f"model {spec!r} not found: not in the catalogue ({', '.join(CATALOG)}), "
        "not an existing folder or .safetensors file, not a Hugging Face repo id (owner/name)"
    )


# ------------------------------------------------------------------------------------------------ hub

# Seconds for the one metadata request made before a download (huggingface_hub's own default for its
# metadata calls). A closed port or a failed name lookup fails at once; a black-holed network after this.
HUB_METADATA_TIMEOUT = 10.0


def hub_endpoint() -> str:
    """The hub's base URL, read from HF_ENDPOINT now: huggingface_hub reads it once, at its import, so a
    mirror (or, in tests, a closed port) set later would be ignored without this."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face cache folder: `cache_dir`, else HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME as the hub
    client resolves them, but read at call time (huggingface_hub freezes them when first imported)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ
    value = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if value:
        return Path(os.path.expandvars(value)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_cache_folder(repo: str, cache_dir: str | Path | None = None) -> Path:
    """`models--owner--name` in the cache: every revision, blob and partial download of one repo."""
    return hub_cache_dir(cache_dir) / f"models--{repo.replace('/', '--')}"


def quiet_hub() -> None:
    """huggingface_hub resets its logger to WARNING when it is imported, so a level set before that import is
    lost and its retry lines ("Retrying in 8s [Retry 5/5]") reach the terminal. Call after importing it."""
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()


def quiet_libraries() -> None:
    """No info chatter or tqdm bars from diffusers, transformers or huggingface_hub: the app and the CLI report
    progress themselves. Call before importing pipelines: transformers resets its logger level when imported
    and then warns ("`CLIPImageProcessor` requires torchvision ...") while diffusers imports its pipelines."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    quiet_hub()


def _progress_class(
    callback: DownloadCallback | None, cancel: threading.Event | None = None, expected_total: int | None = None
):
    """A tqdm class that forwards huggingface_hub's byte counts to `callback`, silently, and raises Cancelled
    from inside the download threads once `cancel` is set, so that they stop at their next chunk. Files
    already complete stay in the cache and the next download skips them; huggingface_hub 2.x deletes the
    partial file of one cut mid-way (its temporary name is unique per download), so that file starts over.
    It reports a file's bytes every 10 MiB, so a cancel takes effect within one such chunk per file.

    huggingface_hub 2.x drives two byte bars: "Downloading bytes" (network bytes, whose total it guesses and
    grows) and the bytes written (total = the sizes of the files started so far). Only the second is a fair
    "x of y", and its total only once every file has started: `expected_total` (the sizes of the files still
    to fetch, from the hub's listing) is reported from the start instead.
    """
    from tqdm.auto import tqdm

    class _Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
            super().__init__(*args, **kwargs)
            self.reports = self.unit == "B" and not str(self.desc).startswith("Downloading bytes")

        def update(self, n=1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("download cancelled")
            shown = super().update(n)
            if callback and self.reports:
                total = max(int(self.total or 0), expected_total or 0) or None
                callback(DownloadProgress(int(self.n), total, str(self.desc)))
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
    checker = entry is None or entry.safety_checker  # a repo of unknown kind: fetch its checker if it has one
    if family == "deci":
        patterns += ["flexible_unet/*.json", "flexible_unet/*.safetensors"]
    if checker:
        patterns.append("feature_extractor/*.json")
    for folder, stem in _weight_components(family, bool(checker)).items():
        patterns += [
            f"{folder}/*.json",
            f"{folder}/{stem}.safetensors",
            f"{folder}/{stem}-[0-9]*-of-[0-9]*.safetensors",
        ]
    return patterns


def _weight_components(family: str | None, safety_checker: bool) -> dict[str, str]:
    """Component folder -> the stem of its full-precision weight file, for the components whose weights are
    standard diffusers/transformers files (Deci's flexible_unet/ is not: fp16-only upstream, any name)."""
    components = {"vae": "diffusion_pytorch_model", "text_encoder": "model"}
    if family != "deci":
        components["unet"] = "diffusion_pytorch_model"
    if safety_checker:
        components["safety_checker"] = "model"
    return components


def hub_ignore_patterns(entry: CatalogEntry | None) -> list[str]:
    """Files never fetched, whatever `allow_patterns` says: a catalogue entry's list, else any code."""
    return list(entry.ignore_patterns) if entry else ["*.py"]


def missing_model_files(folder: Path, entry: CatalogEntry | None = None, family: str | None = None) -> list[str]:
    """What a snapshot folder lacks for `load_folder` (configs, tokenizer, one full set of weights per
    component), as repo paths; [] when it can be loaded.

    huggingface_hub says a cached snapshot is complete only when it kept the repo's file listing (2.x does);
    a snapshot left by an interrupted download of an older client, or copied by hand, has no listing, and
    the hub client would hand it back half-filled.
    """
    family = family or (entry.family if entry else None) or detect_folder_family(folder)
    missing = [name for name in ("scheduler/scheduler_config.json",) if not (folder / name).is_file()]
    tokenizer = folder / "tokenizer"
    if not (tokenizer.is_dir() and any(p.is_file() for p in tokenizer.iterdir())):
        missing.append("tokenizer/")
    checker = entry is not None and entry.safety_checker  # elsewhere optional: loaded when present
    if checker and not (folder / "feature_extractor" / "preprocessor_config.json").is_file():
        missing.append("feature_extractor/preprocessor_config.json")
    components = list(_weight_components(family, checker).items())
    if family == "deci":
        components.append(("flexible_unet", ""))
    for name, stem in components:
        component = folder / name
        if not (component / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if name == "flexible_unet":  # fp16-only upstream: any safetensors file (see allow_patterns)
            if not any(component.glob("*.safetensors")):
                missing.append(f"{name}/*.safetensors")
            continue
        missing += [f"{name}/{w}" for w in _missing_weights(component, stem)]
    return missing


def _missing_weights(component: Path, stem: str) -> list[str]:
    """The weight files of one component that are absent: the single file, or the shards its index names."""
    if (component / f"{stem}.safetensors").is_file():
        return []
    index = component / f"{stem}.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        if shards:
            return [s for s in shards if not (component / str(s)).is_file()]
    return [f"{stem}.safetensors"]


def model_label(repo: str, revision: str | None, entry: CatalogEntry | None = None) -> str:
    """How messages name a hub model: the catalogue id with its exact repo and revision."""
    pinned = f"{repo}@{revision}" if revision else repo
    return f"{entry.id} ({pinned})" if entry else pinned


def download_command(repo: str, revision: str | None, entry: CatalogEntry | None = None) -> str:
    """The CLI command that fetches this model, for messages that say how to get it."""
    target = entry.id if entry else (f"{repo}@{revision}" if revision else repo)
    return f"studio models download {target}"


def not_downloaded_error(repo: str, revision: str | None, entry: CatalogEntry | None, why: str) -> ModelNotFoundError:
    """One line: which model, at which revision, why it cannot be fetched now, and the two ways to get going."""
    when = "with network access and HF_HUB_OFFLINE unset" if "OFFLINE is set" in why else "when online"
    return ModelNotFoundError(
        f"model {model_label(repo, revision, entry)} is not downloaded and {why}: "
        f"download it with `{download_command(repo, revision, entry)}` {when}, "
        "or use a local diffusers folder or .safetensors file instead (--model PATH)"
    )


def _offline_reason() -> str:
    names = [n for n in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if _truthy(os.environ.get(n))]
    return f"this machine is offline ({' and '.join(names) or 'HF_HUB_OFFLINE'} is set)"


def _network_errors() -> tuple[type[BaseException], ...]:
    """What "the hub cannot be reached" raises: the HTTP client's transport errors (huggingface_hub 2.x uses
    httpx2, 1.x httpx) and plain OS socket errors."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def hub_model_info(
    repo: str,
    revision: str | None,
    *,
    entry: CatalogEntry | None = None,
    files_metadata: bool = False,
    timeout: float = HUB_METADATA_TIMEOUT,
):
    """The hub's record of a repo at a revision, in one request with a short timeout and no retries.

    This is the first call before any download: when the hub cannot be reached it fails in seconds with a
    ModelNotFoundError that says so (huggingface_hub's own listing call retries five times over 24 s), and a
    missing repo, revision or login is named plainly.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    quiet_hub()
    label = model_label(repo, revision, entry)
    endpoint = hub_endpoint()
    try:
        return HfApi(endpoint=endpoint).model_info(repo, revision=revision, timeout=timeout, files_metadata=files_metadata)
    except GatedRepoError:
        raise ModelNotFoundError(
            f"model {label} needs a Hugging Face login with access granted on {endpoint}/{repo}: "
            "accept its terms there, then run `hf auth login`"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"model {label} does not exist on {endpoint} (or it is private: log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"model {label}: the revision {revision!r} does not exist on {endpoint}") from None
    except OfflineModeIsEnabled:
        raise not_downloaded_error(repo, revision, entry, _offline_reason()) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise not_downloaded_error(
            repo, revision, entry, f"the Hugging Face hub at {endpoint} answered HTTP {status or '?'}, try again later"
        ) from None
    except _network_errors() as exc:
        raise not_downloaded_error(
            repo, revision, entry, f"the Hugging Face hub at {endpoint} cannot be reached ({first_line(exc)})"
        ) from None


def _snapshot_kwargs(entry: CatalogEntry | None, family: str | None, revision: str | None, cache_dir: Path) -> dict:
    return {
        "revision": revision,
        "cache_dir": str(cache_dir),
        "allow_patterns": allow_patterns(entry, family),
        "ignore_patterns": hub_ignore_patterns(entry),
    }


def local_snapshot(
    repo: str, revision: str | None, *, entry: CatalogEntry | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """The cached snapshot when every file the app needs is there, else None; no network, fast."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    quiet_hub()
    family = entry.family if entry else None
    try:
        folder = snapshot_download(
            repo, local_files_only=True, **_snapshot_kwargs(entry, family, revision, hub_cache_dir(cache_dir))
        )
    except LocalEntryNotFoundError:  # IncompleteSnapshotError too: the hub's listing says files are missing
        return None
    except HFValidationError as exc:
        raise RequestError(f"{repo!r} is not a valid Hugging Face repo id ({first_line(exc)})") from None
    folder = Path(folder)
    return None if missing_model_files(folder, entry, family) else folder


def fetch_from_hub(
    repo: str,
    revision: str | None,
    *,
    entry: CatalogEntry | None = None,
    on_progress: DownloadCallback | None = None,
    offline: bool | None = None,
    cache_dir: str | Path | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """The repo's snapshot folder, from the Hugging Face cache or downloaded into it.

    A model that is not complete in the cache is a ModelNotFoundError at once when offline (HF_HUB_OFFLINE,
    or `offline=True`), and within seconds when the hub cannot be reached: one metadata request without
    retries comes first. Cancel (`cancel` set) raises Cancelled from the download threads' progress updates.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RevisionNotFoundError

    cached = local_snapshot(repo, revision, entry=entry, cache_dir=cache_dir)
    if cached is not None:
        return cached
    if offline if offline is not None else env_offline():
        raise not_downloaded_error(repo, revision, entry, _offline_reason())
    if cancel is not None and cancel.is_set():
        raise Cancelled("download cancelled")
    # Fails fast, with the reason, when the hub is out of reach; gives the files' sizes for the progress.
    info = hub_model_info(repo, revision, entry=entry, files_metadata=True)
    family = entry.family if entry else None
    kwargs = _snapshot_kwargs(entry, family, revision, hub_cache_dir(cache_dir))
    expected = _bytes_to_fetch(info, entry, family, repo_cache_folder(repo, cache_dir))
    try:
        folder = snapshot_download(
            repo, endpoint=hub_endpoint(), tqdm_class=_progress_class(on_progress, cancel, expected), **kwargs
        )
    except Cancelled:
        raise
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"model {model_label(repo, revision, entry)}: no such revision on the hub") from None
    except Exception as exc:  # noqa: BLE001 - the network fails in many classes; the user gets one line
        raise ModelNotFoundError(
            f"model {model_label(repo, revision, entry)} could not be downloaded ({type(exc).__name__}: "
            f"{first_line(exc)}): files already fetched are kept; run `{download_command(repo, revision, entry)}` "
            "to resume"
        ) from None
    return Path(folder)


def wanted_sizes(sizes: dict[str, int | None], entry: CatalogEntry | None, family: str | None) -> dict[str, int] | None:
    """Of a repo's files (path -> size), the ones a download fetches (`allow_patterns` less
    `hub_ignore_patterns`) with their sizes; None when there are none or a size is unknown."""
    from huggingface_hub.utils import filter_repo_objects

    wanted = list(
        filter_repo_objects(sizes, allow_patterns=allow_patterns(entry, family), ignore_patterns=hub_ignore_patterns(entry))
    )
    if not wanted or any(sizes[name] is None for name in wanted):
        return None
    return {name: int(sizes[name] or 0) for name in wanted}


def _bytes_to_fetch(info, entry: CatalogEntry | None, family: str | None, repo_folder: Path) -> int | None:
    """Sizes of the wanted files not yet in the cache at the hub's commit; None when the hub gave no sizes."""
    siblings = getattr(info, "siblings", None) or []
    wanted = wanted_sizes({s.rfilename: s.size for s in siblings if getattr(s, "rfilename", None)}, entry, family)
    if wanted is None:
        return None
    snapshot = repo_folder / "snapshots" / str(getattr(info, "sha", None) or "")
    return sum(size for name, size in wanted.items() if not (snapshot / name).is_file())


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def env_offline() -> bool:
    """huggingface_hub's offline switch (it also honours TRANSFORMERS_OFFLINE), read now rather than at its import."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def is_in_local_cache(
    repo: str, revision: str | None, entry: CatalogEntry | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """The cached snapshot when every needed file is there (for `studio models` and the window), else None."""
    try:
        return local_snapshot(repo, revision, entry=entry, cache_dir=cache_dir)
    except RequestError:
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
    """A config of a model folder ({} when it is absent), read defensively: the folder may be crafted, and
    a config nested 100,000 deep must be an `InvalidModelError` here, not a RecursionError in a picker."""
    try:
        return read_config(path)
    except FileNotFoundError:
        return {}


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


def load_folder(
    folder: Path, family: str, placement: Placement, *, allow_pickle: bool = False, safety: bool = True,
    networks: dict[str, Any] | None = None,
):
    """A StableDiffusionPipeline from a diffusers-layout folder, component by component.

    `networks`: the text encoder, UNet and VAE already made (OpenVINO's, from its cache): their weights
    are not read (so a folder whose weights are pickle only needs no opt-in: nothing is unpickled); the
    rest (tokenizer, scheduler, safety checker) and the folder's checks still come from the folder."""
    quiet_libraries()  # before the imports below: importing the pipeline module is what warns
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    check_folder_layout(folder, family)
    # Sane sizes, a usable tokenizer and configs that match their weights, before anything is built: an
    # absurd config would otherwise fail minutes later inside torch's allocator.
    check_model_folder(folder, family, safety=safety)
    dtype = placement.dtype
    use_st = None if allow_pickle else True
    text_encoder_class = _text_encoder_class(folder, CLIPTextModel, CLIPTextModelWithProjection)
    try:
        if networks is not None:
            unet, vae, text_encoder = networks["unet"], networks["vae"], networks["text_encoder"]
        elif family == "deci":
            try:
                from studio.engine.deci_unet import load_flexible_unet
            except ImportError:
                raise RequestError(f"{folder}: DeciDiffusion's UNet-NAS is not supported yet") from None
            unet = load_flexible_unet(folder / "flexible_unet", dtype=dtype)
        else:
            unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, use_safetensors=use_st)
        if networks is None:
            vae = AutoencoderKL.from_pretrained(
                folder, subfolder="vae", torch_dtype=placement.vae_dtype, use_safetensors=use_st
            )
            text_encoder = text_encoder_class.from_pretrained(
                folder, subfolder="text_encoder", torch_dtype=dtype, use_safetensors=use_st
            )
        tokenizer = _load_tokenizer(folder, CLIPTokenizer)
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


def _text_encoder_class(folder: Path, plain_class, projection_class):
    """The folder's CLIP text-encoder class; any other architecture is refused, with or without its weights."""
    te_config = _read_json(folder / "text_encoder" / "config.json")
    te_arch = (te_config.get("architectures") or ["CLIPTextModel"])[0]
    if te_arch not in TEXT_ENCODER_CLASSES:
        raise RequestError(f"{folder}: unsupported text encoder {te_arch!r} (expected a CLIP text model)")
    return projection_class if te_arch == "CLIPTextModelWithProjection" else plain_class


def _load_tokenizer(folder: Path, tokenizer_class):
    """The folder's tokenizer. `check_model_folder` has checked its files; what the tokenizers library still
    refuses (it raises a bare Exception, naming no file) is one line naming the folder (bad input)."""
    try:
        return tokenizer_class.from_pretrained(folder, subfolder="tokenizer")
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception for a broken vocabulary
        raise InvalidModelError(f"{folder / 'tokenizer'}: cannot be loaded ({first_line(exc)[:300]})") from None


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
