"""The gallery catalogue with real files and a real SQLite database: scanning, search, ratings,
migrations, threads.  No mocks: the only wrapping is counting calls to the file readers."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from studio.library import gallery_scan as scanning
from studio.library.gallery import (
    SCHEMA_VERSION,
    CatalogueDamagedError,
    Gallery,
    GalleryError,
    GalleryImage,
    Query,
    ScanProgress,
    ScanReport,
    fts_query,
)
from studio.library.metadata import pnginfo_for
from tests.library.gallery_layouts import V1_LAYOUT

from . import samples as S

JUNE_1 = datetime(2025, 6, 1, 12, 30, tzinfo=UTC).timestamp()
DAY = 86400.0


# --------------------------------------------------------------------------------------------------
# Building real image files
# --------------------------------------------------------------------------------------------------


def ours(
    prompt: str,
    *,
    model: str = "sd-1.4",
    negative: str = "blurry, low quality",
    seed: int = 1235,
    created: str | None = "2025-06-01T12:30:00+00:00",
) -> dict[str, Any]:
    """Our JSON (the shape the engine writes), with the fields a test cares about replaced."""
    meta = copy.deepcopy(S.STUDIO_META)
    meta["request"].update(prompt=prompt, negative_prompt=negative)
    meta["model"]["id"] = model
    meta["seed"] = seed
    if created is None:
        del meta["created"]
    else:
        meta["created"] = created
    return meta


def write_ours(path: Path, prompt: str, *, size: tuple[int, int] = (24, 16), **fields: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 60, 30)).save(path, "PNG", pnginfo=pnginfo_for(ours(prompt, **fields)))
    return path


def write_png_text(path: Path, key: str, text: str, *, size: tuple[int, int] = (20, 30)) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, text)
    Image.new("RGB", size, (1, 2, 3)).save(path, pnginfo=info)
    return path


def set_mtime(path: Path, stamp: float) -> None:
    os.utime(path, (stamp, stamp))


def make_library(folder: Path) -> dict[str, Path]:
    """One file per kind the gallery meets: ours, A1111 PNG and JPEG, ComfyUI, InvokeAI, no metadata,
    corrupt; files from other tools get known mtimes (their "created")."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "fox": write_ours(folder / "fox.png", "a watercolor fox in an autumn forest", seed=11),
        "castle": write_ours(
            folder / "sub" / "castle.png",
            "a pixel art castle on a hill",
            model="deci-diffusion-1.0",
            seed=22,
            created="2025-06-03T08:00:00+00:00",
            size=(64, 32),
        ),
        "a1111": write_png_text(folder / "a1111.png", "parameters", S.A1111_CLASSIC),
        "comfy": write_png_text(folder / "comfy.png", "prompt", json.dumps(S.COMFY_DEFAULT)),
        "invoke": write_png_text(folder / "invoke.png", "invokeai_metadata", json.dumps(S.INVOKEAI_V3)),
        "plain": folder / "plain.png",
        "jpeg": folder / "photo.JPG",
        "corrupt": folder / "corrupt.png",
    }
    Image.new("RGB", (33, 17), (5, 5, 5)).save(files["plain"])
    raw = b"UNICODE\x00" + S.A1111_HIRES_LORA.encode("utf-16-be")
    files["jpeg"].write_bytes(S.jpeg_with_exif(S.user_comment_exif(raw)))
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dJUNK" + os.urandom(64))
    for offset, key in enumerate(("a1111", "comfy", "invoke", "plain", "jpeg", "corrupt")):
        set_mtime(files[key], JUNE_1 - (offset + 1) * DAY)
    return files


@pytest.fixture()
def library(tmp_path: Path) -> tuple[Gallery, Path, dict[str, Path]]:
    folder = tmp_path / "pictures"
    files = make_library(folder)
    gallery = Gallery(tmp_path / "db" / "gallery.sqlite3")
    gallery.add_folder(folder)
    yield gallery, folder.resolve(), files
    gallery.close()


class Counter:
    """Wraps a function and counts its calls (how tests see which files were opened)."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.paths: list[str] = []

    def __call__(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self.paths.append(str(path))
        return self.function(path, *args, **kwargs)


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts files the gallery opens: every read goes through read_metadata, then _image_size."""
    counter = Counter(scanning.read_metadata)
    monkeypatch.setattr(scanning, "read_metadata", counter)
    sizes = Counter(scanning._image_size)
    monkeypatch.setattr(scanning, "_image_size", sizes)
    counter.sizes = sizes  # type: ignore[attr-defined]
    return counter


def paths(images: list[GalleryImage]) -> list[str]:
    return [image.path.name for image in images]


