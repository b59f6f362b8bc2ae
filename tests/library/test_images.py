"""Image loading (limits, modes, orientation, broken files) and atomic saving, with real files."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.library import (
    MAX_PIXELS,
    ImageLoadError,
    SaveError,
    atomic_write_bytes,
    encode_image,
    load_image,
    read_metadata,
    save_image,
    sha256_image,
    to_rgb,
)
from studio.library.images import (
    STALE_TEMP_SECONDS,
    remove_stale_temp_files,
    save_new_image,
    sweep_stale_temp_files,
    temp_name,
    write_new_file,
)
from studio.library.naming import TEMP_NAME_MAX_BYTES

from . import samples as S


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected, strict=True))


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; tests run in one thread
    os.umask(mask)
    return mask


def _leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".part") or name.startswith("."))


# --------------------------------------------------------------------------------------------------
# Loading: limits
# --------------------------------------------------------------------------------------------------


def test_pixel_limit_checked_before_decoding(tmp_path: Path) -> None:
    # 9000 x 9000 = 81 Mpx: over our 64 Mpx default, under Pillow's own limit; the file is tiny and its
    # data incomplete, so only a check made before decoding can produce this message.
    path = tmp_path / "big.png"
    path.write_bytes(S.png_header_only(9000, 9000))
    with pytest.raises(ImageLoadError, match=r"too large \(9000x9000"):
        load_image(path)


def test_pillow_bomb_error_becomes_load_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(S.png_header_only(100_000, 100_000))
    with pytest.raises(ImageLoadError, match="too large") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_custom_max_pixels() -> None:
    data = encode_image(Image.new("RGB", (64, 64)), "PNG")
    with pytest.raises(ImageLoadError, match="the limit is 1,000"):
        load_image(data, max_pixels=1000)
    assert load_image(data, max_pixels=64 * 64).size == (64, 64)
    assert MAX_PIXELS == 8192 * 8192


# --------------------------------------------------------------------------------------------------
# Loading: modes and orientation
# --------------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = tmp_path / "rotated.jpg"
    image.save(path, "JPEG", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    assert _close(loaded.getpixel((10, 5)), (255, 0, 0), 40)  # left half is now on top
    assert _close(loaded.getpixel((10, 35)), (0, 0, 255), 40)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert _close(loaded.getpixel((8, 8)), (255, 0, 0), 20)


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 256, 0x8000, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert [loaded.getpixel((x, 0))[0] for x in range(4)] == [0, 1, 128, 255]


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((1, 1)) == (0, 255, 0)


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),
        ("RGBA", (0, 0, 0, 0), (255, 255, 255)),
        ("LA", (0, 255), (0, 0, 0)),
        ("L", 100, (100, 100, 100)),
        ("1", 1, (255, 255, 255)),
        ("RGB", (1, 2, 3), (1, 2, 3)),
    ],
)
def test_modes_become_rgb(tmp_path: Path, mode: str, color: object, expected: tuple[int, int, int]) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (4, 4), color).save(path)  # type: ignore[arg-type]
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert _close(loaded.getpixel((2, 2)), expected, 1)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_the_first_frame(tmp_path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = tmp_path / f"anim.{fmt.lower()}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 2
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert _close(loaded.getpixel((4, 4)), (255, 0, 0), 10)


def test_float_and_32_bit_modes() -> None:
    assert to_rgb(Image.new("F", (2, 2), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    assert to_rgb(Image.new("I", (2, 2), 200)).getpixel((0, 0)) == (200, 200, 200)
    rgb = Image.new("RGB", (2, 2))
    assert to_rgb(rgb) is rgb


# --------------------------------------------------------------------------------------------------
# Loading: broken input
# --------------------------------------------------------------------------------------------------


def _noise_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return encode_image(Image.fromarray(pixels), "PNG")


def test_truncated_png(tmp_path: Path) -> None:
    data = _noise_png()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as info:
        load_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_jpeg(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode_image(Image.fromarray(pixels), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(path)


def test_non_image_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello, I am text pretending to be a PNG\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = {
        text: "not an image",
        empty: "empty file",
        tmp_path / "missing.png": "no such file",
        tmp_path / "missing" / "deeper.png": "no such file",
        tmp_path: "is a directory",
    }
    for path, message in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        assert str(info.value).startswith(str(path)) and message in str(info.value)
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(b"")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(b"GIF89a but not really")
    assert issubclass(ImageLoadError, ValueError)


def test_sources_bytes_and_file_objects(tmp_path: Path) -> None:
    data = encode_image(Image.new("RGB", (5, 3), (9, 8, 7)), "PNG")
    assert load_image(data).getpixel((0, 0)) == (9, 8, 7)
    assert load_image(bytearray(data)).size == (5, 3)
    stream = io.BytesIO(data)
    assert load_image(stream).size == (5, 3)
    assert not stream.closed  # the caller's stream stays the caller's


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_file_is_closed_and_image_detached(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_noise_png())
    before = len(os.listdir("/proc/self/fd"))
    image = load_image(path)
    assert len(os.listdir("/proc/self/fd")) == before
    path.unlink()
    assert image.getpixel((0, 0)) is not None  # data is in memory


def test_sha256_image_depends_on_pixels_only() -> None:
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    same_pixels = load_image(encode_image(image, "PNG", S.STUDIO_META))
    assert sha256_image(image) == sha256_image(same_pixels)
    assert len(sha256_image(image)) == 64
    assert sha256_image(image) != sha256_image(Image.new("RGB", (8, 8), (1, 2, 4)))
    assert sha256_image(image) != sha256_image(Image.new("RGB", (4, 16), (1, 2, 3)))


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".PNG"])
def test_save_success_leaves_no_temporary_files(tmp_path: Path, suffix: str) -> None:
    path = save_image(Image.new("RGB", (16, 16), (200, 100, 50)), tmp_path / f"out{suffix}", S.STUDIO_META)
    assert path == tmp_path / f"out{suffix}"
    assert os.listdir(tmp_path) == [path.name]
    assert load_image(path).size == (16, 16)
    if hasattr(os, "fchmod"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_save_creates_folders_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "img.png"
    save_image(Image.new("RGB", (4, 4), (1, 1, 1)), path, None)
    save_image(Image.new("RGB", (4, 4), (2, 2, 2)), path, S.STUDIO_META)
    assert load_image(path).getpixel((0, 0)) == (2, 2, 2)
    assert read_metadata(path) is not None
    assert os.listdir(path.parent) == ["img.png"]


def test_save_rgba_as_jpeg_and_odd_modes() -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    jpeg = load_image(encode_image(image, "JPEG"))
    assert _close(jpeg.getpixel((1, 1)), (255, 255, 255), 3)
    assert load_image(encode_image(Image.new("CMYK", (4, 4)), "PNG")).mode == "RGB"
    assert load_image(encode_image(Image.new("I;16", (4, 4)), "WEBP")).mode == "RGB"


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    with pytest.raises(SaveError, match="cannot save") as info:
        save_image(Image.new("RGB", (4, 4)), blocker / "img.png", S.STUDIO_META)
    assert "\n" not in str(info.value)
    with pytest.raises(SaveError):
        atomic_write_bytes(blocker / "raw.bin", b"data")
    assert os.listdir(tmp_path) == ["blocker"]
    assert blocker.read_text() == "I am a file"


def test_full_disk_during_write_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.png"
    path.write_bytes(b"precious")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SaveError, match="No space left on device"):
        save_image(Image.new("RGB", (4, 4)), path, S.STUDIO_META)
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_failing_rename_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.webp"
    path.write_bytes(b"precious")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SaveError, match="Permission denied"):
        save_image(Image.new("RGB", (4, 4)), path, S.STUDIO_META)
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("breakage", ["object", "nan"])
def test_bad_metadata_fails_before_touching_anything(tmp_path: Path, breakage: str) -> None:
    path = tmp_path / "keep.png"
    path.write_bytes(b"precious")
    meta = S.studio_meta()
    if breakage == "object":
        meta["scheduler_config"] = {"betas": object()}
    else:
        meta["request"]["guidance"] = float("nan")
    with pytest.raises(SaveError, match="encoding as PNG failed"):
        save_image(Image.new("RGB", (4, 4)), path, meta)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_numpy_scalars_in_metadata_are_accepted(tmp_path: Path) -> None:
    meta = S.studio_meta(guidance=np.float32(7.5), seed=np.int64(5))
    path = save_image(Image.new("RGB", (4, 4)), tmp_path / "np.png", meta)
    result = read_metadata(path)
    assert result is not None and result.guidance == 7.5


def test_unsupported_format_and_directory_target(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="unsupported file type '.bmp'"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "x.bmp", None)
    with pytest.raises(SaveError, match="unsupported format"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "x.png", None, format="tiff")
    assert save_image(Image.new("RGB", (4, 4)), tmp_path / "x.bin", None, format="jpg").exists()
    target = tmp_path / "folder.png"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(SaveError):
        save_image(Image.new("RGB", (4, 4)), target, None)
    assert (target / "inside").read_text() == "keep"
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    atomic_write_bytes(str(path), b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["data.bin"]
    assert issubclass(SaveError, OSError)


# --------------------------------------------------------------------------------------------------
# Saving new files: never overwrite, never leave an empty, partial or temporary file behind
# --------------------------------------------------------------------------------------------------


def _candidates(folder: Path, count: int = 5) -> list[Path]:
    return [folder / f"img{'' if i == 0 else f'-{i}'}.png" for i in range(count)]


def _dead_pid() -> int:
    """The pid of a real process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_new_image_takes_the_first_free_name_and_follows_no_link(tmp_path: Path) -> None:
    (tmp_path / "img.png").write_bytes(b"precious")
    (tmp_path / "img-1.png").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    (tmp_path / "img-2.png").symlink_to(victim)
    (tmp_path / "img-3.png").symlink_to(tmp_path / "nowhere")  # dangling: not followed either
    path = save_new_image(Image.new("RGB", (4, 4), (9, 9, 9)), _candidates(tmp_path), S.STUDIO_META)
    assert path == tmp_path / "img-4.png"
    assert load_image(path).getpixel((0, 0)) == (9, 9, 9)
    assert read_metadata(path) is not None
    assert (tmp_path / "img.png").read_bytes() == b"precious" and victim.read_text() == "do not touch"
    assert not (tmp_path / "nowhere").exists()
    assert _leftovers(tmp_path) == []
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
        assert path.stat().st_nlink == 1  # the temporary name is gone


