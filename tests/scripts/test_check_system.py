"""scripts/check_system.py, the check `make run` makes before opening the window (issue 10, item 3).

The machine is what the script sees through its tools: these tests put real executables named ldd,
apt-get and apt-cache on its way (shell scripts that answer as the real ones do on a Debian machine
lacking two xcb libraries, and log how they were called), and one test asks this machine's real ldd.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_system.py"

# `ldd .../PySide6/Qt/plugins/platforms/libqxcb.so` on Debian 12 with PySide6 6.11 (this machine, before
# libxcb-icccm4 and libxcb-keysyms1 were installed): the start of its output, verbatim.
LDD_XCB = """\
\tlinux-vdso.so.1 (0x00007ff35eef0000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007ff35ee22000)
\tlibQt6Gui.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6Gui.so.6 (0x00007ff35e200000)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007ff35ed92000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007ff35ed3f000)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007ff35ed38000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007ff35ed30000)
\tlibxcb-image.so.0 => /lib/x86_64-linux-gnu/libxcb-image.so.0 (0x00007ff35ed2a000)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
"""
GLIBC = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1"}


def load_script():
    spec = importlib.util.spec_from_file_location("check_system", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_system = load_script()


class Machine:
    """A Debian machine as the script sees it: tools in `bin/`, a PySide6 folder, a log of tool calls.
    apt-get "installs" by making ldd find everything afterwards, as the real one would."""

    def __init__(self, root: Path, ldd_output: str = LDD_XCB, apt_status: int = 0, apt_knows: str = "*") -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"
        self.installed = root / "installed"
        (root / "ldd-output.txt").write_text(ldd_output)
        self.tool("ldd", f'''echo "ldd $1" >> {self.log}
if [ -e {self.installed} ]; then grep -v "not found" {root}/ldd-output.txt; else cat {root}/ldd-output.txt; fi''')
        self.tool("apt-get", f'''echo "apt-get DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> {self.log}
case "$1" in install) [ {apt_status} -eq 0 ] && touch {self.installed};; esac
exit {apt_status}''')
        self.tool("apt-cache", f'''case "$3" in {apt_knows}) exit 0;; *) exit 100;; esac''')
        self.pyside = root / "PySide6"
        (self.pyside / "Qt" / "plugins" / "platforms").mkdir(parents=True)
        for name in ("Qt/plugins/platforms/libqxcb.so", "QtCore.abi3.so", "QtGui.abi3.so", "QtWidgets.abi3.so"):
            (self.pyside / name).write_bytes(b"\x7fELF")

    def tool(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def run(self, args=(), *, env=None, euid=1000, system="linux") -> int:
        return check_system.main(
            list(args), env={"DISPLAY": ":0"} if env is None else env, system=system, euid=euid, ldd=str(self.bin / "ldd"),
            apt_get=str(self.bin / "apt-get"), apt_cache=str(self.bin / "apt-cache"), pyside_dir=self.pyside,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_missing_libraries_from_real_ldd_output():
    assert check_system.missing_libraries(LDD_XCB) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_a_user_gets_the_one_apt_command(tmp_path, capsys):
    machine = Machine(tmp_path)
    assert machine.run() == 1
    err = capsys.readouterr().err
    assert "missing libxcb-icccm.so.4, libxcb-keysyms.so.1" in err
    commands = [line.strip() for line in err.splitlines() if "apt-get install" in line]
    assert commands == ["sudo apt-get install libxcb-icccm4 libxcb-keysyms1"]
    assert not any(call.startswith("apt-get") for call in machine.calls())  # nothing installed without root
    assert {call.split("/")[-1] for call in machine.calls()} == {"libqxcb.so", "QtCore.abi3.so", "QtGui.abi3.so", "QtWidgets.abi3.so"}


def test_root_installs_them_non_interactively(tmp_path, capsys):
    machine = Machine(tmp_path)
    assert machine.run(euid=0) == 0
    apt = [call for call in machine.calls() if call.startswith("apt-get")]
    assert apt == [
        "apt-get DEBIAN_FRONTEND=noninteractive update -qq",
        "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq --no-install-recommends libxcb-icccm4 libxcb-keysyms1",
    ]
    assert "installing Qt's system libraries: libxcb-icccm4 libxcb-keysyms1" in capsys.readouterr().err


def test_a_failed_install_still_says_what_to_install(tmp_path, capsys):
    machine = Machine(tmp_path, apt_status=100)
    assert machine.run(euid=0) == 1
    err = capsys.readouterr().err
    assert "apt-get could not install them" in err and "apt-get install libxcb-icccm4 libxcb-keysyms1" in err


def test_ubuntu_t64_names_where_only_they_exist(tmp_path, capsys):
    output = LDD_XCB + "\tlibpng16.so.16 => not found\n"
    machine = Machine(tmp_path, ldd_output=output, apt_knows="libxcb-*|libpng16-16t64")
    assert machine.run() == 1
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libpng16-16t64" in capsys.readouterr().err


def test_an_unknown_library_is_named(tmp_path, capsys):
    machine = Machine(tmp_path, ldd_output="\tlibQt6Foo.so.6 => not found\n")
    assert machine.run() == 1
    err = capsys.readouterr().err
    assert "no package known for libQt6Foo.so.6" in err and "apt-get install" not in err


@pytest.mark.parametrize(
    ("args", "env", "system"),
    [
        ([], {}, "darwin"),
        ([], {}, "win32"),
        ([], {"QT_QPA_PLATFORM": "offscreen"}, "linux"),
        ([], {"QT_QPA_PLATFORM": "minimal"}, "linux"),
        (["generate", "--prompt", "x"], {}, "linux"),
        (["models"], {}, "linux"),
        (["--help"], {}, "linux"),
    ],
)
def test_nothing_to_check_without_a_window(tmp_path, args, env, system):
    machine = Machine(tmp_path)
    assert machine.run(args, env=env, system=system) == 0
    assert machine.calls() == []


def test_the_desktop_app_arguments_are_checked(tmp_path):
    machine = Machine(tmp_path)
    assert machine.run(["--model", "sd-1.4", "--output-dir", "/tmp/x"]) == 1
    assert machine.run([], env={"QT_QPA_PLATFORM": "xcb:nomitshm;wayland", "DISPLAY": ":0"}) == 1


def test_without_a_display_it_says_so_instead_of_qts_abort(tmp_path, capsys):
    """Libraries complete (root installed them), but no DISPLAY, as over ssh or in a container."""
    machine = Machine(tmp_path)
    assert machine.run(env={}, euid=0) == 1
    err = capsys.readouterr().err
    assert "no display to open the window on (DISPLAY is not set)" in err and "xvfb-run -a make run" in err
    assert machine.run(env={"WAYLAND_DISPLAY": "wayland-0"}) == 0  # installed now; a Wayland session


def test_this_machine_for_real(capsys):
    """The real ldd on the real PySide6: every library it names has a package, so a missing one is named."""
    files = check_system.qt_files("xcb")
    if not files:
        pytest.skip("PySide6 has no xcb platform plugin here")
    output = check_system.run_ldd(files)
    system_libs = {
        line.split()[0] for line in output.splitlines()
        if line.strip() and "PySide6" not in line and line.split()[0] not in GLIBC and "ld-linux" not in line
    }
    assert system_libs and not system_libs - set(check_system.DEBIAN_PACKAGES)
    code = check_system.main([], env={"DISPLAY": ":0"}, euid=1000)  # never root here: it installs nothing
    finding = check_system.check(files)
    assert code == (1 if finding.missing else 0) and finding.unknown == []


def test_make_run_checks_before_starting_the_app():
    """`make -n` prints the recipe without running it: the check comes first, with the same arguments."""
    done = subprocess.run(
        ["make", "-n", "run", "ARGS=--model sd-1.4"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "MAKEFLAGS": ""}, check=False,
    )
    if done.returncode != 0 and "No rule" in done.stderr:
        pytest.fail(done.stderr)
    lines = [line for line in done.stdout.splitlines() if "check_system.py" in line or "bin/studio" in line]
    assert lines == [".venv/bin/python scripts/check_system.py --model sd-1.4", ".venv/bin/studio --model sd-1.4"]


def test_the_script_runs_standalone(tmp_path):
    """As make runs it: its own process; headless means exit 0 at once."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True,
        text=True, check=False, timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
