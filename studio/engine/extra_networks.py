"""LoRAs and textual-inversion embeddings on a loaded model, switched per job without a reload.

A prompt names LoRAs with A1111's tags (``<lora:name:te:unet>``, removed from the text before it is
encoded) and embeddings by their file name used as a word. :class:`ExtraNetworks` resolves both against
the :class:`~studio.library.extra_networks.NetworkCatalog` (the user's folders) and readies the model:

LoRAs
    Loaded once per model through diffusers (``load_lora_weights``: kohya/A1111 and PEFT files, LoCon
    included; peft does the layers), each under an adapter of its own, and kept loaded (the least
    recently used go beyond :data:`MAX_ADAPTERS`). A job activates its set with its weights
    (``set_adapters``, text encoder and UNet weighted apart, as A1111 does); a job without LoRAs disables
    them, which gives the model's own pixels bit for bit. So switching costs no reload and nothing of one
    job leaks into the next. A LoRA for another family is refused before it is loaded; one whose layers
    only partly exist in the model (an SD 1.5 LoRA on DeciDiffusion's UNet-NAS) is applied where they do,
    and the note says how much.
Embeddings
    Loaded into the tokenizer and text encoder under a private token each (``emb<hash>``: never a real
    word, so a job that does not name the embedding cannot touch it), and the name in the prompt is
    replaced by that token for the encoder only (the metadata keeps the prompt as typed). Emphasis
    weights apply to its vectors as to any word's.

Pickle files (``.pt``, ``.ckpt``, ``.bin``) are read only with the same opt-in as checkpoints
(``allow_pickle``), and then with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.engine.errors import first_line
from studio.library.extra_networks import NetworkCatalog, NetworkFile, embedding_hash, lora_hash, short_hash
from studio.library.prompt_syntax import LoraUse, extra_network_tags, lora_uses, split_extra_networks

if TYPE_CHECKING:
    from studio.engine.generate import LoadedModel

log = logging.getLogger(__name__)

MAX_ADAPTERS = 8
"""LoRAs kept loaded per model: switching among them costs nothing; an older one is loaded again."""
FAMILY_WIDTH = {"sd1": 768, "sd2": 1024, "deci": 768}
FAMILY_LABEL = {"sd1": "SD 1", "sd2": "SD 2", "sdxl": "SDXL", "deci": "DeciDiffusion"}
LORA_FAMILIES = {"sd1": {"sd1"}, "sd2": {"sd2"}, "deci": {"sd1"}}
"""The LoRA and embedding families a model family takes (DeciDiffusion shares SD 1's text encoder; its UNet-NAS takes
the layers of an SD 1 LoRA that it has)."""


@dataclass(frozen=True)
class AppliedLora:
    name: str  # as the prompt names it
    file: str  # the file's name
    sha256: str  # A1111's hash of it (see studio.library.extra_networks.lora_hash)
    te: float
    unet: float
    layers: int  # the model's layers it changes
    of: int  # the layers it has


@dataclass(frozen=True)
class AppliedEmbedding:
    name: str
    file: str
    sha256: str
    vectors: int


@dataclass
class Prepared:
    """What a job's prompts made of the model: the texts for the encoder, and what was applied."""

    prompt: str
    negative: str
    loras: list[AppliedLora] = field(default_factory=list)
    embeddings: list[AppliedEmbedding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """Our JSON's record: each file's name, hash and weights."""
        out: dict[str, Any] = {}
        if self.loras:
            out["loras"] = [
                {"name": a.name, "file": a.file, "sha256": a.sha256, "te": a.te, "unet": a.unet} for a in self.loras
            ]
        if self.embeddings:
            out["embeddings"] = [{"name": e.name, "file": e.file, "sha256": e.sha256, "vectors": e.vectors} for e in self.embeddings]
        return out


@dataclass
class _ModelState:
    """What is loaded into one model: adapters by file key (most recently used last), embeddings by token."""

    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)  # file key -> adapter name
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # adapter -> (applied, of)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # file key -> (token, vectors)
    enabled: bool = False  # whether the adapters are on (disabling them walks every module: once)


