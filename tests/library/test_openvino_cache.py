"""The OpenVINO cache's folders: parts appear whole or not at all, are listed with sizes, removed whole."""

from __future__ import annotations

import pytest

from studio.library.openvino_cache import OpenVinoCache


def write_part(size: int = 1000):
    def write(folder):
        (folder / "openvino_model.xml").write_text("<net/>", encoding="utf-8")
        (folder / "openvino_model.bin").write_bytes(b"\0" * size)

    return write


def test_a_published_part_is_found_by_identity_with_its_config(tmp_path):
    cache = OpenVinoCache(tmp_path)
    xml = cache.publish("hub:a/b@123", "a/b", "unet", "fp16", "2026.4", write_part(), config={"in_channels": 4})
    assert cache.part("hub:a/b@123", "unet", "fp16", "2026.4") == xml
    assert (xml.parent / "config.json").read_text(encoding="utf-8").count("in_channels") == 1
    assert cache.part("hub:a/b@123", "unet", "int8", "2026.4") is None  # another precision
    assert cache.part("hub:a/b@123", "unet", "fp16", "2027.0") is None  # another OpenVINO version
    assert cache.part("hub:a/b@456", "unet", "fp16", "2026.4") is None  # other weights


def test_a_write_that_fails_leaves_no_part(tmp_path):
    cache = OpenVinoCache(tmp_path)

    def fails(folder):
        (folder / "openvino_model.xml").write_text("<half", encoding="utf-8")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        cache.publish("id", "m", "unet", "fp16", "1", fails)
    assert cache.part("id", "unet", "fp16", "1") is None
    [entry] = cache.entries()
    assert entry.parts == () and not [p for p in entry.folder.iterdir() if p.name.startswith(".tmp")]


def test_entries_list_each_model_with_its_size_largest_first_and_remove_frees_it(tmp_path):
    cache = OpenVinoCache(tmp_path)
    cache.publish("small", "Small model", "unet", "fp16", "1", write_part(100))
    for component in ("unet", "vae_decoder"):
        cache.publish("big", "Big/model", component, "fp16", "1", write_part(5000))
    big, small = cache.entries()
    assert (big.label, len(big.parts), small.label) == ("Big/model", 2, "Small model")
    assert big.size > 10_000 > small.size > 100 and big.folder.name.startswith("Big-model-")
    assert cache.total_size() == big.size + small.size
    assert cache.remove(big.folder) == big.size
    assert [e.label for e in cache.entries()] == ["Small model"]


def test_remove_refuses_a_folder_outside_the_cache(tmp_path):
    cache = OpenVinoCache(tmp_path / "cache")
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    with pytest.raises(ValueError):
        cache.remove(elsewhere)
    assert elsewhere.is_dir()


def test_an_unreadable_record_is_listed_by_its_folder_name(tmp_path):
    cache = OpenVinoCache(tmp_path)
    cache.publish("x", "X", "unet", "fp16", "1", write_part())
    [entry] = cache.entries()
    (entry.folder / "model.json").write_text("{broken", encoding="utf-8")
    [again] = cache.entries()
    assert again.label == entry.folder.name and again.parts == entry.parts
