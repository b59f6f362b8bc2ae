"""The event-stream parser on byte chunks cut anywhere, as a network cuts them."""

from __future__ import annotations

import random

import pytest

from studio.remote.sse import MAX_EVENT_BYTES, SSEError, SSEMessage, SSEParser


def parse(chunks: list[bytes], parser: SSEParser | None = None) -> list[SSEMessage]:
    parser = parser or SSEParser()
    return [message for chunk in chunks for message in parser.feed(chunk)]


def every_split(stream: bytes) -> list[list[bytes]]:
    """The stream whole, in single bytes, and cut in two at every position."""
    return [[stream], [stream[n:n + 1] for n in range(len(stream))]] + [[stream[:n], stream[n:]] for n in range(len(stream) + 1)]


SERVER_STREAM = (
    b'id: 1\nevent: queued\ndata: {"position":1}\n\n'
    b": keep-alive\n\n"
    b'id: 2\nevent: started\ndata: {"device":"cpu"}\n\n'
    b'id: 3\nevent: step\ndata: {"step":1,"total":2,"preview":"/9j/4AAQ"}\n\n'
    b'id: 4\nevent: done\ndata: {"images":1}\n\n'
)
SERVER_EVENTS = [
    SSEMessage("queued", '{"position":1}', "1"),
    SSEMessage("started", '{"device":"cpu"}', "2"),
    SSEMessage("step", '{"step":1,"total":2,"preview":"/9j/4AAQ"}', "3"),
    SSEMessage("done", '{"images":1}', "4"),
]


def test_the_servers_stream_split_anywhere_gives_the_same_events():
    for chunks in every_split(SERVER_STREAM):
        assert parse(chunks) == SERVER_EVENTS, chunks


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_and_a_crlf_cut_between_its_cr_and_lf(line_end):
    stream = SERVER_STREAM.replace(b"\n", line_end)
    for chunks in every_split(stream):
        assert parse(chunks) == SERVER_EVENTS, chunks
    # A chunk that ends with the CR of a CRLF must not turn the LF of the next into an empty line
    # (which would dispatch an event early): "data: a\r" + "\ndata: b\r\n\r\n" is one event "a\nb".
    assert parse([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEMessage("message", "a\nb")]
    assert parse([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [SSEMessage("message", "a\nb")]


def test_random_cuts():
    stream = SERVER_STREAM.replace(b"\n", b"\r\n") * 5
    rng = random.Random(4)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 30)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert [m.event for m in parse(chunks)] == [m.event for m in SERVER_EVENTS] * 5


def test_multi_line_data_joins_with_newlines_and_loses_one_leading_space():
    stream = b"data: first\ndata:second\ndata:  third\ndata\n\n"
    for chunks in every_split(stream):
        assert parse(chunks) == [SSEMessage("message", "first\nsecond\n third\n")]


def test_comments_are_counted_not_dispatched():
    parser = SSEParser()
    assert parse([b": keep-alive\n\n", b":\n", b": another\r\n\r\n"], parser) == []
    assert parser.comments == 3


def test_an_event_without_data_is_not_dispatched_but_its_id_is_kept():
    parser = SSEParser()
    assert parse([b"id: 7\nevent: step\n\n", b"data: x\n\n"], parser) == [SSEMessage("message", "x", "7")]
    assert parser.last_id == "7"


def test_the_last_id_carries_over_to_events_without_one_and_from_a_previous_connection():
    assert parse([b"id: 3\ndata: a\n\ndata: b\n\n"]) == [SSEMessage("message", "a", "3"), SSEMessage("message", "b", "3")]
    assert parse([b"data: c\n\n"], SSEParser(last_id="9")) == [SSEMessage("message", "c", "9")]
    assert parse([b"id: 1\0\ndata: d\n\n"]) == [SSEMessage("message", "d", None)], "an id with NUL is ignored"


def test_a_utf8_character_cut_between_chunks():
    stream = 'data: {"prompt":"phare à l’aube — 灯台"}\n\n'.encode()
    for chunks in every_split(stream):
        assert parse(chunks) == [SSEMessage("message", '{"prompt":"phare à l’aube — 灯台"}')]


def test_a_leading_bom_is_dropped_and_unknown_fields_and_a_line_without_colon_ignored():
    assert parse([b"\xef\xbb", b"\xbfdata: x\nfoo: bar\nevent\n\n"]) == [SSEMessage("message", "x")]


def test_retry_is_read_when_a_number():
    parser = SSEParser()
    parse([b"retry: 1500\n\nretry: soon\n\n"], parser)
    assert parser.retry == 1500


def test_a_stream_that_ends_mid_event_dispatches_nothing_of_it():
    assert parse([b"id: 1\ndata: a\n\nid: 2\ndata: b\n"]) == [SSEMessage("message", "a", "1")]


def test_an_endless_line_or_event_is_refused():
    parser = SSEParser()
    parser.feed(b"data: ")
    with pytest.raises(SSEError):
        for _ in range(MAX_EVENT_BYTES // (1 << 20) + 2):
            parser.feed(b"x" * (1 << 20))
    parser = SSEParser()
    with pytest.raises(SSEError):
        for _ in range(MAX_EVENT_BYTES // (1 << 20) + 2):
            parser.feed(b"data: " + b"y" * (1 << 20) + b"\n")
