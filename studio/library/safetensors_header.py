"""The table of contents of a ``.safetensors`` file, read from its JSON header and validated.

A ``.safetensors`` file is an 8-byte little-endian header length, a UTF-8 JSON header naming every tensor's
dtype, shape and byte span, then the tensor data. Reading the header alone identifies a file (a checkpoint's
family, a LoRA's base model, an embedding's width) in milliseconds without loading a tensor, which is why the
window's pickers, ``studio models``, the model loaders and the LoRA/embedding catalogue all come here.

Every file may be crafted, so the header is checked at least as strictly as the safetensors library checks
it before reading a tensor, and every problem is one `HeaderError` (a ``ValueError``) whose message says what
is wrong and names no file (callers prefix it: the engine's ``SingleFileError``, the catalogue's
``problem``). Nothing else escapes: no ``OverflowError`` or ``RecursionError`` from a crafted header, no
hang on a FIFO. Standard library only (the library layer imports no torch).
"""

from __future__ import annotations

import math
import os
import stat
from typing import Any, BinaryIO

from studio.library import safe_json

__all__ = [
    "DTYPE_BITS",
    "MAX_DIMENSION",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_DEPTH",
    "MAX_RANK",
    "NO_TENSORS",
    "READ_FLAGS",
    "HeaderError",
    "read_header",
]

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_HEADER_DEPTH = 8  # a header nests 3 levels (the object, a tensor's entry, its shape)
MAX_RANK = 8  # real tensors have at most 5 dimensions
MAX_DIMENSION = 2**40  # bytes also bound each dimension, except in tensors with another dimension 0
# Bits per element of every dtype the safetensors library knows (the sub-byte ones are packed).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip
NO_TENSORS = "holds no tensors"  # valid for the format, useless to every caller: they add what they expected

# How to os.open a file from a stranger: opening a FIFO for reading blocks until a writer appears; non-blocking,
# the open returns at once and an fstat refuses it (Windows has no FIFOs to open this way, and no O_NONBLOCK).
READ_FLAGS = (
    os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
)


class HeaderError(ValueError):
    """A ``.safetensors`` header that cannot be trusted: a one-line reason naming no file, such as
    "is not a valid .safetensors file: its header length 10,000 runs past the end of the file (12 bytes)"."""


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name -> shape, ``__metadata__``) of a ``.safetensors`` file, from its header, validated.

    The checks: a regular file; an 8-byte little-endian length within the file and under
    `MAX_HEADER_BYTES`; UTF-8 JSON nested no deeper than `MAX_HEADER_DEPTH`, without NaN/Infinity or
    repeated names; an object whose ``__metadata__`` maps strings to strings and whose every other entry has
    a known ``dtype``, a ``shape`` of at most `MAX_RANK` non-negative integers (`MAX_DIMENSION` at most),
    and ``data_offsets`` spanning exactly the bytes that dtype and shape need, the tensors together covering
    the data section exactly, without overlap or gap, and at least one tensor (`NO_TENSORS`). The first
    violation is a `HeaderError`; reading at most the 8 bytes and the header, whatever the file's size.
    """
    handle, size = _open_regular(path)
    try:
        with handle:
            if size < 8:
                raise _invalid(f"it is {size} bytes long, too short for the 8-byte header length")
            header_len = int.from_bytes(handle.read(8), "little")
            if header_len > MAX_HEADER_BYTES:
                raise _invalid(
                    f"its header length {header_len:,} is over the {MAX_HEADER_BYTES:,}-byte limit"
                )
            if header_len > size - 8:
                raise _invalid(
                    f"its header length {header_len:,} runs past the end of the file ({size:,} bytes)"
                )
            if header_len < 2:
                raise _invalid(f"its header length {header_len} is too short for a JSON object")
            raw = handle.read(header_len)
    except OSError as exc:
        raise HeaderError(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) != header_len:  # the file shrank while we read it
        raise HeaderError("is truncated: its header ends early")
    try:
        header = safe_json.loads(raw, max_depth=MAX_HEADER_DEPTH, allow_constants=False, unique_keys=True)
    except safe_json.JSONRefused as exc:
        raise _invalid(f"its header {exc}") from None
    return _validated_header(header, size - 8 - header_len)


def _open_regular(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """The file open for reading and its size, or a `HeaderError` (missing, unreadable, not a regular file)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise HeaderError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return os.fdopen(fd, "rb"), info.st_size
    except OSError as exc:
        os.close(fd)
        raise HeaderError(f"cannot be read ({exc.strerror or exc})") from None
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise HeaderError("is a folder, not a file")
    raise HeaderError("is not a regular file (a pipe, socket or device?)")


def _invalid(detail: str) -> HeaderError:
    return HeaderError(f"is not a valid .safetensors file: {detail}")


def _is_int(value: Any) -> bool:
    return type(value) is int  # not bool, not float (1e30 parses as a float)


def _validated_header(header: Any, data_len: int) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """`read_header`'s checks of the parsed header against the `data_len` bytes after it."""
    if not isinstance(header, dict):
        raise _invalid(f"its header is {safe_json.kind(header)}, not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _invalid(f"its __metadata__ is {safe_json.kind(metadata)}, not an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _invalid(f"__metadata__[{safe_json.shown(key)}] is {safe_json.kind(value)}, not a string")
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        tensor = f"tensor {safe_json.shown(name)}"
        if not isinstance(info, dict):
            raise _invalid(f"{tensor} is described by {safe_json.kind(info)}, not an object")
        missing = [key for key in ("dtype", "shape", "data_offsets") if key not in info]
        if missing:
            raise _invalid(f"{tensor} has no {', '.join(missing)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise _invalid(f"{tensor} has an unknown dtype {safe_json.shown(dtype, 30)}")
        if not isinstance(shape, list):
            raise _invalid(f"{tensor} has a shape that is {safe_json.kind(shape)}, not a list")
        if len(shape) > MAX_RANK:
            raise _invalid(f"{tensor} has {len(shape):,} dimensions (at most {MAX_RANK})")
        for dim in shape:
            if not _is_int(dim):
                raise _invalid(f"{tensor} has a dimension {safe_json.shown(dim, 30)}, not a whole number")
            if dim < 0:
                raise _invalid(f"{tensor} has a negative dimension {dim}")
            if dim > MAX_DIMENSION:
                raise _invalid(f"{tensor} has a dimension of {dim:,}, larger than any real tensor's")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(x) for x in offsets)):
            raise _invalid(f"{tensor} has data_offsets {safe_json.shown(offsets, 40)}, not two whole numbers")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise _invalid(f"{tensor} has data_offsets [{begin}, {end}], not 0 <= begin <= end")
        if end > data_len:
            raise HeaderError(
                f"is truncated: {tensor} ends at byte {end:,} of the data, which holds only {data_len:,} bytes"
            )
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits != 8 * (end - begin):
            needs = f"{bits // 8:,} bytes" if bits % 8 == 0 else f"{bits:,} bits"
            raise _invalid(
                f"{tensor} ({dtype} {shape}) needs {needs}, but its data_offsets span {end - begin:,}"
            )
        shapes[name] = tuple(shape)
        spans.append((begin, end, name))
    if not shapes:
        raise HeaderError(NO_TENSORS)
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise _invalid(
                f"tensors {safe_json.shown(previous)} and {safe_json.shown(name)} overlap in the data"
            )
        if begin > position:
            raise _invalid(f"bytes {position:,}..{begin:,} of the data belong to no tensor")
        position, previous = end, name
    if position != data_len:
        raise _invalid(f"{data_len - position:,} bytes after its last tensor belong to no tensor")
    return shapes, metadata