def test_all_names_taken(tmp_path: Path) -> None:
    for path in _candidates(tmp_path, 2):
        path.write_bytes(b"taken")
    with pytest.raises(SaveError, match="no free file name"):
        write_new_file(_candidates(tmp_path, 2), b"data")
    assert sorted(os.listdir(tmp_path)) == ["img-1.png", "img.png"]
    assert all(path.read_bytes() == b"taken" for path in _candidates(tmp_path, 2))


def test_candidates_must_share_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        write_new_file([], b"data")
    with pytest.raises(ValueError, match="at least one"):
        save_new_image(Image.new("RGB", (4, 4)), iter(()))
    (tmp_path / "a.bin").write_bytes(b"taken")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="one folder"):
        write_new_file([tmp_path / "a.bin", tmp_path / "sub" / "a.bin"], b"data")
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "sub"] and os.listdir(tmp_path / "sub") == []


def test_save_new_image_full_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SaveError, match="No space left on device"):
        save_new_image(Image.new("RGB", (4, 4)), _candidates(tmp_path), S.STUDIO_META)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_save_new_image_encoding_failure_touches_nothing(tmp_path: Path) -> None:
    meta = S.studio_meta(guidance=float("nan"))
    with pytest.raises(SaveError, match="encoding as PNG failed"):
        save_new_image(Image.new("RGB", (4, 4)), _candidates(tmp_path / "sub"), meta)
    assert os.listdir(tmp_path) == []


