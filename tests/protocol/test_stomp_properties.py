"""Hypothesis properties of the STOMP codec.

* what serialize_frame writes, the parser reads back exactly;
* the events do not depend on how the byte stream is cut into reads;
* no input makes `feed` raise.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ferrymq.protocol.stomp import (
    Event,
    Frame,
    HeartBeat,
    Limits,
    ProtocolViolation,
    StompParser,
    serialize_frame,
)

from .stomp_helpers import (
    ESCAPED_COMMANDS,
    bytewise,
    expected_after_round_trip,
    frames,
    parse,
    parse_in_chunks,
)

VERSIONS = st.sampled_from(["1.0", "1.1", "1.2"])
PROPERTY = settings(max_examples=200, deadline=None)


@st.composite
def version_and_frame(draw: st.DrawFn) -> tuple[str, Frame]:
    version = draw(VERSIONS)
    return version, draw(frames(version))


@PROPERTY
@given(version_and_frame())
def test_round_trip(case: tuple[str, Frame]) -> None:
    version, frame = case
    assert parse(serialize_frame(frame, version), version=version) == [
        expected_after_round_trip(frame)
    ]


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, bytes]:
    """Several frames with heart-beats between them, maybe ending in garbage."""
    version = draw(VERSIONS)
    parts: list[bytes] = []
    for frame in draw(st.lists(frames(version, ESCAPED_COMMANDS), max_size=5)):
        parts.append(draw(st.sampled_from([b"", b"", b"\n", b"\r\n", b"\n\r\n\n"])))
        parts.append(serialize_frame(frame, version))
    parts.append(draw(st.binary(max_size=20) | st.just(b"")))
    return version, b"".join(parts)


@PROPERTY
@given(streams(), st.data())
def test_chunking_does_not_change_events(stream: tuple[str, bytes], data: st.DataObject) -> None:
    version, raw = stream
    whole = parse(raw, version=version)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    assert parse_in_chunks(raw, cuts, version=version) == whole


@settings(max_examples=50, deadline=None)
@given(streams())
def test_byte_at_a_time_gives_same_events(stream: tuple[str, bytes]) -> None:
    version, raw = stream
    assert bytewise(raw, version=version) == parse(raw, version=version)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames("1.2", ESCAPED_COMMANDS), min_size=1, max_size=5))
def test_stream_of_frames_round_trips(frames_: list[Frame]) -> None:
    raw = b"\n".join(serialize_frame(f, "1.2") for f in frames_)
    events = parse(raw, version="1.2")
    assert [e for e in events if isinstance(e, Frame)] == [
        expected_after_round_trip(f) for f in frames_
    ]
    assert sum(isinstance(e, HeartBeat) for e in events) == len(frames_) - 1


def _assert_well_formed(events: list[Event]) -> None:
    """At most one violation, last, and never the parser's own bug."""
    for event in events[:-1]:
        assert not isinstance(event, ProtocolViolation)
    if events and isinstance(events[-1], ProtocolViolation):
        assert events[-1].message != "internal parser error", events[-1]


# Small limits so that random input reaches them too.
SMALL = Limits(max_frame_size=200, max_headers=4, max_header_line=30, max_body=100)
STOMPISH = st.lists(
    st.sampled_from(
        [
            b"SEND",
            b"CONNECT",
            b"MESSAGE",
            b"\n",
            b"\r\n",
            b"\0",
            b":",
            b"\\",
            b"\\c",
            b"content-length:",
            b"3",
            b"-",
            b"receipt:",
            b"accept-version:1.2",
            b"x",
            b"\xff",
        ]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


@PROPERTY
@given(st.binary(max_size=300) | STOMPISH, VERSIONS, st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, version: str, small: bool) -> None:
    limits = SMALL if small else Limits()
    events = parse(data, version=version, limits=limits)
    _assert_well_formed(events)


@PROPERTY
@given(STOMPISH, VERSIONS, st.data())
def test_arbitrary_chunked_bytes_agree_with_whole(
    data: bytes, version: str, draw: st.DataObject
) -> None:
    """Chunking never changes the frames, nor whether the stream is rejected.

    With limits in play the violation's wording may differ (a partial header
    block is checked line by line before it is parsed as a whole), so only
    its presence is compared then.
    """
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=8))
    for limits in (Limits(), SMALL):
        whole = parse(data, version=version, limits=limits)
        chunked = parse_in_chunks(data, cuts, version=version, limits=limits)
        _assert_well_formed(chunked)
        if limits is SMALL:
            whole = [e for e in whole if not isinstance(e, ProtocolViolation)] + [
                ProtocolViolation(message="*") for e in whole if isinstance(e, ProtocolViolation)
            ]
            chunked = [e for e in chunked if not isinstance(e, ProtocolViolation)] + [
                ProtocolViolation(message="*") for e in chunked if isinstance(e, ProtocolViolation)
            ]
        assert chunked == whole


@PROPERTY
@given(st.lists(st.binary(max_size=50), max_size=10), VERSIONS)
def test_dead_parser_stays_dead(chunks: list[bytes], version: str) -> None:
    parser = StompParser(version=version, limits=SMALL)
    dead = False
    for chunk in chunks:
        events = parser.feed(chunk)
        if dead:
            assert events == []
        _assert_well_formed(events)
        dead = dead or bool(events and isinstance(events[-1], ProtocolViolation))
    assert parser.dead == dead
