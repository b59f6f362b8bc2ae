"""The thumbnail cache with real image files on disk: made once, keyed by file state, oriented,
mode-converted, refused for broken files, pruned oldest first."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, JpegImagePlugin

from studio.library import thumbnails as thumbnails_module
from studio.library.images import ImageLoadError
from studio.library.thumbnails import ThumbnailCache

from . import samples as S


class DecodeCounter:
    """Wraps the decoder to count real decodes (a cache hit must not decode)."""

    def __init__(self) -> None:
        self.function = thumbnails_module._decode_thumbnail
        self.calls = 0

    def __call__(self, *args: Any) -> Image.Image:
        self.calls += 1
        return self.function(*args)


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> DecodeCounter:
    counter = DecodeCounter()
    monkeypatch.setattr(thumbnails_module, "_decode_thumbnail", counter)
    return counter


@pytest.fixture()
def cache(tmp_path: Path) -> ThumbnailCache:
    return ThumbnailCache(tmp_path / "thumbs", size=64)


def thumbnail_files(cache: ThumbnailCache) -> list[Path]:
    return sorted(cache.directory.rglob("*.jpg")) if cache.directory.exists() else []


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected, strict=True))


def test_made_once_then_served_from_disk(
    tmp_path: Path, cache: ThumbnailCache, decodes: DecodeCounter
) -> None:
    source = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (200, 40, 40)).save(source)
    assert cache.cached(source) is None
    made = cache.get_or_make(source)
    assert decodes.calls == 1
    assert made.is_file() and made.parent.parent == cache.directory and made.suffix == ".jpg"
    with Image.open(made) as thumb:
        assert thumb.format == "JPEG" and thumb.mode == "RGB" and thumb.size == (64, 32)
        assert close(thumb.getpixel((32, 16)), (200, 40, 40))
    assert cache.get_or_make(source) == made
    assert cache.cached(source) == made
    assert decodes.calls == 1  # the second request did not decode
    assert [p.name for p in made.parent.iterdir()] == [made.name]  # no temporary files left


def test_small_images_are_not_enlarged(tmp_path: Path, cache: ThumbnailCache) -> None:
    source = tmp_path / "tiny.png"
    Image.new("RGB", (20, 10), (0, 0, 255)).save(source)
    with Image.open(cache.get_or_make(source)) as thumb:
        assert thumb.size == (20, 10)


def test_key_follows_the_file_state(tmp_path: Path, cache: ThumbnailCache, decodes: DecodeCounter) -> None:
    source = tmp_path / "a.png"
    Image.new("RGB", (80, 80), (10, 200, 10)).save(source)
    info = source.stat()
    key = cache.key(source, info.st_size, info.st_mtime)
    assert key == cache.key(str(source), info.st_size, info.st_mtime)  # stable, str or Path
    assert key == cache.key(tmp_path / "." / "a.png", info.st_size, info.st_mtime)  # resolved
    assert key != cache.key(source, info.st_size + 1, info.st_mtime)
    assert key != cache.key(source, info.st_size, info.st_mtime + 0.001)
    assert key != cache.key(tmp_path / "b.png", info.st_size, info.st_mtime)
    assert key != ThumbnailCache(cache.directory, size=128).key(source, info.st_size, info.st_mtime)
    first = cache.get_or_make(source)
    # The file changes: the old thumbnail no longer answers for it.
    Image.new("RGB", (80, 80), (10, 10, 200)).save(source)
    os.utime(source, (info.st_mtime + 5, info.st_mtime + 5))
    assert cache.cached(source) is None
    second = cache.get_or_make(source)
    assert second != first and decodes.calls == 2
    with Image.open(second) as thumb:
        assert close(thumb.getpixel((40, 40)), (10, 10, 200))


def test_exif_orientation_is_applied(tmp_path: Path, cache: ThumbnailCache) -> None:
    # Stored landscape, left half red and right half blue; orientation 6 = rotate 90 degrees clockwise
    # for display, so the thumbnail is portrait with red on top.
    image = Image.new("RGB", (160, 80), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 80, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    source = tmp_path / "phone.jpg"
    image.save(source, "JPEG", exif=exif, quality=95)
    with Image.open(cache.get_or_make(source)) as thumb:
        assert thumb.size == (32, 64)
        assert close(thumb.getpixel((16, 10)), (255, 0, 0))
        assert close(thumb.getpixel((16, 54)), (0, 0, 255))


def test_large_jpeg_is_decoded_reduced(
    tmp_path: Path, cache: ThumbnailCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (1600, 1200), (30, 120, 60)).save(source, "JPEG", quality=90)
    drafts: list[tuple[Any, ...]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def draft(self: Image.Image, mode: Any, size: Any) -> Any:
        result = original(self, mode, size)
        drafts.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    with Image.open(cache.get_or_make(source)) as thumb:
        assert thumb.size == (64, 48)
        assert close(thumb.getpixel((32, 24)), (30, 120, 60))
    assert drafts and drafts[0][2] == (200, 150)  # libjpeg decoded at 1/8 scale, not 1600x1200


@pytest.mark.parametrize("kind", ["cmyk", "palette", "rgba", "gray16"])
def test_other_modes_become_rgb(tmp_path: Path, cache: ThumbnailCache, kind: str) -> None:
    if kind == "cmyk":
        source = tmp_path / "print.jpg"
        Image.new("CMYK", (96, 96), (0, 255, 255, 0)).save(source, "JPEG", quality=95)  # red ink
        expected = (255, 0, 0)
    elif kind == "palette":
        source = tmp_path / "palette.png"
        image = Image.new("P", (96, 96), 0)
        image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        image.paste(1, (0, 0, 96, 48))
        image.save(source, transparency=0)  # bottom half transparent: composited on white
        with Image.open(cache.get_or_make(source)) as thumb:
            assert thumb.mode == "RGB"
            assert close(thumb.getpixel((32, 8)), (0, 255, 0))
            assert close(thumb.getpixel((32, 56)), (255, 255, 255))
        return
    elif kind == "rgba":
        source = tmp_path / "clear.webp"
        Image.new("RGBA", (96, 96), (0, 0, 0, 0)).save(source, "WEBP", lossless=True)
        expected = (255, 255, 255)
    else:
        source = tmp_path / "deep.png"
        Image.new("I;16", (96, 96), 65535).save(source)
        expected = (255, 255, 255)
    with Image.open(cache.get_or_make(source)) as thumb:
        assert thumb.mode == "RGB" and thumb.size == (64, 64)
        assert close(thumb.getpixel((32, 32)), expected)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "missing", "folder", "bomb"])
def test_unreadable_images_raise_and_cache_nothing(tmp_path: Path, cache: ThumbnailCache, kind: str) -> None:
    source = tmp_path / f"{kind}.png"
    if kind == "garbage":
        source.write_bytes(b"definitely not an image" * 10)
    elif kind == "truncated":
        Image.new("RGB", (300, 300), (1, 2, 3)).save(source)
        source.write_bytes(source.read_bytes()[:200])
    elif kind == "empty":
        source.write_bytes(b"")
    elif kind == "folder":
        source.mkdir()
    elif kind == "bomb":
        source.write_bytes(S.png_header_only(20000, 20000))
    with pytest.raises(ImageLoadError) as info:
        cache.get_or_make(source)
    assert str(source) in str(info.value) and "\n" not in str(info.value)
    assert cache.cached(source) is None
    assert thumbnail_files(cache) == []


def test_prune_evicts_oldest_first(tmp_path: Path, cache: ThumbnailCache) -> None:
    made = []
    for index in range(5):
        source = tmp_path / f"{index}.png"
        Image.effect_noise((64, 64), 40 + index).convert("RGB").save(source)
        thumb = cache.get_or_make(source)
        os.utime(thumb, (1_700_000_000 + index * 100, 1_700_000_000 + index * 100))
        made.append(thumb)
    sizes = [path.stat().st_size for path in made]
    total = cache.total_bytes()
    assert total == sum(sizes)
    stray = made[0].parent / ".leftover.tmp"
    stray.write_bytes(b"x" * 10)
    os.utime(stray, (1_600_000_000, 1_600_000_000))  # an interrupted write, long ago
    assert cache.prune(total) == 10  # under the limit: only the stale temp file goes
    assert not stray.exists()
    limit = total - sizes[0] - 1  # must drop the two oldest
    freed = cache.prune(limit)
    assert freed == sizes[0] + sizes[1]
    assert [path.exists() for path in made] == [False, False, True, True, True]
    assert cache.total_bytes() <= limit
    # A pruned thumbnail is simply made again.
    assert cache.cached(tmp_path / "0.png") is None
    assert cache.get_or_make(tmp_path / "0.png").exists()
    remaining = cache.total_bytes()
    assert cache.prune(0) == remaining
    assert thumbnail_files(cache) == []
    with pytest.raises(ValueError):
        cache.prune(-1)


def test_cache_hits_refresh_age_for_pruning(tmp_path: Path, cache: ThumbnailCache) -> None:
    source = tmp_path / "used.png"
    Image.new("RGB", (70, 70)).save(source)
    thumb = cache.get_or_make(source)
    os.utime(thumb, (1_000_000_000, 1_000_000_000))
    assert cache.cached(source) == thumb
    assert thumb.stat().st_mtime > 1_000_000_000  # recently used: pruned last


def test_empty_thumbnail_counts_as_missing(
    tmp_path: Path, cache: ThumbnailCache, decodes: DecodeCounter
) -> None:
    source = tmp_path / "a.png"
    Image.new("RGB", (70, 70)).save(source)
    thumb = cache.get_or_make(source)
    thumb.write_bytes(b"")  # what a crash between create and write could leave
    assert cache.cached(source) is None
    assert cache.get_or_make(source) == thumb and thumb.stat().st_size > 0
    assert decodes.calls == 2


def test_concurrent_makers_agree(tmp_path: Path, cache: ThumbnailCache) -> None:
    source = tmp_path / "shared.png"
    Image.new("RGB", (300, 200), (9, 99, 199)).save(source)
    results: list[Path] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            results.append(ThumbnailCache(cache.directory, size=64).get_or_make(source))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    assert thumbnail_files(cache) == [results[0]]
    assert [p.name for p in results[0].parent.iterdir()] == [results[0].name]


def test_default_location_and_size_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.library import paths

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path / "cache")
    default = ThumbnailCache.default()
    assert default.directory == tmp_path / "cache" / "thumbnails" and default.size == 256
    for bad in (0, 8, 5000, 2.5, True):
        with pytest.raises(ValueError):
            ThumbnailCache(tmp_path, size=bad)  # type: ignore[arg-type]


def test_larger_sizes_are_kept_beside_the_base_size(
    tmp_path: Path, cache: ThumbnailCache, decodes: DecodeCounter
) -> None:
    # The stored sizes: the base size doubled until a display is covered, never below the base.
    assert [cache.size_for(px) for px in (1, 64, 65, 128, 129, 300)] == [64, 64, 128, 128, 256, 512]
    assert cache.size_for(100_000) == 4096
    source = tmp_path / "wide.png"
    Image.new("RGB", (400, 200), (20, 160, 40)).save(source)
    base = cache.get_or_make(source)
    large = cache.get_or_make(source, 256)
    assert large != base and decodes.calls == 2
    with Image.open(base) as small, Image.open(large) as big:
        assert small.size == (64, 32) and big.size == (256, 128)
    assert cache.cached(source) == base and cache.cached(source, 256) == large
    assert cache.cached(source, 128) is None  # each size is its own entry
    assert cache.get_or_make(source, 256) == large and decodes.calls == 2  # served from disk
    assert cache.get_or_make(source, 64) == base  # the base size, asked for by number
    with Image.open(cache.get_or_make(source, 1024)) as never_enlarged:
        assert never_enlarged.size == (400, 200)
    for bad in (0, 8, 5000, True):
        with pytest.raises(ValueError):
            cache.get_or_make(source, bad)  # type: ignore[arg-type]
