from __future__ import annotations

import stat

import pytest

from studio.library.server_token import clean_token, read_token, write_token


def test_a_token_round_trips_owner_only_and_none_removes_it(tmp_path):
    path = tmp_path / "config" / "server-token"
    assert read_token(path) is None
    write_token("abc-123", path)
    assert read_token(path) == "abc-123" and stat.S_IMODE(path.stat().st_mode) == 0o600
    write_token(None, path)
    assert not path.exists() and read_token(path) is None


@pytest.mark.parametrize("text, token", [("  abc ", "abc"), ("Bearer xyz", "xyz"), ("bearer  xyz ", "xyz"), ("", None), ("  ", None)])
def test_pasted_tokens_are_cleaned(text, token):
    assert clean_token(text) == token


@pytest.mark.parametrize("text", ["two words", "ünïcode", "line\nbreak", "x" * 2000])
def test_a_token_that_cannot_travel_in_a_header_is_refused(text):
    with pytest.raises(ValueError):
        clean_token(text)


def test_a_broken_token_file_reads_as_no_token(tmp_path):
    path = tmp_path / "server-token"
    path.write_bytes(b"\xff\xfe")
    assert read_token(path) is None