# --------------------------------------------------------------------------------------------------
# Scanning and what is stored
# --------------------------------------------------------------------------------------------------


def test_first_scan_indexes_every_kind_of_file(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, folder, files = library
    report = gallery.scan()
    assert isinstance(report, ScanReport)
    assert (report.added, report.updated, report.removed, report.unreadable, report.unchanged) == (
        7,
        0,
        0,
        1,
        0,
    )
    assert report.seconds > 0
    assert gallery.count() == 7
    assert gallery.get_by_path(files["corrupt"]) is None

    fox = gallery.get_by_path(files["fox"])
    assert fox is not None
    assert fox.path == folder / "fox.png" and fox.folder == folder
    assert fox.source == "latent-studio"
    assert (fox.prompt, fox.negative_prompt) == (
        "a watercolor fox in an autumn forest",
        "blurry, low quality",
    )
    assert (fox.model, fox.seed, fox.steps, fox.scheduler) == ("sd-1.4", 11, 30, "DPM++ 2M Karras")
    assert (fox.width, fox.height) == (24, 16)  # from the file header, not the request's 512x512
    assert fox.created == JUNE_1  # our JSON "created", not the file's mtime
    assert fox.size == files["fox"].stat().st_size and fox.mtime == files["fox"].stat().st_mtime
    assert (fox.rating, fox.favourite) == (0, False)
    assert gallery.get(fox.id) == fox

    castle = gallery.get_by_path(files["castle"])
    assert castle is not None and castle.folder == folder and (castle.width, castle.height) == (64, 32)

    a1111 = gallery.get_by_path(files["a1111"])
    assert a1111 is not None and a1111.source == "a1111"
    assert (a1111.model, a1111.seed, a1111.steps) == ("v1-5-pruned-emaonly", 2179987202, 28)
    assert a1111.negative_prompt.startswith("(worst quality")
    assert a1111.created == JUNE_1 - DAY  # no "created" of ours: the file's mtime

    jpeg = gallery.get_by_path(files["jpeg"])
    assert jpeg is not None and jpeg.source == "a1111" and jpeg.model == "anythingV5_PrtRE"
    assert (jpeg.width, jpeg.height) == (8, 8)  # JPEG size through Pillow's lazy open

    comfy = gallery.get_by_path(files["comfy"])
    assert comfy is not None and comfy.source == "comfyui" and comfy.seed == 156680208700286
    assert comfy.prompt.startswith("beautiful scenery") and comfy.model == "v1-5-pruned-emaonly"

    invoke = gallery.get_by_path(files["invoke"])
    assert invoke is not None and invoke.source == "invokeai" and invoke.model == "amixx_3Prunedfp16"

    plain = gallery.get_by_path(files["plain"])
    assert plain is not None and plain.source is None and plain.prompt is None and plain.model is None
    assert (plain.width, plain.height) == (33, 17)


def test_scan_skips_hidden_temporary_empty_and_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write_ours(folder / "kept.png", "kept")
    write_ours(folder / "UPPER.PNG", "upper case suffix")
    Image.new("RGB", (4, 4)).save(folder / "kept.webp", "WEBP")
    Image.new("RGB", (4, 4)).save(folder / "kept.jpeg", "JPEG")
    write_ours(folder / ".hidden" / "secret.png", "hidden folder")
    write_ours(folder / ".dotfile.png", "hidden file")
    write_ours(folder / ".kept.png.x1y2.part", "atomic save in progress")
    (folder / "placeholder.png").write_bytes(b"")  # naming.output_path reserves names with empty files
    (folder / "notes.txt").write_text("not an image")
    Image.new("RGB", (4, 4)).save(folder / "image.gif", "GIF")
    (tmp_path / "elsewhere").mkdir()
    write_ours(tmp_path / "elsewhere" / "linked.png", "through a folder symlink")
    (folder / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        report = gallery.scan()
        assert (report.added, report.unreadable) == (4, 0)
        assert sorted(paths(gallery.search())) == ["UPPER.PNG", "kept.jpeg", "kept.png", "kept.webp"]


def test_add_folder_resolves_and_lists(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        added = gallery.add_folder(tmp_path / "a" / "b" / "..")
        assert added == (tmp_path / "a").resolve()
        assert gallery.add_folder(tmp_path / "a") == added  # idempotent
        assert gallery.folders() == [added]
        with pytest.raises(NotADirectoryError):
            gallery.add_folder(tmp_path / "missing")
        with pytest.raises(ValueError, match="not a gallery folder"):
            gallery.scan([tmp_path / "a" / "b"])


def test_progress_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanning, "PROGRESS_EVERY", 2)
    for index in range(5):
        write_ours(tmp_path / "f" / f"{index}.png", f"image {index}")
    events: list[ScanProgress] = []
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(tmp_path / "f")
        gallery.scan(progress=events.append)
    assert [(event.done, event.total) for event in events] == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert events[0].path is None and events[-1].path is not None and events[-1].path.name == "4.png"


def test_created_falls_back_to_mtime_when_ours_has_no_date(tmp_path: Path) -> None:
    path = write_ours(tmp_path / "f" / "old.png", "no date", created=None)
    set_mtime(path, 1_600_000_000.5)
    bad = write_ours(tmp_path / "f" / "bad.png", "garbage date", created="not a date")
    set_mtime(bad, 1_600_000_001.0)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(tmp_path / "f")
        gallery.scan()
        assert gallery.get_by_path(path).created == 1_600_000_000.5
        assert gallery.get_by_path(bad).created == 1_600_000_001.0


def test_untrusted_metadata_is_capped(tmp_path: Path) -> None:
    huge = "word " * 10_000
    text = (
        huge
        + "\nSteps: 99999999999999999999999, Sampler: Euler, Seed: 123456789012345678901234567890, Model: m"
    )
    (tmp_path / "f").mkdir()
    write_png_text(tmp_path / "f" / "big.png", "parameters", text)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(tmp_path / "f")
        assert gallery.scan().added == 1
        image = gallery.search()[0]
        assert len(image.prompt) == scanning.MAX_PROMPT_CHARS
        assert image.seed is None and image.steps is None  # beyond SQLite's 64-bit integers
        assert gallery.count(Query(text="word")) == 1


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------


def test_search_by_words_prefixes_phrases_and_exclusions(
    library: tuple[Gallery, Path, dict[str, Path]],
) -> None:
    gallery, _, _ = library
    gallery.scan()
    assert paths(gallery.search(Query(text="fox"))) == ["fox.png"]
    assert paths(gallery.search(Query(text="castl"))) == ["castle.png"]  # prefix
    assert paths(gallery.search(Query(text="CASTLE Hill"))) == ["castle.png"]  # all words, any case
    assert paths(gallery.search(Query(text="castle fox"))) == []
    assert paths(gallery.search(Query(text='"pixel art castle"'))) == ["castle.png"]
    assert paths(gallery.search(Query(text='"castle pixel"'))) == []  # a phrase keeps its order
    assert paths(gallery.search(Query(text='"pixel ar"'))) == []  # quoted: exact words, no prefix
    assert paths(gallery.search(Query(text="pixel-art"))) == ["castle.png"]
    assert set(paths(gallery.search(Query(text="a -castle -fox")))) >= {"a1111.png", "photo.JPG"}
    assert "castle.png" not in paths(gallery.search(Query(text="-castle")))
    assert gallery.count(Query(text="-castle")) == 6
    # Prompts by default; neg: looks in the negative prompt.
    assert gallery.count(Query(text="blurry")) == 0
    assert paths(gallery.search(Query(text="neg:blurr", sort="oldest"))) == ["fox.png", "castle.png"]
    # Diacritics and case fold both ways.
    assert gallery.count(Query(text="ÀUTUMN")) == 1


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        "(",
        ")",
        "-",
        "--",
        "*",
        ":",
        "^",
        "{prompt}:",
        "NOT",
        "AND",
        "OR fox",
        "NEAR(fox castle)",
        'fox"',
        '"fox',
        "fox*",
        "-fox*",
        "prompt:fox",
        "neg:",
        "a\x00b",
        "'; DROP TABLE images; --",
        "(((masterpiece:1.2)))",
        "<lora:add_detail:0.6>",
        "🦊",
        "日本語",
        "x" * 5000,
        " ".join(["fox"] * 200),
    ],
)
def test_user_punctuation_never_raises(library: tuple[Gallery, Path, dict[str, Path]], text: str) -> None:
    gallery, _, _ = library
    gallery.scan()
    include, exclude = fts_query(text)
    for expression in (include, exclude):
        if expression is not None:  # every term is a quoted phrase with word characters only
            assert expression.count('"') % 2 == 0
    assert isinstance(gallery.search(Query(text=text)), list)
    assert gallery.count(Query(text=text)) >= 0
    assert gallery.count(Query(text="(((masterpiece:1.2)))")) == 1
    assert gallery.count(Query(text="<lora:add_detail")) == 1


