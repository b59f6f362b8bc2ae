"""The queue kept across a quit: written atomically, read back as untrusted input."""

from __future__ import annotations

import json

from PIL import Image

from studio.engine.request import GenerationRequest
from studio.worker.queue_store import clear_queue, load_queue, save_queue


def test_requests_and_init_images_survive_a_restart(tmp_path):
    path = tmp_path / "queue.json"
    init = Image.new("RGB", (64, 48), (200, 30, 30))
    requests = [
        GenerationRequest(model="sd-1.4", prompt="a fox", steps=12, seed=7, width=512, height=512),
        GenerationRequest(model="/models/x", prompt="from the canvas", init_image=init, strength=0.5),
    ]
    save_queue(path, requests)
    saved = load_queue(path)
    assert saved.skipped == 0 and len(saved.requests) == 2
    first, second = saved.requests
    assert (first.prompt, first.steps, first.seed, first.init_image) == ("a fox", 12, 7, None)
    assert second.strength == 0.5 and second.init_image.size == (64, 48)
    assert second.init_image.getpixel((3, 3)) == (200, 30, 30)
    clear_queue(path)
    assert not path.exists() and not (tmp_path / "queue-images").exists()
    assert load_queue(path).requests == []


def test_damaged_entries_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "queue.json"
    good = {"request": {"model": "sd-1.4", "prompt": "ok"}, "init_image": None}
    entries = [
        good,
        {"request": {"model": "sd-1.4", "prompt": "x", "steps": -4}},  # out of range
        {"request": {"model": "sd-1.4", "prompt": "x", "unknown_field": 1, "batch": "two"}},  # wrong type
        {"request": {"model": "sd-1.4", "prompt": "x"}, "init_image": "../../etc/passwd"},  # not ours
        {"request": {"model": "sd-1.4", "prompt": "x"}, "init_image": "job-9.png"},  # gone
        "not an object",
    ]
    path.write_text(json.dumps({"version": 1, "jobs": entries}))
    saved = load_queue(path)
    assert [r.prompt for r in saved.requests] == ["ok"] and saved.skipped == 5
    path.write_text("{ not json")
    assert load_queue(path).requests == [] and load_queue(path).skipped == 1


def test_an_empty_queue_leaves_no_file(tmp_path):
    path = tmp_path / "queue.json"
    save_queue(path, [GenerationRequest(model="m", prompt="p")])
    save_queue(path, [])
    assert not path.exists()
