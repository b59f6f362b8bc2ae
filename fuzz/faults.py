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
    # Large noisy images and a batch: saving (encode, temp file, publish) is a good part of the run.
    return [*studio_command(), "generate", "--prompt", "a castle", "--model", str(model), "--steps", "1",
            "--width", "512", "--height", "512", "--batch", "8", "--seed", str(seed), "--device", "cpu",
            "--output-dir", str(folder)]


def _files(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if not p.is_dir()} if folder.exists() else set()


def _kill_when_saving(child: subprocess.Popen, folder: Path, extra: float, limit: float) -> float:
    """SIGKILL `child` `extra` seconds after a new file shows up in `folder` (its saving began), or at
    `limit` seconds; returns when it was killed (seconds after the start)."""
    started = time.monotonic()
    before = _files(folder)
    while time.monotonic() - started < limit and child.poll() is None:
        if _files(folder) - before:
            time.sleep(extra)
            break
        time.sleep(0.002)
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return time.monotonic() - started


def kills(work: Path, rng: random.Random, count: int, model: Path) -> list[Outcome]:
    """`count` generations killed: half at a random moment of a whole run, half a random moment after
    their first file appeared (inside the saving of a batch of large images)."""
    folder = work / "kills"
    started = time.monotonic()
    done = subprocess.run(generate_argv(model, folder, 0), capture_output=True, text=True, timeout=300)
    whole = time.monotonic() - started
    outcomes = [Outcome("kills", "a complete run", None if done.returncode == 0 else f"exit {done.returncode}")]
    seen: set[str] = set()
    for n in range(count):
        child = subprocess.Popen(generate_argv(model, folder, n + 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if n % 2:
            at = _kill_when_saving(child, folder, rng.uniform(0, 0.5), limit=whole * 2)
            name = f"kill {at:.2f} s into a {whole:.2f} s run, while saving"
        else:
            delay = whole * rng.uniform(0, 1.02)
            try:
                child.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
            name = f"kill {delay:.2f} s into a {whole:.2f} s run"
        bad = [b for b in _incomplete(folder, temporaries=False) if b not in seen]  # new ones only
        seen.update(bad)
        outcomes.append(Outcome("kills", name, f"left {bad[0]}" if bad else None))
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
