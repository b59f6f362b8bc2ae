"""The LoRA and embedding browser beside the prompt: what is in the folders, filtered, with thumbnails, and the
tag a click inserts.

Where the files come from: the app's own ``loras`` and ``embeddings`` folders in the user data folder, plus
the folders the user added (an AUTOMATIC1111 or ComfyUI install's ``models/Lora``, ``embeddings``,
``models/loras``...), read where they are (:class:`~studio.viewmodel.preferences.AppSettings`).

Scanning: :func:`studio.library.extra_networks.scan` on a background pool (headers only, cached by path, size
and modification time, so a rescan of an unchanged folder of hundreds of files is a few milliseconds of
stats). A rescan runs when the folders change, and when their contents change on disk: a
``QFileSystemWatcher`` watches each folder and every subfolder holding a file (those a new file lands in),
and its signals are debounced (`RESCAN_DEBOUNCE_MS`), so a copy of fifty files is one rescan. A file still
being written shows its problem ("cannot be read", a truncated header) until the last change settles.
Rescans never overlap: one asked for during a scan runs after it.

Thumbnails: the image next to a file (``name.preview.png`` / ``name.png``..., the A1111 and Civitai helper
convention), decoded on another pool when a row is painted, at most `THUMBNAIL_SIZE` pixels, kept in a
bounded cache keyed by path and modification time.

The scanned embeddings (name -> vectors) go to the prompt's token counter through
``embedding_vectors_changed``, so "a shiny cat" with a 3-vector embedding "shiny" counts 5 tokens.

QtCore and QtGui only: tested headless.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QFileSystemWatcher,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage

from studio.library.display import printable
from studio.library.extra_networks import EMBEDDING, LORA, NetworkFile, scan
from studio.library.prompt_weights import format_multiplier
from studio.viewmodel.preferences import AppSettings
from studio.viewmodel.properties import Property, ViewModel, one_of
from studio.worker.gallery_images import read_qimage
from studio.worker.tasks import TaskPool

__all__ = [
    "ALL",
    "FAMILY_CHOICES",
    "FAMILY_LABELS",
    "ITEM_ROLE",
    "KIND_CHOICES",
    "KIND_LABELS",
    "RESCAN_DEBOUNCE_MS",
    "THUMBNAIL_SIZE",
    "TOOLTIP_ROLE",
    "UNKNOWN_FAMILY",
    "NetworkBrowser",
    "NetworkItem",
    "NetworkListModel",
    "describe",
    "matches",
    "tag_for",
]

ALL = "all"
UNKNOWN_FAMILY = "unknown"
KIND_CHOICES = (ALL, LORA, EMBEDDING)
KIND_LABELS = {ALL: "All", LORA: "LoRAs", EMBEDDING: "Embeddings"}
FAMILY_CHOICES = (ALL, "sd1", "sd2", "sdxl", UNKNOWN_FAMILY)
FAMILY_LABELS = {ALL: "All families", "sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", UNKNOWN_FAMILY: "Unknown"}
SHORT_FAMILY = {"sd1": "SD1", "sd2": "SD2", "sdxl": "XL"}
THUMBNAIL_SIZE = 128  # decoded size (longest side); the grid draws them smaller, sharp on HiDPI screens
THUMBNAIL_CACHE = 600  # about 64 KB each: under 40 MB
RESCAN_DEBOUNCE_MS = 600
STALE_AFTER_S = 10.0  # refresh_if_stale: a panel shown again rescans when the last scan is older
MAX_WATCHED = 512  # folders watched at most (inotify watches are a per-user budget)
WATCH_DEPTH = 2  # subfolder levels of each folder watched even while empty

ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's :class:`NetworkItem`."""
TOOLTIP_ROLE = Qt.ItemDataRole.UserRole + 2
"""What hovering the row shows, as plain text (:func:`describe`). Not ``ToolTipRole``: Qt renders a tooltip as
HTML when it looks like HTML, and names and trigger words come from files, so the view escapes this text."""


