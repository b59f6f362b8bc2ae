"""Hostile `studio batch` input: the model cards' JSON with wrong types, ranges, shapes and sizes, broken
JSON, files that are not files, and `-o` targets that cannot be written. Every one is refused with exit 2
before the model loads; a well-formed one gets as far as the missing model (exit 1, "not downloaded")."""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path

from fuzz import hostile_text
from fuzz.runner import MODEL_MISSING, Case, Step

SAMPLE = {
    "input_data": {
        "columns": ["prompt"],
        "data": ["a castle on a hill", "lion holding hunted deer in grass fields"],
        "index": [0, 1],
        "parameters": {"num_inference_steps": 3, "guidance_scale": 7.5, "height": 64, "width": 64, "seed": 5},
    }
}
PARAMETERS = ["num_inference_steps", "guidance_scale", "guidance_rescale", "negative_prompt", "height", "width",
              "seed", "scheduler"]


def _mutate_once(data: dict, rng: random.Random) -> object:
    """One change; earlier changes may have replaced the parts it would touch (then it raises)."""
    body = data["input_data"]
    kind = rng.randrange(9)
    if kind <= 2:
        body["parameters"][rng.choice(PARAMETERS)] = hostile_text.value(rng)
    elif kind == 3:
        body["data"][rng.randrange(len(body["data"]))] = rng.choice([hostile_text.text(rng), hostile_text.value(rng)])
    elif kind == 4:
        body["columns"] = hostile_text.value(rng)
    elif kind == 5:
        body["data"] = rng.choice([[], hostile_text.value(rng), [[hostile_text.text(rng)]], [{"prompt": 5}]])
    elif kind == 6:
        body["parameters"] = rng.choice([hostile_text.value(rng), {hostile_text.text(rng)[:30]: 1}])
    elif kind == 7:
        data["input_data"] = hostile_text.value(rng)
    else:
        return hostile_text.value(rng)
    return data


def mutate(rng: random.Random) -> object:
    data: object = copy.deepcopy(SAMPLE)
    for _ in range(rng.randrange(1, 4)):
        try:
            data = _mutate_once(data, rng)  # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError, KeyError):
            continue
    return data


def raw_file(rng: random.Random) -> bytes:
    """Bytes that are not the JSON they should be."""
    return rng.choice([
        b"", b"{", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"null", b"[" * 100_000, b'{"input_data": ' * 50_000,
        os.urandom(rng.randrange(1, 300)), b'{"input_data": {"data": ["x"]}}' + b"\x00",
        b'{"input_data": {"data": ["x"], "parameters": {"seed": ' + b"9" * 5000 + b"}}}",
        b'{"input_data": {"data": ["x"], "parameters": {"seed": NaN}}}',
        b'{"input_data": {"data": ["\\ud800"]}}',
    ])


def cases(work: Path, rng: random.Random, count: int) -> list[Case]:
    folder = work / "batches"
    folder.mkdir()
    (work / "a-file").write_text("keep me")
    model = ["--model", "sd-1.4", "--device", "cpu"]
    out = []
    for n in range(count):
        path = folder / f"batch{n}.json"
        if rng.random() < 0.2:
            path.write_bytes(raw_file(rng))
            what = "raw"
        else:
            path.write_text(hostile_text.json_text(mutate(rng), rng), encoding="utf-8", errors="surrogatepass")
            what = "json"
        target = work / "out" / f"batch{n}"
        argv = ["batch", str(path), "-o", str(target / "out.json"), *model]
        out.append(Case("batches", f"{what} {path.name}", [Step(argv, {2: None, 1: MODEL_MISSING})], [target]))
    specials = {
        "/dev/zero": ["batch", "/dev/zero", *model],
        "folder": ["batch", str(folder), *model],
        "-o folder": ["batch", str(folder / "batch0.json"), "-o", str(folder), *model],
        "-o under a file": ["batch", str(folder / "batch0.json"), "-o", str(work / "a-file" / "x.json"), *model],
        "-o long name": ["batch", str(folder / "batch0.json"), "-o", str(work / ("x" * 300) / "o.json"), *model],
        "big file": ["batch", str(_sparse(work / "big.json", 64 << 20)), *model],
        "--seed huge": ["batch", str(folder / "batch0.json"), "--seed", "9" * 30, *model],
    }
    for what, argv in specials.items():
        out.append(Case("batches", what, [Step(argv, {2: None})]))
    fifo = work / "pipe.json"
    os.mkfifo(fifo)
    out.append(Case("batches", "fifo", [Step(["batch", str(fifo), *model], {2: None})]))
    return out


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path
