"""Listing a library folder for the watcher: image files with size and mtime, sub-folders, nothing hidden."""

from __future__ import annotations

import os

from studio.library.folder_listing import is_under, list_dir


def test_a_listing_holds_images_and_subfolders_only(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1234")
    (tmp_path / "b.JPG").write_bytes(b"12")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".a.png.studio-tmp-x-1-ab.part").write_bytes(b"half")  # a save in progress: hidden
    (tmp_path / "day").mkdir()
    (tmp_path / ".cache").mkdir()
    (tmp_path / "thumbs").mkdir()
    listing = list_dir(tmp_path, skip={tmp_path / "thumbs"})
    assert sorted(listing.files) == ["a.png", "b.JPG"]
    size, mtime_ns = listing.files["a.png"]
    assert size == 4 and mtime_ns == os.stat(tmp_path / "a.png").st_mtime_ns
    assert listing.subdirs == {tmp_path / "day"}


def test_an_unreadable_folder_has_no_listing(tmp_path):
    assert list_dir(tmp_path / "gone", skip=set()) is None


def test_is_under():
    from pathlib import Path

    assert is_under(Path("/a/b"), Path("/a")) and is_under(Path("/a"), Path("/a"))
    assert not is_under(Path("/ab"), Path("/a"))
