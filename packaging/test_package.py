"""`make package-test`: the bundled program, as a user without Python would run it.

Checks `--version`; `make-tiny-model` and `generate` on that tiny model (offscreen, CPU) with the metadata
read back by `info`; that the window opens and quits (LATENT_STUDIO_SMOKE_TEST, offscreen); the two
validators on the .desktop entry and the AppStream metainfo; install.sh and uninstall.sh into a temporary
prefix. Then measures start-to-window of the bundle against `studio` from the venv (median of 3) and
prints the bundle's size. Every run uses temporary user folders and no network.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "dist" / "latent-studio"
BINARY = BUNDLE / "latent-studio"
ID = "org.latentstudio.LatentStudio"


def run(command: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"FAILED ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(home), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", STUDIO_AUTO_BACKEND="torch",
        LATENT_STUDIO_CONFIG=str(home / "config"), LATENT_STUDIO_DATA=str(home / "data"),
        LATENT_STUDIO_CACHE=str(home / "cache"), LATENT_STUDIO_OUTPUT=str(home / "pictures"),
        PATH="/usr/bin:/bin",  # no venv: the bundle must need no Python of the machine
    )
    return env


def start_to_window(command: list[str], env: dict[str, str], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.time()
        out = run(command, {**env, "LATENT_STUDIO_SMOKE_TEST": "1"}).stdout
        shown = float(next(line for line in out.splitlines() if line.startswith("window shown at")).split()[-1])
        times.append(shown - start)
    return statistics.median(times)


def main() -> int:
    if not BINARY.exists():
        raise SystemExit(f"{BINARY} is missing: run `make package` first")
    with tempfile.TemporaryDirectory(prefix="studio-package-test-") as temp:
        home = Path(temp)
        env = environment(home)
        version = run([str(BINARY), "--version"], env).stdout.strip()
        print(f"ok  --version: {version}")
        model = home / "tiny"
        run([str(BINARY), "make-tiny-model", str(model)], env)
        out = run([str(BINARY), "generate", "--prompt", "a packaged fox", "--model", str(model), "--steps", "2",
                   "--width", "64", "--height", "64", "--device", "cpu", "--output-dir", str(home / "out"), "--json"], env)
        [image] = json.loads(out.stdout)
        info = json.loads(run([str(BINARY), "info", image["path"], "--json"], env).stdout)
        assert info["prompt"] == "a packaged fox", info
        print(f"ok  generate + info: {Path(image['path']).name}, seed {image['seed']}")
        bundled = start_to_window([str(BINARY)], env)
        print("ok  the window opens and quits (offscreen)")
        for command in (["desktop-file-validate", str(ROOT / "packaging" / f"{ID}.desktop")],
                        ["appstreamcli", "validate", "--no-net", str(ROOT / "packaging" / f"{ID}.metainfo.xml")]):
            run(command, env)
            print(f"ok  {command[0]}")
        tarballs = sorted((ROOT / "dist").glob("latent-studio-*.tar.gz"))
        if tarballs:
            unpacked = home / "unpacked"
            shutil.unpack_archive(tarballs[-1], unpacked)
            [folder] = unpacked.iterdir()
            prefix = home / "prefix"
            run(["sh", str(folder / "install.sh")], {**env, "PREFIX": str(prefix)})
            desktop = prefix / "share" / "applications" / f"{ID}.desktop"
            assert desktop.is_file() and f"Exec={prefix}/share/latent-studio/latent-studio %f" in desktop.read_text()
            assert (prefix / "share" / "icons" / "hicolor" / "256x256" / "apps" / f"{ID}.png").is_file()
            run([str(prefix / "bin" / "latent-studio"), "--version"], env)
            run(["sh", str(prefix / "share" / "latent-studio" / "uninstall.sh")], {**env, "PREFIX": str(prefix)})
            assert not desktop.exists() and not (prefix / "bin" / "latent-studio").exists()
            print(f"ok  install.sh and uninstall.sh ({tarballs[-1].name}, {tarballs[-1].stat().st_size / 1e6:.0f} MB)")
        venv = ROOT / ".venv" / "bin" / "studio"
        if venv.exists():
            from_venv = start_to_window([str(venv)], {**env, "PATH": os.environ["PATH"]})
            print(f"start to window: bundle {bundled:.2f} s, venv {from_venv:.2f} s (median of 3)")
        else:
            print(f"start to window: bundle {bundled:.2f} s")
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"bundle size: {size / 1e6:.0f} MB in {sum(1 for _ in BUNDLE.rglob('*'))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
