"""Hostile input to the command line (issue 11): each crafted input gets one line on stderr and exit 2 before
any model loads, and text from files never reaches the terminal raw. The model given is the catalogue's sd-1.4
in an empty offline cache: a check that ran only after loading would fail with exit 1 ("not downloaded")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.cli import main

HOSTILE = "a red p\x1b[31mRED \x1b]0;title\x07 back\rspace\x08 \u202eevil \x9b2J"


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """An empty model cache, offline: loading any catalogue model fails with exit 1."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    return ["--model", "sd-1.4", "--device", "cpu"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_usage_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("studio: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def assert_terminal_safe(text: str) -> None:
    """Nothing that acts on a terminal: no ESC, BEL, CR, backspace, bidi override (escaped forms are fine)."""
    for char in ("\x1b", "\x07", "\r", "\x08", "\u202e", "\x9b"):
        assert char not in text, repr(text)


def batch_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "in.json"
    path.write_text(text, encoding="utf-8")
    return str(path)


def with_parameters(**parameters) -> str:
    return json.dumps({"input_data": {"data": ["a castle"], "parameters": parameters}})


# ------------------------------------------------------------------------------ batch: types and sizes


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (with_parameters(seed="5"), ["input_data.parameters.seed", "whole number", "'5'"]),
        (with_parameters(seed=[1]), ["input_data.parameters.seed", "whole number"]),
        (with_parameters(seed={"a": 1}), ["input_data.parameters.seed", "whole number"]),
        (with_parameters(seed=True), ["input_data.parameters.seed", "got True"]),
        (with_parameters(seed=-1), ["input_data.parameters.seed", "between 0 and"]),
        (with_parameters(scheduler=5), ["input_data.parameters.scheduler", "must be a name"]),
        (with_parameters(negative_prompt=["x"]), ["input_data.parameters.negative_prompt", "must be text"]),
        (with_parameters(guidance_scale="high"), ["input_data.parameters.guidance_scale", "must be a number"]),
        (with_parameters(width=512.5), ["input_data.parameters.width", "whole number"]),
        (with_parameters(height=10**30), ["input_data.parameters.height", "between"]),
        (with_parameters(num_inference_steps=[None]), ["input_data.parameters.num_inference_steps"]),
        (with_parameters(seed=4294967295), ["input_data.data[1]", "seed must be between"]),
        ('{"input_data": {"data": ["x"], "parameters": {"seed": ' + "9" * 5000 + "}}}", ["thousands of digits"]),
        ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
        ('{"input_data": {"data": [' + '"x",' * 3 + '"bad \\ud800"]}}', ["input_data.data[3]", "lone surrogate"]),
        (json.dumps({"input_data": {"data": ["x" * 70_000]}}), ["input_data.data[0]", "70,000 bytes", "64 KiB"]),
        (json.dumps({"input_data": {"data": [1.5]}}), ["input_data.data[0]", "must be text"]),
        (json.dumps({"input_data": {"data": ["x"], "parameters": [1]}}), ["parameters must be an object"]),
        (json.dumps({"input_data": {"data": ["x"], "parameters": {"\x1b[2J": 1}}}), ["unknown parameter"]),
    ],
)
def test_batch_input_is_checked_whole_before_any_model_loads(capsys, tmp_path, no_models, text, fragments):
    if "data[1]" in fragments[0]:  # the second prompt's seed is the first's + 1: out of range
        text = json.dumps({"input_data": {"data": ["a", "b"], "parameters": {"seed": 4294967295}}})
    target = tmp_path / "out.json"
    code, out, err = run(capsys, "batch", batch_file(tmp_path, text), "-o", str(target), *no_models)
    assert_one_line_usage_error(code, err, *fragments)
    assert_terminal_safe(err)
    assert out == "" and not target.exists()


def test_batch_reads_no_device_or_fifo(capsys, tmp_path, no_models):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block forever: it must not be opened at all
    for source in ("/dev/zero", str(fifo), str(tmp_path)):
        code, _, err = run(capsys, "batch", source, *no_models)
        assert_one_line_usage_error(code, err, "not a regular file")


