"""StompParser: framing, headers, escaping, version switching, errors."""

from __future__ import annotations

import pytest

from ferrymq.protocol.stomp import (
    Frame,
    HeartBeat,
    ProtocolViolation,
    StompParser,
)

from .stomp_helpers import ALL_COMMANDS, bytewise, parse


def only_frame(data: bytes, *, version: str = "1.2") -> Frame:
    events = parse(data, version=version)
    assert len(events) == 1, events
    assert isinstance(events[0], Frame), events
    return events[0]


def violation(data: bytes, *, version: str = "1.2") -> ProtocolViolation:
    events = parse(data, version=version)
    assert events, "expected a ProtocolViolation"
    last = events[-1]
    assert isinstance(last, ProtocolViolation), events
    return last


# -- framing ------------------------------------------------------------------


def test_send_frame_with_headers_and_body() -> None:
    frame = only_frame(b"SEND\ndestination:/queue/a\nreceipt:7\n\nhello\0")
    assert frame == Frame(
        command="SEND", headers={"destination": "/queue/a", "receipt": "7"}, body=b"hello"
    )


def test_frame_without_headers_or_body() -> None:
    assert only_frame(b"DISCONNECT\n\n\0") == Frame(command="DISCONNECT")


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_command_is_accepted(command: str) -> None:
    assert only_frame(f"{command}\n\n\0".encode(), version="1.0").command == command


def test_body_runs_to_first_nul_without_content_length() -> None:
    events = parse(b"SEND\n\nab\0SEND\n\ncd\0")
    assert [e.body for e in events if isinstance(e, Frame)] == [b"ab", b"cd"]


def test_content_length_body_may_contain_nul() -> None:
    data = b"SEND\ncontent-length:5\n\na\0b\0c\0SEND\n\n\0"
    events = parse(data)
    assert events == [
        Frame(command="SEND", headers={"content-length": "5"}, body=b"a\0b\0c"),
        Frame(command="SEND"),
    ]


def test_content_length_zero() -> None:
    assert only_frame(b"SEND\ncontent-length:0\n\n\0").body == b""


def test_content_length_with_leading_zeros() -> None:
    assert only_frame(b"SEND\ncontent-length:003\n\nabc\0").body == b"abc"


def test_crlf_line_endings_everywhere() -> None:
    frame = only_frame(b"SEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nbody\0")
    assert frame == Frame(
        command="SEND", headers={"destination": "/queue/a", "x": "y"}, body=b"body"
    )


def test_mixed_lf_and_crlf() -> None:
    frame = only_frame(b"SEND\r\na:1\nb:2\r\n\nbody\r\n\0")
    assert frame.headers == {"a": "1", "b": "2"}
    # The body is bytes: its CRLF is kept.
    assert frame.body == b"body\r\n"


def test_crlf_blank_line_after_lf_headers() -> None:
    assert only_frame(b"SEND\na:1\n\r\nxy\0").body == b"xy"


def test_body_may_contain_blank_lines() -> None:
    assert only_frame(b"SEND\n\n\n\r\n\n\0").body == b"\n\r\n\n"


def test_header_value_split_at_first_colon() -> None:
    frame = only_frame(b"SEND\nmessage-id:ID:host:1:2\n\n\0", version="1.0")
    assert frame.headers == {"message-id": "ID:host:1:2"}


def test_empty_header_value() -> None:
    assert only_frame(b"SEND\nx:\n\n\0").headers == {"x": ""}


def test_repeated_headers_first_wins() -> None:
    frame = only_frame(b"MESSAGE\nfoo:1\nbar:2\nfoo:3\nfoo:4\n\n\0")
    assert frame.headers == {"foo": "1", "bar": "2"}
    assert list(frame.headers) == ["foo", "bar"]


def test_repeated_headers_first_wins_when_escaped() -> None:
    frame = only_frame(b"MESSAGE\na\\cb:1\na\\cb:2\n\n\0", version="1.2")
    assert frame.headers == {"a:b": "1"}


