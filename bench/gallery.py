"""Gallery catalogue speed on N small generated images (default 10,000; ``BENCH_N`` changes it).

Figures, each the median of ``BENCH_ROUNDS`` runs (default 3) with the files in the OS page cache:
* bare loops over every file: Pillow ``open`` + ``.text`` (what a naive indexer does) and our
  ``read_metadata`` alone (the floor: the scan calls it for every new file);
* first scan into a fresh database, as a ratio to the Pillow loop (target <= 1.5);
* rescan with nothing changed, same ratio (target <= 0.2): no file may be opened;
* in-process search latency over 50 varied queries, limit 200 rows (target < 20 ms median and p95).

The image set is generated once into the temp folder (``latent-studio-bench-gallery-N``) and reused
by later runs; a marker file says it is complete.  ``python -m bench.gallery`` runs it alone.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, PngImagePlugin

from studio.library.gallery import Gallery, Query
from studio.library.metadata import format_parameters, pnginfo_for, read_metadata

SUBJECTS = [
    "castle",
    "lighthouse",
    "fox",
    "robot",
    "dragon",
    "city",
    "forest",
    "portrait",
    "cat",
    "ship",
    "mountain",
    "garden",
    "library",
    "astronaut",
    "owl",
    "train",
    "market",
    "temple",
    "bridge",
    "waterfall",
    "knight",
    "cottage",
    "desert",
    "submarine",
    "violinist",
    "greenhouse",
    "harbour",
    "glacier",
    "carnival",
    "orchard",
]
STYLES = [
    "watercolor",
    "oil painting",
    "pixel art",
    "photograph",
    "charcoal sketch",
    "isometric render",
    "ukiyo-e print",
    "low poly",
    "art nouveau",
    "cinematic still",
    "studio ghibli style",
    "linocut",
]
DETAILS = [
    "at dusk",
    "in the rain",
    "under northern lights",
    "golden hour",
    "foggy morning",
    "neon lights",
    "autumn leaves",
    "snowfall",
    "highly detailed",
    "soft focus",
    "dramatic shadows",
    "pastel colours",
    "wide angle",
    "macro shot",
    "(masterpiece:1.2)",
    "<lora:add_detail:0.6>",
    "8k",
    "volumetric light",
]
NEGATIVES = ["blurry", "low quality", "watermark", "text", "extra fingers", "jpeg artifacts", "cropped"]
MODELS = ["sd-1.4", "sd-2.1", "deci-diffusion-1.0", "dreamshaper_8", "juggernautXL", "v1-5-pruned-emaonly"]

BASE_META = {
    "schema": 1,
    "app": "latent-studio",
    "app_version": "0.1.0",
    "model": {"id": "sd-1.4", "repo": None, "revision": None, "family": "sd1", "path": None, "hash": None},
    "request": {
        "prompt": "",
        "negative_prompt": "",
        "steps": 30,
        "guidance": 7.5,
        "seed": 0,
        "width": 512,
        "height": 512,
        "scheduler": "DPM++ 2M Karras",
        "batch": 1,
        "strength": None,
        "init_image_sha256": None,
    },
    "seed": 0,
    "batch_index": 0,
    "device": "cuda",
    "dtype": "float16",
    "nsfw": False,
}
START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
YEAR = 365 * 86400.0


def _prompt(rng: random.Random) -> str:
    return ", ".join(
        [f"a {rng.choice(STYLES)} of a {rng.choice(SUBJECTS)}", *rng.sample(DETAILS, rng.randint(1, 4))]
    )


def dataset(n: int) -> Path:
    """N 64x64 PNGs, 100 per sub-folder (like the default {date}/ layout): 90% ours (A1111 text + our
    JSON), 10% A1111 text only.  Reused when a complete set is already there."""
    folder = Path(tempfile.gettempdir()) / f"latent-studio-bench-gallery-{n}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(n)
    started = time.perf_counter()
    for index in range(n):
        sub = folder / f"day-{index // 100:04}"
        if index % 100 == 0:
            sub.mkdir(parents=True)
        meta = copy.deepcopy(BASE_META)
        meta["request"].update(
            prompt=_prompt(rng),
            negative_prompt=", ".join(rng.sample(NEGATIVES, 2)),
            seed=rng.randrange(2**32),
            steps=rng.choice([20, 25, 30, 50]),
        )
        meta["seed"] = meta["request"]["seed"]
        meta["model"]["id"] = rng.choice(MODELS)
        created = START + rng.random() * YEAR
        meta["created"] = datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds")
        image = Image.new("RGB", (64, 64), (index % 251, (index * 7) % 253, (index * 13) % 255))
        if index % 10 == 9:
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", format_parameters(meta))  # another tool's image: A1111 text only
        else:
            info = pnginfo_for(meta)
        image.save(sub / f"{index:06}.png", pnginfo=info)
    marker.write_text("complete\n")
    print(f"generated {n} files in {time.perf_counter() - started:.1f} s")
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def _median_time(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _pillow_loop(files: list[Path]) -> None:
    for path in files:
        with Image.open(path) as image:
            image.text  # noqa: B018 - reading the text chunks is the point


def _reader_loop(files: list[Path]) -> None:
    for path in files:
        read_metadata(path)


def _queries(rng: random.Random) -> list[Query]:
    words = SUBJECTS + ["watercolor", "pixel", "northern", "rain", "detailed", "masterpiece"]
    queries: list[Query] = []
    queries += [Query(text=word) for word in rng.sample(words, 12)]
    queries += [Query(text=word[: rng.randint(2, 4)]) for word in rng.sample(words, 10)]  # prefixes
    queries += [
        Query(text=f"{a} {b}") for a, b in zip(rng.sample(SUBJECTS, 5), rng.sample(DETAILS, 5), strict=True)
    ]
    queries += [Query(text=f'"{style}"') for style in rng.sample(STYLES, 4)]
    queries += [Query(text=f"{rng.choice(SUBJECTS)} -rain") for _ in range(2)]
    queries += [Query(text=rng.choice(SUBJECTS), model=rng.choice(MODELS)) for _ in range(5)]
    queries += [Query(model=rng.choice(MODELS), sort="oldest") for _ in range(2)]
    for _ in range(4):
        start = START + rng.random() * YEAR * 0.8
        queries.append(
            Query(text=rng.choice(["", "castle", "fo"]), date_from=start, date_to=start + 30 * 86400)
        )
    queries += [Query(favourites_only=True), Query(favourites_only=True, text="cat")]
    queries += [Query(sort="rating"), Query(sort="rating", text="portrait"), Query(), Query(sort="oldest")]
    return queries[:50]


def main() -> None:
    n = int(os.environ.get("BENCH_N", 10_000))
    rounds = max(1, int(os.environ.get("BENCH_ROUNDS", 3)))
    folder = dataset(n)
    files = _files(folder)
    print(f"gallery: {len(files)} files (64x64 PNG with metadata) in {folder}; median of {rounds} rounds")
    _pillow_loop(files)  # warm the page cache: every figure below is with files in memory

    pillow = _median_time(rounds, lambda: _pillow_loop(files))
    reader = _median_time(rounds, lambda: _reader_loop(files))
    per_file = 1e6 / len(files)
    print(f"bare Pillow loop (open + .text):  {pillow:7.3f} s  ({pillow * per_file:.0f} us/file)")
    print(f"bare read_metadata loop:          {reader:7.3f} s  ({reader * per_file:.0f} us/file)")

    with tempfile.TemporaryDirectory(prefix="latent-studio-bench-db-") as tmp:
        firsts, rescans = [], []
        for round_index in range(rounds):
            db = Path(tmp) / f"gallery-{round_index}.sqlite3"
            with Gallery(db) as gallery:
                gallery.add_folder(folder)
                started = time.perf_counter()
                report = gallery.scan()
                firsts.append(time.perf_counter() - started)
                assert report.added == len(files), report
                started = time.perf_counter()
                again = gallery.scan()
                rescans.append(time.perf_counter() - started)
                assert again.unchanged == len(files) and again.added == again.updated == 0, again
        first, rescan = statistics.median(firsts), statistics.median(rescans)
        print(
            f"first scan:                       {first:7.3f} s  ({first * per_file:.0f} us/file)  "
            f"ratio to Pillow loop {first / pillow:.2f} (target <= 1.5); to read_metadata loop {first / reader:.2f}"
        )
        print(
            f"rescan, nothing changed:          {rescan:7.3f} s  ({rescan * per_file:.0f} us/file)  "
            f"ratio to Pillow loop {rescan / pillow:.3f} (target <= 0.2)"
        )

        rng = random.Random(7)
        with Gallery(Path(tmp) / "gallery-0.sqlite3") as gallery:
            ids = [image.id for image in gallery.search(limit=len(files))]
            for image_id in rng.sample(ids, min(len(ids), 500)):
                gallery.set_rating(image_id, rng.randint(1, 5))
            for image_id in rng.sample(ids, min(len(ids), 200)):
                gallery.set_favourite(image_id, True)
            queries = _queries(rng)
            for query in queries:  # warm-up: statement cache, pages
                gallery.search(query)
            latencies, rows = [], []
            for query in queries:
                started = time.perf_counter()
                found = gallery.search(query, limit=200)
                latencies.append((time.perf_counter() - started) * 1000)
                rows.append(len(found))
            counts = []
            for query in queries:
                started = time.perf_counter()
                gallery.count(query)
                counts.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    counts.sort()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(
        f"search, {len(queries)} queries, limit 200: median {statistics.median(latencies):.2f} ms, "
        f"p95 {p95:.2f} ms, max {latencies[-1]:.2f} ms (target < 20 ms); "
        f"rows per query median {statistics.median(rows):.0f}"
    )
    print(
        f"count, same queries:              median {statistics.median(counts):.2f} ms, "
        f"p95 {counts[max(0, round(0.95 * len(counts)) - 1)]:.2f} ms"
    )


if __name__ == "__main__":
    main()
