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


def noise_mask(size=(64, 48), seed=0) -> Image.Image:
    import numpy as np

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L")


def test_a_masked_outpainting_job_survives_a_restart_with_its_mask_exact(tmp_path):
    import numpy as np

    from studio.library.images import sha256_image

    path = tmp_path / "queue.json"
    init, mask = Image.new("RGB", (64, 48), (10, 200, 30)), noise_mask()
    strokes = Image.new("RGBA", (64, 48), (0, 0, 0, 0))  # a mask as a file with transparency: its alpha
    strokes.paste((255, 255, 255, 255), (0, 0, 20, 48))
    strokes.save(tmp_path / "strokes.png")
    requests = [
        GenerationRequest(
            model="m", prompt="inpaint", init_image=init, mask_image=mask, invert_mask=True, mask_blur=6,
            masked_content="fill", inpaint_area="masked", padding=16, expand=(0, 64, 0, 16), outpaint_fill="noise",
        ),
        GenerationRequest(model="m", prompt="from a file", init_image=init, mask_image=tmp_path / "strokes.png"),
        GenerationRequest(model="m", prompt="outpaint only", init_image=init, expand=(8, 0, 8, 0)),
    ]
    save_queue(path, requests)
    assert sorted(p.name for p in (tmp_path / "queue-images").iterdir()) == [
        "job-0-mask.png", "job-0.png", "job-1-mask.png", "job-1.png", "job-2.png",
    ]
    saved = load_queue(path)
    assert saved.skipped == 0
    first, second, third = saved.requests
    assert first.mask_image.mode == "L" and np.array_equal(np.asarray(first.mask_image), np.asarray(mask))
    assert sha256_image(first.mask_image) == sha256_image(mask)  # the hash the metadata will record
    assert (first.invert_mask, first.mask_blur, first.masked_content, first.inpaint_area, first.padding) == (
        True, 6, "fill", "masked", 16,
    )
    assert (first.expand, first.outpaint_fill) == ((0, 64, 0, 16), "noise")
    assert np.array_equal(np.asarray(second.mask_image), np.asarray(strokes.getchannel("A")))
    assert third.mask_image is None and third.expand == (8, 0, 8, 0)
    clear_queue(path)
    assert not (tmp_path / "queue-images").exists()


def test_a_missing_or_damaged_mask_skips_only_its_job(tmp_path):
    path = tmp_path / "queue.json"
    init = Image.new("RGB", (32, 32), (1, 2, 3))
    requests = [
        GenerationRequest(model="m", prompt=f"job {n}", init_image=init, mask_image=noise_mask((32, 32), seed=n))
        for n in range(3)
    ] + [GenerationRequest(model="m", prompt="plain")]
    save_queue(path, requests)
    images = tmp_path / "queue-images"
    (images / "job-0-mask.png").unlink()
    (images / "job-1-mask.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    saved = load_queue(path)
    assert [r.prompt for r in saved.requests] == ["job 2", "plain"] and saved.skipped == 2


def test_hostile_mask_names_are_skipped_and_old_files_without_masks_load(tmp_path):
    path = tmp_path / "queue.json"
    base = {"model": "m", "prompt": "x"}
    entries = [
        {"request": base, "init_image": None},  # an older version's entry: no mask key
        {"request": base, "init_image": None, "mask_image": "../../etc/passwd"},
        {"request": base, "init_image": None, "mask_image": 7},
        {"request": base, "init_image": None, "mask_image": ""},
    ]
    path.write_text(json.dumps({"version": 1, "jobs": entries}))
    saved = load_queue(path)
    assert len(saved.requests) == 1 and saved.requests[0].mask_image is None and saved.skipped == 3
