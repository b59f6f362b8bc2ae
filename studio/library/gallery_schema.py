"""The catalogue's layout: its tables, its migrations, and what each version must hold.

Why a module of its own: the layout is data, read by opening (:mod:`studio.library.gallery_db`
migrates a file forward and checks it), by the read-only check of a suspect file
(:mod:`studio.library.gallery_repair`), and by whoever reads the history of the file format.  Each
migration is a tuple of single statements, applied in one transaction by
:func:`studio.library.gallery_db.open_catalogue`; a released migration is never edited, a new one is
appended.
"""

from __future__ import annotations

__all__ = [
    "COLUMNS_BY_VERSION",
    "FINGERPRINT",
    "MIGRATIONS",
    "OUR_TABLES",
    "REQUIRED",
    "REQUIRED_BY_VERSION",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 2
"""Version of the database layout this code writes; older files are migrated forward on open."""

# Each migration is a list of single statements (not a script: ``executescript`` would commit the
# surrounding transaction, and a migration must apply completely or not at all).
_V1: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at REAL NOT NULL
    )""",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        width INTEGER,
        height INTEGER,
        created REAL NOT NULL,
        model TEXT,
        seed INTEGER,
        steps INTEGER,
        prompt TEXT,
        rating INTEGER NOT NULL DEFAULT 0,
        favourite INTEGER NOT NULL DEFAULT 0,
        indexed_at REAL NOT NULL
    )""",
    "CREATE INDEX images_folder ON images(folder_id)",
    "CREATE INDEX images_created ON images(created)",
)

_V2: tuple[str, ...] = (
    "ALTER TABLE images ADD COLUMN scheduler TEXT",
    "ALTER TABLE images ADD COLUMN negative_prompt TEXT",
    "ALTER TABLE images ADD COLUMN source TEXT",
    # Rows from v1 lack the new columns: an impossible mtime makes the next scan re-read them
    # (an update, so ids, ratings and favourites are kept).
    "UPDATE images SET mtime = -1",
    """CREATE TABLE unreadable (
        path TEXT PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        error TEXT,
        checked_at REAL NOT NULL
    )""",
    "CREATE INDEX unreadable_folder ON unreadable(folder_id)",
    "CREATE INDEX images_model ON images(model, created)",
    "CREATE INDEX images_rating ON images(rating, created)",
    "CREATE INDEX images_favourites ON images(created) WHERE favourite = 1",
    # External content: the text lives once, in images.  No prefix indexes (prefix='2 3'): they enlarge
    # the index and slow every insert, and prefix queries over a gallery-sized index are fast without
    # them (bench/gallery.py: 2-4 letter prefixes over 10,000 prompts in a few milliseconds).
    """CREATE VIRTUAL TABLE images_fts USING fts5(
        prompt, negative_prompt,
        content='images', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
        INSERT INTO images_fts(rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
    """CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
    END""",
    """CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt ON images
    WHEN old.prompt IS NOT new.prompt OR old.negative_prompt IS NOT new.negative_prompt BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
        INSERT INTO images_fts(rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
    "INSERT INTO images_fts(images_fts) VALUES ('rebuild')",
)

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((1, _V1), (2, _V2))
"""Forward migrations: (version reached, statements).  Append; never edit a released one."""

_FTS_SHADOWS: tuple[tuple[str, str], ...] = tuple(
    ("table", f"images_fts_{part}") for part in ("data", "idx", "docsize", "config")
)

REQUIRED_BY_VERSION: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("table", "schema_version"), ("table", "folders"), ("table", "images")),
    2: (
        ("table", "schema_version"),
        ("table", "folders"),
        ("table", "images"),
        ("table", "unreadable"),
        ("table", "images_fts"),
        *_FTS_SHADOWS,
        ("trigger", "images_fts_insert"),
        ("trigger", "images_fts_delete"),
        ("trigger", "images_fts_update"),
    ),
}
"""What a catalogue at each version must hold: without any of these, searches or writes fail.  (A missing
index only makes queries slower, so indexes are not required.)  The search index's shadow tables are
listed too: without one the file opens, and only a text search or a write would find it."""

REQUIRED = REQUIRED_BY_VERSION[SCHEMA_VERSION]
"""What a current catalogue must hold."""

OUR_TABLES = frozenset({"images", "folders"})
FINGERPRINT = frozenset({"images", "folders", "unreadable", "images_fts"})
"""Tables that together are ours even without the ``schema_version`` marker (a catalogue that lost it is
damaged): no other program's database is expected to hold all four.  ``images`` or ``folders`` alone
(someone's ``photos.db``) is not enough."""


_IMAGE_COLUMNS_V1 = (
    "id", "path", "folder_id", "size", "mtime", "width", "height", "created", "model", "seed", "steps",
    "prompt", "rating", "favourite", "indexed_at",
)
COLUMNS_BY_VERSION: dict[int, dict[str, tuple[str, ...]]] = {
    1: {"schema_version": ("version",), "folders": ("id", "path", "added_at"), "images": _IMAGE_COLUMNS_V1},
    2: {
        "schema_version": ("version",),
        "folders": ("id", "path", "added_at"),
        "images": (*_IMAGE_COLUMNS_V1, "scheduler", "negative_prompt", "source"),
        "unreadable": ("path", "folder_id", "size", "mtime", "error", "checked_at"),
    },
}
"""The columns our statements use, per table and version (a column renamed or dropped by hand would
fail every query that names it: the file opens, and nothing works)."""