# ---------------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class NetworkItem:
    """One LoRA or embedding as the browser shows it (from a :class:`NetworkFile`)."""

    kind: str  # LORA | EMBEDDING
    name: str  # what a prompt calls it by
    path: Path
    family: str | None = None  # "sd1" | "sd2" | "sdxl" | None (the file does not say)
    format: str = "unknown"
    trigger_words: tuple[str, ...] = ()
    preview: Path | None = None
    preview_stamp: int = 0  # the preview's modification time (ns): a changed image is decoded again
    problem: str = ""
    alias: str | None = None
    vectors: int | None = None  # an embedding's vectors
    pickle: bool = False

    @classmethod
    def from_file(cls, found: NetworkFile, preview_stamp: int = 0) -> NetworkItem:
        return cls(
            kind=found.kind,
            name=found.name,
            path=found.path,
            family=found.family,
            format=found.format,
            trigger_words=found.trigger_words,
            preview=found.preview,
            preview_stamp=preview_stamp,
            problem=found.problem,
            alias=found.alias,
            vectors=found.vectors,
            pickle=found.pickle,
        )

    @property
    def family_key(self) -> str:
        return self.family if self.family in FAMILY_LABELS else UNKNOWN_FAMILY

    @property
    def family_label(self) -> str:
        return FAMILY_LABELS[self.family_key] if self.family_key != UNKNOWN_FAMILY else "unknown family"

    @property
    def kind_label(self) -> str:
        return "LoRA" if self.kind == LORA else "Embedding"

    @property
    def badge(self) -> str:
        """A few letters for the thumbnail's corner: kind and family ("LoRA·XL", "TI·SD1")."""
        kind = "LoRA" if self.kind == LORA else "TI"
        family = SHORT_FAMILY.get(self.family or "")
        return f"{kind}·{family}" if family else kind


def tag_for(item: NetworkItem, weight: float = 1.0) -> str:
    """What a click inserts: ``<lora:name:1>`` for a LoRA (its multiplier written as A1111 writes one, 1 as
    "1"), the name itself for an embedding (a prompt calls one by its name used as a word)."""
    if item.kind == LORA:
        return f"<lora:{item.name}:{format_multiplier(weight)}>"
    return item.name


def matches(item: NetworkItem, words: Iterable[str]) -> bool:
    """Whether every word (already case-folded) is part of the item's name, alias or trigger words."""
    haystack = "\n".join((item.name, item.alias or "", *item.trigger_words)).casefold()
    return all(word in haystack for word in words)


def describe(item: NetworkItem) -> str:
    """The tooltip: kind, family, format, trigger words, the problem if any, the file (plain text; the view
    escapes it)."""
    facts = [item.kind_label, item.family_label]
    if item.kind == EMBEDDING:
        if item.vectors:
            facts.append("1 vector" if item.vectors == 1 else f"{item.vectors} vectors")
        facts.append(f"{item.format} format" if item.format not in ("unknown", "pickle") else item.path.suffix)
    else:
        facts.append(f"{item.format} format" if item.format != "unknown" else item.path.suffix)
    lines = [printable(item.name), " · ".join(printable(f) for f in facts)]
    if item.alias and item.alias != item.name:
        lines.append(f"Also called: {printable(item.alias)}")
    if item.trigger_words:
        lines.append("Trigger words: " + ", ".join(printable(word) for word in item.trigger_words[:10]))
    if item.problem:
        lines.append(f"Problem: {printable(item.problem)}")
    elif item.pickle:
        lines.append("A pickle file: read only when the engine is allowed to unpickle files")
    lines.append(printable(str(item.path)))
    lines.append("Click to insert " + printable(tag_for(item)) + " at the prompt's cursor")
    return "\n".join(lines)


