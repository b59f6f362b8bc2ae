"""Start-up hygiene: importing studio, the CLI or the engine API never imports torch or Qt."""

from __future__ import annotations

import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_studio_cli_and_engine_api_is_light():
    loaded = modules_after("import studio, studio.cli, studio.engine, studio.library")
    for heavy in ("torch", "diffusers", "transformers", "PySide6"):
        assert heavy not in loaded


def test_engine_and_library_never_import_qt():
    loaded = modules_after(
        "import studio.engine.generate, studio.engine.loading, studio.library.metadata, studio.library.images"
    )
    assert "PySide6" not in loaded
    assert "torch" not in modules_after("import studio.library.metadata, studio.library.images, studio.library.naming")


def test_openvino_imported_after_studio_starts_no_telemetry(tmp_path):
    """A bare `import openvino` writes ~/intel (a client id, counters) and may send events; not in our process."""
    env = {key: value for key, value in __import__("os").environ.items() if key != "CI"}  # CI turns it off itself
    subprocess.run([sys.executable, "-c", "import studio, openvino"], env={**env, "HOME": str(tmp_path)}, check=True)
    assert list(tmp_path.iterdir()) == []
