"""The generation parameters of the studio: one declared property each, and the request they make.

Every control of the parameter panel is a :class:`~studio.viewmodel.properties.Property` here, bound to
its widget in one line; the preferences file keeps the ones declared ``persist=True`` (reading the
declarations, not a hand-written list). Choosing a model applies that model's defaults (its authors'
recommended steps, guidance, size, scheduler). :meth:`GenerationSettings.apply` takes the fields read
from any image's metadata (a result, a gallery image, a dropped file) and is the one way they are
restored; :meth:`GenerationSettings.to_request` makes the request a job runs.

The inpainting options (mask blur, masked content, inpaint area, padding, mask mode, outpaint fill) are
AUTOMATIC1111's, declared under the request's field names so that they reach every request and come back
from an image like any other parameter; the engine ignores them unless the canvas sends a mask or an
outpaint expansion with the job.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import QObject, Signal

from studio.engine.backends import BACKEND_LABELS, BACKENDS, openvino_installed
from studio.engine.catalog import CATALOG, FAMILY_SIZE_MULTIPLE, CatalogEntry, ModelDefaults, family_defaults
from studio.engine.devices import DeviceChoice, device_choices
from studio.engine.errors import RequestError, first_line
from studio.engine.loading import local_model_kind
from studio.engine.model_info import check_local_model
from studio.engine.request import MAX_BATCH, MAX_SEED, MAX_SIDE, GenerationRequest
from studio.engine.schedulers import names as scheduler_names
from studio.engine.schedulers import resolve_name
from studio.library.display import printable
from studio.library.masks import (
    DEFAULT_MASK_BLUR,
    DEFAULT_PADDING,
    INPAINT_AREAS,
    MASKED_CONTENT,
    OUTPAINT_FILLS,
)
from studio.viewmodel.properties import Property, ViewModel, between, one_of, properties

__all__ = [
    "INPAINT_AREA_CHOICES",
    "MASKED_CONTENT_CHOICES",
    "MASK_MODES",
    "MAX_PANEL_BATCH",
    "MAX_PANEL_MASK_BLUR",
    "MAX_PANEL_PADDING",
    "MAX_SEED",
    "MAX_SIDE",
    "MAX_STEPS",
    "MAX_THREADS",
    "MIN_SIDE",
    "OUTPAINT_FILL_CHOICES",
    "PRECISIONS",
    "SEED_MODES",
    "BackendChoice",
    "GenerationSettings",
    "ModelChoice",
]

MIN_SIDE = 64
MAX_STEPS = 500
MAX_PANEL_BATCH = min(MAX_BATCH, 16)
MAX_THREADS = 1024
"""The most CPU threads a job may ask OpenVINO for (the command line's --threads allows as many)."""
MAX_PANEL_MASK_BLUR = 64
"""A1111's slider's top: a wider blur only smears the mask's edge over the kept picture (the command line's
--mask-blur allows up to the engine's limit; such an image's value is skipped when restored here)."""
MAX_PANEL_PADDING = 256
"""A1111's "Only masked padding" slider's top."""
NOT_RESTORED = frozenset({"model", "seed", "width", "height", "batch", "safety_checker"})
"""Request fields :meth:`GenerationSettings.apply` does not take one by one: the model and the seed have
their own rules, the size is set as a pair, and an image's batch size or safety setting is not a
parameter of its look."""
SEED_MODES = (("Random", "random"), ("Fixed", "fixed"), ("Reuse last", "reuse"))
SIZE_PRESETS = {
    "sd1": [(512, 512), (512, 768), (768, 512), (640, 448), (448, 640)],
    "sd2": [(768, 768), (768, 1024), (1024, 768), (512, 512), (896, 640)],
    "deci": [(512, 512), (512, 768), (768, 512), (640, 448), (448, 640)],
}
PRECISIONS = (
    ("Auto", "auto", "float16 on a GPU; on the CPU bfloat16 if it has native bfloat16 (AVX512-BF16, AMX), else float32"),
    ("float32", "float32", "Full precision: the reference result, the most memory"),
    (
        "bfloat16",
        "bfloat16",
        "UNet and text encoder in bfloat16, VAE in float32: half the memory. On the CPU it is only fast "
        "with native bfloat16 (AVX512-BF16 or AMX); elsewhere it is many times slower than float32",
    ),
    ("float16", "float16", "GPU only: half the memory and time; SD 2.1's attention is computed in float32"),
    (
        "int8 (OpenVINO)",
        "int8",
        "Needs the OpenVINO backend and NNCF (pip install 'latent-studio[int8]'): the UNet quantized to 8 bits, "
        "calibrated on the model on its first use (minutes, then cached): about twice bfloat16's speed, "
        "slightly different images",
    ),
)
MASKED_CONTENT_CHOICES = (
    ("Original", "original", "Starts from the picture under the mask: changes it, keeps its colours and shapes"),
    ("Fill", "fill", "The masked area is first filled with its surroundings' colours: removes what was there"),
    ("Latent noise", "noise", "Starts from pure noise: new content for the masked area (needs strength near 1)"),
    ("Latent nothing", "nothing", "Starts from zero latents: flat, new content (needs strength near 1)"),
)
"""A1111's "Masked content": (label, value, tooltip)."""
INPAINT_AREA_CHOICES = (("Whole picture", "whole"), ("Only masked", "masked"))
"""A1111's "Inpaint area": (label, value)."""
MASK_MODES = (("Inpaint masked", False), ("Inpaint not masked", True))
"""A1111's "Mask mode": (label, invert_mask)."""
OUTPAINT_FILL_CHOICES = (("Stretch edges", "edge"), ("Noise", "noise"))
"""What an outpaint expansion starts as: (label, value)."""
BACKEND_TIPS = {
    "auto": "OpenVINO on the CPU where it is installed (faster there), PyTorch on a GPU",
    "torch": "PyTorch on any device: the reference results",
    "openvino": "CPU only: the model is optimised for this CPU on first use (minutes, then cached); "
    "Models lists what is cached",
}


class BackendChoice(NamedTuple):
    """One entry of the backend list: what the job asks for, what the list shows, and why it is greyed."""

    value: str
    label: str
    available: bool
    reason: str = ""  # why it is not available, or what it does (the entry's tooltip)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model list: what it shows and the spec it stands for."""

    label: str
    spec: str
    local: bool


def _canonical_scheduler(name: Any) -> str | None:
    """A property check: any spelling the engine accepts, stored as its canonical name."""
    if name is None:
        return None
    try:
        return resolve_name(str(name))
    except RequestError as exc:
        raise ValueError(str(exc)) from None


def _usable_device(value: str) -> str:
    """A property check: a device of this machine (a GPU from another machine's preferences is refused)."""
    if not any(c.value == value and c.available for c in device_choices()):
        raise ValueError(f"device {value!r} is not available here")
    return value


def _model_list(value: list) -> list[str]:
    """A property check: the local models as kept, paths only (a hand-edited file's numbers, lists or
    empty strings, catalogue ids and duplicates are dropped), so that every entry can be listed and chosen."""
    return list(dict.fromkeys(s for s in value if isinstance(s, str) and s.strip() and s not in CATALOG))


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("no model chosen")
    return value


class GenerationSettings(ViewModel):
    """The parameters of the next generation. Headless: widgets bind to it (:mod:`studio.ui.bind`).

    ``message(str)`` carries a one-line refusal or confirmation (a folder that is not a model) for the
    status bar.
    """

    message = Signal(str)

    # Declaration order is restore order: the model list, then the model (which applies its defaults),
    # then the values the user had set over those defaults.
    user_models = Property(
        [], kind=list, persist=True, check=_model_list, key="local_models", doc="local folders and files the user added"
    )
    server_models = Property({}, kind=dict, doc="with a server as the backend: its folders' models, name -> family")
    model = Property("sd-1.4", persist=True, check=_not_empty)
    scheduler = Property(None, kind=str, persist=True, check=_canonical_scheduler, doc="None: the model's own")
    steps = Property(50, persist=True, check=between(1, MAX_STEPS))
    guidance = Property(7.5, persist=True, check=between(0.0, 50.0))
    guidance_rescale = Property(0.0, persist=True, check=between(0.0, 1.0))
    seed_mode = Property("random", persist=True, check=one_of([value for _label, value in SEED_MODES]))
    seed = Property(0, persist=True, check=between(0, MAX_SEED))
    width = Property(512, persist=True, check=between(MIN_SIDE, MAX_SIDE))
    height = Property(512, persist=True, check=between(MIN_SIDE, MAX_SIDE))
    batch = Property(1, persist=True, check=between(1, MAX_PANEL_BATCH))
    strength = Property(0.75, persist=True, check=between(0.01, 1.0))
    mask_blur = Property(
        DEFAULT_MASK_BLUR, persist=True, check=between(0, MAX_PANEL_MASK_BLUR), doc="px the mask's edge is blurred"
    )
    masked_content = Property("original", persist=True, check=one_of(MASKED_CONTENT), doc="what the masked area starts from")
    inpaint_area = Property("whole", persist=True, check=one_of(INPAINT_AREAS), doc="the whole picture, or only the masked box")
    padding = Property(
        DEFAULT_PADDING, persist=True, check=between(0, MAX_PANEL_PADDING), doc="px around the mask with 'Only masked'"
    )
    invert_mask = Property(False, persist=True, doc="A1111's 'Inpaint not masked': regenerate what is not painted")
    outpaint_fill = Property("edge", persist=True, check=one_of(OUTPAINT_FILLS), doc="what an outpaint expansion starts as")
    device = Property("auto", persist=True, check=_usable_device)
    dtype = Property("auto", persist=True, check=one_of([value for _label, value, _tip in PRECISIONS]))
    backend = Property("auto", persist=True, check=one_of(BACKENDS), doc="what runs the networks: auto, torch, openvino")
    threads = Property(
        0,
        persist=True,
        check=between(0, MAX_THREADS),
        doc="OpenVINO's CPU threads; 0: Auto (all physical cores). Fewer keep the computer responsive while it renders",
    )
    safety_checker = Property(True, persist=True)

    # Shown, not kept: what the panel says about the current choice.
    model_note = Property("", doc="the catalogue's note on the model, or why it cannot run yet")
    default_scheduler = Property("", doc="the name of the model's own scheduler, when known")
    size_problem = Property("", doc="why the size does not suit the model ('' when it does)")
    has_init_image = Property(False, doc="an img2img image is on the canvas: strength applies")
    has_mask = Property(
        False, doc="the canvas has a mask or an outpaint expansion: the inpainting options apply (set by the session)"
    )

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._last_seed: int | None = None
        self._local_kind: tuple[str, tuple[str, str | None]] | None = None  # (spec, its (family, prediction))
        self.model_changed.connect(self._on_model_changed)
        self.width_changed.connect(self._check_size)
        self.height_changed.connect(self._check_size)
        self.apply_model_defaults()

    # ---------------------------------------------------------------------------------- the model
    def catalogue_entry(self) -> CatalogEntry | None:
        return CATALOG.get(self.model)

    def model_choices(self) -> list[ModelChoice]:
        """The model list: the catalogue, the local models the user added, then (with a server as the
        backend) the models of the server's folders, by name."""
        catalogue = [ModelChoice(entry.name, entry.id, False) for entry in CATALOG.values()]
        server = [ModelChoice(server_name(name), SERVER_PREFIX + name, False) for name in self.server_models]
        return catalogue + [ModelChoice(local_name(spec), spec, True) for spec in self.user_models] + server

    def model_label(self) -> str:
        entry = self.catalogue_entry()
        if entry:
            return entry.name
        if self.model.startswith(SERVER_PREFIX):
            return server_name(self.model.removeprefix(SERVER_PREFIX))
        return local_name(self.model)

    def local_models(self) -> list[str]:
        return list(self.user_models)

    def select_model(self, spec: str) -> None:
        """Choose a model; a local one not in the list yet is added, unchecked (the command line's
        --model, restored preferences), by :meth:`_on_model_changed`, as for any other way it is set."""
        self.model = spec

    def try_add_local_model(self, spec: str) -> bool:
        """Add a folder or file the user chose, if it is a model; otherwise say why and change nothing.

        The file may be anything, crafted included: `check_local_model` names every problem it knows as a
        RequestError (an InvalidModelError for a malformed header or an absurd config). Anything else it
        raises is still a refusal in the status bar, never a traceback that leaves the state half-updated.
        """
        try:
            check_local_model(spec)
        except RequestError as exc:
            self.message.emit(f"Not added: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - an unreadable pick must not take the window down
            self.message.emit(f"Not added: {Path(spec).name}: cannot be read as a model ({first_line(exc)})")
            return False
        self.select_model(spec)
        self.message.emit(f"Added {Path(spec).name}")
        return True

    def remove_local_model(self, spec: str) -> bool:
        """Take a local model off the list (its files are not touched); the first catalogue model is
        chosen if it was the current one."""
        if spec not in self.user_models:
            return False
        if self.model == spec:
            self.model = next(iter(CATALOG))
        self.user_models = [s for s in self.user_models if s != spec]
        return True

    def remove_current_local_model(self) -> bool:
        spec = self.model
        if self.remove_local_model(spec):
            self.message.emit(f"Removed {Path(spec).name} from the model list (its files are untouched)")
            return True
        self.message.emit("The current model is from the catalogue: remove its download in Models")
        return False

    def kind(self) -> tuple[str, str | None]:
        """(family, prediction type) of the chosen model; a local one's is read once per choice."""
        entry = self.catalogue_entry()
        if entry:
            return entry.family, None
        if self.model.startswith(SERVER_PREFIX):  # as the server said (its files are not here to read)
            return self.server_models.get(self.model.removeprefix(SERVER_PREFIX)) or "sd1", None
        if self._local_kind is None or self._local_kind[0] != self.model:
            try:
                kind = local_model_kind(self.model)
            except (RuntimeError, ValueError):  # "~nobody/model": no such home; a guess, as for any unreadable spec
                kind = ("sd1", None)
            self._local_kind = (self.model, kind)
        return self._local_kind[1]

    def family(self) -> str:
        return self.kind()[0]

    def defaults(self) -> ModelDefaults:
        entry = self.catalogue_entry()
        return entry.defaults if entry else family_defaults(*self.kind())

    def safety_available(self) -> bool:
        """Whether the model ships a safety checker (the switch is shown only then)."""
        entry = self.catalogue_entry()
        return bool(entry and entry.safety_checker)

    def apply_model_defaults(self) -> None:
        """The model authors' defaults (:class:`ModelDefaults`) for every property that has one: steps,
        guidance, guidance rescale, strength, size; and the model's own scheduler."""
        self._local_kind = None  # chosen again: read again (a YAML config may have been put beside a file)
        d = self.defaults()
        declared = properties(type(self))
        for field in dataclasses.fields(d):  # every default the model has for a declared property
            if field.name in declared and field.name != "scheduler":
                setattr(self, field.name, getattr(d, field.name))
        self.scheduler = None  # the model's own, which may be named once its configs are read
        self.default_scheduler = ""
        self.set_size(d.size, d.size)
        self._check_size()

    def _on_model_changed(self, spec: str) -> None:
        if spec not in CATALOG and spec not in self.user_models and not spec.startswith(SERVER_PREFIX):
            self.user_models = [*self.user_models, spec]
        self.apply_model_defaults()

    # -------------------------------------------------------------------------------------- choices
    @staticmethod
    def scheduler_choices() -> list[str]:
        return scheduler_names()

    @staticmethod
    def device_choices() -> list[DeviceChoice]:
        return device_choices()

    @staticmethod
    def backend_choices() -> list[BackendChoice]:
        """Auto, PyTorch, OpenVINO: greyed with the reason where it is not installed (asked without
        importing it: an import costs seconds). A job may still combine a backend with a device it cannot
        use (OpenVINO on a GPU); the engine refuses that in one line."""
        choices = []
        for value in BACKENDS:
            available = value != "openvino" or openvino_installed()
            reason = BACKEND_TIPS[value] if available else "OpenVINO is not installed: pip install openvino"
            choices.append(BackendChoice(value, BACKEND_LABELS[value], available, reason))
        return choices

    def may_run_openvino(self) -> bool:
        """Whether the next job may run on OpenVINO, so that its CPU threads matter: the OpenVINO backend,
        or Auto with the device cpu or Auto (Auto is the CPU on a machine without a GPU; with one, the
        setting is kept for the jobs that do run on the CPU)."""
        return self.backend == "openvino" or (self.backend == "auto" and self.device in ("auto", "cpu"))

    def size_presets(self) -> list[tuple[int, int]]:
        family, prediction = self.kind()
        presets = "sd1" if (family, prediction) == ("sd2", "epsilon") else family  # 512-base: SD 1.x's sizes
        return list(SIZE_PRESETS.get(presets, SIZE_PRESETS["sd1"]))

    # ----------------------------------------------------------------------------------------- size
    def set_size(self, width: int, height: int) -> None:
        """Both sides or neither: ValueError/TypeError for a side the panel cannot take."""
        self._set_together(width=width, height=height)

    def swap_size(self) -> None:
        self.set_size(self.height, self.width)

    def _check_size(self, *_args: Any) -> None:
        multiple = FAMILY_SIZE_MULTIPLE.get(self.family(), 8)
        bad = [f"{n} {v}" for n, v in (("width", self.width), ("height", self.height)) if v % multiple]
        self.size_problem = f"{' and '.join(bad)} px: this model needs multiples of {multiple} px" if bad else ""

    # ----------------------------------------------------------------------------------------- seed
    def set_seed(self, seed: int, *, fixed: bool = True) -> None:
        self.seed = seed
        if fixed:
            self.seed_mode = "fixed"

    def new_seed(self) -> int:
        """Pick a new random seed and fix it."""
        self.set_seed(secrets.randbelow(MAX_SEED + 1))
        return self.seed

    def remember_seed(self, seed: int) -> None:
        """The seed of the last generated image, for "Reuse last"."""
        self._last_seed = seed

    def next_seed(self) -> int | None:
        if self.seed_mode == "fixed":
            return self.seed
        if self.seed_mode == "reuse" and self._last_seed is not None:
            return self._last_seed
        return None  # random: the engine picks one and reports it

    # -------------------------------------------------------------------------------------- request
    @classmethod
    def request_names(cls) -> list[str]:
        """The properties that are request fields (same name): declaring one is all it takes for it to
        reach the request and to be restored from an image. The canvas's parts of a request (init image,
        mask, outpaint expansion) are not properties, so never restored here: the session handles them."""
        fields = {f.name for f in dataclasses.fields(GenerationRequest)}
        return [name for name in properties(cls) if name in fields]

    def to_request(
        self,
        prompt: str,
        negative: str,
        init_image: Any = None,
        mask_image: Any = None,
        expand: tuple[int, int, int, int] | None = None,
    ) -> GenerationRequest:
        """The request for the next job (device, dtype, backend and threads travel beside it, see JobQueue.submit).

        The inpainting options always travel: the engine clears them for a request without a mask or an
        expansion. With `expand` (px added left, top, right, bottom) the request's size is the grown canvas:
        the settings' size is the picture's, and the canvas grows it by whole multiples of the model's side
        rule, so the engine makes exactly the canvas the user sees.
        """
        values = {name: getattr(self, name) for name in self.request_names()}
        width, height = self.width, self.height
        if expand is not None:
            expand = tuple(expand)
            left, top, right, bottom = expand
            width, height = width + left + right, height + top + bottom
        values.update(
            prompt=prompt,
            negative_prompt=negative,
            seed=self.next_seed(),
            width=width,
            height=height,
            init_image=init_image,
            strength=self.strength if init_image is not None else None,
            safety_checker=self.safety_checker if self.safety_available() else None,
            mask_image=mask_image,
            expand=expand,
        )
        return GenerationRequest(**values)

    def apply(self, fields: dict[str, Any]) -> list[str]:
        """Restore parameters read from an image's metadata; returns the names that were not applied
        (a value of the wrong type or out of range is skipped, never half-applied).

        The model comes first, since choosing it applies its defaults; the prompts are not settings
        (see :class:`~studio.viewmodel.prompt_state.PromptState`).
        """
        skipped: list[str] = []
        if fields.get("model"):
            self.select_model(str(fields["model"]))
        size = {name: fields[name] for name in ("width", "height") if fields.get(name) is not None}
        if size:
            try:
                self._set_together(**size)
            except (TypeError, ValueError):
                skipped += list(size)
        for name in self.request_names():
            if name in NOT_RESTORED or fields.get(name) is None:
                continue
            try:
                setattr(self, name, fields[name])
            except (TypeError, ValueError):
                skipped.append(name)
        if fields.get("seed") is not None:
            try:
                self.set_seed(fields["seed"])
            except (TypeError, ValueError):
                skipped.append("seed")
        return skipped

    def _set_together(self, **values: Any) -> None:
        """Set several properties or none: each is checked before any is set."""
        props = type(self).__dict__
        accepted = {name: props[name].accept(value) for name, value in values.items()}
        for name, value in accepted.items():
            setattr(self, name, value)


SERVER_PREFIX = "server:"
"""A model of the server's folders is chosen as "server:NAME": never taken for a local path, never added to the
local models, sent to the server as NAME."""


def server_name(name: str) -> str:
    """A model of the server's folders as the model list shows it."""
    return f"{printable(name)}  (server)"


def local_name(spec: str) -> str:
    """A local model as the model list shows it: its folder's or file's name (which may hold anything:
    control characters are shown as escapes; the list itself shows plain text)."""
    return f"{printable(Path(spec).name)}  (local)"
