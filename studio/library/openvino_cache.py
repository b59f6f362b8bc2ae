"""The OpenVINO cache on disk: converted networks (IR) per model, listed with their sizes and removable.

Layout, under ``paths.cache_dir()/openvino`` (one folder per model, so removing a model removes all of it)::

    <label>-<sha256(identity)[:12]>/
        model.json                          label, identity, when it was made
        unet-fp16-ov2026.4.1/               <component>-<weights>-ov<OpenVINO version>; weights: fp16,
            openvino_model.xml, .bin        int8 (weights only) or w8a8 (quantized), never float32
            config.json                     the component's config, as the pipeline reads it
        compiled/                           OpenVINO's own compiled-model cache (restarts skip compiling)

The identity says which weights these are (a Hub revision, a file's sha256, a folder's fingerprint), so a
changed model never meets a stale conversion; the OpenVINO version is in the part's name because IR and
compiled blobs are only guaranteed for the version that wrote them. A part appears whole or not at all:
it is written into a temporary folder and renamed. No torch, no OpenVINO: the model manager lists this.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from studio.library import paths
from studio.library.disk_usage import disk_usage

MODEL_FILE = "model.json"
COMPILED = "compiled"
IR_FILE = "openvino_model.xml"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CachedModel:
    folder: Path
    label: str
    identity: str
    size: int  # bytes on disk, IR and compiled blobs together
    parts: tuple[str, ...]  # the converted parts' folder names: "unet-fp16-ov2026.4.1", ...
    created: str


def default_root() -> Path:
    return paths.cache_dir() / "openvino"


class OpenVinoCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def model_folder(self, identity: str, label: str = "") -> Path:
        """The folder of the model with this identity: found by the identity's hash, named for people."""
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
        if self.root.is_dir():
            for folder in self.root.glob(f"*-{digest}"):
                if folder.is_dir():
                    return folder
        slug = _UNSAFE.sub("-", label or "model").strip("-.")[:40] or "model"
        return self.root / f"{slug}-{digest}"

    @staticmethod
    def part_name(component: str, weights: str, version: str) -> str:
        return f"{component}-{weights}-ov{version}"

    def part(self, identity: str, component: str, weights: str, version: str) -> Path | None:
        """The IR file of a converted part, or None when it is not in the cache (or incomplete)."""
        folder = self.model_folder(identity) / self.part_name(component, weights, version)
        xml = folder / IR_FILE
        return xml if xml.is_file() and xml.with_suffix(".bin").is_file() else None

    def compiled_dir(self, identity: str, label: str = "") -> Path:
        return self.model_folder(identity, label) / COMPILED

    def publish(
        self, identity: str, label: str, component: str, weights: str, version: str,
        write: Callable[[Path], None], config: dict | None = None,
    ) -> Path:
        """Write a part with `write(folder)` into a temporary folder, then rename it into place.

        Returns the IR file. A kill midway leaves only a ``.tmp-*`` folder, which never counts as a part
        and is removed with the model. OSError (a full or read-only disk) reaches the caller.
        """
        model = self.model_folder(identity, label)
        model.mkdir(parents=True, exist_ok=True)
        self._write_model_file(model, identity, label)
        final = model / self.part_name(component, weights, version)
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model))
        try:
            write(temporary)
            if config is not None:
                (temporary / "config.json").write_text(json.dumps(config, indent=1, default=str), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)  # an incomplete or older copy of the same part
            os.replace(temporary, final)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return final / IR_FILE

    @staticmethod
    def _write_model_file(model: Path, identity: str, label: str) -> None:
        path = model / MODEL_FILE
        if path.is_file():
            return
        record = {"label": label, "identity": identity, "created": datetime.now(UTC).isoformat(timespec="seconds")}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(temporary, path)

    def entries(self) -> list[CachedModel]:
        """Every model in the cache, largest first. Unreadable records are listed by folder name."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            record = _read_record(folder / MODEL_FILE)
            parts = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / IR_FILE).is_file()))
            found.append(
                CachedModel(
                    folder=folder,
                    label=str(record.get("label") or folder.name),
                    identity=str(record.get("identity") or ""),
                    size=disk_usage(folder),
                    parts=parts,
                    created=str(record.get("created") or ""),
                )
            )
        return sorted(found, key=lambda entry: -entry.size)

    def remove(self, folder: str | Path) -> int:
        """Delete one model's folder (its IR and compiled blobs); returns the bytes freed."""
        folder = Path(folder)
        if folder.resolve().parent != self.root.resolve():
            raise ValueError(f"{folder} is not a model folder of the OpenVINO cache {self.root}")
        size = disk_usage(folder)
        shutil.rmtree(folder)
        return size

    def total_size(self) -> int:
        return disk_usage(self.root) if self.root.is_dir() else 0


def _read_record(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
