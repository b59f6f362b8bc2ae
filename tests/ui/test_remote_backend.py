"""The window with a server as its backend (Preferences -> Backend): a real `studio serve` on loopback with a
tiny model, driven through the window as a user would: test the connection, generate with previews, cancel,
and a server that goes away and comes back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from studio.engine import Engine, GenerationRequest
from studio.library.metadata import read_metadata
from studio.server.app import ServerThread
from studio.server.config import ServerConfig
from studio.server.routes import BOARD
from tests.ui.test_main_window import fast

TOKEN = "window-token-0123456789abcdef"


@pytest.fixture
def server(tiny_sd1):
    server = ServerThread(ServerConfig(port=0, model_dirs=[tiny_sd1.parent], preview="linear", token=TOKEN))
    server.start()
    yield server
    server.stop()


def use_server(window, qtbot, url: str, token: str) -> None:
    """Preferences -> Backend -> Server, URL and token, Test, OK: as a user does it."""
    window.act_preferences.trigger()
    dialog = window.preferences_dialog
    qtbot.waitExposed(dialog)
    dialog.server.setChecked(True)
    dialog.url.setText(url)
    dialog.token.setText(token)
    with qtbot.waitSignal(window.session.backend.test_finished, timeout=20_000) as tested:
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    assert tested.args[1], tested.args[0]
    assert dialog.result.text().startswith("✓") and "0 waiting" in dialog.result.text()
    dialog.accept()
    assert window.session.queue.server is not None and window.session.queue.server.url == url
    window.activateWindow()  # the window's shortcuts (Esc) answer once it is active again
    qtbot.waitUntil(window.isActiveWindow)


def test_the_window_generates_on_a_server_with_previews_and_saves_here(make_window, server, qtbot, tmp_path, tiny_sd1):
    window = make_window()
    use_server(window, qtbot, server.url, TOKEN)
    fast(window, steps=4)
    window.prompt_editor.set_prompts("a lighthouse at dusk")
    window.session.settings.set_seed(77)
    steps = []
    window.session.queue.step.connect(lambda r: steps.append((r.step, r.total, r.preview.isNull())))
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
        window.act_generate.trigger()
    assert steps == [(1, 4, False), (2, 4, False), (3, 4, False), (4, 4, False)]
    assert window.preview.steps_shown == 4
    [result] = window.results.results()
    assert result.path.is_file() and result.path.is_relative_to(tmp_path / "out")
    meta = read_metadata(result.path)
    assert meta.prompt == "a lighthouse at dusk" and meta.steps == 4 and meta.seed == 77
    assert "server " + server.url in window.status_model.text()
    local = Engine(device="cpu", preview="none").generate(GenerationRequest(
        model=str(tiny_sd1), prompt="a lighthouse at dusk", steps=4, width=64, height=64, seed=77, scheduler="DDIM",
        guidance=window.session.settings.guidance,
    ))
    assert np.array_equal(np.asarray(Image.open(result.path).convert("RGB")), np.asarray(local[0].image))


def test_escape_cancels_a_job_running_on_the_server(make_window, server, qtbot):
    window = make_window()
    use_server(window, qtbot, server.url, TOKEN)
    combo = window.parameters.model
    qtbot.waitUntil(lambda: combo.findData("server:tiny-sd1") >= 0, timeout=20_000)  # the server's own models
    combo.setCurrentIndex(combo.findData("server:tiny-sd1"))
    assert window.session.settings.model == "server:tiny-sd1"
    assert "tiny-sd1  (server)" in window.status_model.text()
    fast(window, steps=300)
    window.prompt_editor.set_prompts("a slow one")

    def on_step(report):
        if report.step == 2:
            qtbot.keyClick(window, Qt.Key.Key_Escape)

    window.session.queue.step.connect(on_step)
    with qtbot.waitSignal(window.session.queue.job_cancelled, timeout=60_000):
        window.act_generate.trigger()
    assert window.preview.steps_shown < 20
    assert window.results.count() == 0
    board_jobs = server.app[BOARD].jobs()
    qtbot.waitUntil(lambda: all(job.is_finished for job in board_jobs), timeout=10_000)
    assert [job.state.value for job in board_jobs] == ["cancelled"]


def test_a_server_that_is_away_keeps_the_queue_and_runs_it_when_back(make_window, qtbot, tiny_sd1):
    config = ServerConfig(port=0, model_dirs=[tiny_sd1.parent], preview="linear")
    first = ServerThread(config)
    url = first.start()
    window = make_window()
    window.session.backend.url = url
    window.session.backend.mode = "server"
    first.stop()  # the server goes away before the jobs are sent
    fast(window, steps=2)
    window.prompt_editor.set_prompts("one")
    window.act_generate.trigger()
    window.prompt_editor.set_prompts("two")
    window.act_generate.trigger()
    qtbot.waitUntil(lambda: "Cannot reach the server" in window.statusBar().currentMessage(), timeout=20_000)
    assert [job.status.value for job in window.session.queue.jobs()][:2] == ["running", "queued"]
    config.port = int(url.rsplit(":", 1)[1])  # the same address again
    again = ServerThread(config)
    again.start()
    try:
        qtbot.waitUntil(lambda: window.results.count() == 2, timeout=60_000)
        assert sorted(read_metadata(r.path).prompt for r in window.results.results()) == ["one", "two"]
    finally:
        again.stop()


def test_a_server_restarted_during_a_job_runs_it_again_and_it_is_saved_once(make_window, qtbot, tiny_sd1):
    config = ServerConfig(port=0, model_dirs=[tiny_sd1.parent], preview="linear")
    first = ServerThread(config)
    url = first.start()
    config.port = int(url.rsplit(":", 1)[1])
    window = make_window()
    window.session.backend.url = url
    window.session.backend.mode = "server"
    fast(window, steps=150)
    window.prompt_editor.set_prompts("interrupted")
    restarted = []

    def on_step(report):
        if report.step == 3 and not restarted:
            restarted.append(True)
            first.stop()  # a server shut down mid-job: the job is cancelled there, not by the user

    window.session.queue.step.connect(on_step)
    window.act_generate.trigger()
    qtbot.waitUntil(lambda: bool(restarted), timeout=60_000)
    qtbot.waitUntil(lambda: "Cannot reach the server" in window.statusBar().currentMessage(), timeout=30_000)
    again = ServerThread(config)
    again.start()
    try:
        with qtbot.waitSignal(window.session.queue.job_finished, timeout=120_000):
            pass
        assert window.results.count() == 1
        assert read_metadata(window.results.results()[0].path).prompt == "interrupted"
    finally:
        again.stop()
