"""Preferences -> Backend, headless: the choice persists, the token lives in an owner-only file, Test asks
a real server off the GUI thread, and the queue follows the choice."""

from __future__ import annotations

import stat

import pytest

from studio.server.app import ServerThread
from studio.server.config import ServerConfig
from studio.viewmodel.backend import BackendChoice
from studio.viewmodel.session import StudioSession
from studio.worker.remote_generation import ServerAddress, server_model_name

TOKEN = "backend-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tiny_sd1):
    server = ServerThread(ServerConfig(port=0, model_dirs=[tiny_sd1.parent], token=TOKEN))
    server.start()
    yield server
    server.stop()


def test_the_token_is_kept_in_an_owner_only_file_and_never_in_the_preferences(qtbot, tmp_path):
    session = StudioSession(preferences_file=tmp_path / "prefs.json", output_dir=tmp_path / "out")
    try:
        backend = session.backend
        assert backend.mode == "local" and backend.address() is None and session.queue.server is None
        assert backend.set_token("  Bearer " + TOKEN + "\n") == ""
        backend.url = "http://10.0.0.5:7861"
        backend.mode = "server"
        assert session.queue.server == ServerAddress("http://10.0.0.5:7861", TOKEN)
        assert "server http://10.0.0.5:7861" in session.status_line
        session.save()
        token_file = tmp_path / "server-token"
        assert token_file.read_text().strip() == TOKEN
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        prefs = (tmp_path / "prefs.json").read_text()
        assert TOKEN not in prefs and '"backend": "server"' in prefs and "10.0.0.5" in prefs
        assert backend.set_token("two words").startswith("Could not keep the token")
        assert backend.token == TOKEN
    finally:
        session.shutdown()
    again = StudioSession(preferences_file=tmp_path / "prefs.json", output_dir=tmp_path / "out")
    try:
        assert again.queue.server == ServerAddress("http://10.0.0.5:7861", TOKEN)
        again.backend.mode = "local"
        assert again.queue.server is None
    finally:
        again.shutdown()


def test_test_says_what_the_server_answered(qtbot, server, tmp_path):
    backend = BackendChoice(token_file=tmp_path / "token")
    try:
        with qtbot.waitSignal(backend.test_finished, timeout=20_000) as good:
            backend.test(server.url, TOKEN)
        assert good.args[1] and "0 waiting" in good.args[0]
        with qtbot.waitSignal(backend.test_finished, timeout=20_000) as wrong:
            backend.test(server.url, "wrong-token-0000000000")
        assert not wrong.args[1] and "token" in wrong.args[0]
        with qtbot.waitSignal(backend.test_finished, timeout=20_000) as bad:
            backend.test("ftp://example.org", None)
        assert not bad.args[1] and "\n" not in bad.args[0]
    finally:
        backend.shutdown()


def test_models_are_named_as_the_server_knows_them(tiny_sd1):
    assert server_model_name("sd-1.4") == "sd-1.4"
    assert server_model_name(str(tiny_sd1)) == "tiny-sd1"
    assert server_model_name(str(tiny_sd1) + "/") == "tiny-sd1"
    assert server_model_name("CompVis/stable-diffusion-v1-4") == "CompVis/stable-diffusion-v1-4"  # the server refuses it


def test_the_servers_models_join_the_model_list_while_it_is_the_backend(qtbot, server, tmp_path):
    session = StudioSession(preferences_file=tmp_path / "prefs.json", output_dir=tmp_path / "out",
                            token_file=tmp_path / "token")
    try:
        settings = session.settings
        assert settings.server_models == {}
        session.backend.set_token(TOKEN)
        session.backend.url = server.url
        with qtbot.waitSignal(settings.server_models_changed, timeout=20_000):
            session.backend.mode = "server"
        assert settings.server_models == {"tiny-sd1": "sd1"}
        choice = next(c for c in settings.model_choices() if c.spec == "server:tiny-sd1")
        assert choice.label == "tiny-sd1  (server)" and not choice.local
        settings.select_model("server:tiny-sd1")
        assert settings.user_models == [] and settings.family() == "sd1"
        assert settings.model_label() == "tiny-sd1  (server)"
        assert server_model_name(settings.model) == "tiny-sd1"
        session.backend.mode = "local"
        assert settings.server_models == {}
        assert settings.user_models == []  # a server's model never becomes a local one
    finally:
        session.shutdown()
