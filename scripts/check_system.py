#!/usr/bin/env python3
"""Before `make run` opens the window: are the system libraries Qt needs installed? If not, say which.

PySide6's wheel bundles Qt but not the X11/OpenGL libraries Qt links against. A fresh Debian or Ubuntu
desktop lacks some of them (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1 ...), and Qt then aborts with
"xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin" whichever one is missing: a
core dump instead of an instruction. This script asks the dynamic loader (`ldd`) what Qt's platform plugin
and PySide6's QtCore/QtGui/QtWidgets modules cannot find, maps those libraries to Debian packages, and

* as root (a container, CI) installs them with apt-get, non-interactively;
* otherwise prints the one `sudo apt-get install ...` command and exits 1, so `make run` stops there.

With the libraries there but no display (DISPLAY unset, as over ssh), Qt would abort with the same
misleading line: the script says so instead, and how to run under a virtual display.

It does nothing off Linux, for headless platforms (QT_QPA_PLATFORM=offscreen, minimal, ...), and for the
CLI's sub-commands (`make run ARGS="generate ..."` needs no window). Usage: check_system.py [STUDIO ARGS...]
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Debian/Ubuntu package of each library the xcb/wayland platform plugins and QtCore/QtGui/QtWidgets link
# (from `dpkg -S` on Debian 12; Ubuntu uses the same names, some with a "t64" suffix since 24.04).
DEBIAN_PACKAGES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libXext.so.6": "libxext6",
    "libXrender.so.1": "libxrender1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libpng16.so.16": "libpng16-16",
    "libexpat.so.1": "libexpat1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libbrotlidec.so.1": "libbrotli1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libffi.so.8": "libffi8",
    "libdbus-1.so.3": "libdbus-1-3",
    "libsystemd.so.0": "libsystemd0",
    "libcap.so.2": "libcap2",
    "libgcrypt.so.20": "libgcrypt20",
    "libgpg-error.so.0": "libgpg-error0",
    "liblz4.so.1": "liblz4-1",
    "liblzma.so.5": "liblzma5",
    "libzstd.so.1": "libzstd1",
    "libz.so.1": "zlib1g",
    "libbsd.so.0": "libbsd0",
    "libmd.so.0": "libmd0",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
}
# Platforms that draw into memory or a framebuffer: no X11/Wayland libraries to check.
HEADLESS_PLATFORMS = {"offscreen", "minimal", "minimalegl", "linuxfb", "vnc", "eglfs", "vkkhrdisplay"}
PYSIDE_MODULES = ("QtCore", "QtGui", "QtWidgets")  # what the app imports (studio/ui, studio/viewmodel)
NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass(frozen=True)
class Finding:
    missing: list[str]  # sonames the loader cannot find, in the order ldd named them
    packages: list[str]  # Debian packages that provide them
    unknown: list[str]  # missing sonames with no package in DEBIAN_PACKAGES


def qt_platform(env: Mapping[str, str]) -> str:
    """The platform plugin Qt will try first: QT_QPA_PLATFORM's first entry ("xcb:opts;wayland" -> xcb);
    unset means xcb here, Qt's choice on X11 and its fallback under Wayland."""
    value = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    return value or "xcb"


def opens_window(args: Sequence[str]) -> bool:
    """Whether `studio ARGS` starts the desktop app (no sub-command), by the CLI's own parser."""
    try:
        from studio.cli import build_parser
    except ImportError:  # run outside the project's venv: any positional argument is a sub-command
        return not any(not a.startswith("-") for a in args)
    try:
        parsed, _ = build_parser().parse_known_args(list(args))
    except SystemExit:  # --help, --version: no window
        return False
    except Exception:  # noqa: BLE001 - the CLI's usage error: let `studio` itself report it
        return False
    return parsed.command is None