def test_only_punctuation_means_no_text_filter(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, _ = library
    gallery.scan()
    assert fts_query('(" - * :') == (None, None)
    assert gallery.count(Query(text='(" - * :')) == gallery.count() == 7


def test_model_filter_and_models(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, _ = library
    gallery.scan()
    assert gallery.models() == [  # distinct, case-insensitive order
        "amixx_3Prunedfp16",
        "anythingV5_PrtRE",
        "deci-diffusion-1.0",
        "sd-1.4",
        "v1-5-pruned-emaonly",
    ]
    assert paths(gallery.search(Query(model="deci-diffusion-1.0"))) == ["castle.png"]
    assert sorted(paths(gallery.search(Query(model="v1-5-pruned-emaonly")))) == ["a1111.png", "comfy.png"]
    assert paths(gallery.search(Query(text="bottle", model="v1-5-pruned-emaonly"))) == ["comfy.png"]
    assert gallery.search(Query(text="castle", model="sd-1.4")) == []
    assert gallery.count(Query(model="no such model")) == 0


def test_date_range_sorting_and_paging(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, _ = library
    gallery.scan()
    newest = paths(gallery.search())
    assert newest == [
        "castle.png",
        "fox.png",
        "a1111.png",
        "comfy.png",
        "invoke.png",
        "plain.png",
        "photo.JPG",
    ]
    assert paths(gallery.search(Query(sort="oldest"))) == newest[::-1]
    assert paths(gallery.search(Query(date_from=JUNE_1 - 2 * DAY, date_to=JUNE_1))) == [
        "fox.png",
        "a1111.png",
        "comfy.png",
    ]  # inclusive at both ends
    assert gallery.count(Query(date_from=JUNE_1 + 1)) == 1
    assert gallery.count(Query(date_to=JUNE_1 - 3 * DAY)) == 3
    assert paths(gallery.search(limit=2)) == newest[:2]
    assert paths(gallery.search(limit=2, offset=5)) == newest[5:]
    assert gallery.search(limit=0) == []
    with pytest.raises(ValueError, match="sort"):
        gallery.search(Query(sort="random"))
    with pytest.raises(ValueError):
        gallery.search(limit=-1)


def test_ratings_favourites_and_rating_sort(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, files = library
    gallery.scan()
    ids = {image.path.name: image.id for image in gallery.search()}
    gallery.set_rating(ids["comfy.png"], 5)
    gallery.set_rating(ids["plain.png"], 3)
    gallery.set_rating(ids["fox.png"], 3)
    gallery.set_favourite(ids["plain.png"], True)
    gallery.set_favourite(ids["invoke.png"], True)
    assert paths(gallery.search(Query(sort="rating")))[:3] == ["comfy.png", "fox.png", "plain.png"]
    assert paths(gallery.search(Query(favourites_only=True))) == ["invoke.png", "plain.png"]
    assert gallery.count(Query(favourites_only=True, text="landscape")) == 1
    gallery.set_favourite(ids["invoke.png"], False)
    assert gallery.count(Query(favourites_only=True)) == 1
    image = gallery.get_by_path(files["plain"])
    assert image is not None and (image.rating, image.favourite) == (3, True)
    for bad in (-1, 6, 2.5, True, "3"):
        with pytest.raises(ValueError):
            gallery.set_rating(ids["fox.png"], bad)  # type: ignore[arg-type]
    gallery.set_rating(999_999, 4)  # gone (e.g. removed by a scan in another thread): ignored
    gallery.set_favourite(999_999, True)
    assert gallery.get(999_999) is None


# --------------------------------------------------------------------------------------------------
# Rescans: incremental, modified, removed, renamed
# --------------------------------------------------------------------------------------------------


def test_rescan_opens_no_unchanged_file(
    library: tuple[Gallery, Path, dict[str, Path]], opened: Counter
) -> None:
    gallery, _, _ = library
    gallery.scan()
    assert len(opened.paths) == 8  # seven images and the corrupt file
    opened.paths.clear()
    opened.sizes.paths.clear()  # type: ignore[attr-defined]
    report = gallery.scan()
    assert (report.added, report.updated, report.removed, report.unreadable, report.unchanged) == (
        0,
        0,
        0,
        0,
        8,
    )
    assert opened.paths == [] and opened.sizes.paths == []  # type: ignore[attr-defined]
    assert gallery.count() == 7


def test_modified_file_is_updated_and_keeps_rating(
    library: tuple[Gallery, Path, dict[str, Path]], opened: Counter
) -> None:
    gallery, _, files = library
    gallery.scan()
    fox = gallery.get_by_path(files["fox"])
    gallery.set_rating(fox.id, 4)
    gallery.set_favourite(fox.id, True)
    write_ours(files["fox"], "a sleeping lynx under snow", negative="noise", seed=77)
    set_mtime(files["fox"], JUNE_1 + 5)
    opened.paths.clear()
    report = gallery.scan()
    assert (report.added, report.updated, report.unchanged) == (0, 1, 7)
    assert opened.paths == [str(files["fox"].resolve())]
    lynx = gallery.get_by_path(files["fox"])
    assert lynx is not None and lynx.id == fox.id
    assert (lynx.prompt, lynx.seed, lynx.rating, lynx.favourite) == (
        "a sleeping lynx under snow",
        77,
        4,
        True,
    )
    assert gallery.count(Query(text="fox")) == 0  # the old words left the index
    assert paths(gallery.search(Query(text="lynx"))) == ["fox.png"]
    assert gallery.count(Query(text="neg:noise")) == 1


def test_removed_and_renamed_files(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, folder, files = library
    gallery.scan()
    gallery.set_rating(gallery.get_by_path(files["castle"]).id, 5)
    files["comfy"].unlink()
    files["castle"].rename(folder / "sub" / "keep.png")
    report = gallery.scan()
    assert (report.added, report.removed, report.updated, report.unchanged) == (1, 2, 0, 6)
    assert gallery.get_by_path(files["comfy"]) is None
    assert gallery.count(Query(text="bottle")) == 0
    moved = gallery.get_by_path(folder / "sub" / "keep.png")
    assert moved is not None and moved.prompt == "a pixel art castle on a hill"
    assert moved.rating == 0  # a rename is a removal plus an addition
    assert gallery.count() == 6


def test_ratings_survive_rescans_and_reopening(
    library: tuple[Gallery, Path, dict[str, Path]], tmp_path: Path
) -> None:
    gallery, _, files = library
    gallery.scan()
    image = gallery.get_by_path(files["a1111"])
    gallery.set_rating(image.id, 2)
    gallery.set_favourite(image.id, True)
    gallery.scan()
    set_mtime(files["a1111"], JUNE_1 + 60)  # touched: re-read, still the same image
    assert gallery.scan().updated == 1
    gallery.close()
    with Gallery(tmp_path / "db" / "gallery.sqlite3") as reopened:
        again = reopened.get_by_path(files["a1111"])
        assert again is not None and (again.id, again.rating, again.favourite) == (image.id, 2, True)
        assert again.created == JUNE_1 + 60


def test_unreadable_file_is_retried_only_when_it_changes(
    library: tuple[Gallery, Path, dict[str, Path]], opened: Counter
) -> None:
    gallery, _, files = library
    assert gallery.scan().unreadable == 1
    opened.paths.clear()
    report = gallery.scan()
    assert (report.unreadable, report.unchanged) == (0, 8)
    assert opened.paths == []
    # Still broken but different: tried again.
    files["corrupt"].write_bytes(b"still not an image at all")
    assert gallery.scan().unreadable == 1
    # Fixed: indexed.
    write_ours(files["corrupt"], "repaired at last")
    report = gallery.scan()
    assert (report.added, report.unreadable) == (1, 0)
    assert paths(gallery.search(Query(text="repaired"))) == ["corrupt.png"]
    files["corrupt"].unlink()
    assert gallery.scan().removed == 1


def test_a_catalogued_file_that_breaks_keeps_its_row(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, files = library
    gallery.scan()
    image = gallery.get_by_path(files["invoke"])
    gallery.set_rating(image.id, 5)
    files["invoke"].write_bytes(b"\x89PNG\r\n\x1a\nhalf-written by another program")
    report = gallery.scan()
    assert (report.unreadable, report.removed) == (1, 0)
    assert gallery.get_by_path(files["invoke"]).rating == 5  # a glitch must not cost the user's rating
    write_png_text(files["invoke"], "invokeai_metadata", json.dumps(S.INVOKEAI_V5))
    assert gallery.scan().updated == 1
    fixed = gallery.get_by_path(files["invoke"])
    assert (fixed.id, fixed.rating, fixed.model) == (image.id, 5, "Juggernaut XL v9")


def test_missing_folder_keeps_its_rows(tmp_path: Path) -> None:
    drive = tmp_path / "usb"
    write_ours(drive / "a.png", "on a removable drive")
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(drive)
        gallery.scan()
        drive.rename(tmp_path / "unplugged")
        assert gallery.scan().removed == 0
        assert gallery.count() == 1


def test_cancel_commits_what_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanning, "PROGRESS_EVERY", 3)
    for index in range(10):
        write_ours(tmp_path / "f" / f"{index:02}.png", f"picture {index}")
    cancel = threading.Event()

    def progress(event: ScanProgress) -> None:
        if event.done >= 3:
            cancel.set()

    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(tmp_path / "f")
        report = gallery.scan(progress=progress, cancel=cancel)
        assert report.added == 3 and gallery.count() == 3
        assert gallery.scan().added == 7  # the rest, next time
        cancel.set()
        (tmp_path / "f" / "00.png").unlink()
        assert gallery.scan(cancel=cancel).removed == 0  # cancelled before the walk finished
        assert gallery.count() == 10


# --------------------------------------------------------------------------------------------------
# Single files (file watcher), forgetting, folders
# --------------------------------------------------------------------------------------------------


def test_index_file_outcomes(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.add_folder(folder)
        path = write_ours(folder / "new.png", "a lighthouse")
        assert gallery.index_file(path) == "added"
        assert gallery.index_file(path) == "unchanged"
        write_ours(path, "a lighthouse in a storm")
        set_mtime(path, JUNE_1)
        assert gallery.index_file(path) == "updated"
        assert gallery.count(Query(text="storm")) == 1
        path.write_bytes(b"garbage")
        assert gallery.index_file(path) == "unreadable"
        assert gallery.index_file(path) == "unchanged"
        path.unlink()
        assert gallery.index_file(path) == "removed"
        assert gallery.count() == 0
        # What a scan would skip changes nothing.
        assert gallery.index_file(write_ours(folder / ".tmp.png", "hidden")) == "unchanged"
        assert gallery.index_file(write_ours(tmp_path / "outside.png", "not in a folder")) == "unchanged"
        (folder / "empty.png").write_bytes(b"")
        assert gallery.index_file(folder / "empty.png") == "unchanged"
        assert gallery.count() == 0
        # Relative and unresolved spellings name the same row.
        write_ours(folder / "x.png", "spelled differently")
        assert gallery.index_file(folder / ".." / "out" / "x.png") == "added"
        assert gallery.get_by_path(folder / "x.png") is not None


def test_forget(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, _, files = library
    gallery.scan()
    assert gallery.forget(files["fox"]) is True
    assert gallery.forget(files["fox"]) is False
    assert files["fox"].exists()
    assert gallery.count(Query(text="fox")) == 0
    assert gallery.scan().added == 1  # still on disk: the next scan finds it again


def test_remove_folder_drops_rows_never_files(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, folder, files = library
    gallery.scan()
    gallery.remove_folder(folder)
    assert gallery.folders() == [] and gallery.count() == 0 and gallery.models() == []
    assert gallery.count(Query(text="fox")) == 0
    assert all(path.exists() for path in files.values())
    gallery.remove_folder(folder)  # unknown: nothing to do


def test_nested_folders(library: tuple[Gallery, Path, dict[str, Path]]) -> None:
    gallery, folder, files = library
    gallery.scan()
    castle = gallery.get_by_path(files["castle"])
    gallery.set_rating(castle.id, 4)
    sub = gallery.add_folder(folder / "sub")
    assert gallery.get_by_path(files["castle"]).folder == sub  # the most specific folder
    report = gallery.scan()
    assert (report.added, report.removed, report.unchanged) == (0, 0, 8)  # each file walked once
    # Removing the inner folder hands its images back to the outer one, ratings included.
    gallery.remove_folder(sub)
    moved = gallery.get_by_path(files["castle"])
    assert moved.folder == folder and moved.rating == 4
    assert gallery.scan().unchanged == 8
    gallery.add_folder(sub)
    gallery.remove_folder(folder)
    assert paths(gallery.search()) == ["castle.png"]


# --------------------------------------------------------------------------------------------------
# Schema: fresh, migrated, foreign
# --------------------------------------------------------------------------------------------------


def schema_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]


def test_new_database_is_current_and_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "folder" / "g.sqlite3"
    Gallery(db).close()
    assert schema_version(db) == SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db0 = tmp_path / "empty.sqlite3"
    sqlite3.connect(db0).close()  # a v0 file: exists, no tables
    Gallery(db0).close()
    assert schema_version(db0) == SCHEMA_VERSION


def test_migration_from_version_1_keeps_ratings_and_refreshes_rows(tmp_path: Path, opened: Counter) -> None:
    folder = (tmp_path / "pics").resolve()
    fox = write_ours(folder / "fox.png", "a watercolor fox", negative="dull colours")
    info = fox.stat()
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_LAYOUT)
        conn.execute("INSERT INTO folders VALUES (1, ?, 0)", (str(folder),))
        conn.execute(
            "INSERT INTO images VALUES (7, ?, 1, ?, ?, 24, 16, ?, 'sd-1.4', 1235, 30, 'a watercolor fox', 4, 1, 0)",
            (str(fox), info.st_size, info.st_mtime, JUNE_1),
        )
    with Gallery(db) as gallery:
        assert schema_version(db) == SCHEMA_VERSION
        image = gallery.get(7)
        assert image is not None and (image.rating, image.favourite) == (4, True)
        assert paths(gallery.search(Query(text="waterc"))) == ["fox.png"]  # FTS built from old rows
        report = gallery.scan()  # old rows lack the new columns: re-read once
        assert (report.updated, report.added) == (1, 0)
        assert opened.paths == [str(fox)]
        image = gallery.get(7)
        assert image is not None
        assert (image.negative_prompt, image.source, image.rating, image.favourite) == (
            "dull colours",
            "latent-studio",
            4,
            True,
        )
        assert gallery.count(Query(text="neg:dull")) == 1
        assert gallery.scan().unchanged == 1
    fts_integrity(db)


def test_newer_or_foreign_databases_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    Gallery(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(GalleryError, match="newer"):
        Gallery(newer)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE images (x)")
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(GalleryError, match="not a Latent Studio gallery catalogue") as caught:
        Gallery(foreign)
    assert not isinstance(caught.value, CatalogueDamagedError)  # not damage: no repair is suggested
    assert "repair" not in str(caught.value) and foreign.read_bytes() == before
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database file, just text" * 100)
    with pytest.raises(GalleryError):
        Gallery(junk)


def test_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.library import paths

    monkeypatch.setattr(paths, "data_dir", lambda: tmp_path / "data")
    assert Gallery.default_path() == tmp_path / "data" / "gallery.sqlite3"  # without opening it
    assert not Gallery.default_path().exists()
    with Gallery.default() as gallery:
        assert gallery.db_path == tmp_path / "data" / "gallery.sqlite3"
    assert (tmp_path / "data" / "gallery.sqlite3").exists()


# --------------------------------------------------------------------------------------------------
# FTS consistency
# --------------------------------------------------------------------------------------------------


def fts_integrity(db: Path) -> None:
    """FTS5's own check, comparing the index with the content table (rank 1), plus a row count."""
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO images_fts(images_fts, rank) VALUES ('integrity-check', 1)")
        indexed = conn.execute("SELECT COUNT(*) FROM images_fts").fetchone()[0]
        assert indexed == conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]


def test_fts_stays_consistent_through_updates_and_deletes(
    library: tuple[Gallery, Path, dict[str, Path]], tmp_path: Path
) -> None:
    gallery, folder, files = library
    db = tmp_path / "db" / "gallery.sqlite3"
    gallery.scan()
    fts_integrity(db)
    for round_number in range(3):
        write_ours(files["fox"], f"round {round_number} otter", negative=f"neg{round_number}")
        set_mtime(files["fox"], JUNE_1 + round_number + 1)
        gallery.scan()
        gallery.set_rating(gallery.get_by_path(files["fox"]).id, round_number)  # no FTS churn, still fine
        fts_integrity(db)
        assert gallery.count(Query(text=f"round {round_number}")) == 1
        assert gallery.count(Query(text=f"neg:neg{round_number}")) == 1
    assert gallery.count(Query(text="round 0")) == 0
    # Several changed files in one batch: the staged, single-statement upsert path.
    for offset, path in enumerate((files["castle"], files["plain"], folder / "photo.png")):
        write_ours(path, f"batch {offset} heron")
        set_mtime(path, JUNE_1 + 100 + offset)
    files["jpeg"].unlink()
    report = gallery.scan()
    assert (report.updated, report.added, report.removed) == (2, 1, 1)
    fts_integrity(db)
    assert gallery.count(Query(text="heron")) == 3 and gallery.count(Query(text="castle")) == 0
    gallery.forget(files["a1111"])
    files["comfy"].unlink()
    gallery.scan()
    gallery.index_file(files["invoke"])
    fts_integrity(db)
    gallery.remove_folder(folder)
    fts_integrity(db)
    assert gallery.count(Query(text="otter")) == 0


# --------------------------------------------------------------------------------------------------
# Threads: one Gallery per thread; WAL lets readers run during a scan
# --------------------------------------------------------------------------------------------------


def test_reader_sees_committed_batches_while_a_worker_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scanning, "BATCH_SIZE", 50)
    monkeypatch.setattr(scanning, "PROGRESS_EVERY", 100)
    folder = tmp_path / "many"
    folder.mkdir()
    info = pnginfo_for(ours("a crowd of tiny robots"))
    for index in range(450):
        Image.new("L", (4, 4), index % 256).save(folder / f"{index:04}.png", pnginfo=info)
    db = tmp_path / "g.sqlite3"
    paused = threading.Event()
    resume = threading.Event()
    errors: list[BaseException] = []
    reports: list[ScanReport] = []

    def worker() -> None:
        try:
            with Gallery(db) as scanner:  # its own Gallery: connections belong to their thread

                def progress(event: ScanProgress) -> None:
                    if event.done == 200:
                        paused.set()
                        assert resume.wait(10)

                reports.append(scanner.scan(progress=progress))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            paused.set()

    with Gallery(db) as gui:
        gui.add_folder(folder)
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert paused.wait(10)
            assert not errors
            # Mid-scan: the four committed batches are visible, and the GUI can write too.
            assert gui.count() == 200
            first = gui.search(Query(text="robots", sort="oldest"), limit=1)[0]
            assert first.path.name == "0000.png"
            gui.set_rating(first.id, 5)
        finally:
            resume.set()
        seen = [gui.count()]
        while thread.is_alive():  # free-running: reads never fail and never go backwards
            seen.append(gui.count(Query(text="robot")))
        thread.join(10)
        assert not errors, errors
        assert seen == sorted(seen)
        assert reports[0].added == 450 and gui.count() == 450
        assert gui.get(first.id).rating == 5


def test_readers_do_not_wait_for_an_open_write_transaction(
    library: tuple[Gallery, Path, dict[str, Path]], tmp_path: Path
) -> None:
    writer, _, _ = library
    writer.scan()
    with Gallery(tmp_path / "db" / "gallery.sqlite3") as reader:
        writer._conn.execute("BEGIN IMMEDIATE")
        writer._conn.execute("UPDATE images SET rating = 5")
        started = time.monotonic()
        assert {image.rating for image in reader.search()} == {0}  # the last committed state
        assert time.monotonic() - started < 1.0  # no busy wait: WAL readers never block
        writer._conn.execute("COMMIT")
        assert {image.rating for image in reader.search()} == {5}


def test_a_gallery_belongs_to_its_thread(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path / "g.sqlite3")
    failures: list[BaseException] = []

    def use() -> None:
        try:
            gallery.count()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    gallery.close()
    gallery.close()  # idempotent
    assert len(failures) == 1 and isinstance(failures[0], sqlite3.ProgrammingError)


# --------------------------------------------------------------------------------------------------
# Other writers: data_version tells a long-lived reader that another connection committed
# --------------------------------------------------------------------------------------------------

_SCAN_IN_ANOTHER_PROCESS = """
import sys
from studio.library.gallery import Gallery

with Gallery(sys.argv[1]) as gallery:  # what `studio gallery scan` does: add the folder, scan it
    folder = gallery.add_folder(sys.argv[2])
    print(gallery.scan([folder]).added)
"""


def scan_in_another_process(db: Path, folder: Path) -> int:
    """Catalogue `folder` into `db` from a separate Python process; returns how many it added."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SCAN_IN_ANOTHER_PROCESS, str(db), str(folder)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_data_version_changes_for_other_writers_only(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    write_ours(folder / "fox.png", "a fox")
    db = tmp_path / "gallery.sqlite3"
    with Gallery(db) as reader:
        version = reader.data_version()
        assert reader.data_version() == version  # nothing happened: the same
        reader.add_folder(folder)
        reader.scan()
        assert reader.data_version() == version  # its own commits do not count
        fox = reader.search()[0]

        errors: list[BaseException] = []

        def rate_elsewhere() -> None:
            try:
                with Gallery(db) as other:  # another connection, in its own thread
                    other.set_rating(fox.id, 3)
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)

        thread = threading.Thread(target=rate_elsewhere)
        thread.start()
        thread.join(10)
        assert not errors, errors
        after_thread = reader.data_version()
        assert after_thread != version and reader.get(fox.id).rating == 3

        more = tmp_path / "more"
        write_ours(more / "owl.png", "an owl")
        write_ours(more / "cat.png", "a cat")
        assert scan_in_another_process(db, more) == 2
        assert reader.data_version() != after_thread
        assert sorted(paths(reader.search())) == ["cat.png", "fox.png", "owl.png"]
        assert more.resolve() in reader.folders()


def test_a_scan_report_says_what_changed_or_that_nothing_did():
    assert ScanReport(added=4, unchanged=2, seconds=0.25).describe() == (
        "Library scanned: 4 added, 0 updated, 0 removed (0.2 s)"
    )
    assert ScanReport(removed=1, unreadable=2).describe().endswith("1 removed, 2 unreadable (0.0 s)")
    assert ScanReport(unchanged=1, seconds=1.0).describe() == (
        "Library scanned: up to date, no changes (1 file checked, 1.0 s)"
    )


def test_a_scan_report_names_the_first_skipped_file_harmlessly():
    report = ScanReport(added=1, unreadable=2, skipped=[("/p/bad\udcff.png", "file name is not valid UTF-8"), ("/p/x", "y")])
    assert report.describe() == (
        "Library scanned: 1 added, 0 updated, 0 removed, 2 unreadable (0.0 s); "
        "e.g. bad\\udcff.png: file name is not valid UTF-8"
    )
