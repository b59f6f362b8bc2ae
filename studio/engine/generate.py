"""The Engine: loads models (and keeps them), runs txt2img / img2img with a preview at every step.

One Engine belongs to one thread: a diffusers pipeline must not be used from two threads at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio import __version__
from studio.engine import loading, schedulers
from studio.engine.catalog import ModelDefaults
from studio.engine.errors import Cancelled, GenerationError, RequestError
from studio.engine.loading import DownloadCallback, ModelSource, Placement
from studio.engine.precision import place_pipeline
from studio.engine.request import GenerationRequest, GenerationResult, StepEvent, request_fields

StepCallback = Callable[[StepEvent], None]
SCHEMA_VERSION = 1


@dataclass
class LoadedModel:
    source: ModelSource
    family: str
    placement: Placement
    txt2img: Any
    scheduler_config: dict
    scheduler_class: type
    safety_checker: Any = None
    model_hash: str | None = None
    path: Path | None = None
    revision: str | None = None
    notes: list[str] = field(default_factory=list)  # said once, with the first images after the load
    _img2img: Any = field(default=None, repr=False)

    @classmethod
    def from_pipeline(cls, source: ModelSource, family: str, placement: Placement, pipe, **extra) -> LoadedModel:
        """The model's own scheduler (config and class) and checker are read once, as loaded."""
        return cls(
            source=source,
            family=family,
            placement=placement,
            txt2img=pipe,
            scheduler_config=dict(pipe.scheduler.config),
            scheduler_class=type(pipe.scheduler),
            safety_checker=pipe.safety_checker,
            **extra,
        )

    @property
    def defaults(self) -> ModelDefaults:
        return self.source.defaults_for(self.scheduler_config.get("prediction_type"))

    @property
    def safety_default(self) -> bool:
        return bool(self.source.entry.safety_checker) if self.source.entry else self.safety_checker is not None

    @property
    def img2img(self):
        """img2img shares every component (and memory) with txt2img: no second load."""
        if self._img2img is None:
            from diffusers import StableDiffusionImg2ImgPipeline

            self._img2img = StableDiffusionImg2ImgPipeline(**self.txt2img.components)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img