def qt_files(platform: str, pyside_dir: Path | None = None) -> list[Path]:
    """The platform plugin and PySide6 modules whose libraries must load for the window to open."""
    if pyside_dir is None:
        spec = importlib.util.find_spec("PySide6")
        if spec is None or not spec.submodule_search_locations:
            return []
        pyside_dir = Path(next(iter(spec.submodule_search_locations)))
    files = [pyside_dir / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"]
    for module in PYSIDE_MODULES:
        files += sorted(pyside_dir.glob(f"{module}.*.so"))
    return [f for f in files if f.is_file()]


def missing_libraries(ldd_output: str) -> list[str]:
    """The "=> not found" lines of `ldd` output, each library once."""
    found = [m.group(1) for line in ldd_output.splitlines() if (m := NOT_FOUND.match(line))]
    return list(dict.fromkeys(found))


def run_ldd(files: Iterable[Path], ldd: str = "ldd") -> str:
    parts = []
    for path in files:
        done = subprocess.run([ldd, str(path)], capture_output=True, text=True, check=False)
        parts.append(done.stdout)
    return "\n".join(parts)


def packages_for(missing: Iterable[str]) -> Finding:
    missing = list(missing)
    packages = list(dict.fromkeys(DEBIAN_PACKAGES[m] for m in missing if m in DEBIAN_PACKAGES))
    unknown = [m for m in missing if m not in DEBIAN_PACKAGES]
    return Finding(missing, packages, unknown)


def check(files: Sequence[Path], ldd: str = "ldd") -> Finding:
    return packages_for(missing_libraries(run_ldd(files, ldd)))


def apt_names(packages: Sequence[str], apt_cache: str | None) -> list[str]:
    """Ubuntu 24.04 renamed some libraries with a "t64" suffix: use that name where only it is known."""
    if not apt_cache:
        return list(packages)
    names = []
    for name in packages:
        if _apt_knows(apt_cache, name) or not _apt_knows(apt_cache, f"{name}t64"):
            names.append(name)
        else:
            names.append(f"{name}t64")
    return names


def _apt_knows(apt_cache: str, name: str) -> bool:
    done = subprocess.run([apt_cache, "show", "--no-all-versions", name], capture_output=True, check=False)
    return done.returncode == 0


def install(packages: Sequence[str], apt_get: str) -> bool:
    """apt-get as root, non-interactive: refresh the package lists, then install; True on success."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"check_system: installing Qt's system libraries: {' '.join(packages)}", file=sys.stderr)
    update = subprocess.run([apt_get, "update", "-qq"], env=env, check=False)
    if update.returncode != 0:
        return False
    command = [apt_get, "install", "-y", "-qq", "--no-install-recommends", *packages]
    return subprocess.run(command, env=env, check=False).returncode == 0


def explain(finding: Finding, platform: str, packages: Sequence[str], has_apt: bool) -> str:
    lines = [f"check_system: Qt's {platform} platform plugin cannot load: missing {', '.join(finding.missing)}"]
    if packages and has_apt:
        lines += ["install them with:", f"    sudo apt-get install {' '.join(packages)}"]
    elif packages:
        lines.append(f"install the packages that provide them (Debian names: {' '.join(packages)})")
    if finding.unknown:
        lines.append(f"no package known for {', '.join(finding.unknown)}: `apt-file search NAME` finds it")
    lines.append("then run `make run` again (the CLI's commands need none of this: make run ARGS=\"generate ...\")")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    system: str | None = None,
    euid: int | None = None,
    ldd: str = "ldd",
    apt_get: str = "apt-get",
    apt_cache: str = "apt-cache",
    pyside_dir: Path | None = None,
) -> int:
    """0 when the window can open (or there is nothing to check); 1, with what to install, when it cannot.
    The keyword arguments are the machine (for tests): environment, OS, user id, tools, PySide6 folder."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    system = sys.platform if system is None else system
    euid = (os.geteuid() if hasattr(os, "geteuid") else -1) if euid is None else euid
    platform = qt_platform(env)
    if not system.startswith("linux") or platform in HEADLESS_PLATFORMS or not opens_window(args):
        return 0
    files = qt_files(platform, pyside_dir)
    if not files or not shutil.which(ldd):  # no PySide6 (setup will say) or no loader to ask: nothing to tell
        return 0
    finding = check(files, ldd)
    if not finding.missing:
        return display_problem(platform, env)
    has_apt = shutil.which(apt_get) is not None
    packages = apt_names(finding.packages, shutil.which(apt_cache)) if has_apt else finding.packages
    if finding.missing and euid == 0 and has_apt and packages:
        if install(packages, apt_get):
            finding = check(files, ldd)
        else:
            print("check_system: apt-get could not install them (its messages are above)", file=sys.stderr)
    if finding.missing:
        print(explain(finding, platform, packages, has_apt), file=sys.stderr)
        return 1
    return display_problem(platform, env)


def display_problem(platform: str, env: Mapping[str, str]) -> int:
    """Without a display Qt aborts with the same misleading "xcb-cursor0 ... is needed" line: say what it is."""
    if platform == "xcb" and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        print(
            "check_system: no display to open the window on (DISPLAY is not set): run `make run` in a desktop "
            "session, or without one under a virtual display: xvfb-run -a make run",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
