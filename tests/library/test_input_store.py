"""The kept job inputs: by content, once, read back only when the pixels still match; digests from
metadata are untrusted text."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from studio.library.images import sha256_image
from studio.library.input_store import InputStore, is_digest


def noise(size=(48, 32), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def kept_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_image_is_kept_once_under_its_hash(tmp_path):
    store, image = InputStore(tmp_path / "inputs"), noise()
    digest = store.put(image)
    assert digest == sha256_image(image)
    path = store.path(digest)
    assert path == tmp_path / "inputs" / digest[:2] / f"{digest}.png" and path.is_file()
    os.utime(path, (1_000_000, 1_000_000))
    inode = path.stat().st_ino
    assert store.put(image.copy()) == digest  # the same pixels again: nothing written (an atomic write is a new file)...
    assert path.stat().st_ino == inode and kept_files(tmp_path / "inputs") == [path]
    assert path.stat().st_mtime > 1_000_000  # ...but it is marked used: the last to be pruned
    assert store.keep({digest: image}) == []
    assert store.has(digest)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_rgb_images_and_masks_come_back_in_their_mode_with_the_same_hash(tmp_path, mode):
    store, image = InputStore(tmp_path), noise(mode=mode, seed=3)
    digest = store.put(image)
    back = store.get(digest)
    assert back.mode == mode and back.size == image.size
    assert np.array_equal(np.asarray(back), np.asarray(image)) and sha256_image(back) == digest


def test_other_modes_are_kept_as_the_rgb_the_hash_is_of(tmp_path):
    store = InputStore(tmp_path)
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    digest = store.put(rgba)
    assert digest == sha256_image(rgba)
    back = store.get(digest)
    assert back.mode == "RGB" and sha256_image(back) == digest


def test_keep_writes_several_and_names_the_new_ones(tmp_path):
    store = InputStore(tmp_path)
    init, mask = noise(seed=1), noise(mode="L", seed=2)
    first = store.put(init)
    written = store.keep({sha256_image(init): init, sha256_image(mask): mask})
    assert written == [sha256_image(mask)] and first == sha256_image(init)
    assert store.get(sha256_image(mask)).mode == "L"


@pytest.mark.parametrize(
    "digest",
    [
        "../x", "/etc/passwd", "A" * 64, "a" * 63, "a" * 65, "a" * 63 + "\x00", "a" * 64 + "\n", "g" * 64,
        "../" + "a" * 61, "", None, 42, b"a" * 64, ["a" * 64],
    ],
)
def test_hostile_digests_name_no_file(tmp_path, digest):
    store = InputStore(tmp_path / "inputs")
    assert store.path(digest) is None and store.get(digest) is None and not store.has(digest)
    assert not is_digest(digest)


def test_a_digest_that_is_not_one_is_refused_by_put(tmp_path):
    with pytest.raises(ValueError, match="not a SHA-256"):
        InputStore(tmp_path).put(noise(), "../evil")
    assert kept_files(tmp_path) == []


def test_a_damaged_or_swapped_file_is_not_used_and_a_put_writes_it_again(tmp_path, caplog):
    store, image, other = InputStore(tmp_path), noise(seed=4), noise(seed=5)
    digest = store.put(image)
    path = store.path(digest)
    other.save(path)  # another picture under this name
    assert store.get(digest) is None and "does not match" in caplog.text
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert store.get(digest) is None and "unreadable" in caplog.text
    assert store.keep({digest: image}) == [digest]  # put back whole
    assert sha256_image(store.get(digest)) == digest


def test_a_missing_image_is_none(tmp_path):
    assert InputStore(tmp_path / "nowhere").get("0" * 64) is None


def test_an_image_given_with_a_digest_it_does_not_have_is_refused(tmp_path):
    store = InputStore(tmp_path)
    with pytest.raises(ValueError, match="does not hash"):
        store.put(noise(seed=6), "0" * 64)
    assert kept_files(tmp_path) == []


def test_pruning_removes_the_least_recently_used_inputs_beyond_the_limit(tmp_path):
    store = InputStore(tmp_path)
    digests = [store.put(noise(seed=seed)) for seed in range(4)]
    for age, digest in enumerate(digests):  # the first is the oldest...
        os.utime(store.path(digest), (1000 + age, 1000 + age))
    store.put(noise(seed=0))  # ...until it is used again
    size = store.path(digests[1]).stat().st_size
    assert store.prune(limit=2 * size + size // 2) == 2
    assert [store.has(d) for d in digests] == [True, False, False, True]
    assert store.prune(limit=10**9) == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions that bind (not root)")
def test_a_read_only_folder_raises_oserror(tmp_path):
    root = tmp_path / "inputs"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(OSError):
            InputStore(root).put(noise())
    finally:
        root.chmod(0o755)


def test_a_root_that_cannot_be_a_folder_raises_oserror(tmp_path):
    """A file where the folder should be: an OSError whoever runs the tests (root included)."""
    (tmp_path / "data").write_text("not a folder", encoding="utf-8")
    with pytest.raises(OSError):
        InputStore(tmp_path / "data" / "inputs").keep({sha256_image(noise()): noise()})
