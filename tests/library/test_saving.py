"""save_result under crashes and concurrency, with real child processes killed with SIGKILL.

Each child is a plain Python process that saves one image over and over through the public
:func:`studio.library.saving.save_result`, as the worker and the CLI do.  Whenever it dies, the output
folder must hold only complete, decodable images with their metadata: no empty placeholder, no partial
file under a visible name; and the next save into the folder removes the hidden temporary file the
dead writer may have left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from studio.library import load_image, read_metadata
from studio.library.saving import save_result

from . import samples as S

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "{seed}-{prompt}"
"""Flat names: a child and the test saving a moment apart, across midnight, share one folder."""
SEED = 5

CHILD = r"""
import json, sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from studio.library.saving import save_result


@dataclass
class Result:
    image: Image.Image
    seed: int
    metadata: dict


folder, size, count, template = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
metadata = json.loads(sys.argv[5])
pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
result = Result(Image.fromarray(pixels), metadata["seed"], metadata)
print("ready", flush=True)
saved = 0
while count == 0 or saved < count:
    print(save_result(result, folder, template=template), flush=True)
    saved += 1
"""


@dataclass
class Result:
    image: Image.Image
    seed: int
    metadata: dict[str, Any]


def _metadata(size: int) -> dict[str, Any]:
    """Shaped like the engine's GenerationResult.metadata."""
    meta = S.studio_meta(prompt="a red fox", width=size, height=size, seed=SEED)
    meta.update(seed=SEED, batch_index=0)
    return meta


def _start(folder: Path, size: int, count: int = 0, children: int = 1) -> list[subprocess.Popen[str]]:
    """``children`` processes, started together, each saving a ``size`` x ``size`` noise image
    ``count`` times (0: until killed); returned once each has printed "ready" (imports done), so kills
    land in the saving loop, not in start-up."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [str(folder), str(size), str(count), TEMPLATE, json.dumps(_metadata(size))]
    started = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(children)
    ]
    for child in started:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line != "ready\n":
            for other in started:
                other.kill()
            _, errors = child.communicate()
            pytest.fail(f"child did not start: {line!r} {errors}")
    return started


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate()  # reaps it (a zombie's pid still looks alive) and closes the pipes


def _temp_files(folder: Path, pid: int | None = None) -> list[str]:
    """Our hidden temporary files (``.<name>.studio-tmp-<host>-<pid>-<random>.part``), of one writer."""
    marker = "" if pid is None else f"-{pid}-"
    return [
        name
        for name in os.listdir(folder)
        if name.startswith(".") and ".studio-tmp-" in name and name.endswith(".part") and marker in name
    ]


def _check_only_complete_images(folder: Path, checked: set[str]) -> None:
    """Every visible file is a complete image with its metadata; hidden ones are our temp files."""
    for name in sorted(os.listdir(folder)):
        if name in checked:
            continue
        path = folder / name
        if name.startswith("."):
            assert name in _temp_files(folder), f"unexpected hidden file {name}"
            continue
        assert path.is_file() and not path.is_symlink(), f"{name} is not a plain file"
        assert path.stat().st_size > 0, f"empty file {name} left behind"
        image = load_image(path)  # raises on a truncated file
        meta = read_metadata(path)
        assert meta is not None and meta.seed == SEED and meta.prompt == "a red fox", name
        assert image.size == (meta.width, meta.height)
        checked.add(name)


def _save_and_check_cleanup(folder: Path, checked: set[str]) -> None:
    """The next save into the folder works and removes every temporary file of the dead writers."""
    path = save_result(Result(Image.new("RGB", (8, 8), "red"), SEED, _metadata(8)), folder, template=TEMPLATE)
    assert _temp_files(folder) == []
    assert [name for name in os.listdir(folder) if name.startswith(".")] == []
    _check_only_complete_images(folder, checked)
    assert path.name in checked


def test_random_kills_leave_only_complete_images(tmp_path: Path) -> None:
    """24 kills after random delays (fixed seed), four writers at a time in one folder."""
    rng = random.Random(20250601)
    checked: set[str] = set()
    for _ in range(6):
        children = _start(tmp_path, size=48, children=4)
        try:
            for child in children:
                time.sleep(rng.uniform(0.0, 0.04))
                _kill(child)
        finally:
            for child in children:
                if child.poll() is None:
                    _kill(child)
        _check_only_complete_images(tmp_path, checked)
        _save_and_check_cleanup(tmp_path, checked)
    assert len(checked) > 6  # the children did save images between kills


def test_kills_while_the_temporary_file_is_written(tmp_path: Path) -> None:
    """A big image makes writing its temporary file take a while.  The child is frozen (SIGSTOP) as soon
    as its temporary file shows up, and killed only if the file is still there while it is frozen, so
    every kill lands in the temporary-file stage: before, during or right after writing it, or between
    publishing the image and removing the temporary name."""
    checked: set[str] = set()
    for _ in range(4):
        (child,) = _start(tmp_path, size=1024)
        try:
            deadline = time.monotonic() + 120  # only a guard against waiting for ever
            while True:
                if _temp_files(tmp_path, child.pid):
                    child.send_signal(signal.SIGSTOP)
                    if _temp_files(tmp_path, child.pid):
                        break
                    child.send_signal(signal.SIGCONT)  # it had finished that save: try the next one
                assert time.monotonic() < deadline, "never saw the child's temporary file"
                time.sleep(0.0005)
        finally:
            _kill(child)
        leftovers = _temp_files(tmp_path, child.pid)
        assert len(leftovers) == 1  # hidden, and recognisably the dead writer's
        _check_only_complete_images(tmp_path, checked)
        _save_and_check_cleanup(tmp_path, checked)


def test_concurrent_processes_never_share_a_name(tmp_path: Path) -> None:
    """Three processes saving the same name 15 times each get 45 different files."""
    children = _start(tmp_path, size=16, count=15, children=3)
    # Read through the same reader as the "ready" line: communicate() reads the raw pipes and would miss
    # lines that readline() had already buffered.
    outputs = []
    for child in children:
        assert child.stdout is not None and child.stderr is not None
        outputs.append(child.stdout.read())
        errors = child.stderr.read()
        assert child.wait() == 0, errors
    paths = [Path(line) for output in outputs for line in output.splitlines()]
    assert len(paths) == 45 and len(set(paths)) == 45
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in paths)
    _check_only_complete_images(tmp_path, set())


def test_a_png_made_elsewhere_is_saved_as_it_came_under_the_apps_name(tmp_path):
    from studio.library.images import encode_image
    from studio.library.saving import save_png_bytes

    meta = _metadata(8)
    png = encode_image(Image.new("RGB", (8, 8), "blue"), "PNG", meta)
    path = save_png_bytes(png, meta, tmp_path)
    assert path.read_bytes() == png and path.suffix == ".png"
    again = save_png_bytes(png, meta, tmp_path)
    assert again != path and again.read_bytes() == png  # never overwrites
    hostile = {"request": {"prompt": "../../etc/x", "steps": "many"}, "model": {"id": 5}, "batch_index": True}
    odd = save_png_bytes(png, hostile, tmp_path)
    assert odd.is_relative_to(tmp_path) and ".." not in odd.relative_to(tmp_path).parts and odd.read_bytes() == png
    assert save_png_bytes(png, {}, tmp_path).is_relative_to(tmp_path)
