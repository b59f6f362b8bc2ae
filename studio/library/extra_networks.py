"""The LoRAs and textual-inversion embeddings on disk, described from their headers, as A1111 names them.

A prompt calls a LoRA with ``<lora:name:...>`` and an embedding by writing its name, so the catalogue's job is
to answer "which file is `name`, what is it for, can we use it" before any model is touched, for the window's
lists and for every job. Everything here is torch-free and reads at most a file's ``.safetensors`` header
(`studio.library.safetensors_header`), never a tensor and never a pickle, so a folder of hundreds of LoRAs is
described in milliseconds and re-checked per job by a stat per file (descriptions are cached by path, size and
modification time).

A1111 compatibility, which is what lets its prompts and infotexts work unchanged:

- a LoRA's name is its file stem; its kohya ``ss_output_name`` is an alias also accepted (`NetworkCatalog
  .find_lora`: exact stem, then alias, then the stem in any case); an embedding's name is its stem;
- subfolders are scanned (A1111 users sort LoRAs into folders), the name stays the stem;
- hashes are A1111's (`lora_hash`, `embedding_hash`), so "Lora hashes" / "TI hashes" in infotexts match.

Every file may be crafted: `describe` and `scan` never raise for a file's content or type (a bad file is a
`NetworkFile` whose ``problem`` says why), and the work is bounded (the header checks, `MAX_FILES`,
`MAX_DEPTH`, `MAX_ENTRIES`, no symlink loops, no blocking open of a FIFO).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.library import safe_json
from studio.library.safetensors_header import READ_FLAGS, HeaderError, read_header

__all__ = [
    "EMBEDDING",
    "LORA",
    "MAX_DEPTH",
    "MAX_FILES",
    "MAX_TRIGGER_WORDS",
    "NetworkCatalog",
    "NetworkFile",
    "describe",
    "embedding_hash",
    "lora_hash",
    "scan",
    "short_hash",
]

LORA = "lora"
EMBEDDING = "embedding"
SAFETENSORS = ".safetensors"
SUFFIXES = {LORA: (SAFETENSORS, ".pt", ".ckpt", ".bin"), EMBEDDING: (SAFETENSORS, ".pt", ".bin")}
PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp")

MAX_FILES = 10_000  # files described per scan, all folders together
MAX_DEPTH = 8  # subfolder levels below each folder
MAX_ENTRIES = 200_000  # directory entries looked at per scan (a huge folder of other files ends the walk)
MAX_TRIGGER_WORDS = 20
MAX_TAG_CHARS = 100
MAX_ALIAS_CHARS = 255
HASH_BLOCK = 1024 * 1024  # A1111 hashes in 1 MiB blocks
SHORT_HASH = 12  # the characters of a hash an infotext shows

# The conditioning width each family's cross-attention reads (SDXL: CLIP-L 768 + OpenCLIP-G 1280).
FAMILY_WIDTH = {"sd1": 768, "sd2": 1024, "sdxl": 2048}
TEXT_ENCODER_FAMILY = {768: "sd1", 1024: "sd2"}  # a single encoder's width (SDXL's are named by prefix)
CROSS_ATTENTION_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
# kohya's ss_base_model_version and the modelspec.architecture of safetensors' model spec (prefixes).
BASE_MODEL_FAMILY = {"sd_v1": "sd1", "sd_v2": "sd2", "sdxl_base": "sdxl"}
ARCHITECTURE_FAMILY = {
    "stable-diffusion-v1": "sd1",
    "stable-diffusion-v2": "sd2",
    "stable-diffusion-xl-v1-base": "sdxl",
}
UNSUPPORTED_ALGORITHMS = {"loha": "LyCORIS LoHa is not supported", "lokr": "LyCORIS LoKr is not supported"}

_SDXL_TEXT_PREFIXES = ("lora_te1_", "lora_te2_", "text_encoder_2.", "te1.", "te2.")
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight")
_PEFT_MARKERS = (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.", "_lora.down.", "_lora.up.")
_TEXT_QUERY = re.compile(r"^(?:lora_te_|text_encoder\.).*self_attn[._]q_proj")
_UNET_KEY = re.compile(r"attn2[._](?:processor[._])?to_k")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class NetworkFile:
    """One LoRA or embedding file as the catalogue sees it: from a stat and its header, never its tensors.

    ``family`` and ``width`` are None when the file does not say (pickles, LoRAs of other models), and the
    loader decides. ``width`` is the text conditioning width the file is for: 768 (SD 1.x), 1024 (SD 2.x),
    2048 (SDXL's two encoders together). ``problem`` is "" for a file worth trying; a pickle file is not a
    problem here (``pickle`` is True): whether to read one, restricted to tensors, is the loader's policy.
    """

    kind: str  # LORA | EMBEDDING
    name: str  # the file's stem: what a prompt calls it by
    path: Path
    size: int = 0
    mtime: float = 0.0
    alias: str | None = None  # a LoRA's ss_output_name
    family: str | None = None  # "sd1" | "sd2" | "sdxl"
    # LoRA: kohya | peft | loha | lokr | unknown; embedding: a1111 | diffusers | sdxl | pickle
    format: str = "unknown"
    vectors: int | None = None  # an embedding's vector count (tokens it stands for)
    width: int | None = None
    trigger_words: tuple[str, ...] = ()  # the most frequent training tags first
    preview: Path | None = None
    pickle: bool = False  # .pt / .ckpt / .bin: unpickled to read
    problem: str = ""  # why it cannot be used, "" when it can be tried

    @property
    def usable(self) -> bool:
        return not self.problem


# ------------------------------------------------------------------------------------------- caches
class _Cache:
    """A small thread-safe LRU map: the worker and the window may describe and hash at the same time."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


_DESCRIPTIONS = _Cache(2 * MAX_FILES)  # (kind, path, size, mtime_ns, inode) -> NetworkFile without preview
_HASHES = _Cache(1024)  # (algorithm, path, size, mtime_ns, inode) -> hex digest


def _key(kind: str, path: Path, info: os.stat_result) -> tuple:
    return (kind, str(path), info.st_size, info.st_mtime_ns, info.st_ino)


# ----------------------------------------------------------------------------------------- describe
def describe(path: str | os.PathLike[str], kind: str) -> NetworkFile:
    """What the file at `path` is as a `kind` (`LORA` or `EMBEDDING`), from a stat and its header.

    Never raises for the file (missing, a folder, a FIFO, empty, crafted): ``problem`` says what is wrong.
    An unknown `kind` is a programming error (``ValueError``).
    """
    if kind not in SUFFIXES:
        raise ValueError(f"unknown network kind {kind!r} (expected {LORA!r} or {EMBEDDING!r})")
    path = Path(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        return _bare(path, kind, f"cannot be read ({getattr(exc, 'strerror', None) or exc})")
    return _described(path, kind, info, _find_preview(path, None))


def _described(path: Path, kind: str, info: os.stat_result, preview: Path | None) -> NetworkFile:
    key = _key(kind, path, info)
    cached = _DESCRIPTIONS.get(key)
    if cached is None:
        try:
            cached = _read(path, kind, info)
        except Exception as exc:  # noqa: BLE001 - a last guard: one bad file must never end a scan
            cached = _bare(path, kind, f"cannot be described ({type(exc).__name__}: {str(exc)[:200]})", info)
        if not cached.problem.startswith("cannot be read"):  # a denied read may be allowed next time
            _DESCRIPTIONS.put(key, cached)
    return replace(cached, preview=preview)


def _bare(path: Path, kind: str, problem: str, info: os.stat_result | None = None) -> NetworkFile:
    pickle = path.suffix.lower() != SAFETENSORS
    size, mtime = (info.st_size, info.st_mtime) if info is not None else (0, 0.0)
    fmt = "pickle" if pickle and kind == EMBEDDING else "unknown"
    return NetworkFile(kind, path.stem, path, size, mtime, format=fmt, pickle=pickle, problem=problem)


def _read(path: Path, kind: str, info: os.stat_result) -> NetworkFile:
    if stat.S_ISDIR(info.st_mode):
        return _bare(path, kind, "a folder, not a file", info)
    if not stat.S_ISREG(info.st_mode):
        return _bare(path, kind, "not a regular file (a pipe, socket or device?)", info)
    if info.st_size == 0:
        return _bare(path, kind, "empty (0 bytes): an interrupted download or copy?", info)
    base = _bare(path, kind, "", info)
    if base.pickle:  # its contents cannot be known without unpickling it, which is the loader's decision
        return base
    try:
        shapes, metadata = read_header(path)
    except HeaderError as exc:
        reason = str(exc)
        return replace(base, problem=reason[3:] if reason.startswith("is ") else reason)
    if kind == LORA:
        return _lora(base, shapes, metadata)
    return _embedding(base, shapes, metadata)


# -------------------------------------------------------------------------------------------- LoRAs
def _lora(
    base: NetworkFile, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str]
) -> NetworkFile:
    fmt = _lora_format(shapes)
    family = _family_from_lora_shapes(shapes) or _family_from_metadata(metadata)
    problem = ""
    if fmt in UNSUPPORTED_ALGORITHMS:
        problem = UNSUPPORTED_ALGORITHMS[fmt]
    elif fmt == "unknown":
        algorithm = _network_algorithm(metadata)
        if algorithm in UNSUPPORTED_ALGORITHMS:
            fmt, problem = algorithm, UNSUPPORTED_ALGORITHMS[algorithm]
        else:
            problem = _not_a_lora(shapes)
    return replace(
        base,
        alias=_clean(metadata.get("ss_output_name"), MAX_ALIAS_CHARS),
        family=family,
        format=fmt,
        width=_cross_attention_width(shapes) or (FAMILY_WIDTH.get(family) if family else None),
        trigger_words=_trigger_words(metadata.get("ss_tag_frequency")),
        problem=problem,
    )


def _lora_format(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """LyCORIS first (its files also hold ``alpha`` keys), then kohya's key names (``lora_unet_...
    .lora_down.weight``), then diffusers/PEFT's (``unet....lora_A.weight``, ``...to_k_lora.down.weight``)."""
    keys = list(shapes)
    if any("hada_w1_a" in key for key in keys):
        return "loha"
    if any("lokr_w1" in key for key in keys):
        return "lokr"
    if any(
        key.startswith("lora_") and key.endswith((".lora_down.weight", ".lora_up.weight")) for key in keys
    ):
        return "kohya"
    if any(marker in key for key in keys for marker in _PEFT_MARKERS) or any(
        ".lora_down." in key for key in keys
    ):
        return "peft"
    return "unknown"


def _family_from_lora_shapes(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """InvokeAI's reading: SDXL by its two text encoders' key prefixes, else by the input width of a text
    encoder query projection (768 / 1024) or of a UNet cross-attention key projection (768 / 1024 / 2048).
    None when the keys say nothing or disagree."""
    votes: set[str] = set()
    for key, shape in shapes.items():
        if key.startswith(_SDXL_TEXT_PREFIXES):
            votes.add("sdxl")
            continue
        if len(shape) < 2 or not key.endswith(_DOWN_SUFFIXES):
            continue
        if _TEXT_QUERY.search(key):
            family = TEXT_ENCODER_FAMILY.get(shape[1])
        elif _UNET_KEY.search(key):
            family = CROSS_ATTENTION_FAMILY.get(shape[1])
        else:
            continue
        if family:
            votes.add(family)
    return votes.pop() if len(votes) == 1 else None


def _cross_attention_width(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The context width the UNet's cross-attention key projections read, as the file's shapes say (one
    value, else None): 768 / 1024 / 2048 for released models, other widths for test models."""
    widths = {
        shape[1]
        for key, shape in shapes.items()
        if len(shape) >= 2 and key.endswith(_DOWN_SUFFIXES) and _UNET_KEY.search(key)
    }
    return widths.pop() if len(widths) == 1 else None


def _family_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """kohya's ``ss_base_model_version``, then the model spec's architecture, then kohya's ``ss_v2`` (True
    only: SDXL files also say False)."""
    version = metadata.get("ss_base_model_version", "")
    for prefix, family in BASE_MODEL_FAMILY.items():
        if version.startswith(prefix):
            return family
    architecture = metadata.get("modelspec.architecture", "")
    for prefix, family in ARCHITECTURE_FAMILY.items():
        if architecture.startswith(prefix):
            return family
    return "sd2" if metadata.get("ss_v2", "").strip().lower() == "true" else None


def _network_algorithm(metadata: Mapping[str, str]) -> str | None:
    """The LyCORIS algorithm kohya recorded (``ss_network_args``: ``{"algo": "loha"}``), if any."""
    raw = metadata.get("ss_network_args")
    if not raw or len(raw) > 100_000:
        return None
    try:
        args = safe_json.loads(raw, max_depth=4, allow_constants=False)
    except safe_json.JSONRefused:
        return None
    algorithm = args.get("algo") if isinstance(args, dict) else None
    return algorithm.lower() if isinstance(algorithm, str) else None


def _not_a_lora(shapes: Mapping[str, tuple[int, ...]]) -> str:
    keys = list(shapes)
    if any(key.startswith("model.diffusion_model.") for key in keys):
        return "looks like a full checkpoint, not a LoRA (it belongs with the models)"
    if "emb_params" in shapes or {"clip_l", "clip_g"} <= set(shapes):
        return "looks like a textual-inversion embedding, not a LoRA (it belongs in the embeddings folder)"
    return "holds no LoRA weights in a layout this app reads (kohya/A1111 or diffusers/PEFT)"


def _trigger_words(raw: str | None) -> tuple[str, ...]:
    """The training tags kohya counted (``ss_tag_frequency``: {dataset folder: {tag: count}}), summed over
    the datasets, most frequent first (ties in the file's order), at most `MAX_TRIGGER_WORDS`. Tags are
    untrusted text: stripped, and dropped unless printable and at most `MAX_TAG_CHARS` long."""
    if not raw:
        return ()
    try:
        datasets = safe_json.loads(raw, max_depth=3, allow_constants=False)
    except safe_json.JSONRefused:
        return ()
    if not isinstance(datasets, dict):
        return ()
    counts: Counter[str] = Counter()
    for tags in datasets.values():
        if not isinstance(tags, dict):
            continue
        for tag, count in tags.items():
            word = _clean(tag, MAX_TAG_CHARS)
            if word and type(count) is int and count > 0:
                counts[word] += count
    return tuple(word for word, _count in counts.most_common(MAX_TRIGGER_WORDS))


def _clean(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and len(value) <= limit and value.isprintable() else None


# --------------------------------------------------------------------------------------- embeddings
def _embedding(
    base: NetworkFile, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str]
) -> NetworkFile:
    """A1111's readings of a ``.safetensors`` embedding: SDXL's ``clip_l`` + ``clip_g``, else exactly one
    tensor (``emb_params`` as kohya and A1111 extensions write it, or diffusers' token -> vectors).

    The family comes from the width (768 SD 1.x, 1024 SD 2.x), else from metadata (kohya writes the model
    spec, ``stable-diffusion-v1/textual-inversion``). Another width is no problem here: whether the vectors
    fit is a comparison with the loaded text encoder's width, the engine's to make."""
    if "clip_l" in shapes and "clip_g" in shapes:
        return _sdxl_embedding(base, shapes)
    if len(shapes) != 1:
        return replace(
            base,
            problem=f"holds {len(shapes):,} tensors, not an embedding "
            "(one tensor of vectors, or SDXL's clip_l and clip_g)",
        )
    name, shape = next(iter(shapes.items()))
    fmt = "a1111" if name == "emb_params" else "diffusers"
    if len(shape) not in (1, 2) or 0 in shape:
        return replace(
            base, format=fmt, problem=f"its tensor has the shape {list(shape)}, not [vectors, width]"
        )
    vectors, width = (1, shape[0]) if len(shape) == 1 else shape
    family = TEXT_ENCODER_FAMILY.get(width) or _family_from_metadata(metadata)
    return replace(base, format=fmt, family=family, vectors=vectors, width=width)


def _sdxl_embedding(base: NetworkFile, shapes: Mapping[str, tuple[int, ...]]) -> NetworkFile:
    """SDXL's pair: as many vectors for CLIP-L (768 wide) as for OpenCLIP-G (1280); `width` their sum."""
    base = replace(base, format="sdxl", family="sdxl")
    l_shape, g_shape = shapes["clip_l"], shapes["clip_g"]
    for name, shape in (("clip_l", l_shape), ("clip_g", g_shape)):
        if len(shape) != 2 or 0 in shape:
            return replace(base, problem=f"its {name} has the shape {list(shape)}, not [vectors, width]")
    if l_shape[0] != g_shape[0]:
        return replace(base, problem="its clip_l and clip_g hold different numbers of vectors")
    return replace(base, vectors=l_shape[0], width=l_shape[1] + g_shape[1])


# ------------------------------------------------------------------------------------------ scanning
def scan(folders: Iterable[str | os.PathLike[str]], kind: str) -> list[NetworkFile]:
    """Every `kind` file under `folders`, subfolders included, sorted by name (any case), then path.

    A missing or unreadable folder is simply empty; a folder reached twice (nested folders, symbolic links,
    loops) is read once. At most `MAX_FILES` files, `MAX_DEPTH` levels and `MAX_ENTRIES` entries. Never
    raises for what is on disk.
    """
    if kind not in SUFFIXES:
        raise ValueError(f"unknown network kind {kind!r} (expected {LORA!r} or {EMBEDDING!r})")
    suffixes = SUFFIXES[kind]
    found: list[NetworkFile] = []
    seen_folders: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int, str]] = set()
    budget = [MAX_ENTRIES]
    for folder in folders:
        pending = [(Path(folder), 0)]
        while pending and len(found) < MAX_FILES and budget[0] > 0:
            directory, depth = pending.pop()
            try:
                info = os.stat(directory)
            except (OSError, ValueError):
                continue
            if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) in seen_folders:
                continue
            seen_folders.add((info.st_dev, info.st_ino))
            entries = _entries(directory, budget)
            names = {entry.name for entry in entries}
            subfolders = []
            for entry in entries:
                if _is_dir(entry):
                    if depth < MAX_DEPTH:
                        subfolders.append((Path(entry.path), depth + 1))
                    continue
                path = Path(entry.path)
                if path.suffix.lower() not in suffixes or len(found) >= MAX_FILES:
                    continue
                try:
                    file_info = entry.stat()
                except OSError as exc:
                    found.append(_bare(path, kind, f"cannot be read ({exc.strerror or exc})"))
                    continue
                identity = (file_info.st_dev, file_info.st_ino, path.name)  # a link by another name is a name
                if identity in seen_files:
                    continue
                seen_files.add(identity)
                found.append(_described(path, kind, file_info, _find_preview(path, names)))
            pending.extend(reversed(subfolders))
    found.sort(key=lambda f: (f.name.casefold(), f.name, str(f.path)))
    return found


def _entries(directory: Path, budget: list[int]) -> list[os.DirEntry[str]]:
    entries: list[os.DirEntry[str]] = []
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
                entries.append(entry)
    except OSError:
        pass
    entries.sort(key=lambda e: e.name)
    return entries


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symbolic links; loops are caught by the folder's (device, inode)
    except OSError:
        return False


def _find_preview(path: Path, names: Collection[str] | None) -> Path | None:
    """A1111's preview image beside the file: ``name.preview.<ext>``, else ``name.<ext>``, for png, jpg,
    jpeg, webp. `names`: the folder's listing when the caller has it (no stat per candidate)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for pattern in ("{}.preview.{}", "{}.{}"):
        for extension in PREVIEW_EXTENSIONS:
            candidate = path.with_name(pattern.format(stem, extension))
            if names is not None and candidate.name not in names:
                continue
            try:
                if candidate.is_file():
                    return candidate
            except (OSError, ValueError):
                continue
    return None


# -------------------------------------------------------------------------------------------- hashes
def lora_hash(path: str | os.PathLike[str]) -> str:
    """A1111's LoRA hash (64 hex digits): the file's kohya ``sshs_model_hash`` when it records a SHA-256,
    else for ``.safetensors`` the "addnet hash" (SHA-256 of everything after the header), else the SHA-256
    of the whole file. Cached per (path, size, modification time). ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() != SAFETENSORS:
        return _hash(path, "sha256", whole=True)
    return _hash(path, "lora", whole=False)


def embedding_hash(path: str | os.PathLike[str]) -> str:
    """A1111's embedding hash (64 hex digits): the SHA-256 of the whole file. ``OSError`` when unreadable."""
    return _hash(Path(path), "sha256", whole=True)


def short_hash(digest: str) -> str:
    """The part of a hash an A1111 infotext shows ("Lora hashes", "TI hashes"): its first 12 characters."""
    return digest[:SHORT_HASH]


def _hash(path: Path, algorithm: str, *, whole: bool) -> str:
    fd = os.open(path, READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path}: not a regular file")
        handle = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with handle:
        key = _key(algorithm, path, info)
        cached = _HASHES.get(key)
        if cached is not None:
            return cached
        digest = None if whole else _recorded_hash(path)
        if digest is None:
            start = 0 if whole else 8 + int.from_bytes(handle.read(8), "little")
            digest = _sha256_from(handle, start)
    _HASHES.put(key, digest)
    return digest


def _recorded_hash(path: Path) -> str | None:
    """``sshs_model_hash`` from the header's metadata, when it is a SHA-256 (A1111 prefers it)."""
    try:
        _shapes, metadata = read_header(path)
    except HeaderError:
        return None
    value = metadata.get("sshs_model_hash", "")
    return value if _SHA256.fullmatch(value) else None  # verbatim, as A1111 shows it


def _sha256_from(handle: Any, start: int) -> str:
    """SHA-256 of the bytes from `start` to the end (none when `start` is past it), in 1 MiB blocks."""
    digest = hashlib.sha256()
    handle.seek(min(start, 2**62))
    block = bytearray(HASH_BLOCK)
    view = memoryview(block)
    while True:
        count = handle.readinto(block)
        if not count:
            break
        digest.update(view[:count])
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ catalogue
class NetworkCatalog:
    """The LoRAs and embeddings in a set of folders, re-read on demand and looked up as A1111 does.

    `refresh` is cheap enough to call before every job: it lists the folders and stats each file; headers
    are read again only for files whose size or modification time changed.
    """

    def __init__(
        self,
        lora_folders: Iterable[str | os.PathLike[str]],
        embedding_folders: Iterable[str | os.PathLike[str]],
    ) -> None:
        self.lora_folders = [Path(folder) for folder in lora_folders]
        self.embedding_folders = [Path(folder) for folder in embedding_folders]
        self._loras: list[NetworkFile] = []
        self._embeddings: list[NetworkFile] = []
        self._scanned = False

    @classmethod
    def default(cls) -> NetworkCatalog:
        """The app's own folders (`studio.library.paths.loras_dir` / ``embeddings_dir``)."""
        from studio.library.paths import embeddings_dir, loras_dir

        return cls([loras_dir()], [embeddings_dir()])

    @classmethod
    def with_folders(
        cls, lora_folders: Iterable[str | os.PathLike[str]] = (), embedding_folders: Iterable[str | os.PathLike[str]] = ()
    ) -> NetworkCatalog:
        """The app's own folders, then the ones the user added (an A1111 or ComfyUI install's, shared)."""
        from studio.library.paths import embeddings_dir, loras_dir

        loras = list(dict.fromkeys([loras_dir(), *map(Path, lora_folders)]))
        embeddings = list(dict.fromkeys([embeddings_dir(), *map(Path, embedding_folders)]))
        return cls(loras, embeddings)

    def folders(self) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """(LoRA folders, embedding folders), in search order."""
        return tuple(self.lora_folders), tuple(self.embedding_folders)

    def refresh(self) -> None:
        self._loras = scan(self.lora_folders, LORA)
        self._embeddings = scan(self.embedding_folders, EMBEDDING)
        self._scanned = True

    def loras(self) -> list[NetworkFile]:
        self._ensure_scanned()
        return list(self._loras)

    def embeddings(self) -> list[NetworkFile]:
        self._ensure_scanned()
        return list(self._embeddings)

    def find_lora(self, name: str) -> NetworkFile | None:
        """The LoRA a ``<lora:name>`` tag means: the file with that stem, else the one file whose
        ``ss_output_name`` is `name` (an alias two files share names neither, as in A1111), else the stem
        in any case. Among files of one stem (in different subfolders), the first by path."""
        loras = self.loras()
        exact = [f for f in loras if f.name == name]
        if exact:
            return exact[0]
        aliased = [f for f in loras if f.alias == name]
        if len(aliased) == 1:
            return aliased[0]
        folded = name.casefold()
        return next((f for f in loras if f.name.casefold() == folded), None)

    def find_embedding(self, name: str) -> NetworkFile | None:
        """The embedding a prompt word means: its stem exactly, else in any case (CLIP lower-cases text, so
        A1111 matches embeddings regardless of case)."""
        embeddings = self.embeddings()
        exact = next((f for f in embeddings if f.name == name), None)
        if exact is not None:
            return exact
        folded = name.casefold()
        return next((f for f in embeddings if f.name.casefold() == folded), None)

    def _ensure_scanned(self) -> None:
        if not self._scanned:
            self.refresh()
