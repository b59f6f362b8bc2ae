"""The model manager's backend: what the catalogue has in the Hugging Face cache, download, remove.

Shared by `studio models` and the window's Models dialog, so it imports no torch, diffusers or Qt (only
huggingface_hub, and that lazily). Listing reads the cache folders only: fast, and the same offline.
The cache is the one every Hugging Face tool shares (`models--owner--name/{blobs,snapshots,refs}`): a
snapshot file is a symlink to a blob, so sizes count each blob once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.engine.catalog import CATALOG, CatalogEntry
from studio.engine.errors import ModelNotFoundError, RequestError
from studio.engine.loading import (
    DownloadCallback,
    env_offline,
    fetch_from_hub,
    hub_cache_dir,
    hub_model_info,
    is_in_local_cache,
    local_model_kind,
    repo_cache_folder,
    resolve_source,
    wanted_sizes,
)
from studio.library.disk_usage import disk_usage

__all__ = [
    "LocalModelStatus",
    "ModelStatus",
    "download_model",
    "download_size",
    "local_model_statuses",
    "model_statuses",
    "remove_model",
]


@dataclass(frozen=True)
class ModelStatus:
    """One catalogue model as the cache holds it."""

    id: str
    name: str
    repo: str
    revision: str
    family: str
    downloaded: bool  # every file the app needs is in the cache at the pinned revision
    partial: bool  # something of this repo is in the cache, but not all of it (an interrupted download)
    size_on_disk: int  # bytes under the repo's cache folder, each blob counted once
    path: Path | None  # the snapshot folder, when downloaded
    notes: str = ""


@dataclass(frozen=True)
class LocalModelStatus:
    """A folder or file the user added in the app (preferences' `local_models`), as it is now."""

    path: Path
    exists: bool
    kind: str  # "folder" | "file" | "missing"
    family: str | None  # sd1 / sd2 / deci, read cheaply from configs or the safetensors header


@dataclass(frozen=True)
class _HubModel:
    repo: str
    revision: str | None
    entry: CatalogEntry | None

    @property
    def family(self) -> str | None:
        return self.entry.family if self.entry else None


def _hub_model(model_id: str) -> _HubModel:
    """A catalogue id or hub repo id (owner/name[@revision]); RequestError for anything else."""
    source = resolve_source(model_id)  # UnknownModelError (bad input) for a string that names nothing
    if source.kind in ("folder", "file") or source.repo is None:
        raise RequestError(f"{model_id!r} is a local {source.kind}, not a hub model: there is nothing to download")
    return _HubModel(source.repo, source.revision, source.entry)


# --------------------------------------------------------------------------------------------- status


def model_status(entry: CatalogEntry, cache_dir: str | Path | None = None) -> ModelStatus:
    """One catalogue entry's state in the cache (see `model_statuses`)."""
    folder = repo_cache_folder(entry.repo, cache_dir)
    size = disk_usage(folder) if folder.is_dir() else 0
    path = is_in_local_cache(entry.repo, entry.revision, entry, cache_dir) if folder.is_dir() else None
    return ModelStatus(
        id=entry.id,
        name=entry.name,
        repo=entry.repo,
        revision=entry.revision,
        family=entry.family,
        downloaded=path is not None,
        partial=path is None and size > 0,
        size_on_disk=size,
        path=path,
        notes=entry.notes,
    )


def model_statuses(cache_dir: str | Path | None = None) -> list[ModelStatus]:
    """Every catalogue model, downloaded or not, read from the Hugging Face cache: no network, fast."""
    return [model_status(entry, cache_dir) for entry in CATALOG.values()]


def local_model_statuses(paths: Iterable[str | Path]) -> list[LocalModelStatus]:
    """The user's added folders and files, in their order, with whether each still exists."""
    statuses = []
    for raw in paths:
        path = Path(raw).expanduser()
        kind = "folder" if path.is_dir() else "file" if path.is_file() else "missing"
        family = local_model_kind(str(path))[0] if kind != "missing" else None
        statuses.append(LocalModelStatus(path=path, exists=kind != "missing", kind=kind, family=family))
    return statuses


# --------------------------------------------------------------------------------------------- sizes


def download_size(model_id: str, cache_dir: str | Path | None = None) -> int | None:
    """Bytes of the files the app fetches for this model (all of them, whether cached yet or not).

    From the file listing huggingface_hub keeps in the cache when there is one (no network), else from one
    metadata request to the hub (short timeout, no retries). None when offline or the hub does not say.
    """
    model = _hub_model(model_id)
    listed = _size_from_tree_cache(model, cache_dir)
    if listed is not None:
        return listed
    if env_offline():
        return None
    try:
        info = hub_model_info(model.repo, model.revision, entry=model.entry, files_metadata=True)
    except ModelNotFoundError:
        return None
    sizes = {s.rfilename: s.size for s in (info.siblings or [])}
    return _fetched_size(model, sizes)


def _fetched_size(model: _HubModel, sizes: dict[str, int | None]) -> int | None:
    wanted = wanted_sizes(sizes, model.entry, model.family)
    return None if wanted is None else sum(wanted.values())


def _size_from_tree_cache(model: _HubModel, cache_dir: str | Path | None) -> int | None:
    """huggingface_hub 2.x writes `trees/<commit>.json` (the repo's listing) when a download starts."""
    import json

    folder = repo_cache_folder(model.repo, cache_dir)
    commit = model.revision or "main"
    ref = folder / "refs" / commit
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
    try:
        data = json.loads((folder / "trees" / f"{commit}.json").read_text(encoding="utf-8"))
        files = data["files"]
        sizes = {name: int(info["size"]) for name, info in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return _fetched_size(model, sizes)


# --------------------------------------------------------------------------------------------- actions


def download_model(
    model_id: str,
    *,
    on_progress: DownloadCallback | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download a catalogue model (or hub repo id) into the Hugging Face cache; its snapshot folder.

    Already complete: returned at once, offline too. Offline or with the hub out of reach: a one-line
    ModelNotFoundError within seconds. A set `cancel` raises Cancelled from inside the progress updates.
    Resuming is what huggingface_hub allows: files already fetched stay in the cache and are not fetched
    again; a file cut mid-way starts over (hub 2.x keeps no partial file).
    """
    model = _hub_model(model_id)
    return fetch_from_hub(
        model.repo, model.revision, entry=model.entry, on_progress=on_progress, cancel=cancel, cache_dir=cache_dir
    )


def remove_model(model_id: str, cache_dir: str | Path | None = None) -> int:
    """Move the model's repo folder out of the Hugging Face cache into the trash; the bytes it held.

    The whole `models--owner--name` folder goes (every revision and partial download of that repo), to
    the trash rather than deleted, because the cache is shared with other Hugging Face tools. A model with
    nothing in the cache is a ModelNotFoundError; a trash that cannot take it is an OSError, and nothing
    is deleted then.
    """
    model = _hub_model(model_id)
    folder = repo_cache_folder(model.repo, cache_dir)
    if not folder.is_dir():
        name = model.entry.id if model.entry else model.repo
        raise ModelNotFoundError(f"model {name} is not downloaded: nothing in {hub_cache_dir(cache_dir)} to remove")
    size = disk_usage(folder)
    from send2trash import send2trash

    send2trash(str(folder))
    return size