class ExtraNetworks:
    """Resolves a job's LoRA tags and embedding words and readies the model for it (see the module)."""

    def __init__(self, catalog: NetworkCatalog | None = None, *, allow_pickle: bool = False) -> None:
        self.catalog = catalog if catalog is not None else NetworkCatalog.default()
        self.allow_pickle = allow_pickle

    def uses_networks(self, prompt: str, negative: str) -> bool:
        """Whether the prompts name a LoRA (any tag) or one of the embeddings in the folders."""
        if extra_network_tags(prompt) or extra_network_tags(negative):
            return True
        self.catalog.refresh()
        return bool(self._named_embeddings(prompt, negative))

    def unapplied(self, prompt: str, negative: str, why: str) -> Prepared:
        """The prompts as text only, and a note naming what was not applied and `why`."""
        text, tags = split_extra_networks(prompt)
        negative_text, negative_tags = split_extra_networks(negative)
        prepared = Prepared(prompt=text, negative=negative_text)
        self.catalog.refresh()
        named = [t.text for t in (*tags, *negative_tags)]
        named += [f"embedding '{f.name}'" for f in self._named_embeddings(text, negative_text)]
        if named:
            prepared.notes.append(f"not applied ({why}): {', '.join(dict.fromkeys(named))}")
        return prepared

    def _named_embeddings(self, prompt: str, negative: str) -> list[NetworkFile]:
        return [f for f in self.catalog.embeddings() if _word(f.name).search(prompt) or _word(f.name).search(negative)]

    def prepare(self, model: LoadedModel, prompt: str, negative: str) -> Prepared:
        """Ready `model` for a job with these prompts: its LoRAs active at their weights (or none), its
        embeddings loadable by the encoder. Problems are notes (the job runs without what failed)."""
        text, tags = split_extra_networks(prompt)
        negative_text, negative_tags = split_extra_networks(negative)
        prepared = Prepared(prompt=text, negative=negative_text)
        uses, problems = lora_uses(tags)
        prepared.notes += problems
        ignored = [t.text for t in tags if t.kind == "hypernet"] + [t.text for t in negative_tags]
        if ignored:
            prepared.notes.append(
                f"ignored (hypernetworks are not supported; tags in the negative prompt are not applied, as in A1111): "
                f"{', '.join(dict.fromkeys(ignored))}"
            )
        self.catalog.refresh()  # files added or changed since the last job (a stat per file)
        if model.networks is None:  # what is loaded into this model lives and goes with it
            model.networks = _ModelState()
        self._apply_loras(model, model.networks, uses, prepared)
        self._apply_embeddings(model, model.networks, prepared)
        return prepared

    # ---------------------------------------------------------------------------------------- LoRAs
    def _apply_loras(self, model: LoadedModel, state: _ModelState, uses: list[LoraUse], prepared: Prepared) -> None:
        pipe = model.txt2img
        active: list[tuple[str, LoraUse, NetworkFile]] = []
        for use in _merged(uses):
            found = self.catalog.find_lora(use.name)
            if found is None:
                prepared.notes.append(f"LoRA '{use.name}' not found in the LoRA folders: not applied")
                continue
            refusal = self._refusal(found, model)
            if refusal:
                prepared.notes.append(refusal)
                continue
            adapter = self._loaded_adapter(pipe, state, found, prepared)
            if adapter is not None:
                active.append((adapter, use, found))
        if not active:
            if state.adapters and state.enabled:
                pipe.disable_lora()
                state.enabled = False
            return
        pipe.enable_lora()
        state.enabled = True
        pipe.set_adapters(
            [adapter for adapter, _use, _file in active],
            adapter_weights=[{"unet": use.unet, "text_encoder": use.te} for _adapter, use, _file in active],
        )
        for adapter, use, found in active:
            applied, of = state.layers.get(adapter, (0, 0))
            prepared.loras.append(AppliedLora(use.name, found.path.name, lora_hash(found.path), use.te, use.unet, applied, of))
            if of and applied < of:
                prepared.notes.append(
                    f"LoRA '{use.name}' applied to {applied} of its {of} layers: the others do not exist in this model"
                )

    def _refusal(self, found: NetworkFile, model: LoadedModel) -> str:
        if found.problem:
            return f"LoRA '{found.name}' not applied: {found.problem}"
        if found.pickle and not self.allow_pickle:
            return (
                f"LoRA '{found.name}' is a pickle file ({found.path.suffix}): not applied. Convert it to "
                ".safetensors, or allow pickle files (--allow-ckpt), then read restricted to tensors"
            )
        allowed = LORA_FAMILIES.get(model.family, {model.family})
        if found.family is not None and found.family not in allowed:
            return (
                f"LoRA '{found.name}' is for {FAMILY_LABEL.get(found.family, found.family)} and this model is "
                f"{FAMILY_LABEL.get(model.family, model.family)}: not applied"
            )
        return ""

    def _loaded_adapter(self, pipe, state: _ModelState, found: NetworkFile, prepared: Prepared) -> str | None:
        key = _file_key(found)
        adapter = state.adapters.get(key)
        if adapter is not None:
            state.adapters.move_to_end(key)
            return adapter
        adapter = f"lora_{short_hash(lora_hash(found.path))}_{len(state.layers)}"
        try:
            with _quiet_loaders():
                _load_lora(pipe, found, adapter)
        except Exception as exc:  # noqa: BLE001 - a file that does not load is one note, the job goes on
            _drop_adapter(pipe, adapter)
            prepared.notes.append(f"LoRA '{found.name}' not applied: {_lora_failure(exc)}")
            return None
        state.adapters[key] = adapter
        state.layers[adapter] = _layer_counts(pipe, adapter, found)
        while len(state.adapters) > MAX_ADAPTERS:
            _old_key, old = state.adapters.popitem(last=False)
            _drop_adapter(pipe, old)
            state.layers.pop(old, None)
        return adapter

    # ----------------------------------------------------------------------------------- embeddings
    def _apply_embeddings(self, model: LoadedModel, state: _ModelState, prepared: Prepared) -> None:
        pipe = model.txt2img
        width = _text_width(pipe)
        for found in self._named_embeddings(prepared.prompt, prepared.negative):
            pattern = _word(found.name)
            loaded = self._loaded_token(pipe, state, found, width, model.family, prepared)
            if loaded is None:
                continue
            token, vectors = loaded
            prepared.prompt = pattern.sub(token, prepared.prompt)
            prepared.negative = pattern.sub(token, prepared.negative)
            prepared.embeddings.append(AppliedEmbedding(found.name, found.path.name, embedding_hash(found.path), vectors))

    def _loaded_token(
        self, pipe, state: _ModelState, found: NetworkFile, width: int | None, model_family: str, prepared: Prepared
    ):
        key = _file_key(found)
        if key in state.tokens:
            return state.tokens[key]
        if found.problem:
            prepared.notes.append(f"embedding '{found.name}' not used: {found.problem}")
            return None
        if found.pickle and not self.allow_pickle:
            prepared.notes.append(
                f"embedding '{found.name}' is a pickle file ({found.path.suffix}): not used. Allow pickle "
                "files (--allow-ckpt) to read it restricted to tensors, or use its .safetensors"
            )
            return None
        allowed = LORA_FAMILIES.get(model_family, {model_family})
        if found.family is not None and found.family not in allowed:
            prepared.notes.append(
                f"embedding '{found.name}' is for {FAMILY_LABEL.get(found.family, found.family)} and this model is "
                f"{FAMILY_LABEL.get(model_family, model_family)}: not used"
            )
            return None
        if found.width is not None and width is not None and found.width != width:
            family = {768: "SD 1", 1024: "SD 2"}.get(found.width, f"a {found.width}-wide text encoder")
            prepared.notes.append(
                f"embedding '{found.name}' is for {family} and this model's text encoder is {width} wide: not used"
            )
            return None
        token = f"emb{short_hash(embedding_hash(found.path))}"
        try:
            vectors = _load_embedding(pipe, found, token)
        except Exception as exc:  # noqa: BLE001 - one note, the job goes on
            prepared.notes.append(f"embedding '{found.name}' not used: {first_line(exc)[:300]}")
            return None
        state.tokens[key] = (token, vectors)
        return token, vectors