def test_headers_are_utf8() -> None:
    frame = only_frame("SEND\nnom:café €\n\n\0".encode())
    assert frame.headers == {"nom": "café €"}


def test_frames_split_across_feeds() -> None:
    parser = StompParser()
    assert parser.feed(b"SEND\ndestin") == []
    assert parser.feed(b"ation:/queue/a\n\nhel") == []
    assert parser.feed(b"lo\0SE") == [
        Frame(command="SEND", headers={"destination": "/queue/a"}, body=b"hello")
    ]
    assert parser.feed(b"ND\ncontent-length:4\n\na\0") == []
    assert parser.feed(b"b\0") == []
    assert parser.feed(b"\0") == [
        Frame(command="SEND", headers={"content-length": "4"}, body=b"a\0b\0")
    ]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    parser = StompParser()
    assert parser.feed(bytearray(b"SEND\n\na")) == []  # type: ignore[arg-type]
    assert parser.feed(memoryview(b"\0")) == [Frame(command="SEND", body=b"a")]  # type: ignore[arg-type]


def test_feed_empty_bytes() -> None:
    assert StompParser().feed(b"") == []


def test_many_frames_in_one_feed() -> None:
    data = b"SEND\ndestination:/queue/a\n\nx\0\n" * 5000
    events = parse(data)
    assert sum(isinstance(e, Frame) for e in events) == 5000
    assert sum(isinstance(e, HeartBeat) for e in events) == 5000


# -- heart-beats --------------------------------------------------------------


def test_one_heartbeat_per_eol_between_frames() -> None:
    events = parse(b"\n\r\n\nSEND\n\n\0\n\r\nSEND\n\n\0\n")
    hb = HeartBeat()
    send = Frame(command="SEND")
    assert events == [hb, hb, hb, send, hb, hb, send, hb]


def test_heartbeat_cr_waits_for_lf() -> None:
    parser = StompParser()
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [HeartBeat()]


def test_heartbeats_alone() -> None:
    assert parse(b"\n" * 10) == [HeartBeat()] * 10
    assert bytewise(b"\r\n" * 3) == [HeartBeat()] * 3


# -- escaping -----------------------------------------------------------------


def test_1_0_takes_backslashes_literally() -> None:
    frame = only_frame(b"SEND\na\\cb:x\\ny\\\\z\\t\n\n\0", version="1.0")
    assert frame.headers == {"a\\cb": "x\\ny\\\\z\\t"}


def test_1_0_keeps_whitespace_but_strips_crlf() -> None:
    frame = only_frame(b"SEND\n key : value \r\n\n\0", version="1.0")
    assert frame.headers == {" key ": " value "}


def test_1_1_unescapes() -> None:
    frame = only_frame(b"SEND\na\\cb:x\\ny\\\\z\\\\n\n\n\0", version="1.1")
    assert frame.headers == {"a:b": "x\ny\\z\\n"}


def test_1_1_rejects_backslash_r() -> None:
    found = violation(b"SEND\nreceipt:9\nx:a\\rb\n\n\0", version="1.1")
    assert "undefined escape sequence \\r" in found.message
    assert found.receipt == "9"


def test_1_2_unescapes_backslash_r() -> None:
    frame = only_frame(b"SEND\nx:a\\rb\\n\\c\\\\\n\n\0", version="1.2")
    assert frame.headers == {"x": "a\rb\n:\\"}


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_undefined_escape_is_fatal(version: str) -> None:
    found = violation(b"SEND\nx:a\\tb\nreceipt:r\n\n\0", version=version)
    assert found.message == "undefined escape sequence \\t in header"
    assert found.receipt == "r"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_lone_trailing_backslash_is_fatal(version: str) -> None:
    assert "unfinished escape" in violation(b"SEND\nx:ab\\\n\n\0", version=version).message


