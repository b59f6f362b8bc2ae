"""A catalogue file that is damaged, tampered with, or created by several processes at once: real SQLite
files crafted in tmp_path, real processes.  Every damage is one clear error, and the repair moves the
file aside (never deletes it) and rebuilds the catalogue from the image folders."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from studio.library.gallery import SCHEMA_VERSION, CatalogueDamagedError, Gallery, GalleryError, Query
from studio.library.gallery_repair import check_catalogue, move_aside, read_folders, rebuild_damaged

from .test_gallery import paths, write_ours

DAMAGED_NAME = re.compile(r"^gallery\.sqlite3\.damaged-\d{8}-\d{6}(-\d+)?$")


@pytest.fixture()
def catalogue(tmp_path: Path) -> tuple[Path, Path]:
    """A healthy catalogue of three images in one folder, one of them rated 5 and a favourite."""
    folder = tmp_path / "pictures"
    for name in ("fox", "owl", "cat"):
        write_ours(folder / f"{name}.png", f"a {name} in the snow")
    db = tmp_path / "data" / "gallery.sqlite3"
    with Gallery(db) as gallery:
        gallery.add_folder(folder)
        gallery.scan()
        fox = gallery.get_by_path(folder / "fox.png")
        gallery.set_rating(fox.id, 5)
        gallery.set_favourite(fox.id, True)
    return db, folder.resolve()


def execute(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def checkpoint(db: Path) -> None:
    """Everything into the main file (no -wal left), so that cutting the file cuts real content."""
    execute(db, "PRAGMA wal_checkpoint(TRUNCATE)")


# --------------------------------------------------------------------------------------------------
# One clear error for every damage
# --------------------------------------------------------------------------------------------------


def garbage(db: Path) -> None:
    db.write_bytes(bytes(range(256)) * 40)


def truncated(db: Path) -> None:
    checkpoint(db)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def no_search_index(db: Path) -> None:
    execute(db, "DROP TABLE images_fts")


def schema_version_not_a_number(db: Path) -> None:  # was: "invalid literal for int() with base 10: 'x'"
    execute(db, "UPDATE schema_version SET version = 'x'")


def no_schema_version(db: Path) -> None:
    execute(db, "DROP TABLE schema_version")


def search_index_shadow_gone(db: Path) -> None:  # opens: only a text search or a write finds it
    execute(db, "DROP TABLE images_fts_data")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (garbage, "file is not a database"),
        (truncated, "malformed"),
        (no_search_index, "images_fts is missing"),
        (schema_version_not_a_number, "schema version is 'x', not a whole number"),
        (no_schema_version, "no schema version"),
        (search_index_shadow_gone, "images_fts"),
    ],
)
def test_every_damage_is_one_clear_error(
    catalogue: tuple[Path, Path], damage: Callable[[Path], None], reason: str
) -> None:
    db, _folder = catalogue
    damage(db)
    with pytest.raises(CatalogueDamagedError) as caught, Gallery(db) as gallery:
        # opening finds most damage; a text search or a write the rest
        gallery.search(Query(text="fox"))
        gallery.scan()
    error = caught.value
    assert isinstance(error, GalleryError) and error.db_path == db and reason in error.reason
    message = str(error)
    assert str(db) in message and reason in message
    assert message.endswith(
        "; run `studio gallery repair` to move it aside and rebuild it from the image folders "
        "(the app does this on start)"
    )
    assert check_catalogue(db) is not None


def test_damage_met_by_a_query_is_reported_to_the_owner(catalogue: tuple[Path, Path]) -> None:
    db, _folder = catalogue
    seen: list[CatalogueDamagedError] = []
    with Gallery(db, on_damaged=seen.append) as gallery:
        assert len(gallery.search()) == 3  # no text: the search index is not touched
        search_index_shadow_gone(db)  # damaged while open, by another connection
        with pytest.raises(CatalogueDamagedError):
            gallery.search(Query(text="fox"))
    assert len(seen) == 1 and "images_fts" in seen[0].reason


def test_trouble_that_is_not_damage_stays_a_plain_gallery_error(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    Gallery(newer).close()
    execute(newer, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(GalleryError, match="newer") as caught:
        Gallery(newer)
    assert not isinstance(caught.value, CatalogueDamagedError)
    with pytest.raises(GalleryError, match="newer"):
        check_catalogue(newer)  # nothing a repair could fix: refused, the file left alone
    with pytest.raises(GalleryError, match="newer"):
        rebuild_damaged(newer)
    assert newer.exists() and not list(tmp_path.glob("*.damaged-*"))


# --------------------------------------------------------------------------------------------------
# The repair
# --------------------------------------------------------------------------------------------------


def test_repair_moves_the_damaged_file_aside_and_rebuilds_from_its_folders(
    catalogue: tuple[Path, Path], tmp_path: Path
) -> None:
    db, folder = catalogue
    execute(db, "DROP TABLE images_fts")
    more = tmp_path / "more"
    write_ours(more / "heron.png", "a heron")
    report = rebuild_damaged(db, folders=[more])
    assert report.rebuilt and report.reason == "the table images_fts is missing"
    assert report.moved_to is not None and DAMAGED_NAME.match(report.moved_to.name)
    assert report.moved[0] == report.moved_to
    assert all(path.name.startswith(report.moved_to.name) for path in report.moved)
    assert report.folders == [folder, more.resolve()] and report.missing == []
    assert report.scan is not None and report.scan.added == 4
    with Gallery(db) as fresh:
        assert sorted(paths(fresh.search(Query(text="snow")))) == ["cat.png", "fox.png", "owl.png"]
        assert fresh.count() == 4 and fresh.get_by_path(folder / "fox.png").rating == 0
    # The old file is whole: its ratings and favourites are still in it, for whoever wants them back.
    with sqlite3.connect(f"file:{report.moved_to}?mode=ro", uri=True) as old:
        assert old.execute("SELECT rating, favourite FROM images WHERE path LIKE '%fox.png'").fetchone() == (5, 1)
    old.close()
    text = report.describe()
    assert str(db) in text and str(report.moved_to) in text and "images_fts" in text and "ratings" in text


def test_repair_of_an_unreadable_file_keeps_its_bytes(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    db, folder = catalogue
    garbage(db)
    report = rebuild_damaged(db, folders=[folder], scan=False)
    assert report.reason == "file is not a database" and report.scan is None
    assert report.moved_to.read_bytes() == bytes(range(256)) * 40
    assert read_folders(report.moved_to) == []  # nothing readable: only the folders passed in
    assert report.folders == [folder]
    with Gallery(db) as fresh:
        assert fresh.folders() == [folder] and fresh.count() == 0  # scan=False: the caller scans
        assert fresh.check_integrity() is None


def test_repair_forgets_folders_that_are_gone(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    db, folder = catalogue
    other = tmp_path / "unplugged"
    other.mkdir()
    with Gallery(db) as gallery:
        gallery.add_folder(other)
    other.rmdir()
    schema_version_not_a_number(db)
    report = rebuild_damaged(db)
    assert report.folders == [folder] and report.missing == [str(other.resolve())]
    assert "1 folder no longer found" in report.describe()


def test_a_healthy_catalogue_is_left_alone_unless_forced(catalogue: tuple[Path, Path]) -> None:
    db, folder = catalogue
    assert check_catalogue(db) is None
    report = rebuild_damaged(db)
    assert not report.rebuilt and report.moved == [] and "nothing to repair" in report.describe()
    with Gallery(db) as gallery:
        assert gallery.get_by_path(folder / "fox.png").rating == 5
    forced = rebuild_damaged(db, force=True)
    assert forced.rebuilt and forced.moved_to.exists() and forced.scan.added == 3
    assert check_catalogue(db.parent / "absent.sqlite3") is None


def test_moving_aside_takes_the_companion_files_and_never_overwrites(tmp_path: Path) -> None:
    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"first")
    for suffix in ("-wal", "-shm"):  # they belong to the old file: never left beside the new one
        Path(f"{db}{suffix}").write_bytes(suffix.encode())
    first = move_aside(db)
    assert [path.name[len(first[0].name) :] for path in first] == ["", "-shm", "-wal"]
    assert Path(f"{first[0]}-wal").read_bytes() == b"-wal" and Path(f"{first[0]}-shm").read_bytes() == b"-shm"
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    db.write_bytes(b"second")
    second = move_aside(db)  # within the same second, as likely as not: a numbered name
    assert first[0] != second[0] and not db.exists() and second == [second[0]]
    assert (first[0].read_bytes(), second[0].read_bytes()) == (b"first", b"second")
    assert DAMAGED_NAME.match(first[0].name) and DAMAGED_NAME.match(second[0].name)


# --------------------------------------------------------------------------------------------------
# Several processes creating one new catalogue at once
# --------------------------------------------------------------------------------------------------

PROCESSES = 8
ROUNDS = 5


def _open_and_add(db: str, folder: str, barrier: Any, results: Any) -> None:
    """In a child process: wait for the others, then create/open the catalogue and add the folder."""
    try:
        barrier.wait(timeout=30)
        with Gallery(db) as gallery:
            gallery.add_folder(folder)
            results.put("ok")
    except BaseException as exc:  # reported to the parent, which fails the test with it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="starts its processes by fork (quick)"
)
def test_processes_creating_the_same_new_catalogue_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    folder = tmp_path / "pictures"
    folder.mkdir()
    for round_ in range(ROUNDS):
        db = tmp_path / f"round{round_}" / "gallery.sqlite3"
        db.parent.mkdir()
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        children = [
            context.Process(target=_open_and_add, args=(str(db), str(folder), barrier, results))
            for _ in range(PROCESSES)
        ]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(timeout=60)
        assert outcomes == ["ok"] * PROCESSES, outcomes
        with Gallery(db) as gallery:
            assert gallery.folders() == [folder.resolve()]
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
