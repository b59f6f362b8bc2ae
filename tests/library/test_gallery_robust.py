"""One file never stops a scan, and no value in the catalogue crashes a query: real PNG files, real file
names (including bytes that are not UTF-8), a real SQLite catalogue changed by hand.

Where a test needs a metadata reader to misbehave (return text SQLite cannot store, objects of the wrong
type, raise the unexpected), it replaces the reader the gallery calls: the gallery must survive whatever
a reader does, whatever the readers of the day happen to do.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from studio.library import gallery_scan as scanning
from studio.library.gallery import Gallery, Query
from studio.library.metadata import ImageMetadata

from . import samples as S
from .test_gallery import JUNE_1, paths, write_ours

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="file names that are not UTF-8 need a Linux file system"
)


def ours_with_raw_prompt(path: Path, prompt_json: str) -> Path:
    """A PNG whose ``latent-studio`` iTXt chunk holds our JSON with the prompt written as raw JSON text
    (so an escape like ``\\ud800``, a lone surrogate, reaches the reader as it is)."""
    meta = copy.deepcopy(S.STUDIO_META)
    meta["request"]["prompt"] = "PROMPT"
    text = json.dumps(meta).replace('"PROMPT"', prompt_json)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("latent-studio", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 8), (10, 20, 30)).save(path, pnginfo=info)
    return path


def bytes_named(folder: Path, name: bytes) -> str:
    """A real PNG whose file name is raw bytes; returns its path as Python sees it (surrogate escapes)."""
    path = os.fsencode(folder) + b"/" + name
    try:
        with open(path, "wb") as stream:
            Image.new("RGB", (6, 6), (1, 2, 3)).save(stream, "PNG")
    except OSError as exc:  # a file system that insists on UTF-8 names
        pytest.skip(f"cannot create a non-UTF-8 file name here: {exc}")
    return os.fsdecode(path)


# --------------------------------------------------------------------------------------------------
# Text that SQLite cannot store
# --------------------------------------------------------------------------------------------------


def test_a_prompt_with_a_lone_surrogate_does_not_stop_the_scan(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    write_ours(folder / "good.png", "a good fox")
    bad = ours_with_raw_prompt(folder / "bad.png", '"bad \\ud800 prompt"')
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        report = gallery.scan()
        assert (report.added, report.unreadable, report.skipped) == (2, 0, [])
        image = gallery.get_by_path(bad)
        assert image is not None and image.prompt == "bad \ufffd prompt"
        assert paths(gallery.search(Query(text="bad"))) == ["bad.png"]
        os.utime(bad, (1_700_000_000, 1_700_000_000))  # changed: the watcher's path re-reads it
        assert gallery.index_file(bad) == "updated"


def test_text_a_reader_returns_with_lone_surrogates_is_stored_with_replacements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reader(path: Any) -> ImageMetadata:
        return ImageMetadata(
            source="latent-studio",
            prompt="a fox \ud800 in \udcff snow",
            negative_prompt="\udfff",
            model="model-\ud83d",
            scheduler="euler\x00\udc80",
            seed=7,
        )

    monkeypatch.setattr(scanning, "read_metadata", reader)
    write_ours(tmp_path / "pics" / "fox.png", "replaced by the reader above")
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(tmp_path / "pics")
        assert gallery.scan().added == 1
        image = gallery.search()[0]
        assert (image.prompt, image.negative_prompt, image.model, image.scheduler, image.seed) == (
            "a fox \ufffd in \ufffd snow",
            "\ufffd",
            "model-\ufffd",
            "euler\ufffd",
            7,
        )
        assert gallery.models() == ["model-\ufffd"]


# --------------------------------------------------------------------------------------------------
# File names that are not UTF-8
# --------------------------------------------------------------------------------------------------


@linux_only
def test_a_file_name_that_is_not_utf8_is_skipped_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    write_ours(folder / "good.png", "a good fox")
    bad = bytes_named(folder, b"bad\xff\xfe.png")
    bad_folder = os.fsencode(folder) + b"/dir\xff"
    os.mkdir(bad_folder)
    in_bad_folder = bytes_named(Path(os.fsdecode(bad_folder)), b"fine.png")
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        report = gallery.scan()
        assert (report.added, report.unreadable) == (1, 2)
        assert sorted(report.skipped) == sorted(
            [(bad, "file name is not valid UTF-8"), (in_bad_folder, "folder name is not valid UTF-8")]
        )
        assert paths(gallery.search()) == ["good.png"]
        # Not storable, so remembered by this Gallery only: unchanged for the rest of the session...
        again = gallery.scan()
        assert (again.unchanged, again.unreadable, again.skipped) == (3, 0, [])
        assert gallery.index_file(bad) == "unchanged"
        os.utime(os.fsencode(bad), (1_600_000_000, 1_600_000_000))  # ...until it changes
        assert gallery.index_file(bad) == "unreadable"
        assert gallery.index_file(bad) == "unchanged"
        changed = gallery.scan()
        assert (changed.unchanged, changed.unreadable) == (3, 0)
        assert gallery.get_by_path(bad) is None and gallery.forget(bad) is False
        os.unlink(os.fsencode(bad))
        assert gallery.index_file(bad) == "removed"  # gone: nothing was stored, nothing fails
    with Gallery(tmp_path / "g.sqlite3") as later:  # another session: said again, once
        first, second = later.scan(), later.scan()
        assert (first.unreadable, [reason for _path, reason in first.skipped]) == (1, ["folder name is not valid UTF-8"])
        assert (second.unreadable, second.unchanged) == (0, 2)


@linux_only
def test_a_folder_whose_name_is_not_utf8_is_refused_clearly(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path) + b"/pics\xff"
    os.mkdir(folder)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        with pytest.raises(ValueError, match="not valid UTF-8"):
            gallery.add_folder(os.fsdecode(folder))
        assert gallery.folders() == []
        gallery.remove_folder(os.fsdecode(folder))  # never stored: nothing to do, nothing fails


# --------------------------------------------------------------------------------------------------
# Whatever a reader returns or raises
# --------------------------------------------------------------------------------------------------


class Explosive(str):
    """A str whose every slice raises: what a reader could hand back if it went wrong in odd ways."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> str:
        raise RuntimeError("boom while slicing")


