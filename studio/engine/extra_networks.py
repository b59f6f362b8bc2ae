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

On OpenVINO (float32 and bfloat16) the converted text encoder and UNet take each LoRA-targetable layer's
A and B matrices as inputs (:mod:`studio.engine.openvino_convert`): a LoRA's matrices are read once from the
same files (diffusers' ``lora_state_dict``: kohya and PEFT layouts), a job's LoRAs are concatenated along
the rank with B scaled by weight * alpha / rank and set on the compiled networks when the set changes;
no LoRA feeds zeros (the plain pixels). Layers outside those inputs (LoCon's convolutions) are said in the
partial note. Embeddings get their private tokens in the tokenizer and their vectors as the text
encoder's extra rows. Nothing is reconverted.

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
    read: OrderedDict[str, _ReadLora] = field(default_factory=OrderedDict)  # OpenVINO: file key -> its matrices


@dataclass
class _ReadLora:
    """A LoRA's matrices for the OpenVINO networks' LoRA inputs: per component, layer -> (A, B * alpha / r)."""

    pairs: dict[str, dict[str, tuple[Any, Any]]]
    applied: int  # the model's layers it changes
    of: int  # the layers it has


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
        if model.placement.backend == "openvino":
            self._apply_loras_openvino(model, model.networks, uses, prepared)
        else:
            self._apply_loras(model, model.networks, uses, prepared)
        self._apply_embeddings(model, model.networks, prepared)
        return prepared

    # ---------------------------------------------------------------------------------------- LoRAs
    def _apply_loras(self, model: LoadedModel, state: _ModelState, uses: list[LoraUse], prepared: Prepared) -> None:
        pipe = model.txt2img
        active: list[tuple[str, LoraUse, NetworkFile]] = []
        for use, found in self._usable_loras(uses, model, prepared):
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

    def _apply_loras_openvino(self, model: LoadedModel, state: _ModelState, uses: list[LoraUse], prepared: Prepared) -> None:
        """The OpenVINO networks' LoRA inputs for this job: each LoRA's matrices (read once per file and
        kept), concatenated along the rank with B scaled by the job's weight; none: zeros."""
        pipe = model.txt2img
        active: list[tuple[str, LoraUse, NetworkFile, _ReadLora]] = []
        for use, found in self._usable_loras(uses, model, prepared):
            key = file_key(found)
            read = state.read.get(key)
            if read is None:
                try:
                    read = _read_lora(pipe, found)
                except Exception as exc:  # noqa: BLE001 - a file that does not load is one note, the job goes on
                    prepared.notes.append(f"LoRA '{found.name}' not applied: {_lora_failure(exc)}")
                    continue
                if not read.applied:
                    prepared.notes.append(f"LoRA '{found.name}' not applied: none of its layers exist in this model")
                    continue
                state.read[key] = read
                while len(state.read) > MAX_ADAPTERS:
                    state.read.popitem(last=False)
            state.read.move_to_end(key)
            active.append((key, use, found, read))
        for component, weight_of in (("unet", lambda u: u.unet), ("text_encoder", lambda u: u.te)):
            network = getattr(pipe, component, None)
            if network is None or not hasattr(network, "set_lora"):
                continue
            chosen = [(key, weight_of(use), read) for key, use, _found, read in active if weight_of(use) != 0]
            job_key = tuple((key, weight) for key, weight, _read in chosen)
            if network.lora_key != job_key:
                network.set_lora(_combined([(weight, read.pairs.get(component, {})) for _key, weight, read in chosen]), key=job_key)
        for _key, use, found, read in active:
            prepared.loras.append(AppliedLora(use.name, found.path.name, lora_hash(found.path), use.te, use.unet, read.applied, read.of))
            if read.applied < read.of:
                prepared.notes.append(
                    f"LoRA '{use.name}' applied to {read.applied} of its {read.of} layers: the others do not exist in this model"
                    " (or are not applied on OpenVINO)"
                )

    def _usable_loras(
        self, uses: list[LoraUse], model: LoadedModel, prepared: Prepared
    ) -> list[tuple[LoraUse, NetworkFile]]:
        """Each LoRA the prompt names (the last tag of a name wins) with its file, when there is one this
        model can take; a note for each that is not found or is refused."""
        usable = []
        for use in _merged(uses):
            found = self.catalog.find_lora(use.name)
            if found is None:
                prepared.notes.append(f"LoRA '{use.name}' not found in the LoRA folders: not applied")
                continue
            refusal = self._refusal(found, model)
            if refusal:
                prepared.notes.append(refusal)
                continue
            usable.append((use, found))
        return usable

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
        key = file_key(found)
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
        key = file_key(found)
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


def file_key(found: NetworkFile) -> str:
    """One version of a file (its path, size and time): what a model keeps a loaded LoRA or embedding by,
    so an edited file is loaded again."""
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
    if hasattr(pipe.text_encoder, "add_vectors"):  # OpenVINO's text encoder
        _load_embedding_openvino(pipe, vectors, token)
        return int(vectors.shape[0])
    with _quiet_loaders():
        pipe.load_textual_inversion({token: vectors}, token=token)
    return int(vectors.shape[0]) if vectors.dim() == 2 else 1


def _load_embedding_openvino(pipe, vectors, token: str) -> None:
    """The tokens (token, token_1, ... as diffusers names a multi-vector embedding's) in the tokenizer, their
    vectors in the OpenVINO text encoder's extra rows."""
    tokens = [token] + [f"{token}_{i}" for i in range(1, int(vectors.shape[0]))]
    pipe.tokenizer.add_tokens(tokens)
    pipe.text_encoder.add_vectors(pipe.tokenizer.convert_tokens_to_ids(tokens), vectors)


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


# The endings of a LoRA's matrices in diffusers' names (lora_state_dict), and what they are.
_LORA_ENDINGS = (
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    ("_lora.down.weight", "down"), ("_lora.up.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
)
_TEXT_PROCESSOR_NAMES = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}


def _lora_key(key: str) -> tuple[str, str, str, str] | None:
    """(component, layer as the network names it, "down" or "up", the matrix's name less its ending)
    of a diffusers LoRA key; None for what is not a LoRA matrix."""
    component, _, rest = key.partition(".")
    matched = [(ending, kind) for ending, kind in _LORA_ENDINGS if rest.endswith(ending)]
    if not matched:
        return None
    ending, kind = matched[0]
    stem = rest[: -len(ending)]
    layer = stem.replace(".processor.", ".")
    parent, _, last = layer.rpartition(".")
    if component == "text_encoder" and last in _TEXT_PROCESSOR_NAMES:
        layer = f"{parent}.{_TEXT_PROCESSOR_NAMES[last]}"
    elif component == "unet" and last == "to_out":
        layer = f"{layer}.0"
    return component, layer, kind, f"{component}.{stem}"


def _layer_name(name: str) -> str:
    """A layer's name as LoRA files and the network both give it (transformers 5's CLIPTextModel has no
    `text_model.` level; the files keep it)."""
    return name.removeprefix("text_model.")


def _read_lora(pipe, found: NetworkFile) -> _ReadLora:
    """A LoRA file's matrices for the OpenVINO networks' layers (their `lora_layers`), B scaled by alpha / rank."""
    import torch

    with _quiet_loaders():
        state, alphas, metadata = pipe.lora_state_dict(str(found.path), return_lora_metadata=True)
    alphas, metadata = alphas or {}, metadata or {}
    matrices: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        parsed = _lora_key(key)
        if parsed is None:
            continue
        component, layer, kind, stem = parsed
        entry = matrices.setdefault((component, layer), {})
        entry[kind] = value
        if kind == "down":
            entry["alpha"] = alphas.get(f"{key}.alpha", alphas.get(f"{stem}.alpha"))
    layers = {}
    for component in ("unet", "text_encoder"):
        network = getattr(pipe, component, None)
        layers[component] = {_layer_name(name): (name, fin, fout) for name, fin, fout in getattr(network, "lora_layers", [])}
    pairs: dict[str, dict[str, tuple[Any, Any]]] = {}
    for (component, layer), entry in matrices.items():
        target = layers.get(component, {}).get(_layer_name(layer))
        down, up = entry.get("down"), entry.get("up")
        if target is None or down is None or up is None:
            continue
        rank = int(down.shape[0])
        name, fin, fout = target
        if down.numel() != rank * fin or up.numel() != fout * rank:
            continue  # not a linear (or 1x1) LoRA of this layer's size
        alpha = entry.get("alpha")
        if alpha is None:
            alpha = metadata.get(f"{component}.lora_alpha", rank)
        a = down.detach().to(torch.float32).reshape(rank, fin)
        b = up.detach().to(torch.float32).reshape(fout, rank) * (float(alpha) / rank)
        pairs.setdefault(component, {})[name] = (a.numpy(), b.numpy())
    of = sum(1 for key in state if key.endswith(("down.weight", "lora_A.weight")))
    applied = sum(len(found_pairs) for found_pairs in pairs.values())
    return _ReadLora(pairs, applied, max(of, applied))


def _combined(weighted: list[tuple[float, dict[str, tuple[Any, Any]]]]) -> dict[str, tuple[Any, Any]]:
    """Several LoRAs' pairs as one per layer: the A stacked along the rank, each B times its weight."""
    import numpy as np

    out: dict[str, tuple[Any, Any]] = {}
    names = dict.fromkeys(name for _weight, pairs in weighted for name in pairs)
    for name in names:
        found = [(weight, pairs[name]) for weight, pairs in weighted if name in pairs]
        out[name] = (
            np.concatenate([a for _weight, (a, _b) in found]),
            np.concatenate([b * weight for weight, (_a, b) in found], axis=1),
        )
    return out


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
