"""A folder's size on disk, each file once."""

from __future__ import annotations

import os
from pathlib import Path

from studio.library.disk_usage import disk_usage


def test_disk_usage_counts_hard_links_once_and_no_symlinks(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").symlink_to(tmp_path / "a")
    (tmp_path / "d.incomplete").write_bytes(b"y" * 7)
    assert disk_usage(tmp_path) == 107
    assert disk_usage(Path(tmp_path / "missing")) == 0