@pytest.mark.parametrize("command", ["CONNECT", "STOMP", "CONNECTED"])
def test_connect_family_is_never_unescaped(command: str) -> None:
    data = f"{command}\nlogin:a\\nb\\c\\t\nversion:1.2\naccept-version:1.2\n\n\0".encode()
    frame = only_frame(data, version="1.2")
    assert frame.headers["login"] == "a\\nb\\c\\t"


# -- version negotiation inside the parser -------------------------------------


def test_pipelined_connect_and_send_use_negotiated_version() -> None:
    data = b"CONNECT\naccept-version:1.0,1.2\nhost:h\n\n\0SEND\ndestination:/queue/a\\cb\n\n\0"
    parser = StompParser()
    assert parser.version == "1.0"
    events = parser.feed(data)
    assert parser.version == "1.2"
    assert events[1] == Frame(command="SEND", headers={"destination": "/queue/a:b"})


def test_connect_without_accept_version_means_1_0() -> None:
    parser = StompParser(version="1.2")
    events = parser.feed(b"CONNECT\n\n\0SEND\nx:a\\cb\n\n\0")
    assert parser.version == "1.0"
    assert events[1] == Frame(command="SEND", headers={"x": "a\\cb"})


def test_connect_without_common_version_keeps_version() -> None:
    parser = StompParser(version="1.1")
    parser.feed(b"STOMP\naccept-version:2.0\n\n\0")
    assert parser.version == "1.1"


def test_connected_sets_version() -> None:
    parser = StompParser()
    events = parser.feed(b"CONNECTED\nversion:1.1\n\n\0MESSAGE\nx:a\\cb\n\n\0")
    assert parser.version == "1.1"
    assert events[1] == Frame(command="MESSAGE", headers={"x": "a:b"})


def test_connected_without_version_means_1_0() -> None:
    parser = StompParser(version="1.2")
    parser.feed(b"CONNECTED\n\n\0")
    assert parser.version == "1.0"


def test_connected_with_unsupported_version_keeps_version() -> None:
    parser = StompParser(version="1.2")
    parser.feed(b"CONNECTED\nversion:3.0\n\n\0")
    assert parser.version == "1.2"


def test_version_is_settable_and_checked() -> None:
    parser = StompParser()
    parser.version = "1.1"
    assert parser.feed(b"SEND\nx:\\c\n\n\0") == [Frame(command="SEND", headers={"x": ":"})]
    with pytest.raises(ValueError, match="unsupported STOMP version"):
        parser.version = "2.0"
    with pytest.raises(ValueError, match="unsupported STOMP version"):
        StompParser(version="0.9")


# -- protocol errors ----------------------------------------------------------


@pytest.mark.parametrize("command", [b"FOO", b"send", b"SEND ", b"\rSEND"])
def test_unknown_command(command: bytes) -> None:
    found = violation(command + b"\nreceipt:r1\n\n\0")
    assert found.message.startswith("unknown command: ")
    assert found.receipt == "r1"


def test_unknown_command_message_names_it() -> None:
    assert violation(b"XYZ\n\n\0").message == "unknown command: XYZ"


def test_header_line_without_colon() -> None:
    found = violation(b"SEND\nreceipt:abc\nnocolon\n\n\0")
    assert found.message == "header line without ':'"
    assert "nocolon" in found.detail
    assert found.receipt == "abc"


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_header_with_empty_name(version: str) -> None:
    assert violation(b"SEND\n:v\n\n\0", version=version).message == "header with an empty name"


def test_invalid_utf8_in_headers() -> None:
    found = violation(b"SEND\nx:\xff\xfe\nreceipt:r\n\n\0")
    assert found.message == "frame headers are not valid UTF-8"
    assert found.receipt == "r"


def test_invalid_utf8_in_command() -> None:
    assert violation(b"SE\xc0\x80ND\n\n\0").message == "frame headers are not valid UTF-8"


def test_body_may_be_any_bytes() -> None:
    assert only_frame(b"SEND\ncontent-length:2\n\n\xff\xfe\0").body == b"\xff\xfe"


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+1", b" 1", b"1 ", b"1_0", b"", "²".encode()])
def test_invalid_content_length(value: bytes) -> None:
    found = violation(b"SEND\nreceipt:r\ncontent-length:" + value + b"\n\nx\0")
    assert found.message.startswith("invalid content-length")
    assert found.receipt == "r"


