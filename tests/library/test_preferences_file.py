"""The preferences file: read leniently (anything but a JSON object reads as empty), written atomically."""

from __future__ import annotations

import json

import pytest

from studio.library import preferences_file
from studio.library.preferences_file import MAX_BYTES, local_models, read_preferences, write_preferences


def test_a_written_file_reads_back_the_same(tmp_path):
    path = tmp_path / "config" / "deeper" / "preferences.json"  # folders are made
    values = {"model": "sd-2.1", "steps": 20, "guidance": 7.5, "seed": 2**32 - 1, "history": [["café 雪 🐱", ""]],
              "output_dir": None, "safety_checker": False}
    write_preferences(values, path)
    assert read_preferences(path) == values
    text = path.read_text(encoding="utf-8")
    assert "café 雪 🐱" in text and text.startswith("{\n  ")  # readable by a person who edits it
    assert [p.name for p in path.parent.iterdir()] == ["preferences.json"]  # no temporary file left


def test_writing_replaces_the_whole_file(tmp_path):
    path = tmp_path / "p.json"
    write_preferences({"a": 1, "b": 2}, path)
    write_preferences({"a": 3}, path)
    assert read_preferences(path) == {"a": 3}


def test_lone_surrogates_from_a_hand_edited_file_survive_a_save(tmp_path):
    """JSON may spell a lone surrogate as an escape; it has no UTF-8 form, and writing it must not fail
    (the save at quit would lose every preference) nor make the file unreadable."""
    path = tmp_path / "p.json"
    path.write_text('{"prompt": "a\\ud800b", "old key": "\\udfff", "ok": "é"}', encoding="utf-8")
    values = read_preferences(path)
    assert values == {"prompt": "a\ud800b", "old key": "\udfff", "ok": "é"}
    write_preferences(values, path)
    assert read_preferences(path) == values
    path.read_bytes().decode("utf-8")  # still valid UTF-8


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b'{"model": "sd-1.4",',  # cut short
        b"[1, 2, 3]",  # JSON, not an object
        b'"a string"',
        b"null",
        b"42",
        b"\xff\xfe\x00garbage",  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's recursion limit
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["empty", "text", "truncated", "list", "string", "null", "number", "binary", "deep-list", "deep-object"],
)
def test_anything_but_an_object_reads_as_empty(tmp_path, content):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    assert read_preferences(path) == {}


def test_missing_files_and_folders_read_as_empty(tmp_path):
    assert read_preferences(tmp_path / "missing.json") == {}
    assert read_preferences(tmp_path) == {}  # a folder where the file should be


def test_a_huge_file_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    padding = "x" * (MAX_BYTES + 1)
    path.write_text(json.dumps({"model": "sd-2.1", "pad": padding}), encoding="utf-8")
    assert read_preferences(path) == {}
    monkeypatch.setattr(preferences_file, "MAX_BYTES", MAX_BYTES * 2)
    assert read_preferences(path)["model"] == "sd-2.1"  # the size alone refused it


def test_a_file_that_cannot_be_written_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        write_preferences({"a": 1}, blocker / "p.json")  # its folder would be a file
    with pytest.raises(OSError):
        write_preferences({"a": 1}, tmp_path)  # a folder in the way
    assert blocker.read_text() == "x"


def test_the_default_path_is_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_STUDIO_CONFIG", str(tmp_path / "cfg"))
    write_preferences({"theme": "dark"})
    assert (tmp_path / "cfg" / "preferences.json").is_file()
    assert read_preferences() == {"theme": "dark"}


def test_local_models_are_the_strings_of_the_list():
    assert local_models({"local_models": ["/a", 3, None, ["/b"], "/c"]}) == ["/a", "/c"]
    assert local_models({"local_models": "/a"}) == []
    assert local_models({}) == []
