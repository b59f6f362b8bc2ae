"""Faults in real child processes: `kill -9` at random moments of a real generation (a tiny model), and many
processes creating one new gallery catalogue at the same moment.

After any kill the output folder holds only complete images (no zero-byte name placeholder, no visible
partial file); after the next complete run, no temporary file of ours either. Every concurrent creation
of a catalogue succeeds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from fuzz.runner import Outcome


def studio_command() -> list[str]:
    studio = Path(sys.executable).with_name("studio")
    return [str(studio)] if studio.exists() else [sys.executable, "-m", "studio"]


def _incomplete(folder: Path, *, temporaries: bool) -> list[str]:
    """Files in `folder` that are not complete images (temporaries, hidden names, too, if asked)."""
    bad = []
    for path in folder.rglob("*"):
        if path.is_dir():
            continue
        if path.name.startswith(".") or path.suffix == ".part":
            if temporaries:
                bad.append(f"temporary {path.name}")
            continue
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            bad.append(f"{path.name} ({path.stat().st_size} bytes: {type(exc).__name__})")
    return bad


def generate_argv(model: Path, folder: Path, seed: int) -> list[str]:
    return [*studio_command(), "generate", "--prompt", "a castle", "--model", str(model), "--steps", "2",
            "--width", "64", "--height", "64", "--batch", "6", "--seed", str(seed), "--device", "cpu",
            "--output-dir", str(folder)]


def kills(work: Path, rng: random.Random, count: int, model: Path) -> list[Outcome]:
    """`count` generations killed at a random moment; delays spread over a measured whole run, most of
    them late (when the images are being saved)."""
    folder = work / "kills"
    started = time.monotonic()
    done = subprocess.run(generate_argv(model, folder, 0), capture_output=True, text=True, timeout=300)
    whole = time.monotonic() - started
    outcomes = [Outcome("kills", "a complete run", None if done.returncode == 0 else f"exit {done.returncode}")]
    for n in range(count):
        delay = whole * (rng.uniform(0.6, 1.05) if rng.random() < 0.7 else rng.uniform(0, 0.6))
        child = subprocess.Popen(generate_argv(model, folder, n + 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        bad = _incomplete(folder, temporaries=False)
        outcomes.append(Outcome("kills", f"kill at {delay:.2f} s", f"left {bad[0]}" if bad else None))
    done = subprocess.run(generate_argv(model, folder, 999), capture_output=True, text=True, timeout=300)
    bad = _incomplete(folder, temporaries=True) if done.returncode == 0 else [f"exit {done.returncode}"]
    outcomes.append(Outcome("kills", "the run after the kills", f"{bad[0]}" if bad else None))
    return outcomes


def concurrent_catalogues(work: Path, rounds: int, processes: int = 8) -> list[Outcome]:
    """`processes` scans started together on one new catalogue, `rounds` times."""
    pictures = work / "concurrent-pictures"
    pictures.mkdir()
    for n in range(3):
        Image.new("RGB", (8, 8), (n * 80, 0, 0)).save(pictures / f"img{n}.png")
    outcomes = []
    for round_ in range(rounds):
        db = work / "concurrent" / f"round{round_}" / "gallery.db"
        db.parent.mkdir(parents=True)
        argv = [*studio_command(), "gallery", "--db", str(db), "scan", str(pictures)]
        children = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
        for n, child in enumerate(children):
            _, err = child.communicate(timeout=120)
            problem = None if child.returncode == 0 and not err else f"exit {child.returncode}: {err.strip()[:160]}"
            outcomes.append(Outcome("concurrent", f"round {round_} process {n}", problem))
    return outcomes