def _stamp(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except (OSError, ValueError):
        return 0


@dataclass(frozen=True)
class _Scan:
    items: list[NetworkItem]
    watch: list[str]  # folders worth watching: the roots that exist and every folder holding a file


def _scan(context: Any, lora_folders: list[Path], embedding_folders: list[Path], own: list[Path]) -> _Scan:
    for folder in own:  # the app's own folders exist, so there is a place to drop files (and to watch)
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
    items: list[NetworkItem] = []
    for folders, kind in ((lora_folders, LORA), (embedding_folders, EMBEDDING)):
        for found in scan(folders, kind):
            items.append(NetworkItem.from_file(found, _stamp(found.preview)))
        context.check()
    return _Scan(items, _folders_to_watch([*lora_folders, *embedding_folders], [item.path.parent for item in items]))


def _folders_to_watch(roots: list[Path], holding: list[Path], depth: int = WATCH_DEPTH) -> list[str]:
    """The roots that exist, every folder holding a file, and the roots' subfolders `depth` levels down (a new,
    still empty subfolder is where the next files land): at most `MAX_WATCHED`, roots first."""
    watch: list[str] = []
    seen: set[str] = set()

    def add(folder: Path | str) -> bool:
        text = str(folder)
        if text in seen or len(watch) >= MAX_WATCHED:
            return False
        seen.add(text)
        if os.path.isdir(text):
            watch.append(text)
            return True
        return False

    pending = [(root, 0) for root in roots if add(root)]
    for folder in holding:
        add(folder)
    while pending and len(watch) < MAX_WATCHED:
        folder, level = pending.pop(0)
        if level >= depth:
            continue
        try:
            with os.scandir(folder) as listing:
                subfolders = sorted(entry.path for entry in listing if entry.is_dir(follow_symlinks=False))
        except OSError:
            continue
        pending.extend((Path(sub), level + 1) for sub in subfolders if add(sub))
    return watch


# ---------------------------------------------------------------------------------------------- model
class NetworkListModel(QAbstractListModel):
    """The filtered items as rows: the name (made printable) as text, the thumbnail as decoration (None until
    it is decoded, or when there is none: the view draws a placeholder), :data:`ITEM_ROLE`, :data:`TOOLTIP_ROLE`."""

    def __init__(self, browser: NetworkBrowser) -> None:
        super().__init__(browser)
        self._browser = browser
        self._items: list[NetworkItem] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return printable(item.name)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._browser.thumbnail(item)
        if role == ITEM_ROLE:
            return item
        if role == TOOLTIP_ROLE:
            return describe(item)
        return None

    def items(self) -> list[NetworkItem]:
        return list(self._items)

    def item_at(self, row: int) -> NetworkItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def row_of(self, item: NetworkItem) -> int | None:
        try:
            return self._items.index(item)
        except ValueError:
            return None

    def set_items(self, items: list[NetworkItem]) -> None:
        if items == self._items:
            return
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def preview_changed(self, preview: str) -> None:
        for row, item in enumerate(self._items):
            if item.preview is not None and str(item.preview) == preview:
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


# -------------------------------------------------------------------------------------------- browser
class NetworkBrowser(ViewModel):
    """The LoRAs and embeddings in the folders, filtered by text, kind and family (see the module)."""

    scan_finished = Signal()  # a scan's items are in
    embedding_vectors_changed = Signal(dict)  # {name: vectors or None}: for the token counter
    message = Signal(str)  # one line for the status bar

    search = Property("", doc="words that must all appear in the name, alias or trigger words")
    kind_filter = Property(ALL, persist=True, check=one_of(KIND_CHOICES), key="networks_kind")
    family_filter = Property(ALL, persist=True, check=one_of(FAMILY_CHOICES), key="networks_family")
    scanning = Property(False)
    status = Property("", doc="counts, or what to do when there is nothing")

    def __init__(
        self,
        app: AppSettings,
        parent: QObject | None = None,
        *,
        watch: bool = True,
        debounce_ms: int = RESCAN_DEBOUNCE_MS,
        scan_now: bool = True,
    ) -> None:
        super().__init__(parent)
        self.app = app
        self.model = NetworkListModel(self)
        self._all: list[NetworkItem] = []
        self._scanned = False
        self._again = False
        self._scanned_at = 0.0
        self._vectors: dict[str, int | None] = {}
        self._pool = TaskPool("network-scan", threads=1, parent=self)
        self._thumbnails = TaskPool("network-thumbnails", threads=2, parent=self)
        self._cache: OrderedDict[tuple[str, int], QImage] = OrderedDict()
        self._loading: set[tuple[str, int]] = set()
        self._closed = False
        self._watcher = QFileSystemWatcher(self) if watch else None
        self._debounce = QTimer(self, singleShot=True, interval=max(0, int(debounce_ms)))
        self._debounce.timeout.connect(self.rescan)
        if self._watcher is not None:
            self._watcher.directoryChanged.connect(lambda _path: self._debounce.start())
        for signal in (self.search_changed, self.kind_filter_changed, self.family_filter_changed):
            signal.connect(lambda _value: self._apply_filters())
        app.lora_folders_changed.connect(lambda _folders: self.rescan())
        app.embedding_folders_changed.connect(lambda _folders: self.rescan())
        self._update_status()
        if scan_now:
            self.rescan()

    # ---------------------------------------------------------------------------------------- folders
    def folders(self) -> tuple[list[Path], list[Path]]:
        """(LoRA folders, embedding folders) scanned: the app's own first, then those the user added."""
        return self.app.network_folders()

    def own_folder(self, kind: str) -> Path:
        """The app's own folder for `kind` (in the user data folder)."""
        loras, embeddings = self.folders()
        return loras[0] if kind == LORA else embeddings[0]

    def added_folders(self, kind: str) -> list[Path]:
        return [Path(text).expanduser() for text in (self.app.lora_folders if kind == LORA else self.app.embedding_folders)]

    def add_folder(self, kind: str, folder: str | os.PathLike[str]) -> bool:
        """Scan `folder` too (kept in the preferences); False when it already is, or is no folder."""
        path = Path(folder).expanduser()
        if not path.is_dir():
            self.message.emit(f"{printable(str(path))} is not a folder")
            return False
        if not self.app.add_network_folder(kind, path):
            self.message.emit(f"{printable(str(path))} is already scanned")
            return False
        what = "LoRAs" if kind == LORA else "embeddings"
        self.message.emit(f"Looking for {what} in {printable(str(path))} as well")
        return True

    def remove_folder(self, kind: str, folder: str | os.PathLike[str]) -> bool:
        """Stop scanning an added folder (its files stay where they are)."""
        return self.app.remove_network_folder(kind, folder)

    # ------------------------------------------------------------------------------------------ items
    def items(self) -> list[NetworkItem]:
        """The items shown (filtered), in the grid's order."""
        return self.model.items()

    def all_items(self) -> list[NetworkItem]:
        """Every item scanned, LoRAs then embeddings, each by name."""
        return list(self._all)

    def find(self, kind: str, name: str) -> NetworkItem | None:
        return next((item for item in self._all if item.kind == kind and item.name == name), None)

    def tag_for(self, item: NetworkItem) -> str:
        return tag_for(item)

    def embedding_vectors(self) -> dict[str, int | None]:
        """The usable embeddings by name, with their vectors (None: unknown, a pickle)."""
        return dict(self._vectors)

    def has_scanned(self) -> bool:
        return self._scanned

    # ---------------------------------------------------------------------------------------- scanning
    def rescan(self) -> None:
        """Scan the folders again in the background (after the running scan, if there is one)."""
        if self._closed:
            return
        if self.scanning:
            self._again = True
            return
        loras, embeddings = self.folders()
        own = [loras[0], embeddings[0]]
        self.scanning = True
        self._update_status()
        task = self._pool.submit(
            _scan, loras, embeddings, own,
            on_result=self._on_scanned, on_error=self._on_scan_failed, on_cancelled=self._on_scan_cancelled,
        )
        if task is None:
            self.scanning = False

    def refresh_if_stale(self, seconds: float = STALE_AFTER_S) -> bool:
        """Rescan when the last scan is older than `seconds` (a panel shown again); True when one started."""
        if self.scanning or time.monotonic() - self._scanned_at < seconds:
            return False
        self.rescan()
        return True

    def wait_for_scan(self, timeout_s: float = 10.0) -> bool:
        """Block until no scan is running (tests, the CLI); True when none is."""
        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout_s
        while self.scanning and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            self._pool.flush()
            time.sleep(0.005)
        return not self.scanning

    def _on_scanned(self, result: _Scan) -> None:
        if self._closed:
            return
        self._all = result.items
        self._scanned = True
        self._scanned_at = time.monotonic()
        self._watch(result.watch)
        vectors = {item.name: item.vectors for item in result.items if item.kind == EMBEDDING and not item.problem}
        if vectors != self._vectors:
            self._vectors = vectors
            self.embedding_vectors_changed.emit(dict(vectors))
        self._finish_scan()
        self._apply_filters()
        self.scan_finished.emit()

    def _on_scan_failed(self, exc: BaseException) -> None:
        self.message.emit(f"Cannot look for LoRAs and embeddings: {printable(str(exc))[:200]}")
        self._finish_scan()

    def _on_scan_cancelled(self) -> None:
        self.scanning = False

    def _finish_scan(self) -> None:
        self.scanning = False
        if self._again:
            self._again = False
            self.rescan()
        else:
            self._update_status()

    def _watch(self, folders: list[str]) -> None:
        if self._watcher is None:
            return
        current = set(self._watcher.directories())
        wanted = set(folders)
        gone = sorted(current - wanted)
        new = sorted(wanted - current)
        if gone:
            self._watcher.removePaths(gone)
        if new:
            self._watcher.addPaths(new)

    def watched_folders(self) -> list[str]:
        return sorted(self._watcher.directories()) if self._watcher is not None else []

    # ----------------------------------------------------------------------------------------- filters
    def _apply_filters(self) -> None:
        words = self.search.casefold().split()
        kind, family = self.kind_filter, self.family_filter
        shown = [
            item
            for item in self._all
            if (kind == ALL or item.kind == kind)
            and (family == ALL or item.family_key == family)
            and (not words or matches(item, words))
        ]
        self.model.set_items(shown)
        self._update_status()

    def clear_filters(self) -> None:
        self.search = ""
        self.kind_filter = ALL
        self.family_filter = ALL

    def _update_status(self) -> None:
        if not self._scanned:
            self.status = "Looking for LoRAs and embeddings…" if self.scanning else ""
            return
        loras = sum(1 for item in self._all if item.kind == LORA)
        embeddings = len(self._all) - loras
        shown = self.model.rowCount()
        if not self._all:
            self.status = (
                "No LoRAs or embeddings yet. Put .safetensors files in the app's folders (Folders menu), or add "
                "an AUTOMATIC1111 or ComfyUI models/Lora or embeddings folder."
            )
        elif shown == 0:
            self.status = "Nothing matches the filters."
        else:
            counts = f"{loras} LoRA{'s' if loras != 1 else ''} · {embeddings} embedding{'s' if embeddings != 1 else ''}"
            self.status = counts if shown == len(self._all) else f"{shown} of {len(self._all)} shown ({counts})"

    # -------------------------------------------------------------------------------------- thumbnails
    def thumbnail(self, item: NetworkItem) -> QImage | None:
        """The item's preview image, small, if decoded; else None, and its decoding starts (the model's
        ``dataChanged`` follows). None for an item without a preview, or one that cannot be decoded."""
        if item.preview is None:
            return None
        key = (str(item.preview), item.preview_stamp)
        image = self._cache.get(key)
        if image is not None:
            self._cache.move_to_end(key)
            return None if image.isNull() else image
        if key not in self._loading and not self._closed:
            self._loading.add(key)
            self._thumbnails.submit(
                lambda _context, path=key[0]: read_qimage(path, THUMBNAIL_SIZE),
                on_result=lambda image, key=key: self._on_thumbnail(key, image),
                on_error=lambda _exc, key=key: self._on_thumbnail(key, QImage()),
                on_cancelled=lambda key=key: self._loading.discard(key),
            )
        return None

    def thumbnails_pending(self) -> int:
        return self._thumbnails.pending()

    def _on_thumbnail(self, key: tuple[str, int], image: QImage) -> None:
        self._loading.discard(key)
        if self._closed:
            return
        self._cache[key] = image if isinstance(image, QImage) else QImage()
        while len(self._cache) > THUMBNAIL_CACHE:
            self._cache.popitem(last=False)
        self.model.preview_changed(key[0])

    # ---------------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 2000) -> None:
        if self._closed:
            return
        self._closed = True
        self._debounce.stop()
        self._pool.shutdown(timeout_ms=timeout_ms)
        self._thumbnails.shutdown(timeout_ms=timeout_ms)
