"""The output-folder probe: refuses what saving would fail on, and leaves no trace either way."""

from __future__ import annotations

import os

import pytest

from studio.library.folders import FolderError, check_writable_folder


def test_an_existing_folder_passes_and_stays_as_it_was(tmp_path):
    (tmp_path / "image.png").write_bytes(b"x")
    assert check_writable_folder(tmp_path) == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_missing_folders_are_probed_then_removed_again(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    check_writable_folder(target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("relative", "message"),
    [("file", "is a file"), ("file/sub", "cannot be made: "), ("x" * 300, "File name too long")],
)
def test_what_saving_would_fail_on_is_refused(tmp_path, relative, message):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(FolderError, match=message) as caught:
        check_writable_folder(tmp_path / relative)
    assert str(tmp_path) in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(FolderError, match="Permission denied"):
        check_writable_folder(locked / "out")
