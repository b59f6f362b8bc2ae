"""A catalogue file that is damaged, tampered with, or created by several processes at once: real SQLite
files crafted in tmp_path, real processes.  Every damage is one clear error, and the repair moves the
file aside (never deletes it) and rebuilds the catalogue from the image folders."""

from __future__ import annotations

import errno
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from studio.library import gallery_repair
from studio.library.gallery import (
    SCHEMA_VERSION,
    CatalogueDamagedError,
    Gallery,
    GalleryError,
    NotACatalogueError,
    Query,
)
from studio.library.gallery_db import file_id
from studio.library.gallery_repair import (
    RepairInProgressError,
    check_catalogue,
    move_aside,
    read_folders,
    rebuild_damaged,
    repair_lock,
)
from tests.library.gallery_layouts import V1_LAYOUT

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


def search_index_shadow_gone(db: Path) -> None:
    execute(db, "DROP TABLE images_fts_data")


def column_renamed(db: Path) -> None:  # every query naming folders.path would fail
    execute(db, "ALTER TABLE folders RENAME COLUMN path TO place")


def folder_index_page_overwritten(db: Path) -> None:
    """The page of the folders' UNIQUE index filled with 0xFF: the file opens (its header, schema and
    layout are intact) and fails its first query that uses the index ("malformed")."""
    checkpoint(db)
    with sqlite3.connect(db) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_folders_1'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as stream:
        stream.seek((root - 1) * page_size)
        stream.write(b"\xff" * page_size)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (garbage, "file is not a database"),
        (truncated, "malformed"),
        (no_search_index, "images_fts is missing"),
        (schema_version_not_a_number, "schema version is 'x', not a whole number"),
        (no_schema_version, "no schema version"),
        (search_index_shadow_gone, "images_fts"),
        (column_renamed, "the column folders.path is missing"),
        (folder_index_page_overwritten, "malformed"),
    ],
)
def test_every_damage_is_one_clear_error(
    catalogue: tuple[Path, Path], damage: Callable[[Path], None], reason: str
) -> None:
    db, _folder = catalogue
    damage(db)
    with pytest.raises(CatalogueDamagedError) as caught, Gallery(db) as gallery:
        # opening finds most damage; a query or a write the rest
        gallery.folders()
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


# --------------------------------------------------------------------------------------------------
# Damage that opens cleanly; closing and checking write nothing into a damaged file
# --------------------------------------------------------------------------------------------------


def test_damage_that_opens_cleanly_is_found_by_the_first_query_and_names_the_file(
    catalogue: tuple[Path, Path],
) -> None:
    db, _folder = catalogue
    folder_index_page_overwritten(db)
    identity = file_id(db)
    seen: list[CatalogueDamagedError] = []
    gallery = Gallery(db, on_damaged=seen.append)  # header, schema and layout are fine
    statements: list[str] = []
    gallery._conn.set_trace_callback(statements.append)
    gallery.data_version()
    with pytest.raises(CatalogueDamagedError, match="malformed") as caught:
        gallery.folders()
    assert caught.value.file_id == identity and seen == [caught.value] and gallery.damage_seen is caught.value
    gallery.close()
    assert not any("optimize" in statement for statement in statements)  # nothing written on closing
    assert check_catalogue(db).startswith("the integrity check failed: Page ")  # found read-only too


def test_a_damaged_file_that_fails_to_open_names_the_file_it_found(tmp_path: Path) -> None:
    db = tmp_path / "gallery.sqlite3"
    garbage(db)
    with pytest.raises(CatalogueDamagedError) as caught:
        Gallery(db)
    assert caught.value.file_id == file_id(db) and caught.value.file_id is not None


def test_closing_a_healthy_catalogue_still_optimizes(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path / "gallery.sqlite3")
    statements: list[str] = []
    gallery._conn.set_trace_callback(statements.append)
    gallery.close()
    assert "PRAGMA optimize" in statements


def _snapshot(db: Path) -> dict[str, tuple[bytes, int]]:
    """The bytes and mtime of the database and of its -wal when that holds anything (a read-only
    connection to a WAL file may create an empty -wal and the -shm index beside it: no content)."""
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in (db, db.with_name(db.name + "-wal"))
        if path.exists() and path.stat().st_size > 0
    }


