"""serialize_frame: layout, content-length, escaping per version."""

from __future__ import annotations

import pytest

from ferrymq.protocol.stomp import HEARTBEAT_BYTES, Frame, StompParser, serialize_frame


def test_layout() -> None:
    frame = Frame(command="SEND", headers={"destination": "/queue/a"}, body=b"hi")
    assert serialize_frame(frame, "1.2") == b"SEND\ndestination:/queue/a\ncontent-length:2\n\nhi\0"


def test_no_content_length_for_empty_body() -> None:
    assert serialize_frame(Frame(command="DISCONNECT"), "1.2") == b"DISCONNECT\n\n\0"


def test_content_length_is_rewritten_not_added_twice() -> None:
    frame = Frame(command="MESSAGE", headers={"content-length": "99", "a": "b"}, body=b"abc")
    assert serialize_frame(frame, "1.2") == b"MESSAGE\ncontent-length:3\na:b\n\nabc\0"
    # The caller's frame is untouched.
    assert frame.headers == {"content-length": "99", "a": "b"}


def test_content_length_rewritten_in_escaping_path() -> None:
    frame = Frame(command="MESSAGE", headers={"content-length": "1", "x": "a\nb"}, body=b"")
    assert serialize_frame(frame, "1.2") == b"MESSAGE\ncontent-length:0\nx:a\\nb\n\n\0"


def test_caller_frame_not_mutated_when_length_added() -> None:
    frame = Frame(command="SEND", headers={"a": "b"}, body=b"abc")
    serialize_frame(frame, "1.2")
    assert frame.headers == {"a": "b"}


def test_body_with_nul() -> None:
    frame = Frame(command="SEND", body=b"a\0b")
    assert serialize_frame(frame, "1.0") == b"SEND\ncontent-length:3\n\na\0b\0"


def test_bytearray_body() -> None:
    frame = Frame(command="SEND", body=bytearray(b"xy"))  # type: ignore[arg-type]
    assert serialize_frame(frame, "1.2").endswith(b"\n\nxy\0")


def test_utf8_headers() -> None:
    frame = Frame(command="SEND", headers={"nom": "café"})
    assert serialize_frame(frame, "1.2") == "SEND\nnom:café\n\n\0".encode()


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.2", b"MESSAGE\na\\cb:x\\\\y\\nz\\cw\\rv\n\n\0"),
        ("1.1", b"MESSAGE\na\\cb:x\\\\y\\nz\\cw\rv\n\n\0"),
        # 1.0 has no escapes: backslash and value colon raw; LF/CR and the
        # name's colon in their 1.2 spelling so the framing survives.
        ("1.0", b"MESSAGE\na\\cb:x\\y\\nz:w\\rv\n\n\0"),
    ],
)
def test_escaping_per_version(version: str, expected: bytes) -> None:
    frame = Frame(command="MESSAGE", headers={"a:b": "x\\y\nz:w\rv"})
    assert serialize_frame(frame, version) == expected


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_escaping_fast_path_values_with_colons(version: str) -> None:
    frame = Frame(command="MESSAGE", headers={"message-id": "ID:h:1", "x\\": "\\"})
    expected = {
        "1.0": b"MESSAGE\nmessage-id:ID:h:1\nx\\:\\\n\n\0",
        "1.1": b"MESSAGE\nmessage-id:ID\\ch\\c1\nx\\\\:\\\\\n\n\0",
        "1.2": b"MESSAGE\nmessage-id:ID\\ch\\c1\nx\\\\:\\\\\n\n\0",
    }[version]
    assert serialize_frame(frame, version) == expected


@pytest.mark.parametrize("command", ["CONNECT", "STOMP", "CONNECTED"])
def test_connect_family_never_escaped(command: str) -> None:
    frame = Frame(command=command, headers={"host": "a:b", "login": "x\\y"})
    expected = f"{command}\nhost:a:b\nlogin:x\\y\n\n\0".encode()
    assert serialize_frame(frame, "1.2") == expected


def test_connect_family_still_cannot_break_framing() -> None:
    frame = Frame(command="CONNECTED", headers={"server": "x\nversion:9"})
    assert serialize_frame(frame, "1.2") == b"CONNECTED\nserver:x\\nversion:9\n\n\0"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_nul_in_headers_is_dropped(version: str) -> None:
    frame = Frame(command="MESSAGE", headers={"a\0": "b\0c"})
    assert serialize_frame(frame, version) == b"MESSAGE\na:bc\n\n\0"


def test_header_injection_impossible_in_1_0() -> None:
    frame = Frame(command="MESSAGE", headers={"x": "1\nmessage-id:evil", "message-id": "m1"})
    parser = StompParser(version="1.0")
    [parsed] = parser.feed(serialize_frame(frame, "1.0"))
    assert isinstance(parsed, Frame)
    assert parsed.headers["message-id"] == "m1"


def test_unsupported_version() -> None:
    with pytest.raises(ValueError, match="unsupported STOMP version"):
        serialize_frame(Frame(command="SEND"), "2.0")


def test_heartbeat_bytes() -> None:
    assert HEARTBEAT_BYTES == b"\n"


@pytest.mark.parametrize("command", ["CONNECT", "MESSAGE"])
def test_raw_mode_colon_in_name_and_cr_in_value(command: str) -> None:
    frame = Frame(command=command, headers={"a:b": "c:d", "e": "f\rg"})
    expected = f"{command}\na\\cb:c:d\ne:f\\rg\n\n\0".encode()
    assert serialize_frame(frame, "1.0") == expected