def test_batch_file_size_is_capped(capsys, tmp_path, no_models):
    big = tmp_path / "big.json"
    with open(big, "wb") as stream:  # sparse: 9 MiB on paper, nothing on disk
        stream.truncate(9 << 20)
    code, _, err = run(capsys, "batch", str(big), *no_models)
    assert_one_line_usage_error(code, err, "at most 8 MiB")


@pytest.mark.parametrize("where", ["folder", "under a file", "missing folder"])
def test_batch_output_file_checked_before_work(capsys, tmp_path, no_models, where):
    (tmp_path / "a-file").write_text("keep me")
    target = {
        "folder": tmp_path,
        "under a file": tmp_path / "a-file" / "out.json",
        "missing folder": tmp_path / "new" / "deeper" / "out.json",
    }[where]
    code, _, err = run(capsys, "batch", batch_file(tmp_path, with_parameters()), "-o", str(target), *no_models)
    if where == "missing folder":  # made when the results are written: here the model is missing, exit 1
        assert code == 1 and "not downloaded" in err
        assert not (tmp_path / "new").exists()  # the writability probe left nothing behind
    else:
        assert_one_line_usage_error(code, err, "folder" if where == "folder" else "is a file")
    assert (tmp_path / "a-file").read_text() == "keep me"


# ------------------------------------------------------------------------- generate: output and prompt


@pytest.mark.parametrize("where", ["under a file", "name too long"])
def test_unwritable_output_folder_is_found_before_the_model_loads(capsys, tmp_path, no_models, where):
    (tmp_path / "a-file").write_text("keep me")
    folder = tmp_path / "a-file" / "sub" if where == "under a file" else tmp_path / ("x" * 300)
    code, _, err = run(capsys, "generate", "--prompt", "x", "--output-dir", str(folder), *no_models)
    assert_one_line_usage_error(code, err, str(folder)[:40])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(capsys, tmp_path, no_models):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    code, _, err = run(capsys, "generate", "--prompt", "x", "--output-dir", str(folder / "out"), *no_models)
    assert_one_line_usage_error(code, err, "cannot write", "Permission denied")


def test_prompt_size_is_capped_before_parsing(capsys, tmp_path, no_models):
    code, _, err = run(capsys, "generate", "--prompt", "(" * 200_000, "--output-dir", str(tmp_path), *no_models)
    assert_one_line_usage_error(code, err, "200,000 bytes", "64 KiB")


# ---------------------------------------------------------------------------- text from files: escaped


def hostile_png(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"{HOSTILE}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64, Model: m\x1b[2J")
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_info_shows_escapes_instead_of_obeying_them(capsys, tmp_path):
    code, out, _ = run(capsys, "info", str(hostile_png(tmp_path / "esc.png")))
    assert code == 0
    assert_terminal_safe(out)
    prompt = next(line for line in out.splitlines() if line.startswith("prompt: "))
    assert prompt.startswith("prompt: a red p\\x1b[31mRED \\x1b]0;title\\x07 back\\")  # \r read as a line end
    assert prompt.endswith("space\\x08 \\u202eevil \\x9b2J")
    assert "model: m\\x1b[2J" in out.splitlines()
    code, out, _ = run(capsys, "info", "--json", str(tmp_path / "esc.png"))
    assert_terminal_safe(out)  # json.dumps alone would pass C1 controls and bidi overrides raw
    assert json.loads(out)["prompt"] == HOSTILE.replace("\r", "\n")  # yet JSON keeps the exact text


