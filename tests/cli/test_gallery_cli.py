"""`studio gallery scan` / `studio gallery search` on real files and a real SQLite catalogue."""

from __future__ import annotations

import json

from PIL import Image, PngImagePlugin

from studio.cli import main


def a1111_png(path, prompt, seed, model="dreamshaper_8"):
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, "
        f"Size: 64x64, Model: {model}",
    )
    Image.new("RGB", (64, 64), "teal").save(path, pnginfo=info)


def test_scan_then_search(capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    a1111_png(photos / "a.png", "a red castle on a hill", 11)
    a1111_png(photos / "b.png", "a blue lake at dawn", 12, model="other")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    db = tmp_path / "gallery.sqlite3"
    assert main(["gallery", "--db", str(db), "scan", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "added 2" in out and "skipped 1" in out and "skipped " + str(photos / "broken.png") in out
    assert main(["gallery", "--db", str(db), "search", "castle", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["prompt"], r["seed"], r["model"]) for r in rows] == [("a red castle on a hill", 11, "dreamshaper_8")]
    assert rows[0]["path"].endswith("a.png")
    assert main(["gallery", "--db", str(db), "search", "--model", "other", "--json"]) == 0
    assert [r["seed"] for r in json.loads(capsys.readouterr().out)] == [12]
    (photos / "a.png").unlink()
    assert main(["gallery", "--db", str(db), "scan", str(photos)]) == 0
    assert "removed 1" in capsys.readouterr().out


def test_scan_refuses_a_missing_folder(capsys, tmp_path):
    assert main(["gallery", "--db", str(tmp_path / "g.db"), "scan", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def surrogate_png(path):
    """Our iTXt chunk holding JSON whose prompt is a lone surrogate escape (valid JSON, invalid Unicode)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("latent-studio", '{"app": "latent-studio", "schema": 1, "request": {"prompt": "bad \\ud800"}}')
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)


def test_one_bad_file_never_stops_a_scan(capsys, tmp_path):
    """Issue 11 item 1: a lone surrogate in metadata and a file name that is not UTF-8 abort nothing."""
    import os

    photos = tmp_path / "photos"
    photos.mkdir()
    a1111_png(photos / "good.png", "a red castle", 1)
    surrogate_png(photos / "surrogate.png")
    a1111_png(os.path.join(os.fsencode(photos), b"bad\xff\xfe.png"), "a green castle", 2)
    db = tmp_path / "gallery.sqlite3"
    assert main(["gallery", "--db", str(db), "scan", str(photos)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # the skipped file is reported on stdout, in the report's words, not logged raw
    assert out.startswith("added 2, ") and "skipped 1 " in out
    assert "bad\\udcff\\udcfe.png: file name is not valid UTF-8" in out
    assert main(["gallery", "--db", str(db), "search", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(os.path.basename(r["path"]) for r in rows) == ["good.png", "surrogate.png"]
    assert next(r["prompt"] for r in rows if r["path"].endswith("surrogate.png")) == "bad \ufffd"


def test_a_damaged_catalogue_names_itself_and_repair_rebuilds_it(capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    a1111_png(photos / "a.png", "a red castle", 11)
    db = tmp_path / "gallery.sqlite3"
    assert main(["gallery", "--db", str(db), "scan", str(photos)]) == 0
    capsys.readouterr()
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE images_fts")
    conn.close()
    assert main(["gallery", "--db", str(db), "search", "castle"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(db) in err and "`studio gallery repair`" in err

    assert main(["gallery", "--db", str(db), "repair"]) == 0
    out = capsys.readouterr().out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("gallery.sqlite3.damaged-") and "-wal" not in p.name and "-shm" not in p.name]
    assert len(aside) == 1 and str(aside[0]) in out and "1 images catalogued again" in out
    assert main(["gallery", "--db", str(db), "search", "castle", "--json"]) == 0
    assert [r["seed"] for r in json.loads(capsys.readouterr().out)] == [11]
    assert main(["gallery", "--db", str(db), "repair"]) == 0
    assert "is fine: nothing to repair" in capsys.readouterr().out


def test_garbage_for_a_catalogue(capsys, tmp_path):
    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    assert main(["gallery", "--db", str(db), "search", "x"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(db) in err and "repair" in err
    assert db.read_bytes() == b"this is not a database" * 100  # nothing changed until the user asks


def test_another_programs_database_is_refused_and_left_alone(capsys, tmp_path):
    """Someone's own photos.db passed with --db is not a damaged catalogue: nothing offers to repair it,
    nothing is written into it, and only `repair --force` moves it aside (whole)."""
    import sqlite3

    db = tmp_path / "photos.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, caption TEXT)")
    conn.close()
    kept = db.read_bytes()
    photos = tmp_path / "photos"
    photos.mkdir()
    for command in (["scan", str(photos)], ["search", "castle"]):
        assert main(["gallery", "--db", str(db), *command]) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "not a Latent Studio gallery catalogue" in err
        assert "repair" not in err
    assert main(["gallery", "--db", str(db), "repair"]) == 1
    err = capsys.readouterr().err
    assert "not a Latent Studio gallery catalogue" in err and "`studio gallery repair --force`" in err
    assert db.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["photos", "photos.db"]

    assert main(["gallery", "--db", str(db), "repair", "--force"]) == 0
    out = capsys.readouterr().out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("photos.db.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == kept
    assert str(aside[0]) in out and "was not a Latent Studio gallery catalogue" in out
    assert main(["gallery", "--db", str(db), "search", "--json"]) == 0  # a new, empty catalogue there
    assert json.loads(capsys.readouterr().out) == []


def test_a_scan_names_the_first_skipped_files_and_counts_the_rest(capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(12):
        (photos / f"broken{n:02d}.png").write_bytes(b"not an image")
    assert main(["gallery", "--db", str(tmp_path / "g.sqlite3"), "scan", str(photos)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("added 0, ") and "skipped 12 " in lines[0]
    assert len([line for line in lines if line.startswith("  skipped ")]) == 10
    assert lines[-1] == "  … and 2 more skipped"