class Engine:
    """Keeps up to `max_models` loaded pipelines; generates on the calling thread."""

    def __init__(
        self,
        device: str = "auto",
        dtype: str = "auto",
        *,
        max_models: int = 1,
        allow_ckpt: bool = False,
        on_download: DownloadCallback | None = None,
        offline: bool | None = None,
        cache_dir: str | Path | None = None,  # Hugging Face cache; None: the user's usual one
        single_file_configs: str | Path | None = None,  # component configs for non-standard single files
        preview: str = "auto",  # "auto" (TAESD if cached, else linear) | "linear" | "none"
    ):
        self.device = device
        self.dtype = dtype
        self.max_models = max(1, max_models)
        self.allow_ckpt = allow_ckpt
        self.on_download = on_download
        self.offline = offline
        self.cache_dir = cache_dir
        self.single_file_configs = single_file_configs
        self.preview_mode = preview
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._previewers: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ loading
    def placement(self) -> Placement:
        return loading.choose_placement(self.device, self.dtype)

    def load(self, model: str) -> LoadedModel:
        """The loaded model for `model`, from the cache or loaded now (downloading if needed and allowed)."""
        with self._lock:
            if ("memory", model) in self._models:
                return self._models[("memory", model)]
        source = loading.resolve_source(model)
        placement = self.placement()
        key = (source.kind, str(source.path or source.repo), source.revision, placement, loading.file_stamp(source))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            while len(self._models) >= self.max_models:
                self._models.popitem(last=False)  # free memory before loading the next one
                _free_accelerator_memory()
            loaded = self._load_source(source, placement)
            self._models[key] = loaded
            return loaded

    def add_pipeline(self, name: str, pipeline, family: str) -> LoadedModel:
        """Use an already built StableDiffusionPipeline as model `name` (benchmarks, scripts, notebooks)."""
        placement = self.placement()
        pipeline.set_progress_bar_config(disable=True)
        place_pipeline(pipeline, placement)
        loaded = LoadedModel.from_pipeline(ModelSource(name, "memory", family=family), family, placement, pipeline)
        with self._lock:
            self._models[("memory", name)] = loaded
        return loaded

    def loaded_models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def unload_all(self) -> None:
        with self._lock:
            self._models.clear()
            _free_accelerator_memory()

    def _load_source(self, source: ModelSource, placement: Placement) -> LoadedModel:
        model_hash = None
        revision = source.revision
        notes: list[str] = []
        if source.kind == "file":
            from studio.engine.single_file import load_single_file

            pipe, family, prediction = load_single_file(
                source.path, torch_dtype=placement.dtype, vae_dtype=placement.vae_dtype,
                allow_ckpt=self.allow_ckpt, config_dir=self.single_file_configs,
            )
            note = prediction.note(source.path, family)
            notes = [note] if note else []
            pipe.set_progress_bar_config(disable=True)
            place_pipeline(pipe, placement)
            model_hash = loading.file_sha256(source.path)[:10]
            path = source.path
        else:
            if source.kind == "folder":
                path = source.path
            else:
                path = loading.fetch_from_hub(
                    source.repo, source.revision, entry=source.entry,
                    on_progress=self.on_download, offline=self.offline, cache_dir=self.cache_dir,
                )
                revision = path.name  # the snapshot folder is named after the resolved commit
            family = source.family or loading.detect_folder_family(path)
            pipe = loading.load_folder(path, family, placement, allow_pickle=self.allow_ckpt)
        source.family = family
        return LoadedModel.from_pipeline(
            source, family, placement, pipe, model_hash=model_hash, path=path, revision=revision, notes=notes
        )

    # --------------------------------------------------------------------------------------- generation
    def generate(
        self,
        request: GenerationRequest,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Run one request; results in batch order. Raises RequestError, Cancelled or GenerationError."""
        request.validate()
        cancel = cancel or threading.Event()
        _raise_if_cancelled(cancel)
        model = self.load(request.model)
        req = request.with_defaults(model.defaults, model.family)
        _raise_if_cancelled(cancel)
        init_image, init_hash = _prepare_init_image(req) if req.is_img2img else (None, None)
        pipe = model.img2img if req.is_img2img else model.txt2img
        pipe.scheduler = self._scheduler_for(model, req)
        use_checker = model.safety_default if req.safety_checker is None else req.safety_checker
        pipe.safety_checker = model.safety_checker if use_checker else None
        previewer = self._previewer(model) if on_step else None
        try:
            output = self._run(pipe, model, req, init_image, on_step, previewer, cancel)
        except (Cancelled, RequestError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a job becomes one readable error
            raise GenerationError(_explain_failure(exc, req)) from exc
        finally:
            pipe.safety_checker = model.safety_checker
        nsfw_flags = output.nsfw_content_detected
        warnings, model.notes = model.notes, []  # a load's notes go with its first images, once
        results = []
        for index, image in enumerate(output.images):
            nsfw = None if nsfw_flags is None else bool(nsfw_flags[index])
            meta = build_metadata(model, req, pipe.scheduler, index, nsfw, init_hash)
            results.append(GenerationResult(image=image, seed=req.seed + index, nsfw=nsfw, metadata=meta, warnings=list(warnings)))
        return results

    def _run(self, pipe, model: LoadedModel, req: GenerationRequest, init_image, on_step, previewer, cancel):
        import torch

        generators = [torch.Generator("cpu").manual_seed(req.seed + i) for i in range(req.batch)]
        x0 = _capture_x0(pipe.scheduler)

        def step_end(p, i, t, tensors):
            _raise_if_cancelled(cancel)
            if on_step is not None:
                latents = x0.pop() if x0 else tensors["latents"]
                preview = previewer(latents) if previewer else None
                on_step(StepEvent(step=i + 1, total=p.num_timesteps, preview=preview, batch=req.batch))
            x0.clear()
            return {}

        kwargs: dict[str, Any] = {
            **_prompt_kwargs(pipe, req),
            "num_inference_steps": req.steps,
            "guidance_scale": req.guidance,
            "guidance_rescale": req.guidance_rescale,
            "num_images_per_prompt": req.batch,
            "generator": generators,
            "callback_on_step_end": step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if init_image is not None:
            kwargs.update(image=init_image, strength=req.strength)
        else:
            kwargs.update(width=req.width, height=req.height)
        with torch.inference_mode():
            output = pipe(**kwargs)
        _raise_if_cancelled(cancel)  # a cancel during the VAE decode still cancels
        return output

    def _scheduler_for(self, model: LoadedModel, req: GenerationRequest):
        if req.scheduler is None:  # the model's own, fresh: a previous request may have swapped it
            return model.scheduler_class.from_config(model.scheduler_config)
        return schedulers.make_scheduler(req.scheduler, model.scheduler_config)

    def _previewer(self, model: LoadedModel):
        from studio.engine.preview import LinearPreview, local_taesd

        if self.preview_mode == "none":
            return None
        key = (self.preview_mode, model.placement)
        if key not in self._previewers:
            wants_taesd = self.preview_mode == "auto"
            taesd = local_taesd(model.placement.device, model.placement.dtype, self.cache_dir) if wants_taesd else None
            self._previewers[key] = taesd or LinearPreview()
        return self._previewers[key]


def _raise_if_cancelled(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled("generation cancelled")


def _prompt_kwargs(pipe, req: GenerationRequest) -> dict[str, Any]:
    """The pipeline's prompt arguments.

    Plain prompts of up to 75 tokens go in as strings, so that path is exactly diffusers' own. Prompts
    with emphasis weights or BREAK, or longer than one chunk, go in as embeddings (A1111 syntax,
    75-token chunks). Bracket syntax whose weights all come to 1 (`(cat:1.0)`, `\\(`) is resolved to
    its plain text first.
    """
    from studio.engine.prompt_embeds import encode_prompts, needs_embeddings
    from studio.library.prompt_syntax import plain_text

    prompt, negative = req.prompt, req.negative_prompt or ""
    if not needs_embeddings(pipe.tokenizer, prompt, negative):
        plain_negative = plain_text(negative) if negative else ""
        return {"prompt": plain_text(prompt), "negative_prompt": plain_negative or None}
    encoder = pipe.text_encoder
    dtype = encoder.dtype if encoder is not None else pipe.unet.dtype
    prompt_embeds, negative_embeds, _ = encode_prompts(
        pipe, prompt, negative, device=pipe._execution_device, dtype=dtype
    )
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}


def _capture_x0(scheduler) -> list:
    """Wrap this scheduler instance's `step` to keep the predicted final latents (x0) after each step.

    DDIM / Euler return x0 as `pred_original_sample`; multistep solvers that work in data prediction
    (DPM++, UniPC) keep it as their newest `model_outputs` entry. Others (PNDM) give none: the caller
    previews the latents instead.
    """
    captured: list = []
    original = scheduler.step
    config = scheduler.config
    data_prediction = config.get("algorithm_type") in ("dpmsolver++", "sde-dpmsolver++") or config.get("predict_x0")

    def step(*args, **kwargs):
        out = original(*args, **kwargs)
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None and data_prediction and getattr(scheduler, "model_outputs", None):
            x0 = scheduler.model_outputs[-1]
        captured[:] = [] if x0 is None else [x0]
        return out

    scheduler.step = step
    return captured


def _prepare_init_image(req: GenerationRequest):
    from PIL import Image

    from studio.library.images import ImageLoadError, load_image, sha256_image, to_rgb

    source = req.init_image
    try:
        image = to_rgb(source) if isinstance(source, Image.Image) else load_image(source)
    except ImageLoadError as exc:
        raise RequestError(f"init image: {exc}") from None
    digest = sha256_image(image)
    if image.size != (req.width, req.height):
        image = image.resize((req.width, req.height), Image.Resampling.LANCZOS)
    return image, digest


def _explain_failure(exc: BaseException, req: GenerationRequest) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return (
            f"out of memory at {req.width}x{req.height}, batch {req.batch}: "
            "try a smaller size or batch, or close other programs using the GPU"
        )
    return f"generation failed: {type(exc).__name__}: {text[:500]}"


def _free_accelerator_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def _versions() -> dict[str, str]:
    import diffusers
    import torch

    return {"torch": torch.__version__, "diffusers": diffusers.__version__}


def _json_safe(value):
    """Strict JSON has no inf/nan, yet scheduler configs hold some (DPM++'s lambda_min_clipped = -inf)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def build_metadata(model: LoadedModel, req: GenerationRequest, scheduler, index: int, nsfw, init_hash) -> dict:
    """Our exact JSON (design.md section 6): enough to regenerate the same pixels."""
    import json

    fields = request_fields(req)
    fields["scheduler"] = req.scheduler or schedulers.name_of(scheduler)
    fields["init_image_sha256"] = init_hash
    source = model.source
    return {
        "schema": SCHEMA_VERSION,
        "app": "latent-studio",
        "app_version": __version__,
        "model": {
            "id": source.id,
            "repo": source.repo,
            "revision": model.revision,
            "family": model.family,
            "path": str(model.path) if source.kind in ("folder", "file") else None,
            "hash": model.model_hash,
        },
        "request": fields,
        "seed": req.seed + index,
        "batch_index": index,
        "scheduler_config": _json_safe(json.loads(json.dumps(dict(scheduler.config), default=str))),
        "device": model.placement.device,
        "dtype": model.placement.dtype_name,
        "nsfw": nsfw,
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
