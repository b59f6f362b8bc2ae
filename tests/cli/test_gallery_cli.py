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
    assert "added 2" in out and "unreadable 1" in out
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