def test_gallery_search_shows_escapes_and_accepts_a_leading_dash(capsys, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    hostile_png(folder / "esc.png")
    clean = PngImagePlugin.PngInfo()
    clean.add_text("parameters", "a red castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 6, Size: 64x64")
    Image.new("RGB", (8, 8)).save(folder / "castle.png", pnginfo=clean)
    db = str(tmp_path / "gallery.db")
    assert run(capsys, "gallery", "--db", db, "scan", str(folder))[0] == 0
    code, out, _ = run(capsys, "gallery", "--db", db, "search", "red")
    assert code == 0 and len(out.splitlines()) == 2
    assert_terminal_safe(out)
    assert all(line.count("\t") == 3 for line in out.splitlines())  # the columns survive a hostile prompt
    code, out, err = run(capsys, "gallery", "--db", db, "search", "red", "-castle")
    assert code == 0, err
    assert [Path(line.split("\t")[0]).name for line in out.splitlines()] == ["esc.png"]
    code, out, _ = run(capsys, "gallery", "--db", db, "search", "-castle", "-horse", "--limit", "5")
    assert code == 0 and [Path(line.split("\t")[0]).name for line in out.splitlines()] == ["esc.png"]
    code, out, _ = run(capsys, "gallery", "--db", db, "search", "-castle", "red", "--limit", "5")  # words after
    assert code == 0 and [Path(line.split("\t")[0]).name for line in out.splitlines()] == ["esc.png"]
    code, out, _ = run(capsys, "gallery", "--db", db, "search", "red", "--json")
    assert_terminal_safe(out)
    assert HOSTILE.replace("\r", "\n") in {row["prompt"] for row in json.loads(out)}


@pytest.mark.parametrize("limit", ["99999999999999999999", "0", "-1", "ten"])
def test_gallery_search_limit_is_bad_input(capsys, tmp_path, limit):
    code, _, err = run(capsys, "gallery", "--db", str(tmp_path / "g.db"), "search", "x", "--limit", limit)
    assert_one_line_usage_error(code, err, "--limit")


def test_an_unknown_long_option_in_a_search_is_still_an_error(capsys, tmp_path):
    code, _, err = run(capsys, "gallery", "--db", str(tmp_path / "g.db"), "search", "x", "--limt", "5")
    assert_one_line_usage_error(code, err, "--limt")


def test_a_hostile_file_name_in_an_error_is_escaped(capsys, tmp_path):
    name = tmp_path / "evil\x1b]0;owned\x07.png"
    name.write_bytes(b"not an image")
    code, _, err = run(capsys, "info", str(name))
    assert code == 2
    assert_terminal_safe(err)
    assert "evil\\x1b]0;owned\\x07.png" in err


# ------------------------------------------------------------------------------ crafted model files


def test_a_crafted_safetensors_header_is_bad_input(capsys, tmp_path):
    import struct

    header = b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    crafted = tmp_path / "crafted.safetensors"
    crafted.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 4)
    out = tmp_path / "out"
    code, _, err = run(capsys, "generate", "--prompt", "x", "--model", str(crafted), "--output-dir", str(out),
                       "--device", "cpu")
    assert_one_line_usage_error(code, err, "crafted.safetensors", "Infinity")
    assert not out.exists()


def test_a_model_folder_with_an_absurd_config_is_bad_input(capsys, tmp_path, tiny_sd1):
    import shutil

    folder = tmp_path / "absurd"
    shutil.copytree(tiny_sd1, folder)
    config = folder / "unet" / "config.json"
    data = json.loads(config.read_text())
    data["block_out_channels"] = [10**9, *data["block_out_channels"][1:]]
    config.write_text(json.dumps(data))
    code, _, err = run(capsys, "generate", "--prompt", "x", "--model", str(folder), "--output-dir",
                       str(tmp_path / "out"), "--device", "cpu", "--steps", "1")
    assert_one_line_usage_error(code, err, "unet/config.json", "block_out_channels[0] = 1000000000", "out of range")


def test_batch_reads_standard_input_when_given_a_dash(capsys, monkeypatch, no_models):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(with_parameters(seed="5").encode())))
    code, _, err = run(capsys, "batch", "-", *no_models)
    assert_one_line_usage_error(code, err, "input_data.parameters.seed")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * (9 << 20))))  # as from /dev/zero
    code, _, err = run(capsys, "batch", "-", *no_models)
    assert_one_line_usage_error(code, err, "standard input", "at most 8 MiB")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(with_parameters().encode())))
    code, _, err = run(capsys, "batch", "-", *no_models)
    assert code == 1 and "not downloaded" in err  # well-formed: as far as the missing model
