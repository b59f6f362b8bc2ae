"""The Engine: loads models (and keeps them), runs txt2img / img2img with a preview at every step.

One Engine belongs to one thread: a diffusers pipeline must not be used from two threads at once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import __version__
from studio.engine import loading, schedulers
from studio.engine.backends import check_backend
from studio.engine.catalog import ModelDefaults
from studio.engine.errors import Cancelled, GenerationError, RequestError
from studio.engine.loading import DownloadCallback, ModelSource
from studio.engine.precision import Placement, choose_placement, place_pipeline
from studio.engine.request import GenerationRequest, GenerationResult, StepEvent, request_fields

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)
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
    _inpaint: Any = field(default=None, repr=False)
    networks: Any = field(default=None, repr=False)  # the LoRAs and embeddings loaded into it (extra_networks)

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
    def default_scheduler_name(self) -> str:
        """The name of the scheduler the model ships with ("PNDM", "DDIM", "LMS" ...)."""
        return schedulers.name_for_config({**self.scheduler_config, "_class_name": self.scheduler_class.__name__})

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

    @property
    def is_inpainting(self) -> bool:
        """A real inpainting model: its UNet takes 9 channels (latents, mask, masked image)."""
        config = getattr(self.txt2img.unet, "config", None) or {}
        return int(dict(config).get("in_channels", 4) or 4) == 9

    @property
    def inpaint(self):
        """Inpainting and outpainting share every component too (diffusers' inpaint pipeline runs a
        4-channel UNet by masked latent blending, a 9-channel inpainting UNet natively)."""
        if self._inpaint is None:
            from studio.engine.inpaint import inpaint_pipeline

            self._inpaint = inpaint_pipeline(self.txt2img.components)
            self._inpaint.set_progress_bar_config(disable=True)
        return self._inpaint



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
        backend: str = "auto",  # "auto" (OpenVINO on the CPU where installed) | "torch" | "openvino"
        threads: int | None = None,  # OpenVINO's CPU threads; None: all physical cores
        openvino_cache: str | Path | None = None,  # converted networks; None: the user's cache
        on_status: Callable[[str], None] | None = None,  # what a long load is doing ("Optimising…")
        networks: Any = None,  # LoRA and embedding folders (library NetworkCatalog); None: the user's
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
        self.backend = check_backend(backend)
        self.threads = threads
        self.openvino_cache = openvino_cache
        self.on_status = on_status
        self._networks_catalog = networks  # what the ExtraNetworks made on first use starts from
        self._networks = None
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._previewers: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ loading
    def placement(self, request: GenerationRequest | None = None) -> Placement:
        """Where models run. OpenVINO applies LoRAs and embeddings in float32 and bfloat16, not in int8
        (its calibration would quantize them away): with "auto", an int8 job that uses them runs on
        PyTorch instead."""
        placement = choose_placement(self.device, self.dtype, self.backend)
        if (
            self.backend == "auto" and placement.backend == "openvino" and placement.dtype_name == "int8"
            and request is not None and self._uses_networks(request)
        ):
            return choose_placement(self.device, "auto", "torch")
        return placement

    def _uses_networks(self, request: GenerationRequest) -> bool:
        return self._extra_networks().uses_networks(request.prompt, request.negative_prompt or "")

    def set_network_folders(self, lora_folders, embedding_folders) -> None:
        """Find LoRAs and embeddings in the app's folders and these (the window's choice, per job); what
        is loaded into the models stays loaded."""
        from studio.library.extra_networks import NetworkCatalog

        networks = self._extra_networks()
        catalog = NetworkCatalog.with_folders(lora_folders, embedding_folders)
        if networks.catalog.folders() != catalog.folders():
            networks.catalog = catalog

    def _extra_networks(self):
        if self._networks is None:
            from studio.engine.extra_networks import ExtraNetworks

            self._networks = ExtraNetworks(self._networks_catalog, allow_pickle=self.allow_ckpt)
        return self._networks

    def load(
        self, model: str, cancel: threading.Event | None = None, *, request: GenerationRequest | None = None
    ) -> LoadedModel:
        """The loaded model for `model`, from the cache or loaded now (downloading if needed and allowed),
        placed for `request` (see :meth:`placement`).

        `cancel` stops an OpenVINO conversion between its parts (Cancelled)."""
        with self._lock:
            if ("memory", model) in self._models:
                return self._models[("memory", model)]
        source = loading.resolve_source(model)
        placement = self.placement(request)
        key = (source.kind, str(source.path or source.repo), source.revision, placement, loading.file_stamp(source))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            while len(self._models) >= self.max_models:
                self._models.popitem(last=False)  # free memory before loading the next one
                _free_accelerator_memory()
            loaded = self._load_source(source, placement, cancel)
            self._models[key] = loaded
            return loaded

    def add_pipeline(self, name: str, pipeline, family: str, identity: str | None = None) -> LoadedModel:
        """Use an already built StableDiffusionPipeline as model `name` (benchmarks, scripts, notebooks).

        On the OpenVINO backend its networks are converted and cached under `identity` (default: the
        name and a fingerprint of the weights)."""
        placement = self.placement()
        pipeline.set_progress_bar_config(disable=True)
        place_pipeline(pipeline, placement)
        notes: list[str] = []
        if placement.backend == "openvino":
            if identity is None:
                from studio.engine.openvino_pipeline import weights_fingerprint

                identity = f"memory:{name}:{weights_fingerprint(pipeline)}"
            placement, notes = self._to_openvino(pipeline, placement, identity, name, None)
        loaded = LoadedModel.from_pipeline(ModelSource(name, "memory", family=family), family, placement, pipeline, notes=notes)
        with self._lock:
            self._models[("memory", name)] = loaded
        return loaded

    def loaded_models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def unload_all(self) -> None:
        with self._lock:
            self._models.clear()
            _free_accelerator_memory()

    def _load_source(self, source: ModelSource, placement: Placement, cancel: threading.Event | None = None) -> LoadedModel:
        model_hash = None
        revision = source.revision
        notes: list[str] = []
        identity = ""  # what the OpenVINO cache knows the weights by
        networks = None  # the OpenVINO networks when its cache holds them all
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
            full_hash = loading.file_sha256(source.path)
            model_hash = full_hash[:10]
            identity = f"file:{full_hash}"
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
            if placement.backend == "openvino":
                identity = self._folder_identity(source, path, revision)
                networks, more = self._cached_openvino(placement, identity, source.id, cancel)
                notes = [*notes, *more]
            pipe = loading.load_folder(path, family, placement, allow_pickle=self.allow_ckpt, networks=networks)
        source.family = family
        if placement.backend == "openvino" and networks is None:  # else on OpenVINO already, from its cache
            placement, more = self._to_openvino(pipe, placement, identity, source.id, cancel)
            notes = [*notes, *more]
        return LoadedModel.from_pipeline(
            source, family, placement, pipe, model_hash=model_hash, path=path, revision=revision, notes=notes
        )

    @staticmethod
    def _folder_identity(source: ModelSource, path: Path, revision: str | None) -> str:
        """What the OpenVINO cache knows a folder's or a Hub snapshot's weights by."""
        if source.kind == "folder":
            from studio.engine.openvino_pipeline import folder_identity

            return folder_identity(path)
        return f"hub:{source.repo}@{revision}"

    def _cached_openvino(self, placement: Placement, identity: str, label: str, cancel) -> tuple[dict | None, list[str]]:
        """The networks compiled from the OpenVINO cache when it holds every part (their torch weights are
        then never read), else None: the model loads in torch and moves (a part that does not compile
        fails there again, and falls back to torch with its note)."""
        from studio.engine.openvino_pipeline import OpenVinoFailed, cached_networks
        from studio.library.openvino_cache import OpenVinoCache

        try:
            found = cached_networks(
                identity=identity, label=label, precision=placement.dtype_name,
                cache=OpenVinoCache(self.openvino_cache), threads=self.threads, cancel=cancel,
            )
        except OpenVinoFailed as exc:
            log.info("the cached OpenVINO networks of %s do not compile (%s): loading in torch", label, exc)
            return None, []
        if found is None:
            return None, []
        networks, prepared = found
        return networks.as_components(), self._openvino_notes(placement, prepared)

    def _to_openvino(self, pipe, placement: Placement, identity: str, label: str, cancel) -> tuple[Placement, list[str]]:
        """The pipeline's networks on OpenVINO; on any failure, the whole pipeline on torch and one note."""
        from studio.engine.openvino_pipeline import OpenVinoFailed, move_to_openvino
        from studio.library.openvino_cache import OpenVinoCache

        try:
            prepared = move_to_openvino(
                pipe, identity=identity, label=label, precision=placement.dtype_name,
                cache=OpenVinoCache(self.openvino_cache), threads=self.threads, on_status=self.on_status, cancel=cancel,
            )
        except OpenVinoFailed as exc:
            fallback = choose_placement(placement.device, "auto", "torch")
            place_pipeline(pipe, fallback)
            log.warning("OpenVINO backend unavailable for %s: %s", label, exc)
            return fallback, [f"OpenVINO could not run this model ({exc}); it runs on PyTorch ({fallback.dtype_name}) instead"]
        return placement, self._openvino_notes(placement, prepared)

    @staticmethod
    def _openvino_notes(placement: Placement, prepared) -> list[str]:
        notes = list(prepared.notes)
        if prepared.converted:
            notes.append(f"optimised for this CPU with OpenVINO in {prepared.seconds:.0f} s (cached for next time)")
        if placement.dtype_name == "bfloat16" and prepared.precisions.get("unet") == "f32":
            notes.append("this CPU has no native bfloat16: OpenVINO runs float32")
        return notes

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
        model = self.load(request.model, cancel, request=request)
        if model.is_inpainting and not request.is_masked:
            raise RequestError(
                f"{model.source.id} is an inpainting model: give it an init image and a mask (or an expansion to outpaint)"
            )
        canvas = masked = None
        inputs: dict[str, Image.Image] = {}
        if request.is_masked:
            from studio.engine import inpaint

            canvas = inpaint.load_canvas(request, model.family)
            request = inpaint.sized(request, canvas, model.family)
        req = request.with_defaults(model.defaults, model.family)
        _raise_if_cancelled(cancel)
        if canvas is not None:
            masked = inpaint.prepare(req, canvas)
            init_image, init_hash, pipe = masked.init, masked.init_hash, model.inpaint
            inputs = canvas.inputs()
        elif req.is_img2img:
            init_image, init_hash, read = _prepare_init_image(req)
            inputs, pipe = {init_hash: read}, model.img2img
        else:
            init_image, init_hash, pipe = None, None, model.txt2img
        pipe.scheduler = self._scheduler_for(model, req)
        use_checker = model.safety_default if req.safety_checker is None else req.safety_checker
        pipe.safety_checker = model.safety_checker if use_checker else None
        previewer = self._previewer(model) if on_step else None
        extras = self._prepare_networks(model, req)
        try:
            output = self._run(pipe, model, req, init_image, on_step, previewer, cancel, masked, extras)
        except (Cancelled, RequestError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a job becomes one readable error
            raise GenerationError(_explain_failure(exc, req)) from exc
        finally:
            pipe.safety_checker = model.safety_checker
        nsfw_flags = output.nsfw_content_detected
        warnings, model.notes = model.notes, []  # a load's notes go with its first images, once
        warnings = [*warnings, *extras.notes, *(masked.notes if masked else [])]
        results = []
        for index, image in enumerate(output.images):
            nsfw = None if nsfw_flags is None else bool(nsfw_flags[index])
            mask_hash = (masked.mask_hash or None) if masked is not None else None
            meta = build_metadata(model, req, pipe.scheduler, index, nsfw, init_hash, mask_hash)
            meta.update(extras.metadata())
            if masked is not None:
                image = inpaint.paste_back(masked, image)
            results.append(GenerationResult(
                image=image, seed=req.seed + index, nsfw=nsfw, metadata=meta, warnings=list(warnings), inputs=dict(inputs),
            ))
        return results

    def _prepare_networks(self, model: LoadedModel, req: GenerationRequest):
        """The job's LoRAs active on the model (or none) and its embeddings loaded (extra_networks)."""
        networks = self._extra_networks()
        if model.placement.backend == "openvino" and model.placement.dtype_name == "int8":
            return networks.unapplied(
                req.prompt, req.negative_prompt or "", "OpenVINO applies them in float32 and bfloat16, not int8; "
                "use the PyTorch backend or another precision",
            )
        if model.placement.backend not in ("torch", "openvino"):
            return networks.unapplied(req.prompt, req.negative_prompt or "", "they need the PyTorch or OpenVINO backend")
        return networks.prepare(model, req.prompt, req.negative_prompt or "")

    def _run(self, pipe, model: LoadedModel, req: GenerationRequest, init_image, on_step, previewer, cancel, masked, extras):
        import torch

        # One CPU generator per image, seeded seed+i: the start noise and every scheduler's own noise
        # (ancestral / SDE samplers) come from it, never from the global RNG (design.md section 7).
        generators = [torch.Generator("cpu").manual_seed(req.seed + i) for i in range(req.batch)]
        x0 = _capture_x0(pipe.scheduler)
        progress = _StepProgress(req.steps)

        def step_end(p, i, t, tensors):
            _raise_if_cancelled(cancel)  # at every UNet evaluation, so a cancel never waits a whole step
            if on_step is not None:
                event = progress.advance(i, p.num_timesteps, len(p.scheduler.timesteps))
                if event is not None:
                    latents = x0[0] if x0 else tensors["latents"]
                    preview = previewer(latents) if previewer else None
                    on_step(StepEvent(step=event[0], total=event[1], preview=preview, batch=req.batch))
            x0.clear()
            return {}

        kwargs: dict[str, Any] = {
            **_prompt_kwargs(pipe, extras),
            "num_inference_steps": req.steps,
            "guidance_scale": req.guidance,
            "guidance_rescale": req.guidance_rescale,
            "num_images_per_prompt": req.batch,
            "generator": generators,
            "callback_on_step_end": step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if masked is not None:
            from studio.engine.inpaint import latent_fill

            pipe.latent_fill = latent_fill(masked, req)
            kwargs.update(image=masked.init, mask_image=masked.mask, strength=req.strength, width=req.width, height=req.height)
        elif init_image is not None:
            kwargs.update(image=init_image, strength=req.strength)
        else:
            kwargs.update(width=req.width, height=req.height)
        try:
            with torch.inference_mode():
                output = pipe(**kwargs)
        finally:
            if masked is not None:
                pipe.latent_fill = None
        _raise_if_cancelled(cancel)  # a cancel during the VAE decode still cancels
        return output

    def _scheduler_for(self, model: LoadedModel, req: GenerationRequest):
        """A fresh scheduler for this request (a previous request may have swapped or stepped the last one).

        The model's own scheduler, with its exact config, when the request leaves it to the model or names
        it: metadata records the model's default by name (`name_for_config`), so that name must give back
        exactly that scheduler for an image's metadata to regenerate its pixels, whatever the model ships.
        """
        if req.scheduler is None or req.scheduler == model.default_scheduler_name:
            return model.scheduler_class.from_config(model.scheduler_config)
        if req.scheduler not in schedulers.SCHEDULERS:
            raise RequestError(
                f"scheduler {req.scheduler!r} is not offered (only a model that ships with it can use it; "
                f"this model's own is {model.default_scheduler_name!r}): choose one of {', '.join(schedulers.names())}"
            )
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


def _prompt_kwargs(pipe, extras) -> dict[str, Any]:
    """The pipeline's prompt arguments.

    Plain prompts of up to 75 tokens go in as strings, so that path is exactly diffusers' own. Prompts
    with emphasis weights or BREAK, or longer than one chunk, go in as embeddings (A1111 syntax,
    75-token chunks). Bracket syntax whose weights all come to 1 (`(cat:1.0)`, `\\(`) is resolved to
    its plain text first. `extras` (extra_networks.Prepared) gives the texts: extra-network tags
    (`<lora:name:0.8>`) removed, as A1111 does, and embedding names turned into their tokens.
    """
    from studio.engine.prompt_embeds import encode_prompts, needs_embeddings
    from studio.library.prompt_syntax import plain_text

    prompt, negative = extras.prompt, extras.negative
    if not needs_embeddings(pipe.tokenizer, prompt, negative):
        plain_negative = plain_text(negative) if negative else ""
        return {"prompt": plain_text(prompt), "negative_prompt": plain_negative or None}
    encoder = pipe.text_encoder
    dtype = encoder.dtype if encoder is not None else pipe.unet.dtype
    prompt_embeds, negative_embeds, _ = encode_prompts(
        pipe, prompt, negative, device=pipe._execution_device, dtype=dtype
    )
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}


class _StepProgress:
    """Maps the pipeline's UNet evaluations onto the user's steps, for StepEvent.

    Most schedulers evaluate the UNet once per step, but PNDM (PLMS) evaluates it once more than the
    steps asked for (its first step needs two evaluations), and img2img runs only the last part of the
    schedule. Users count in their own steps: `total` is the steps that run (the request's steps, or
    their img2img share), `step` rises from 1 to `total`, each value reported once; an evaluation that
    completes no new step reports nothing (the cancel check still runs at each one).
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.last = 0

    def advance(self, index: int, evaluations: int, schedule_length: int) -> tuple[int, int] | None:
        """(step, total) when evaluation `index` (0-based, of `evaluations` in this run) completes a new
        step, else None. `schedule_length` is the evaluations of the whole schedule for `steps` steps."""
        if evaluations <= 0:
            return None
        # img2img runs the last `evaluations` of the schedule's `schedule_length`; the floor keeps PNDM's
        # extra evaluation out of the count (16 of 31 for 30 steps -> 15 steps; 31 of 31 -> 30).
        total = min(self.steps, max(1, evaluations * self.steps // schedule_length)) if schedule_length > 0 else self.steps
        step = min(total, (index + 1) * total // evaluations)
        if step <= self.last:
            return None
        self.last = step
        return step, total


def _capture_x0(scheduler) -> list:
    """Wrap this scheduler instance's `step` to keep the predicted final latents (x0) after each step.

    DDIM / Euler return x0 as `pred_original_sample`; multistep solvers that work in data prediction
    (DPM++, UniPC) keep it as their newest `model_outputs` entry. Others (PNDM) give none: the caller
    previews the latents instead.

    The wrapper keeps `step`'s signature because diffusers reads it: the pipelines'
    ``prepare_extra_step_kwargs`` pass ``generator`` (and ``eta``) only to a step whose
    ``inspect.signature`` names them. A bare ``(*args, **kwargs)`` wrapper hid them, so ancestral
    samplers ("Euler a") drew their per-step noise from the global RNG and a fixed seed did not
    reproduce. ``functools.wraps`` sets ``__wrapped__``, which ``inspect.signature`` follows;
    ``__signature__`` says the same to readers that do not follow wrappers.
    """
    import functools
    import inspect

    captured: list = []
    original = scheduler.step
    config = scheduler.config
    data_prediction = config.get("algorithm_type") in ("dpmsolver++", "sde-dpmsolver++") or config.get("predict_x0")

    @functools.wraps(original)
    def step(*args, **kwargs):
        out = original(*args, **kwargs)
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None and data_prediction and getattr(scheduler, "model_outputs", None):
            x0 = scheduler.model_outputs[-1]
        captured[:] = [] if x0 is None else [x0]
        return out

    step.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    scheduler.step = step
    return captured


def _prepare_init_image(req: GenerationRequest):
    """(the init image at the generation size, its hash, the image as read: what the hash is of)."""
    from PIL import Image

    from studio.engine.init_image import read_init_image

    read, digest = read_init_image(req.init_image)
    image = read
    if image.size != (req.width, req.height):
        image = image.resize((req.width, req.height), Image.Resampling.LANCZOS)
    return image, digest, read


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


def _versions(backend: str = "torch") -> dict[str, str]:
    import diffusers
    import torch

    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__}
    if backend == "openvino":
        from studio.engine.backends import openvino_version

        versions["openvino"] = openvino_version() or "unknown"
    return versions


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


def build_metadata(model: LoadedModel, req: GenerationRequest, scheduler, index: int, nsfw, init_hash, mask_hash=None) -> dict:
    """Our exact JSON (design.md section 6): enough to regenerate the same pixels.

    `request` is the request as run (defaults filled in, the scheduler by its canonical name, the
    model's own one by `name_for_config`), with the batch's first seed and its size: image `index` of a
    batch is reproduced exactly by running the same batch again (`request_from_metadata`), because
    batched maths may round differently from a single image's. `seed` is this image's own (seed + index).
    """
    import json

    fields = request_fields(req)
    fields["scheduler"] = req.scheduler or schedulers.name_of(scheduler)
    fields["init_image_sha256"] = init_hash
    if req.is_masked:
        fields["mask_image_sha256"] = mask_hash  # None for an outpainting with no mask of its own
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
        "scheduler_config": _json_safe(
            json.loads(json.dumps({"_class_name": type(scheduler).__name__, **scheduler.config}, default=str))
        ),
        "device": model.placement.device,
        "dtype": model.placement.dtype_name,
        "backend": model.placement.backend,
        "nsfw": nsfw,
        "versions": _versions(model.placement.backend),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