# ------------------------------------------------------------------------------------------ helpers
def _merged(uses: list[LoraUse]) -> list[LoraUse]:
    """One use per LoRA name (A1111: the last tag of a name wins)."""
    by_name: dict[str, LoraUse] = {}
    for use in uses:
        by_name.pop(use.name, None)
        by_name[use.name] = use
    return list(by_name.values())


def _file_key(found: NetworkFile) -> str:
    return f"{found.path}|{found.size}|{found.mtime}"


def _word(name: str) -> re.Pattern[str]:
    """An embedding's name as a whole word, any case (A1111 matches its tokens, which CLIP lower-cases)."""
    return re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])", re.IGNORECASE)


def _text_width(pipe) -> int | None:
    encoder = getattr(pipe, "text_encoder", None)
    config = getattr(encoder, "config", None)
    width = getattr(config, "hidden_size", None)
    return width if isinstance(width, int) else None


def _load_embedding(pipe, found: NetworkFile, token: str) -> int:
    """Load the file's vectors under `token`; returns how many (a multi-vector embedding adds token,
    token_1, ...; the pipeline's ``maybe_convert_prompt`` expands the token into all of them)."""
    import torch

    if found.path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        data: Any = load_file(str(found.path))
    else:
        data = torch.load(str(found.path), map_location="cpu", weights_only=True)
    vectors = _vectors(data)
    with _quiet_loaders():
        pipe.load_textual_inversion({token: vectors}, token=token)
    return int(vectors.shape[0]) if vectors.dim() == 2 else 1