def test_whatever_a_reader_returns_or_raises_skips_only_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scanning.read_metadata
    odd: dict[str, Any] = {
        "object.png": object(),  # no attributes at all
        "list-source.png": ImageMetadata(source=["not", "hashable"]),  # type: ignore[arg-type]
        "explosive.png": ImageMetadata(source="a1111", prompt=Explosive("text")),
        "recursion.png": RecursionError("maximum recursion depth exceeded"),
        "weird-types.png": ImageMetadata(source="comfyui", prompt=42, seed=2.5, steps=10**30, model=b"x"),  # type: ignore[arg-type]
    }

    def reader(path: Any) -> Any:
        value = odd.get(Path(path).name)
        if value is None:
            return real(path)
        if isinstance(value, BaseException):
            raise value
        return value

    monkeypatch.setattr(scanning, "read_metadata", reader)
    folder = tmp_path / "pics"
    for name in odd:
        write_ours(folder / name, "replaced by the reader")
    write_ours(folder / "good.png", "a good fox")
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        report = gallery.scan()
        skipped = {Path(path).name: reason for path, reason in report.skipped}
        assert sorted(skipped) == ["explosive.png", "object.png", "recursion.png"]
        assert skipped["recursion.png"] == "maximum recursion depth exceeded"
        assert "boom while slicing" in skipped["explosive.png"]
        assert report.unreadable == 3 and report.added == 3
        weird = gallery.get_by_path(folder / "weird-types.png")
        assert weird is not None
        assert (weird.prompt, weird.seed, weird.steps, weird.model, weird.source) == (None, None, None, None, "comfyui")
        assert gallery.get_by_path(folder / "list-source.png").source is None
        assert gallery.index_file(folder / "object.png") == "unchanged"  # remembered as unreadable
        os.utime(folder / "object.png", (1_700_000_000, 1_700_000_000))
        assert gallery.index_file(folder / "object.png") == "unreadable"  # read again, still survived


