"""Hostile `.safetensors` files: a small valid header, then one mutation of its length field, JSON, dtypes,
shapes, offsets or metadata. Each must be refused by `studio generate --model FILE` (exit 2, one line,
nothing written) and by the window's model picker (`local_model_kind`: one bad-input error, no crash)."""

from __future__ import annotations

import functools
import json
import random
import struct
from pathlib import Path

from fuzz.runner import Case, Step

BAD_NUMBERS = ["Infinity", "-Infinity", "NaN", "-1", "1.5", "true", '"3"', "1e30", str(2**64), "9" * 5000, "null", "[]"]


def valid_header() -> dict:
    return {
        "__metadata__": {"format": "pt"},
        "model.diffusion_model.input_blocks.0.0.weight": {"dtype": "F32", "shape": [4, 4, 3, 3], "data_offsets": [0, 576]},
        "model.diffusion_model.input_blocks.0.0.bias": {"dtype": "F32", "shape": [4], "data_offsets": [576, 592]},
        "first_stage_model.decoder.conv_in.weight": {"dtype": "F16", "shape": [2, 4, 1, 1], "data_offsets": [592, 608]},
    }


def encode(header_text: str | bytes, data_size: int = 608, *, length: int | None = None) -> bytes:
    raw = header_text.encode("utf-8", "surrogatepass") if isinstance(header_text, str) else header_text
    return struct.pack("<Q", len(raw) if length is None else length) + raw + b"\x00" * data_size


def _with_literal(header: dict, path: list, literal: str) -> str:
    """The header as JSON with the value at `path` replaced by a literal json.dumps would never write."""
    target = header
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "@@LITERAL@@"
    return json.dumps(header).replace('"@@LITERAL@@"', literal)


def mutate(rng: random.Random) -> tuple[str, bytes]:
    header = valid_header()
    name = rng.choice([k for k in header if k != "__metadata__"])
    kind = rng.randrange(16)
    if kind == 0:
        index = rng.randrange(len(header[name]["shape"]))
        literal = rng.choice(BAD_NUMBERS)
        return f"shape[{index}]={literal[:12]}", encode(_with_literal(header, [name, "shape", index], literal))
    if kind == 1:
        header[name]["shape"] = [1] * rng.choice([65, 1000, 100_000])
        return "rank", encode(json.dumps(header))
    if kind == 2:
        header[name]["shape"] = [2**rng.randrange(20, 62)] * rng.randrange(1, 5)
        return "huge shape", encode(json.dumps(header))
    if kind == 3:
        index = rng.randrange(2)
        literal = rng.choice(BAD_NUMBERS)
        return f"offsets[{index}]={literal[:12]}", encode(_with_literal(header, [name, "data_offsets", index], literal))
    if kind == 4:
        header[name]["data_offsets"] = rng.choice([[0, 10**9], [600, 500], [0, 0, 0], [0], [-16, 0], [100, 116]])
        return f"offsets {header[name]['data_offsets']}", encode(json.dumps(header))
    if kind == 5:
        header[name]["dtype"] = rng.choice(["F128", "", "f32", 5, None, ["F32"], "F32\x00"])
        return f"dtype {header[name]['dtype']!r}", encode(json.dumps(header))
    if kind == 6:
        del header[name][rng.choice(["dtype", "shape", "data_offsets"])]
        return "missing key", encode(json.dumps(header))
    if kind == 7:
        header["__metadata__"] = rng.choice([{"a": 1}, {"a": None}, ["x"], "x", {"a": {"b": "c"}}, 5])
        return "metadata", encode(json.dumps(header))
    if kind == 8:
        depth = rng.choice([1000, 100_000])
        header["__metadata__"] = "@@DEEP@@"
        return f"nested {depth}", encode(json.dumps(header).replace('"@@DEEP@@"', "[" * depth + "]" * depth))
    if kind == 9:
        literal = rng.choice(["5", "null", '"x"', "[1,2]", "true"])
        return f"entry {literal}", encode(_with_literal(header, [name], literal))
    if kind == 10:
        return "top level", encode(rng.choice(["[]", "5", '"x"', "null", "{", "", "{}x"]))
    if kind == 11:
        return "invalid utf-8", encode(b'{"\xff\xfe": {"dtype": "F32"}}')
    if kind == 12:
        text = json.dumps(header)
        length = rng.choice([0, 7, len(text) + 10_000, 2**63, 2**64 - 1, 200 << 20])
        return f"length field {length}", encode(text, length=length)
    if kind == 13:
        data = encode(json.dumps(header))
        return "truncated", data[: rng.randrange(0, len(data) - 1)]
    if kind == 14:
        return "data short", encode(json.dumps(header), data_size=rng.randrange(0, 600))
    header[name]["data_offsets"] = [0, 576]  # overlaps the first tensor
    return "overlap", encode(json.dumps(header))


def picker_check(path: Path) -> str | None:
    """What the window asks of a picked file: `check_local_model` refuses it with one of our bad-input
    errors, and `local_model_kind` (the form's cheap guess of family and sizes) answers without raising."""
    from studio.engine.loading import local_model_kind
    from studio.engine.model_info import check_local_model

    local_model_kind(str(path))
    try:
        check_local_model(str(path))
    except ValueError as exc:
        if type(exc).__module__.startswith("studio."):
            return None
        return f"picker: {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:100]}"
    return "picker: accepted the file"


def cases(work: Path, rng: random.Random, count: int) -> list[Case]:
    folder = work / "headers"
    folder.mkdir()
    out = []
    for n in range(count):
        what, data = mutate(rng)
        path = folder / f"model{n}.safetensors"
        path.write_bytes(data)
        target = work / "out" / f"header{n}"
        argv = ["generate", "--prompt", "x", "--model", str(path), "--steps", "1", "--width", "64", "--height", "64",
                "--device", "cpu", "--output-dir", str(target)]
        out.append(Case("headers", f"{what} ({path.name})", [Step(argv, {2: None})], [target],
                        check=functools.partial(picker_check, path)))
    return out
