"""`studio serve` from a terminal: it prints its URL, answers, stops cleanly on SIGTERM; it refuses to listen
beyond loopback without a token, and a token file others can read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from studio.cli import main
from tests.cli.test_cli_errors import studio_command
from tests.server.http import call

TOKEN = "serve-cli-token-0123456789"


def test_serve_prints_its_url_answers_and_stops_on_sigterm(tiny_sd1, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    child = subprocess.Popen(
        [*studio_command(), "serve", "--port", "0", "--token-file", str(token_file), "--model-dir", str(tiny_sd1.parent),
         "--model", str(tiny_sd1), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), child.stderr.read()
        assert call(f"{url}/health").json()["status"] == "ok"
        assert call(f"{url}/v1/models").status == 401
        names = [m["name"] for m in call(f"{url}/v1/models", token=TOKEN).json()]
        assert "tiny-sd1" in names
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "serving on" in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_serve_beyond_loopback_without_a_token_is_refused(host, capsys):
    assert main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--token-file" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_token_file_others_can_read_or_a_short_token_is_refused(tmp_path, capsys):
    loose = tmp_path / "loose"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    assert main(["serve", "--token-file", str(loose)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("abc")
    short.chmod(0o600)
    assert main(["serve", "--token-file", str(short)]) == 2
    assert "at least 16" in capsys.readouterr().err
    assert main(["serve", "--token-file", str(tmp_path / "missing")]) == 2


def test_serve_takes_no_pickle_option(capsys):
    assert main(["serve", "--allow-ckpt"]) == 2
