"""`make package`: the one-folder bundle (PyInstaller) and its tarball with the installer.

1. the icons from their SVG (make_icons.py);
2. PyInstaller with latent-studio.spec -> dist/latent-studio/ (the program and everything it needs: the
   CPU torch, diffusers, Qt with the plugins used, OpenVINO, studio's resources; no tests, benches or caches);
3. dist/latent-studio-VERSION-linux-x86_64.tar.gz: that folder, install.sh, uninstall.sh (also inside the
   program's folder, so an installed copy can remove itself) and share/ (the .desktop entry, the AppStream
   metainfo, the icons in the hicolor theme's layout).
Prints the bundle's and the tarball's sizes.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
BUILD = ROOT / "build" / "packaging"
DIST = ROOT / "dist"
ID = "org.latentstudio.LatentStudio"
NAME = "latent-studio"


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def share_tree(target: Path) -> None:
    """share/ as install.sh reads it: applications/, metainfo/, icons/hicolor/SIZE/apps/."""
    (target / "applications").mkdir(parents=True)
    (target / "metainfo").mkdir()
    shutil.copy(PACKAGING / f"{ID}.desktop", target / "applications")
    shutil.copy(PACKAGING / f"{ID}.metainfo.xml", target / "metainfo")
    for png in sorted((BUILD / "icons").glob(f"{NAME}-*.png")):
        side = png.stem.rsplit("-", 1)[1]
        folder = target / "icons" / "hicolor" / f"{side}x{side}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, folder / f"{ID}.png")
    scalable = target / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True)
    shutil.copy(PACKAGING / "icons" / f"{NAME}.svg", scalable / f"{ID}.svg")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from studio import __version__

    start = time.monotonic()
    subprocess.run([sys.executable, str(PACKAGING / "make_icons.py"), str(BUILD / "icons")], check=True)
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", str(DIST),
         "--workpath", str(BUILD / "work"), str(PACKAGING / f"{NAME}.spec")],
        check=True, cwd=ROOT,
    )
    bundle = DIST / NAME
    shutil.copy(PACKAGING / "uninstall.sh", bundle / "uninstall.sh")
    arch = platform.machine() or "x86_64"
    stage = BUILD / f"{NAME}-{__version__}-linux-{arch}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy(PACKAGING / script, stage / script)
    share_tree(stage / "share")
    tarball = DIST / f"{stage.name}.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=6) as archive:
        archive.add(stage, arcname=stage.name)
        archive.add(bundle, arcname=f"{stage.name}/{NAME}")
    print(f"bundle  {bundle}: {size_of(bundle) / 1e6:.0f} MB")
    print(f"tarball {tarball}: {tarball.stat().st_size / 1e6:.0f} MB")
    print(f"built in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
