"""Which models a client may name: catalogue ids, and the folders and files directly inside the server's
`--model-dir`s, by name. Never a path, a hub repo id or anything else the network could use to make the
server read its disk or download what it likes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.engine.errors import RequestError

MAX_NAME_CHARS = 200
_MODEL_SUFFIXES = (".safetensors",)  # pickles (.ckpt) are never offered over the network


@dataclass(frozen=True)
class OfferedModel:
    name: str
    kind: str  # "catalogue" | "folder" | "file"
    family: str | None
    local: bool  # weights on this machine now (a catalogue model may need a download first)


class ModelNames:
    """The server's model policy (an :data:`~studio.engine.request_json.ModelPolicy`)."""

    def __init__(self, model_dirs: list[Path] | tuple[Path, ...] = ()) -> None:
        self.model_dirs = [Path(d).expanduser() for d in model_dirs]

    def __call__(self, name: str) -> str:
        return self.resolve(name)

    def resolve(self, name: str) -> str:
        """What the engine loads for `name`, or RequestError (field "model")."""
        from studio.engine.catalog import lookup

        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise RequestError("name a model (see GET /v1/models)", field="model")
        if lookup(name) is not None:
            return name
        if _is_plain_name(name):
            for folder in self.model_dirs:
                candidate = folder / name
                if _is_model(candidate):
                    return str(candidate)
        shown = name if len(name) <= 60 else name[:59] + "…"
        raise RequestError(
            f"model {shown!r} is not offered by this server: name a catalogue model or one of its model folders "
            "(GET /v1/models lists them); paths and hub ids are not accepted",
            field="model",
        )

    def offered(self) -> list[OfferedModel]:
        """The catalogue, then each model folder's models (sorted by name; the first folder wins a name)."""
        from studio.engine.model_store import local_model_statuses, model_statuses

        models = [OfferedModel(s.id, "catalogue", s.family, s.downloaded) for s in model_statuses()]
        seen = {m.name for m in models}
        found: list[Path] = []
        for folder in self.model_dirs:
            try:
                entries = sorted(folder.iterdir(), key=lambda p: p.name)
            except OSError:
                continue
            for path in entries:
                if path.name in seen or not _is_plain_name(path.name) or not _is_model(path):
                    continue
                seen.add(path.name)
                found.append(path)
        for status in local_model_statuses(found):
            models.append(OfferedModel(status.path.name, status.kind, status.family, status.exists))
        return models


def _is_plain_name(name: str) -> bool:
    return (
        name not in (".", "..") and not name.startswith(".") and "/" not in name and "\\" not in name
        and "\0" not in name and ":" not in name and name.isprintable()
    )


def _is_model(path: Path) -> bool:
    try:
        if path.is_dir():
            return (path / "model_index.json").is_file()
        return path.is_file() and path.suffix.lower() in _MODEL_SUFFIXES
    except OSError:
        return False