def test_without_hard_links_the_save_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAT, some FUSE and SMB mounts refuse hard links (EPERM, ENOTSUP): an existence check and a
    rename publish the file instead, still skipping taken names."""
    (tmp_path / "img.png").write_bytes(b"precious")

    def no_hard_links(src: object, dst: object, **options: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    path = save_new_image(Image.new("RGB", (4, 4), (3, 2, 1)), _candidates(tmp_path), S.STUDIO_META)
    monkeypatch.undo()
    assert path == tmp_path / "img-1.png" and load_image(path).getpixel((0, 0)) == (3, 2, 1)
    assert (tmp_path / "img.png").read_bytes() == b"precious"
    assert _leftovers(tmp_path) == []


def test_other_publishing_errors_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(src: object, dst: object, **options: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "link", broken)
    with pytest.raises(SaveError, match="Input/output error"):
        save_new_image(Image.new("RGB", (4, 4)), _candidates(tmp_path), S.STUDIO_META)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_temp_names_are_hidden_short_and_name_the_writer() -> None:
    for target in ["a.png", "漢" * 60 + ".png", "x" * 250, "bad\udcffbytes.png", ""]:
        name = temp_name(target, pid=4_294_967_295)
        assert name.startswith(".") and name.endswith(".part") and "/" not in name
        assert len(name.encode("utf-8")) <= TEMP_NAME_MAX_BYTES
        assert "-4294967295-" in name
    assert temp_name("a.png") != temp_name("a.png")  # a random part: two savers never share one
    assert f"-{os.getpid()}-" in temp_name("a.png")


def test_stale_temp_files_of_dead_writers_are_removed_by_the_next_save(tmp_path: Path) -> None:
    dead = _dead_pid()
    old = time.time() - STALE_TEMP_SECONDS - 60

    def make(name: str, *, aged: bool = False) -> str:
        (tmp_path / name).write_bytes(b"partial image")
        if aged:
            os.utime(tmp_path / name, (old, old))
        return name

    removed = {
        make(temp_name("dead.png", pid=dead)),  # a writer on this machine that was killed
        make(temp_name("old.png"), aged=True),  # too old to be a save in progress, even a live pid's
        make(temp_name("away.png", pid=dead, host="another-machine"), aged=True),
    }
    kept = {
        make(temp_name("busy.png")),  # this process: a save in progress on another thread
        make(temp_name("away.png", pid=dead, host="another-machine")),  # its pid means nothing here
        # not ours, however old: other programs' temporary files, our name visible or extended
        make(".notes.part", aged=True),
        make(".img.png.x1y2.part", aged=True),
        make(temp_name("shown.png", pid=dead)[1:], aged=True),
        make(temp_name("ext.png", pid=dead) + ".bak", aged=True),
    }
    folder_name = temp_name("folder.png", pid=dead)
    (tmp_path / folder_name).mkdir()
    link_name = temp_name("link.png", pid=dead)
    (tmp_path / link_name).symlink_to(tmp_path / ".notes.part")
    kept |= {folder_name, link_name}

    path = save_new_image(Image.new("RGB", (4, 4)), _candidates(tmp_path), S.STUDIO_META)
    assert set(os.listdir(tmp_path)) == kept | {path.name}
    assert removed.isdisjoint(os.listdir(tmp_path))


def test_remove_stale_temp_files_reports_what_it_removed(tmp_path: Path) -> None:
    stale = tmp_path / temp_name("a.png", pid=_dead_pid())
    stale.write_bytes(b"")
    busy = tmp_path / temp_name("b.png")
    busy.write_bytes(b"")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert remove_stale_temp_files(tmp_path) == []
    assert os.listdir(tmp_path) == [busy.name]
    assert remove_stale_temp_files(tmp_path / "missing") == []  # best effort: never raises


def test_start_up_sweep_reaches_date_folders_but_not_hidden_ones(tmp_path: Path) -> None:
    dead = _dead_pid()
    day = tmp_path / "2026-11-28"
    (day / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    stale = [folder / temp_name("a.png", pid=dead) for folder in (tmp_path, day, day / "deeper")]
    kept = tmp_path / ".hidden" / temp_name("a.png", pid=dead)
    for path in [*stale, kept]:
        path.write_bytes(b"")
    assert sorted(sweep_stale_temp_files(tmp_path)) == sorted(stale)
    assert kept.exists() and not any(path.exists() for path in stale)
    assert sweep_stale_temp_files(tmp_path / "missing") == []


def test_replacing_writes_clean_up_too(tmp_path: Path) -> None:
    stale = tmp_path / temp_name("settings.json", pid=_dead_pid())
    stale.write_bytes(b"{")
    atomic_write_bytes(tmp_path / "settings.json", b"{}")
    assert os.listdir(tmp_path) == ["settings.json"]


def test_a_link_reported_as_existing_but_made_counts_as_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS may answer a retransmitted link request that had succeeded with EEXIST: the image is saved
    once, under that name, not a second time as "-1"."""
    real_link = os.link

    def link_then_eexist(src: str, dst: str, **options: object) -> None:
        real_link(src, dst)
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", link_then_eexist)
    path = save_new_image(Image.new("RGB", (4, 4)), _candidates(tmp_path), S.STUDIO_META)
    monkeypatch.undo()
    assert path == tmp_path / "img.png"
    assert os.listdir(tmp_path) == ["img.png"]