def test_huge_content_length() -> None:
    found = violation(b"SEND\ncontent-length:" + b"9" * 5000 + b"\n\n\0")
    assert "too large" in found.message


def test_body_not_terminated_by_nul() -> None:
    found = violation(b"SEND\nreceipt:77\ncontent-length:2\n\nabc\0")
    assert found.message == "frame body not terminated by NUL"
    assert found.receipt == "77"


def test_body_not_terminated_by_nul_across_feeds() -> None:
    parser = StompParser()
    assert parser.feed(b"SEND\ncontent-length:2\n\nab") == []
    [found] = parser.feed(b"c\0")
    assert isinstance(found, ProtocolViolation)
    assert found.message == "frame body not terminated by NUL"


def test_nul_inside_header_block() -> None:
    found = violation(b"SEND\nreceipt:5\nx:a\0b\n\n\0")
    assert "before the blank line" in found.message
    assert found.receipt == "5"


def test_stray_nul_between_frames() -> None:
    events = parse(b"SEND\n\n\0\0")
    assert events[0] == Frame(command="SEND")
    assert isinstance(events[1], ProtocolViolation)


def test_frames_before_violation_are_returned_then_parser_is_dead() -> None:
    parser = StompParser()
    events = parser.feed(b"SEND\n\na\0\nBOGUS\n\n\0SEND\n\nb\0")
    assert events[:2] == [Frame(command="SEND", body=b"a"), HeartBeat()]
    assert isinstance(events[2], ProtocolViolation)
    assert len(events) == 3
    assert parser.dead
    assert parser.feed(b"SEND\n\nc\0") == []
    assert parser.feed(b"\n") == []


def test_receipt_is_none_when_frame_has_none() -> None:
    assert violation(b"SEND\ncontent-length:x\n\n\0").receipt is None


def test_internal_error_never_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(StompParser, "_parse", broken)
    parser = StompParser()
    [found] = parser.feed(b"SEND\n\n\0")
    assert isinstance(found, ProtocolViolation)
    assert found.message == "internal parser error"
    assert "boom" in found.detail
    assert parser.feed(b"SEND\n\n\0") == []


def test_crlf_frame_whose_body_holds_a_blank_line() -> None:
    # The LF-LF in the body must not be taken for the end of the headers.
    frame = only_frame(b"SEND\r\na:1\r\n\r\nbody\n\nmore\0")
    assert frame == Frame(command="SEND", headers={"a": "1"}, body=b"body\n\nmore")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_missing_colon_among_escaped_headers(version: str) -> None:
    found = violation(b"SEND\nreceipt:r\\c1\nx:a\\\\b\nnocolon\n\n\0", version=version)
    assert found.message == "header line without ':'"
    assert found.receipt == "r:1"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_empty_name_among_escaped_headers(version: str) -> None:
    found = violation(b"SEND\nx:a\\\\b\n:v\n\n\0", version=version)
    assert found.message == "header with an empty name"


def test_cr_kept_after_a_resumed_header_block() -> None:
    # A header block resumed from the middle, then a lone CR kept for the
    # next read: the CR's frame must be searched from its own start.
    parser = StompParser()
    assert parser.feed(b"SEND\na:" + b"b" * 50) == []
    assert parser.feed(b"\n\n\0\r") == [Frame(command="SEND", headers={"a": "b" * 50})]
    [found] = parser.feed(b"SEND\n\n\0")
    assert isinstance(found, ProtocolViolation)
    assert found.message == "unknown command: '\\rSEND'"


def test_cr_then_lf_across_reads_after_a_frame() -> None:
    parser = StompParser()
    assert parser.feed(b"SEND\n\n\0\r") == [Frame(command="SEND")]
    assert parser.feed(b"\nSEND\n\n\0") == [HeartBeat(), Frame(command="SEND")]
