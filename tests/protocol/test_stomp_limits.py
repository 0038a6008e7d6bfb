"""Limits: each one enforced, with a precise message, as early as possible."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ferrymq.protocol.stomp import Event, Frame, Limits, ProtocolViolation, StompParser

from .stomp_helpers import parse


def last_violation(events: Sequence[Event]) -> ProtocolViolation:
    assert events, "expected a ProtocolViolation"
    assert isinstance(events[-1], ProtocolViolation), events
    return events[-1]


def test_defaults() -> None:
    limits = Limits()
    assert limits.max_frame_size == 64 * 1024 * 1024
    assert limits.max_headers == 1000
    assert limits.max_header_line == 10 * 1024
    assert limits.max_body == 64 * 1024 * 1024


@pytest.mark.parametrize("field", ["max_frame_size", "max_headers", "max_header_line", "max_body"])
def test_limits_must_be_non_negative_ints(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: -1})
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 1.5})  # type: ignore[arg-type]


# -- max_header_line -----------------------------------------------------------


def test_header_line_at_limit_is_accepted() -> None:
    limits = Limits(max_header_line=10)
    # "x:12345678" is 10 bytes; the CRLF does not count.
    events = parse(b"SEND\r\nx:12345678\r\n\r\n\0", limits=limits)
    assert events == [Frame(command="SEND", headers={"x": "12345678"})]


def test_header_line_over_limit() -> None:
    limits = Limits(max_header_line=10)
    found = last_violation(parse(b"SEND\nreceipt:r\nx:123456789\n\n\0", limits=limits))
    assert found.message == "header line exceeds 10 bytes"
    assert found.receipt == "r"


def test_command_line_counts_as_a_header_line() -> None:
    found = last_violation(parse(b"SUBSCRIBE\n\n\0", limits=Limits(max_header_line=5)))
    assert found.message == "header line exceeds 5 bytes"


def test_unterminated_header_line_rejected_before_it_ends() -> None:
    parser = StompParser(limits=Limits(max_header_line=100))
    assert parser.feed(b"SEND\nx:" + b"a" * 90) == []
    found = last_violation(parser.feed(b"a" * 20))
    assert found.message == "header line exceeds 100 bytes"


def test_long_complete_line_in_unterminated_block() -> None:
    parser = StompParser(limits=Limits(max_header_line=100))
    assert parser.feed(b"SEND\nx:" + b"a" * 60) == []
    found = last_violation(parser.feed(b"a" * 60 + b"\ny:"))
    assert found.message == "header line exceeds 100 bytes"


def test_default_header_line_limit() -> None:
    found = last_violation(parse(b"SEND\nx:" + b"a" * 10240 + b"\n\n\0"))
    assert found.message == "header line exceeds 10240 bytes"
    assert parse(b"SEND\nx:" + b"a" * 10238 + b"\n\n\0")[0] == Frame(
        command="SEND", headers={"x": "a" * 10238}
    )


# -- max_headers -----------------------------------------------------------------


def test_headers_at_limit_are_accepted() -> None:
    data = b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(5)) + b"\n\0"
    [frame] = parse(data, limits=Limits(max_headers=5))
    assert isinstance(frame, Frame)
    assert len(frame.headers) == 5


def test_too_many_headers() -> None:
    data = b"SEND\nreceipt:r\n" + b"".join(b"h%d:v\n" % i for i in range(5)) + b"\n\0"
    found = last_violation(parse(data, limits=Limits(max_headers=5)))
    assert found.message == "too many headers (limit 5)"
    assert found.receipt == "r"


def test_repeated_headers_count_towards_the_limit() -> None:
    found = last_violation(parse(b"SEND\na:1\na:2\na:3\n\n\0", limits=Limits(max_headers=2)))
    assert found.message == "too many headers (limit 2)"


def test_too_many_headers_rejected_before_block_ends() -> None:
    parser = StompParser(limits=Limits(max_headers=3))
    assert parser.feed(b"SEND\na:1\nb:2\nc:3\n") == []
    found = last_violation(parser.feed(b"d:4\n"))
    assert found.message == "too many headers (limit 3)"


def test_default_header_count_limit() -> None:
    data = b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(1001)) + b"\n\0"
    assert last_violation(parse(data)).message == "too many headers (limit 1000)"


# -- max_body ------------------------------------------------------------------------


def test_content_length_over_max_body_rejected_at_once() -> None:
    parser = StompParser()
    # Only the headers: the violation must not wait for 70 MB of body.
    found = last_violation(parser.feed(b"SEND\nreceipt:big\ncontent-length:70000000\n\n"))
    assert found.message == "body of 70000000 bytes exceeds limit 67108864"
    assert found.receipt == "big"


def test_body_at_limit_is_accepted() -> None:
    limits = Limits(max_body=4)
    assert parse(b"SEND\n\nabcd\0", limits=limits) == [Frame(command="SEND", body=b"abcd")]
    events = parse(b"SEND\ncontent-length:4\n\nabcd\0", limits=limits)
    assert events[0] == Frame(command="SEND", headers={"content-length": "4"}, body=b"abcd")


def test_nul_terminated_body_over_limit() -> None:
    found = last_violation(parse(b"SEND\nreceipt:r\n\nabcde\0", limits=Limits(max_body=4)))
    assert found.message == "body of 5 bytes exceeds limit 4"
    assert found.receipt == "r"


def test_unterminated_body_rejected_once_over_limit() -> None:
    parser = StompParser(limits=Limits(max_body=100))
    assert parser.feed(b"SEND\nreceipt:r\n\n" + b"x" * 60) == []
    assert parser.feed(b"x" * 40) == []
    found = last_violation(parser.feed(b"x"))
    assert found.message == "body of 101 bytes exceeds limit 100"
    assert found.receipt == "r"


def test_unterminated_body_rejected_in_first_feed() -> None:
    found = last_violation(parse(b"SEND\n\n" + b"x" * 200, limits=Limits(max_body=100)))
    assert found.message.startswith("body of 200 bytes exceeds limit 100")


# -- max_frame_size ---------------------------------------------------------------------


def test_frame_at_limit_is_accepted() -> None:
    data = b"SEND\n\nabc\0"
    assert parse(data, limits=Limits(max_frame_size=len(data))) == [
        Frame(command="SEND", body=b"abc")
    ]


def test_frame_over_limit_with_nul() -> None:
    data = b"SEND\n\nabcd\0"
    found = last_violation(parse(data, limits=Limits(max_frame_size=len(data) - 1)))
    assert found.message.startswith(f"frame exceeds max_frame_size {len(data) - 1}")


def test_frame_over_limit_by_content_length_rejected_at_once() -> None:
    parser = StompParser(limits=Limits(max_frame_size=100, max_body=1000))
    found = last_violation(parser.feed(b"SEND\nreceipt:r\ncontent-length:95\n\n"))
    assert found.message.startswith("frame exceeds max_frame_size 100")
    assert found.receipt == "r"


def test_unterminated_frame_rejected_once_over_limit() -> None:
    parser = StompParser(limits=Limits(max_frame_size=100, max_body=1000))
    assert parser.feed(b"SEND\n\n" + b"x" * 90) == []
    assert isinstance(parser.feed(b"x" * 10)[-1], ProtocolViolation)


def test_unterminated_header_block_rejected_once_over_frame_limit() -> None:
    # Many short header lines: no line or count limit trips, the frame one does.
    parser = StompParser(limits=Limits(max_frame_size=1000))
    assert parser.feed(b"SEND\n") == []
    events: list[Event] = []
    for _ in range(300):
        events += parser.feed(b"a:b\n")
        if events:
            break
    found = last_violation(events)
    assert found.message.startswith("frame exceeds max_frame_size 1000")


def test_buffer_never_grows_without_bound() -> None:
    # A peer streaming a body with no NUL is cut off as soon as it passes the limit.
    parser = StompParser(limits=Limits(max_frame_size=10_000, max_body=10_000))
    chunk = b"x" * 1000
    fed = len(b"SEND\n\n")
    events = parser.feed(b"SEND\n\n")
    while not events:
        events = parser.feed(chunk)
        fed += len(chunk)
    assert fed <= 10_000 + len(chunk)
    assert isinstance(events[-1], ProtocolViolation)
    assert parser.feed(chunk) == []


def test_pending_body_completed_over_limit() -> None:
    parser = StompParser(limits=Limits(max_body=10))
    assert parser.feed(b"SEND\nreceipt:r\n\nabc") == []
    found = last_violation(parser.feed(b"x" * 20 + b"\0"))
    assert found.message == "body of 23 bytes exceeds limit 10"
    assert found.receipt == "r"


def test_pending_frame_completed_over_frame_limit() -> None:
    parser = StompParser(limits=Limits(max_frame_size=30))
    assert parser.feed(b"SEND\n\nabc") == []
    found = last_violation(parser.feed(b"x" * 30 + b"\0"))
    assert found.message.startswith("frame exceeds max_frame_size 30")
