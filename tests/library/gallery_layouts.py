"""Catalogue layouts of earlier releases, as SQL, for the migration and damage tests."""

V1_LAYOUT = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, added_at REAL NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    size INTEGER NOT NULL, mtime REAL NOT NULL, width INTEGER, height INTEGER,
    created REAL NOT NULL, model TEXT, seed INTEGER, steps INTEGER, prompt TEXT,
    rating INTEGER NOT NULL DEFAULT 0, favourite INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL);
CREATE INDEX images_folder ON images(folder_id);
CREATE INDEX images_created ON images(created);
"""
"""The layout the first release wrote: no negative prompt, scheduler or source, no FTS."""