def _vectors(data: Any):
    """The embedding's [vectors, width] tensor from any of its layouts (A1111 .pt and .safetensors,
    diffusers' single token, SDXL's clip_l for the SD 1 width)."""
    import torch

    if isinstance(data, dict):
        if isinstance(data.get("string_to_param"), dict):
            data = next(iter(data["string_to_param"].values()))
        elif "emb_params" in data:
            data = data["emb_params"]
        elif "clip_l" in data:
            data = data["clip_l"]
        elif len(data) == 1:
            data = next(iter(data.values()))
    if not isinstance(data, torch.Tensor) or data.dim() not in (1, 2):
        raise ValueError("it holds no embedding vectors this program can read")
    return (data if data.dim() == 2 else data[None]).float()


def _load_lora(pipe, found: NetworkFile, adapter: str) -> None:
    """diffusers' loader (kohya and PEFT layouts); when none of the UNet's layers are the file's (an SD 1
    LoRA on DeciDiffusion's UNet-NAS, whose blocks are named otherwise), its text-encoder half alone."""
    try:
        pipe.load_lora_weights(str(found.path), adapter_name=adapter)
        return
    except Exception as exc:
        if type(exc).__name__ != "NoMatchingPeftModuleError":
            raise
        unet_failure = exc
    _drop_adapter(pipe, adapter)
    state, alphas = pipe.lora_state_dict(str(found.path))
    text = {key: value for key, value in state.items() if key.startswith("text_encoder.")}
    if not text or getattr(pipe, "text_encoder", None) is None:
        raise unet_failure
    pipe.load_lora_into_text_encoder(
        text, network_alphas=alphas, text_encoder=pipe.text_encoder, prefix="text_encoder", adapter_name=adapter
    )


def _layer_counts(pipe, adapter: str, found: NetworkFile) -> tuple[int, int]:
    """(layers of the model now carrying the adapter, layers the file has), for the partial note."""
    applied = 0
    for component in ("unet", "text_encoder"):
        module = getattr(pipe, component, None)
        if module is None or not hasattr(module, "named_modules"):
            continue
        for _name, layer in module.named_modules():
            lora_a = getattr(layer, "lora_A", None)
            if lora_a is not None and adapter in lora_a:
                applied += 1
    try:
        state, _alphas = pipe.lora_state_dict(str(found.path))
    except Exception:  # noqa: BLE001 - the count is a courtesy
        return applied, applied
    targets = sum(1 for key in state if key.endswith(("down.weight", "lora_A.weight")))
    return applied, max(targets, applied)


def _lora_failure(exc: BaseException) -> str:
    text = first_line(exc)
    if "hada_" in str(exc):
        return "LyCORIS LoHa files are not supported by diffusers"
    if "lokr_" in str(exc):
        return "LyCORIS LoKr files are not supported by diffusers"
    if "size mismatch" in str(exc):
        return "its layers have other sizes than this model's (a LoRA for another model family)"
    if "not found in the base model" in str(exc) or type(exc).__name__ == "NoMatchingPeftModuleError":
        return "none of its layers exist in this model"
    return text[:300]


def _drop_adapter(pipe, adapter: str) -> None:
    with contextlib.suppress(Exception):
        pipe.delete_adapters(adapter)


@contextlib.contextmanager
def _quiet_loaders():
    """diffusers and transformers log a screenful per LoRA load (unexpected keys, a load report): the
    note this module writes says what matters."""
    import warnings

    from transformers.utils import logging as transformers_logging

    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers", "peft")]
    levels = [logger.level for logger in loggers]
    bars = transformers_logging.is_progress_bar_enabled()
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)  # a failed load is raised, and said in the job's note
    transformers_logging.disable_progress_bar()  # "Loading weights" of the text encoder's part, on stderr
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")  # one adapter per LoRA, by design
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if bars:
            transformers_logging.enable_progress_bar()


__all__ = ["AppliedEmbedding", "AppliedLora", "ExtraNetworks", "Prepared", "extra_network_tags"]