def test_a_batch_that_fails_on_some_rows_keeps_the_others(tmp_path: Path) -> None:
    """Another connection removes a folder while a scan of it is under way: its rows can no longer be
    written (the folder's row is gone), the other folder's rows still are, and the scan completes."""
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    for index in range(3):
        write_ours(kept / f"k{index}.png", f"kept {index}")
        write_ours(dropped / f"d{index}.png", f"dropped {index}")
    db = tmp_path / "g.sqlite3"
    with Gallery(db) as gallery, Gallery(db) as other:
        gallery.add_folder(kept)
        gallery.add_folder(dropped)

        def remove_meanwhile(event: scanning.ScanProgress) -> None:
            if event.done == 0:  # after the walk, before any file is written
                other.remove_folder(dropped)

        report = gallery.scan(progress=remove_meanwhile)
        assert report.added == 3
        assert sorted(Path(path).name for path, _ in report.skipped) == ["d0.png", "d1.png", "d2.png"]
        assert all("FOREIGN KEY" in reason for _, reason in report.skipped)
        assert sorted(paths(gallery.search())) == ["k0.png", "k1.png", "k2.png"]
        assert gallery.folders() == [kept.resolve()]


# --------------------------------------------------------------------------------------------------
# Values changed by hand never crash a query
# --------------------------------------------------------------------------------------------------


def test_values_changed_by_hand_are_read_back_checked(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    fox = write_ours(folder / "fox.png", "a fox")
    write_ours(folder / "owl.png", "an owl", model="owl-model")
    db = tmp_path / "g.sqlite3"
    with Gallery(db) as gallery:
        gallery.add_folder(folder)
        gallery.scan()
        fox_id = gallery.get_by_path(fox).id
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE images SET size = 'x', width = 'y', height = -3, mtime = 'z', created = 'soon', seed = 1.5, "
            "steps = 'many', rating = 'five', favourite = 'yes', prompt = 12, "
            "model = CAST(x'41ff42' AS TEXT), scheduler = x'00ff', source = 3.5 WHERE id = ?",
            (fox_id,),
        )
        conn.execute("INSERT INTO folders (path, added_at) VALUES (42, 0)")
        conn.execute("UPDATE images SET path = CAST(x'2f7a7aff2e706e67' AS TEXT) WHERE path LIKE '%owl.png'")
    with Gallery(db) as gallery:
        image = gallery.get(fox_id)
        assert image is not None
        assert (image.size, image.width, image.height, image.mtime, image.created) == (0, None, None, 0.0, 0.0)
        assert (image.seed, image.steps, image.rating, image.favourite) == (None, None, 0, False)
        assert (image.prompt, image.model, image.scheduler, image.source) == ("12", "A\ufffdB", None, "3.5")
        assert {i.path.name for i in gallery.search()} == {"fox.png", "zz\ufffd.png"}
        assert gallery.count() == 2 and gallery.models() == ["A\ufffdB", "owl-model"]
        assert gallery.folders() == [folder.resolve()]  # the row holding a number is not a folder
        report = gallery.scan()  # the changed rows are simply re-read (the owl under its real name)
        assert (report.updated, report.added, report.skipped) == (1, 1, [])
        again = gallery.get(fox_id)
        assert again is not None and (again.prompt, again.created, again.rating) == ("a fox", JUNE_1, 0)


# --------------------------------------------------------------------------------------------------
# A folder of a great many broken files
# --------------------------------------------------------------------------------------------------


def test_a_scan_lists_the_first_skipped_files_and_counts_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scanning.MAX_SKIPPED == 1000
    monkeypatch.setattr(scanning, "MAX_SKIPPED", 3)  # the same rule, with fewer files to make
    folder = tmp_path / "broken"
    folder.mkdir()
    for number in range(7):
        (folder / f"b{number}.png").write_bytes(b"not a picture at all")
    write_ours(folder / "good.png", "a good fox")
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        report = gallery.scan()
        assert (report.added, report.unreadable) == (1, 7)
        assert [Path(path).name for path, _reason in report.skipped] == ["b0.png", "b1.png", "b2.png"]
        again = gallery.scan()  # remembered as unreadable: not opened, not listed again
        assert (again.unchanged, again.unreadable, again.skipped) == (8, 0, [])