def test_checking_never_writes_the_file(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    db, folder = catalogue
    # An old catalogue (schema 1) is fine as it is, and stays schema 1: checking migrates nothing.
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as conn:
        conn.executescript(V1_LAYOUT + "INSERT INTO folders VALUES (1, '/pictures', 0);")
    conn.close()
    before = _snapshot(old)
    assert check_catalogue(old) is None
    assert _snapshot(old) == before

    # A damaged catalogue whose latest changes are still in its -wal: neither file is written
    # (a read-write open would check the -wal into the main file when it closes).
    damaged = Gallery(db)
    damaged.set_rating(damaged.get_by_path(folder / "owl.png").id, 3)
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("DROP TABLE images_fts_idx")
    writer.commit()
    assert db.with_name(db.name + "-wal").stat().st_size > 0
    before = _snapshot(db)
    assert check_catalogue(db) == "the table images_fts_idx is missing"
    assert _snapshot(db) == before
    writer.close()
    damaged.close(optimize=False)


def test_a_search_index_that_no_longer_matches_the_images_is_found_read_only(
    catalogue: tuple[Path, Path],
) -> None:
    db, _folder = catalogue
    execute(db, "UPDATE images_fts_data SET block = x'00ff00ff' WHERE id = 10")  # its structure record
    before = _snapshot(db)
    reason = check_catalogue(db)
    assert reason is not None and reason.startswith("search index:")
    assert _snapshot(db) == before


# --------------------------------------------------------------------------------------------------
# Another program's database is not a damaged catalogue
# --------------------------------------------------------------------------------------------------

FOREIGN = {
    "photos": "CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT, caption TEXT)",
    "albums": "CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT)",
    "unrelated": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    "migrations": "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (1); "
    "CREATE TABLE users (name TEXT)",
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_another_programs_database_is_refused_and_left_exactly_as_it_is(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "photos.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(FOREIGN[kind])
    conn.close()
    before = _snapshot(db)
    with pytest.raises(NotACatalogueError, match="not a Latent Studio gallery catalogue") as caught:
        Gallery(db)
    assert not isinstance(caught.value, CatalogueDamagedError) and "repair" not in str(caught.value)
    with pytest.raises(NotACatalogueError):
        check_catalogue(db)
    with pytest.raises(NotACatalogueError, match="--force"):
        rebuild_damaged(db)
    assert _snapshot(db) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photos.db"]  # no -wal, no tables of ours


def test_an_empty_file_is_a_new_catalogue(tmp_path: Path) -> None:
    db = tmp_path / "gallery.sqlite3"
    db.touch()
    assert check_catalogue(db) is None
    with Gallery(db) as gallery:
        assert gallery.folders() == []
    assert check_catalogue(db) is None


def test_a_forced_repair_moves_another_programs_database_aside_whole(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    db = tmp_path / "photos.db"
    with sqlite3.connect(db) as conn:  # their folders table lists a real folder: it is not read
        conn.executescript(
            f"CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO folders VALUES (1, '{theirs}');"
        )
    conn.close()
    original = db.read_bytes()
    report = rebuild_damaged(db, force=True)
    assert report.foreign and report.moved_to is not None and report.moved_to.read_bytes() == original
    assert report.folders == [] and "was not a Latent Studio gallery catalogue" in report.describe()
    assert str(report.moved_to) in report.describe()
    with Gallery(db) as fresh:
        assert fresh.folders() == []


# --------------------------------------------------------------------------------------------------
# Repairs never lose the damaged file, whatever runs at the same time
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def fixed_stamp(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every move aside in this test uses one time stamp, so names collide as they would in a second."""
    monkeypatch.setattr(gallery_repair.time, "strftime", lambda _format: "20260101-000000")
    return "20260101-000000"


def test_a_name_taken_by_the_time_of_the_move_is_never_replaced(tmp_path: Path, fixed_stamp: str) -> None:
    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"damaged")
    Path(f"{db}-wal").write_bytes(b"wal")
    taken = tmp_path / f"gallery.sqlite3.damaged-{fixed_stamp}"
    taken.write_bytes(b"someone else's")  # the database's name is taken, its -wal's is free
    moved = move_aside(db)
    assert moved[0].name == f"gallery.sqlite3.damaged-{fixed_stamp}-2"
    assert (moved[0].read_bytes(), Path(f"{moved[0]}-wal").read_bytes()) == (b"damaged", b"wal")
    assert taken.read_bytes() == b"someone else's"
    assert not Path(f"{taken}-wal").exists()  # the -wal moved there first was moved on with its database
    assert not db.exists() and not Path(f"{db}-wal").exists()


def test_without_links_the_name_is_checked_before_renaming(
    tmp_path: Path, fixed_stamp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # what a FAT file system says

    monkeypatch.setattr(gallery_repair.os, "link", no_links)
    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"damaged")
    taken = tmp_path / f"gallery.sqlite3.damaged-{fixed_stamp}"
    taken.write_bytes(b"someone else's")
    moved = move_aside(db)
    assert moved == [tmp_path / f"gallery.sqlite3.damaged-{fixed_stamp}-2"]
    assert (moved[0].read_bytes(), taken.read_bytes()) == (b"damaged", b"someone else's")


def test_a_file_replaced_since_it_was_found_damaged_is_not_moved(catalogue: tuple[Path, Path]) -> None:
    db, folder = catalogue
    garbage(db)
    with pytest.raises(CatalogueDamagedError) as caught:
        Gallery(db)
    found = caught.value
    first = rebuild_damaged(db, folders=[folder])  # another process repairs it first
    with Gallery(db) as fresh:  # and the user rates an image in the new catalogue
        fresh.set_rating(fresh.get_by_path(folder / "fox.png").id, 4)
    other = db.parent / "other"
    other.mkdir()
    late = rebuild_damaged(db, reason=found.reason, damaged_file=found.file_id, folders=[other], scan=False)
    assert late.already_repaired and late.moved == [] and "another process" in late.describe()
    assert late.folders == [other.resolve()]  # what the late repairer wanted is added all the same
    aside = [p for p in db.parent.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert aside == [first.moved_to] and first.moved_to.read_bytes() == bytes(range(256)) * 40
    with Gallery(db) as fresh:  # the new catalogue, with its new rating, was left where it is
        assert fresh.get_by_path(folder / "fox.png").rating == 4
        assert fresh.folders() == sorted([folder, other.resolve()])
    with pytest.raises(GalleryError, match="replaced"):
        move_aside(db, expected=found.file_id)


def test_a_repair_waits_for_another_one_and_then_gives_up_clearly(catalogue: tuple[Path, Path]) -> None:
    db, _folder = catalogue
    garbage(db)
    with repair_lock(db):  # another repair holds the lock (an flock of another descriptor)
        with pytest.raises(RepairInProgressError, match="being repaired by another process"):
            rebuild_damaged(db, wait=0.2)
        assert db.read_bytes() == bytes(range(256)) * 40
    report = rebuild_damaged(db, scan=False)  # free again
    assert report.moved_to.read_bytes() == bytes(range(256)) * 40


REPAIRERS = 4


def _repair(db: str, how: str, identity: Any, barrier: Any, results: Any) -> None:
    """In a child process: wait for the others, then repair as the app does (with the damage and the
    file it found) or as `studio gallery repair` does (checking first)."""
    try:
        barrier.wait(timeout=30)
        if how == "app":
            report = rebuild_damaged(db, reason="file is not a database", damaged_file=identity, scan=False, wait=60)
        else:
            report = rebuild_damaged(db, scan=False, wait=60)
        moved = str(report.moved_to) if report.moved_to is not None else None
        results.put(("ok", moved, report.already_repaired, report.rebuilt))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        results.put((f"{type(exc).__name__}: {exc}", None, False, False))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="starts its processes by fork (quick)"
)
@pytest.mark.parametrize("mix", [("app",) * REPAIRERS, ("cli",) * REPAIRERS, ("app", "cli") * (REPAIRERS // 2)])
def test_repairs_at_once_move_the_damaged_file_exactly_once(tmp_path: Path, mix: tuple[str, ...]) -> None:
    context = multiprocessing.get_context("fork")
    db = tmp_path / "gallery.sqlite3"
    original = os.urandom(8192)
    db.write_bytes(original)
    Path(f"{db}-wal").write_bytes(b"its wal")
    identity = file_id(db)
    barrier = context.Barrier(len(mix))
    results = context.Queue()
    children = [
        context.Process(target=_repair, args=(str(db), how, identity, barrier, results)) for how in mix
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert all(outcome[0] == "ok" for outcome in outcomes), outcomes
    moved = [outcome[1] for outcome in outcomes if outcome[1] is not None]
    assert len(moved) == 1, outcomes
    # The others found it repaired: told so (the app) or found the fresh catalogue fine (the CLI).
    assert all(outcome[2] or not outcome[3] for outcome in outcomes if outcome[1] is None), outcomes
    aside = {path.name for path in tmp_path.iterdir() if ".damaged-" in path.name}
    name = Path(moved[0]).name
    assert aside - {f"{name}-shm"} == {name, f"{name}-wal"}  # (the -shm: made by reading its folders)
    assert Path(moved[0]).read_bytes() == original and Path(f"{moved[0]}-wal").read_bytes() == b"its wal"
    assert check_catalogue(db) is None
