"""The shared .safetensors header reader: real files read back, crafted ones one HeaderError naming no file.

The full table of crafted headers runs through the engine's wrapper (tests/engine/test_single_file.py); here
the library's own contract: a ValueError without the path, nothing else escaping, no hang on odd files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.library.safetensors_header import NO_TENSORS, HeaderError, read_header


def _crafted(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    path.write_bytes((len(header) if length is None else length).to_bytes(8, "little") + header + data)
    return path


def test_a_file_written_by_safetensors_reads_back_with_its_metadata(tmp_path):
    path = tmp_path / "lora.safetensors"
    tensors = {"a.lora_down.weight": np.zeros((4, 768), np.float16), "a.alpha": np.array(4.0, np.float32)}
    save_file(tensors, str(path), metadata={"ss_output_name": "cat", "ss_tag_frequency": json.dumps({"d": {}})})
    shapes, metadata = read_header(path)
    assert shapes == {"a.lora_down.weight": (4, 768), "a.alpha": ()}
    assert metadata == {"ss_output_name": "cat", "ss_tag_frequency": '{"d": {}}'}


@pytest.mark.parametrize(
    ("header", "data", "length", "expected"),
    [
        (b"{not json}", b"", None, "is not a valid .safetensors file: its header is not valid JSON"),
        (b"{}", b"", 2**63, "over the 100,000,000-byte limit"),
        (b"{}", b"", 1000, "runs past the end of the file"),
        (b"{}", b"", None, NO_TENSORS),
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 4, None, "is truncated"),
        (b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"", None, "nested more than 8 levels"),
    ],
    ids=["not-json", "huge-length", "length-past-end", "no-tensors", "truncated-data", "deep-nesting"],
)
def test_a_crafted_header_is_a_header_error_that_names_no_file(tmp_path, header, data, length, expected):
    path = _crafted(tmp_path / "crafted.safetensors", header, data, length)
    with pytest.raises(HeaderError, match=expected) as error:
        read_header(path)
    assert isinstance(error.value, ValueError)
    assert str(path) not in str(error.value) and "\n" not in str(error.value)


def test_what_is_not_a_readable_regular_file_is_refused(tmp_path, deadline):
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(HeaderError, match="is a folder"):
        read_header(tmp_path / "folder.safetensors")
    with pytest.raises(HeaderError, match="cannot be read"):
        read_header(tmp_path / "missing.safetensors")
    (tmp_path / "short.safetensors").write_bytes(b"\1\0\0")
    with pytest.raises(HeaderError, match="3 bytes long"):
        read_header(tmp_path / "short.safetensors")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.safetensors")
        with pytest.raises(HeaderError, match="not a regular file"):
            read_header(tmp_path / "pipe.safetensors")
