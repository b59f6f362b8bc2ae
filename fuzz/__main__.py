"""`python -m fuzz [--seed N] [--scale X] [--seconds S] [--only CATEGORY ...]`: generate hostile input, run it
through the CLI, print counts tried / clean / failed per category and the first failures; exit 1 if any failed."""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CATEGORIES = ("images", "batches", "headers", "kills", "concurrent")
BASE_COUNTS = {"images": 600, "batches": 500, "headers": 400, "kills": 16, "concurrent": 12}
"""Counts at --scale 1: about 2,000 CLI runs; a few minutes on two cores."""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="the generators' seed (a failure reproduces with it)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every category's count")
    parser.add_argument("--seconds", type=float, default=900, help="stop starting cases after this long")
    parser.add_argument("--only", nargs="+", choices=CATEGORIES, help="run these categories only")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--keep", action="store_true", help="keep the generated files (path printed)")
    return parser.parse_args(argv)


def isolate(work: Path) -> None:
    """Nothing outside `work`: an empty offline model cache, the app's settings, pictures and caches in `work`."""
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(work / "hf"),
        HF_HUB_CACHE=str(work / "hf" / "hub"),
        LATENT_STUDIO_CONFIG=str(work / "config"),
        LATENT_STUDIO_OUTPUT=str(work / "pictures"),
        LATENT_STUDIO_CACHE=str(work / "cache"),  # thumbnails and OpenVINO conversions (killed midway too)
    )


def report(outcomes, not_started: int, seconds: float) -> int:
    tried = Counter(o.category for o in outcomes)
    failed = Counter(o.category for o in outcomes if not o.clean)
    print(f"{'category':<12}{'tried':>8}{'clean':>8}{'failed':>8}")
    for category in tried:  # in the order run
        print(f"{category:<12}{tried[category]:>8}{tried[category] - failed[category]:>8}{failed[category]:>8}")
    total_failed = sum(failed.values())
    print(f"{'total':<12}{len(outcomes):>8}{len(outcomes) - total_failed:>8}{total_failed:>8}   in {seconds:.0f} s")
    if not_started:
        print(f"not started (time limit): {not_started}")
    for outcome in [o for o in outcomes if not o.clean][:40]:
        print(f"FAILED {outcome.category}: {outcome.name!a}: {outcome.problem!a}")
    return 1 if total_failed else 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    categories = args.only or CATEGORIES
    counts = {c: max(1, round(n * args.scale)) for c, n in BASE_COUNTS.items()}
    work = Path(tempfile.mkdtemp(prefix="studio-fuzz-"))
    isolate(work)
    from fuzz import faults, hostile_batches, hostile_headers, hostile_images
    from fuzz.runner import run_cases

    started = time.monotonic()
    deadline = started + args.seconds
    generators = {"images": hostile_images, "batches": hostile_batches, "headers": hostile_headers}
    cases = []
    for category in [c for c in categories if c in generators]:
        rng = random.Random(f"{args.seed}-{category}")
        cases += generators[category].cases(work, rng, counts[category])
    print(f"{len(cases)} cases generated in {time.monotonic() - started:.0f} s (seed {args.seed}, files in {work})",
          flush=True)
    outcomes, not_started = run_cases(cases, workers=args.workers, timeout=120, deadline=deadline)
    if "concurrent" in categories:
        outcomes += faults.concurrent_catalogues(work, counts["concurrent"])
    if "kills" in categories:
        from studio.engine.loading import quiet_libraries

        quiet_libraries()  # before the pipeline imports: the report stays readable
        from studio.engine.tiny import make_tiny_model

        model = make_tiny_model(work / "tiny-sd1", "sd1", seed=0)
        outcomes += faults.kills(work, random.Random(f"{args.seed}-kills"), counts["kills"], model)
    code = report(outcomes, not_started, time.monotonic() - started)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
